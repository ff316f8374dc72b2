// Drivers for per-sample ops on (B, L, C) with one (C) row of parameters per sample
// (modulate, gated residual): rows in parallel, and per-sample column sums over L that are
// deterministic — each sample's rows split into blocks by B, L and C alone, summed into
// private partials, then reduced in block order, whatever the thread count.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"

namespace pit::cpu::per_sample {

constexpr int64_t kGrain = 1 << 15;    // elements per chunk: ~128 KiB per operand
constexpr int64_t kTargetTasks = 64;   // row blocks over all samples for the reductions
constexpr int64_t kPartialAlign = 16;  // partial rows padded to a cache line (no sharing)

// fn(row, rows, b): consecutive rows [row, row + rows) of (B·L, C), all in sample b.
template <typename Fn>
void for_rows(int64_t B, int64_t L, int64_t C, Fn fn) {
  parallel_for(B * L, std::max<int64_t>(1, kGrain / C), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end;) {
      const int64_t b = row / L, stop = std::min(end, (b + 1) * L);
      fn(row, stop - row, b);
      row = stop;
    }
  });
}

// total (C) = Σ_k partials[k] (row stride `stride`), k in order: a fixed summation order.
static PIT_MULTIVERSION void sum_partials(float* total, const float* partials, int64_t blocks, int64_t stride,
                                          int64_t C) {
  for (int64_t c = 0; c < C; ++c) total[c] = partials[c];
  for (int64_t k = 1; k < blocks; ++k)
    for (int64_t c = 0; c < C; ++c) total[c] += partials[k * stride + c];
}

// outputs[k] (B, C) = per-sample column sums that fn accumulates: fn(row, rows, b, acc) adds
// the sums of rows [row, row + rows) of sample b into acc[k] (C floats, zeroed; null where
// outputs[k] is null). Each sample's rows are split into enough blocks to share out when B is
// small, none smaller than ~kGrain elements; with one block per sample the sums go straight
// into the outputs.
template <size_t N, typename Fn>
void column_sums(const std::array<float*, N>& outputs, int64_t B, int64_t L, int64_t C, Fn fn) {
  for (float* out : outputs)
    if (out) std::fill(out, out + B * C, 0.0f);
  if (L <= 0) return;  // no tokens: the sums are empty
  const int64_t by_size = (L * C + kGrain - 1) / kGrain;
  const int64_t wanted = std::max<int64_t>(1, std::min((kTargetTasks + B - 1) / B, by_size));
  const int64_t rows_per_block = (L + wanted - 1) / wanted;
  const int64_t blocks = (L + rows_per_block - 1) / rows_per_block;
  const int64_t stride = blocks == 1 ? C : (C + kPartialAlign - 1) / kPartialAlign * kPartialAlign;
  std::vector<float> partials;
  std::array<float*, N> acc = outputs;  // each (B·blocks, stride)
  if (blocks > 1) {
    partials.assign(static_cast<size_t>(N * B * blocks * stride), 0.0f);
    for (size_t k = 0; k < N; ++k) acc[k] = outputs[k] ? partials.data() + k * B * blocks * stride : nullptr;
  }
  parallel_for(B * blocks, 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t b = task / blocks, first = (task % blocks) * rows_per_block;
      const int64_t rows = std::min(L, first + rows_per_block) - first;
      std::array<float*, N> mine;
      for (size_t k = 0; k < N; ++k) mine[k] = acc[k] ? acc[k] + task * stride : nullptr;
      fn(b * L + first, rows, b, mine);
    }
  });
  if (blocks == 1) return;
  parallel_for(B, 1, [&](int64_t b_begin, int64_t b_end) {
    for (int64_t b = b_begin; b < b_end; ++b)
      for (size_t k = 0; k < N; ++k)
        if (outputs[k]) sum_partials(outputs[k] + b * C, acc[k] + b * blocks * stride, blocks, stride, C);
  });
}

}  // namespace pit::cpu::per_sample
