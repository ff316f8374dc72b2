// Token-axis data movement: gather/scatter-add by per-sample ids (MAE's keep/restore),
// concat (the cls token), slice and its backward. All are row copies of C floats; the work
// is split over (sample, token) rows, except scatter-add, where two ids of one sample may
// name the same output row: there the split is over samples and column tiles, so each
// output element has exactly one writer and sees its additions in k order.
#include <algorithm>
#include <cstring>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrainElements = 1 << 14;  // floats per parallel chunk

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(C, 1)); }

void copy_row(float* dst, const float* src, int64_t C) { std::memcpy(dst, src, C * sizeof(float)); }

PIT_MULTIVERSION void add_row(float* dst, const float* src, int64_t C) {
  for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
}

}  // namespace

// out (B, K, C) = x (B, L, C)[b, ids[b, k], :].
void gather_tokens(float* out, const float* x, const int32_t* ids, int64_t B, int64_t L, int64_t K, int64_t C) {
  parallel_for(B * K, row_grain(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t b = r / K;
      copy_row(out + r * C, x + (b * L + ids[r]) * C, C);
    }
  });
}

// out (B, L, C)[b, ids[b, k], :] += src (B, K, C)[b, k, :]; ids may repeat within a sample.
void scatter_add_tokens(float* out, const float* src, const int32_t* ids, int64_t B, int64_t L, int64_t K,
                        int64_t C) {
  // Column tiles give small batches work for every core; tiles of >= 64 floats keep each
  // row segment a whole number of cache lines' worth of useful work.
  const int64_t threads = num_threads();
  int64_t tiles = B >= 2 * threads ? 1 : std::min<int64_t>((2 * threads + B - 1) / B, (C + 63) / 64);
  tiles = std::max<int64_t>(tiles, 1);
  const int64_t tile_width = (C + tiles - 1) / tiles;
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(K * tile_width, 1));
  parallel_for(B * tiles, grain, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      int64_t b = it / tiles, c0 = (it % tiles) * tile_width, w = std::min(C, c0 + tile_width) - c0;
      if (w <= 0) continue;
      for (int64_t k = 0; k < K; ++k)
        add_row(out + (b * L + ids[b * K + k]) * C + c0, src + (b * K + k) * C + c0, w);
    }
  });
}

// out (B, La + Lb, C) = [a; b]; a is (B, La, C), or (1, La, C) shared by every sample.
void concat_tokens(float* out, const float* a, const float* b, int64_t B, int64_t La, int64_t Lb, int64_t C,
                   bool a_shared) {
  const int64_t Lo = La + Lb;
  parallel_for(B * Lo, row_grain(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t s = r / Lo, l = r % Lo;
      const float* src = l < La ? a + ((a_shared ? 0 : s * La) + l) * C : b + (s * Lb + l - La) * C;
      copy_row(out + r * C, src, C);
    }
  });
}

// out (B, Lo, C) = x (B, L, C)[:, start : start + Lo, :].
void slice_tokens(float* out, const float* x, int64_t B, int64_t L, int64_t start, int64_t Lo, int64_t C) {
  parallel_for(B * Lo, row_grain(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {  // runs of consecutive rows of one sample: one memcpy
      int64_t s = r / Lo, l = r % Lo, run = std::min(end - r, Lo - l);
      std::memcpy(out + r * C, x + (s * L + start + l) * C, run * C * sizeof(float));
      r += run;
    }
  });
}

// dx (B, L, C) = dout (B, Lo, C) placed at tokens [start, start + Lo), zeros elsewhere.
void slice_tokens_backward(float* dx, const float* dout, int64_t B, int64_t L, int64_t start, int64_t Lo,
                           int64_t C) {
  parallel_for(B * L, row_grain(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {
      // Split [r, end) at the sample's slice edges into zero runs and copy runs.
      int64_t s = r / L, l = r % L;
      int64_t edge = l < start ? start : l < start + Lo ? start + Lo : L;
      int64_t run = std::min(end - r, edge - l);
      if (l >= start && l < start + Lo)
        std::memcpy(dx + r * C, dout + (s * Lo + l - start) * C, run * C * sizeof(float));
      else
        std::memset(dx + r * C, 0, run * C * sizeof(float));
      r += run;
    }
  });
}

}  // namespace pit::cpu
