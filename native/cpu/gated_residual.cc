// Gated residual (DiT's adaLN-Zero): out = x + gate[b]·y for x, y (B, L, C), with one gate
// row (C) per sample. The forward and dy are elementwise over rows of C (dx = dout, so the
// backward never writes it); dgate = Σ_L dout·y is summed per row block into private
// partials and reduced in block order, so it is deterministic: the split depends only on
// B, L, C.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;       // elements per chunk: ~128 KiB per operand
constexpr int64_t kTargetTasks = 64;      // row blocks over all samples for the reduction
constexpr int64_t kPartialAlign = 16;     // partial rows padded to a cache line (no sharing)

// rows (rows, C) of one sample; gate (C) is that sample's.
PIT_MULTIVERSION void gated_residual_rows(float* out, const float* x, const float* y, const float* gate,
                                          int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[r * C + c] + gate[c] * y[r * C + c];
}

// dy rows = dout·gate; acc_gate (C) += Σ_rows dout·y. Either output may be null.
PIT_MULTIVERSION void gated_residual_backward_rows(float* dy, float* acc_gate, const float* dout, const float* y,
                                                   const float* gate, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dout + r * C;
    if (dy)
      for (int64_t c = 0; c < C; ++c) dy[r * C + c] = g[c] * gate[c];
    if (acc_gate)
      for (int64_t c = 0; c < C; ++c) acc_gate[c] += g[c] * y[r * C + c];
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

// out, x, y (B, L, C); gate (B, C).
void gated_residual_forward(float* out, const float* x, const float* y, const float* gate, int64_t B,
                            int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  // Chunks of whole rows over (B·L); a chunk may straddle samples.
  parallel_for(B * L, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end;) {
      const int64_t b = row / L, stop = std::min(end, (b + 1) * L);
      gated_residual_rows(out + row * C, x + row * C, y + row * C, gate + b * C, stop - row, C);
      row = stop;
    }
  });
}

// dy (B, L, C), dgate (B, C), each null when not wanted; dout, y (B, L, C), gate (B, C).
void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                             int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (L <= 0) {  // no tokens: the sum is empty
    if (dgate) std::fill(dgate, dgate + B * C, 0.0f);
    return;
  }
  if (!dgate) {
    if (!dy) return;
    parallel_for(B * L, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end;) {
        const int64_t b = row / L, stop = std::min(end, (b + 1) * L);
        gated_residual_backward_rows(dy + row * C, nullptr, dout + row * C, y + row * C, gate + b * C, stop - row,
                                     C);
        row = stop;
      }
    });
    return;
  }

  // Each sample's L rows split into `blocks` blocks: enough tasks to share out when B is
  // small, none smaller than ~kGrain elements. With one block per sample the sums go
  // straight into dgate; otherwise into partials (B·blocks, stride).
  const int64_t by_size = (L * C + kGrain - 1) / kGrain;
  const int64_t wanted = std::max<int64_t>(1, std::min((kTargetTasks + B - 1) / B, by_size));
  const int64_t rows_per_block = (L + wanted - 1) / wanted;
  const int64_t blocks = (L + rows_per_block - 1) / rows_per_block;
  const int64_t stride = blocks == 1 ? C : (C + kPartialAlign - 1) / kPartialAlign * kPartialAlign;
  std::vector<float> partials;
  float* acc_gate = dgate;  // (B·blocks, stride)
  if (blocks == 1) {
    std::fill(dgate, dgate + B * C, 0.0f);
  } else {
    partials.assign(static_cast<size_t>(B * blocks * stride), 0.0f);
    acc_gate = partials.data();
  }
  parallel_for(B * blocks, 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t b = task / blocks, first = (task % blocks) * rows_per_block;
      const int64_t rows = std::min(L, first + rows_per_block) - first, row = b * L + first;
      gated_residual_backward_rows(dy ? dy + row * C : nullptr, acc_gate + task * stride, dout + row * C,
                                   y + row * C, gate + b * C, rows, C);
    }
  });
  if (blocks == 1) return;
  parallel_for(B, 1, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b) sum_partials(dgate + b * C, acc_gate + b * blocks * stride, blocks, stride, C);
  });
}

}  // namespace pit::cpu
