// adaLN modulation (DiT): out = x·(1 + scale[b]) + shift[b] for x (B, L, C), with one
// shift and scale row (C) per sample. The forward and dx are elementwise over rows of C;
// dshift = Σ_L dout and dscale = Σ_L dout·x are summed per row block into private partials
// and reduced in block order, so they are deterministic: the split depends only on B, L, C.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;       // elements per chunk: ~128 KiB per operand
constexpr int64_t kTargetTasks = 64;      // row blocks over all samples for the reductions
constexpr int64_t kPartialAlign = 16;     // partial rows padded to a cache line (no sharing)

// rows (rows, C) of one sample; shift, scale (C) are that sample's.
PIT_MULTIVERSION void modulate_rows(float* out, const float* x, const float* shift, const float* scale,
                                    int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[r * C + c] * (1.0f + scale[c]) + shift[c];
}

// dx rows = dout·(1 + scale); acc_shift (C) += Σ_rows dout, acc_scale (C) += Σ_rows dout·x.
// Any of dx, acc_shift, acc_scale may be null. The row (C floats) stays in L1 across the
// three loops, so only the first touches memory.
PIT_MULTIVERSION void modulate_backward_rows(float* dx, float* acc_shift, float* acc_scale, const float* dout,
                                             const float* x, const float* scale, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dout + r * C;
    if (dx)
      for (int64_t c = 0; c < C; ++c) dx[r * C + c] = g[c] * (1.0f + scale[c]);
    if (acc_shift)
      for (int64_t c = 0; c < C; ++c) acc_shift[c] += g[c];
    if (acc_scale)
      for (int64_t c = 0; c < C; ++c) acc_scale[c] += g[c] * x[r * C + c];
  }
}

// total (C) = Σ_k partials[k] (row stride `stride`), k in order: a fixed summation order.
PIT_MULTIVERSION void sum_partials(float* total, const float* partials, int64_t blocks, int64_t stride,
                                   int64_t C) {
  for (int64_t c = 0; c < C; ++c) total[c] = partials[c];
  for (int64_t k = 1; k < blocks; ++k)
    for (int64_t c = 0; c < C; ++c) total[c] += partials[k * stride + c];
}

}  // namespace

// out, x (B, L, C); shift, scale (B, C).
void modulate_forward(float* out, const float* x, const float* shift, const float* scale, int64_t B,
                      int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  // Chunks of whole rows over (B·L); a chunk may straddle samples.
  parallel_for(B * L, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end;) {
      const int64_t b = row / L, stop = std::min(end, (b + 1) * L);
      modulate_rows(out + row * C, x + row * C, shift + b * C, scale + b * C, stop - row, C);
      row = stop;
    }
  });
}

// dx (B, L, C), dshift, dscale (B, C), each null when not wanted; dout, x (B, L, C), scale (B, C).
void modulate_backward(float* dx, float* dshift, float* dscale, const float* dout, const float* x,
                       const float* scale, int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (L <= 0) {  // no tokens: the sums are empty
    if (dshift) std::fill(dshift, dshift + B * C, 0.0f);
    if (dscale) std::fill(dscale, dscale + B * C, 0.0f);
    return;
  }
  if (!dshift && !dscale) {
    if (!dx) return;
    parallel_for(B * L, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end;) {
        const int64_t b = row / L, stop = std::min(end, (b + 1) * L);
        modulate_backward_rows(dx + row * C, nullptr, nullptr, dout + row * C, x + row * C, scale + b * C,
                               stop - row, C);
        row = stop;
      }
    });
    return;
  }

  // Each sample's L rows split into `blocks` blocks: enough tasks to share out when B is
  // small, none smaller than ~kGrain elements. With one block per sample the sums go
  // straight into dshift / dscale; otherwise into partials (2, B·blocks, stride).
  const int64_t by_size = (L * C + kGrain - 1) / kGrain;
  const int64_t wanted = std::max<int64_t>(1, std::min((kTargetTasks + B - 1) / B, by_size));
  const int64_t rows_per_block = (L + wanted - 1) / wanted;
  const int64_t blocks = (L + rows_per_block - 1) / rows_per_block;
  const int64_t stride = blocks == 1 ? C : (C + kPartialAlign - 1) / kPartialAlign * kPartialAlign;
  std::vector<float> partials;
  float *acc_shift = dshift, *acc_scale = dscale;  // (B·blocks, stride)
  if (blocks == 1) {
    if (dshift) std::fill(dshift, dshift + B * C, 0.0f);
    if (dscale) std::fill(dscale, dscale + B * C, 0.0f);
  } else {
    partials.assign(static_cast<size_t>(2 * B * blocks * stride), 0.0f);
    acc_shift = dshift ? partials.data() : nullptr;
    acc_scale = dscale ? partials.data() + B * blocks * stride : nullptr;
  }
  parallel_for(B * blocks, 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t b = task / blocks, first = (task % blocks) * rows_per_block;
      const int64_t rows = std::min(L, first + rows_per_block) - first, row = b * L + first;
      modulate_backward_rows(dx ? dx + row * C : nullptr, acc_shift ? acc_shift + task * stride : nullptr,
                             acc_scale ? acc_scale + task * stride : nullptr, dout + row * C, x + row * C,
                             scale + b * C, rows, C);
    }
  });
  if (blocks == 1) return;
  parallel_for(B, 1, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b) {
      if (dshift) sum_partials(dshift + b * C, acc_shift + b * blocks * stride, blocks, stride, C);
      if (dscale) sum_partials(dscale + b * C, acc_scale + b * blocks * stride, blocks, stride, C);
    }
  });
}

}  // namespace pit::cpu
