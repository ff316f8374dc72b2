// Sum (or mean) over the middle axis of x viewed as (outer, n, inner), and its backward.
//
// The middle axis is cut into fixed blocks of rows; each (outer, block) reduces into its
// own partial row, vectorised along `inner` (or along n itself when inner = 1, where rows
// are contiguous), and the partials are added in block order. So the work parallelises
// even when outer·inner is small (a bias gradient: outer = 1, n = B·L), float error grows
// with the block length plus the block count rather than with n, and the result does not
// depend on the thread count.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kBlockElements = 1 << 14;  // elements of x per block: ~64 KiB, L2-resident
constexpr int64_t kInnerTile = 1024;         // accumulator width: 4 KiB, stays in L1

// acc (w) = Σ_j x[j·stride .. + w) over `rows` rows.
PIT_MULTIVERSION void sum_rows_into(float* acc, const float* x, int64_t rows, int64_t stride, int64_t w) {
  for (int64_t i = 0; i < w; ++i) acc[i] = 0.0f;
  for (int64_t j = 0; j < rows; ++j) {
    const float* row = x + j * stride;
    for (int64_t i = 0; i < w; ++i) acc[i] += row[i];
  }
}
// out[r] = a · Σ_j x[r·stride + j] for j < len, r < rows: contiguous rows (inner = 1).
PIT_MULTIVERSION void sum_contiguous_rows(float* out, const float* x, int64_t rows, int64_t stride, int64_t len,
                                          float a) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * stride;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < len; ++j) s += row[j];
    out[r] = a * s;
  }
}
PIT_MULTIVERSION void scale_copy(float* out, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a * x[i];
}
PIT_MULTIVERSION void fill_value(float* out, float v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}
// dx (rows, inner) = a · row, the same row repeated.
PIT_MULTIVERSION void repeat_row(float* dx, const float* row, float a, int64_t rows, int64_t inner) {
  for (int64_t j = 0; j < rows; ++j)
    for (int64_t i = 0; i < inner; ++i) dx[j * inner + i] = a * row[i];
}

}  // namespace

// out (outer, inner) = Σ_j x (outer, n, inner)[:, j, :], times 1/n when mean.
void sum_forward(float* out, const float* x, int64_t outer, int64_t n, int64_t inner, bool mean) {
  if (outer * inner == 0) return;
  const float a = mean && n > 0 ? 1.0f / static_cast<float>(n) : 1.0f;
  if (n == 0) {
    fill_value(out, 0.0f, outer * inner);
    return;
  }
  const int64_t block_rows = std::max<int64_t>(1, kBlockElements / inner);
  const int64_t blocks = (n + block_rows - 1) / block_rows;
  const int64_t tiles = (inner + kInnerTile - 1) / kInnerTile;

  const float item_scale = blocks == 1 ? a : 1.0f;  // the mean's 1/n, applied once at the end
  if (inner == 1 && blocks == 1) {  // many short contiguous rows: one call per chunk of rows
    parallel_for(outer, std::max<int64_t>(1, kBlockElements / n), [&](int64_t begin, int64_t end) {
      sum_contiguous_rows(out + begin, x + begin * n, end - begin, n, n, item_scale);
    });
    return;
  }

  // partial (outer, blocks, inner); written straight to out when there is one block.
  std::vector<float> scratch(blocks > 1 ? outer * blocks * inner : 0);
  float* partial = blocks > 1 ? scratch.data() : out;
  const int64_t items = outer * blocks * tiles;  // one item: one (o, block, inner tile)
  const int64_t item_elements = std::min(n, block_rows) * std::min(inner, kInnerTile);
  const int64_t item_grain = std::max<int64_t>(1, kBlockElements / item_elements);
  parallel_for(items, item_grain, [&](int64_t begin, int64_t end) {
    for (int64_t it = begin; it < end; ++it) {
      int64_t tile = it % tiles, ob = it / tiles, blk = ob % blocks, o = ob / blocks;
      int64_t j0 = blk * block_rows, rows = std::min(n, j0 + block_rows) - j0;
      float* dst = partial + ob * inner;
      const float* src = x + (o * n + j0) * inner;
      if (inner == 1) {
        sum_contiguous_rows(dst, src, 1, rows, rows, item_scale);
      } else {
        int64_t i0 = tile * kInnerTile, w = std::min(inner, i0 + kInnerTile) - i0;
        sum_rows_into(dst + i0, src + i0, rows, inner, w);
        if (item_scale != 1.0f) scale_copy(dst + i0, dst + i0, item_scale, w);
      }
    }
  });
  if (blocks == 1) return;
  // Combine the block partials in block order: another (outer, blocks, inner) reduction,
  // small (n / block_rows rows), parallel over outer·inner.
  const int64_t combine_grain = std::max<int64_t>(1, kBlockElements / blocks);
  parallel_for(outer * inner, combine_grain, [&](int64_t begin, int64_t end) {
    for (int64_t oi = begin; oi < end;) {
      int64_t o = oi / inner, i = oi % inner, w = std::min(end - oi, inner - i);
      float* dst = out + oi;
      sum_rows_into(dst, partial + o * blocks * inner + i, blocks, inner, w);
      if (a != 1.0f) scale_copy(dst, dst, a, w);
      oi += w;
    }
  });
}

// dx (outer, n, inner) = dout (outer, inner) repeated along n, times 1/n when mean.
void sum_backward(float* dx, const float* dout, int64_t outer, int64_t n, int64_t inner, bool mean) {
  const float a = mean && n > 0 ? 1.0f / static_cast<float>(n) : 1.0f;
  const int64_t rows = outer * n;
  const int64_t grain = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(inner, 1));
  parallel_for(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {
      int64_t o = r / n, run = std::min(end, (o + 1) * n) - r;  // rows of this outer index
      if (inner == 1) {
        fill_value(dx + r, a * dout[o], run);
      } else {
        repeat_row(dx + r * inner, dout + o * inner, a, run, inner);
      }
      r += run;
    }
  });
}

}  // namespace pit::cpu
