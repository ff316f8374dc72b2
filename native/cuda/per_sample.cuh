// Drivers for the per-sample ops on (B, L, C) with one (C) row of parameters per sample
// (modulate, gated residual), the GPU side of native/cpu/per_sample.h:
//
// launch_map: the forward of those ops, out (B, L, C) = f(elementwise inputs, per-sample
// rows), launched over for_units below; each op brings only its f.
// for_units: elementwise over (B, L, C). grid.y walks the samples and grid.x a grid-stride
// loop over one sample's L·C elements, so the sample is known without dividing, and the
// column c (for the parameter row) is kept beside the index: it advances by stride % C.
// Elements go in float4s when C % 4 == 0 and every pointer is 16-byte aligned.
//
// column_sums: per-sample sums over L, outputs (B, C), deterministic without atomics. Blocks
// of 32 columns x 8 row lanes: each warp reads 32 consecutive floats of a row (coalesced),
// each thread sums its lane's rows in order, the 8 lanes are added in order through shared
// memory. When B·C alone gives too few blocks, L is cut into chunks (by B, L, C only) whose
// partial sums go to pool scratch and are added in chunk order by a second kernel. The same
// pass writes any elementwise output of the backward (dx, dy).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/map.cuh"

namespace pit::cuda::per_sample {

constexpr int kThreads = 256;

// Calls fn(i, p) for this thread's units: i indexes (B, L·C/w) and p the matching (B, C/w)
// parameter unit (w = 1 or 4: lc = L·C/w, cu = C/w).
template <typename Fn>
__device__ __forceinline__ void for_units(int64_t B, int64_t lc, int64_t cu, const Fn& fn) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (start >= lc) return;
  const int64_t c0 = start % cu, c_step = stride % cu;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    int64_t c = c0;
    for (int64_t j = start; j < lc; j += stride) {
      fn(b * lc + j, b * cu + c);
      c += c_step;
      if (c >= cu) c -= cu;
    }
  }
}

// Grid for for_units over B samples of lc units each: grid_for's block count, split between
// samples (y, at most 65535) and units (x, never more than one sample needs).
inline dim3 units_grid(int64_t B, int64_t lc) {
  const int64_t total = grid_for(B * lc, kThreads);
  const int64_t y = std::min<int64_t>(B, 65535);
  const int64_t x_max = (lc + kThreads - 1) / kThreads;
  const int64_t x = std::max<int64_t>(1, std::min<int64_t>((total + y - 1) / y, x_max));
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y));
}

template <size_t, typename V>
using Input = const V*;

// out[i] = f(in_0[i or p], in_1[i or p], ...) in units V (float or float4, lane by lane):
// the first kElems inputs are read at the element i (B, L·C/w), the rest at its sample's
// parameter unit p (B, C/w).
template <typename V, size_t kElems, typename F, size_t... I>
__global__ void __launch_bounds__(kThreads)
    map_kernel(F f, std::index_sequence<I...>, V* out, int64_t B, int64_t lc, int64_t cu, Input<I, V>... in) {
  for_units(B, lc, cu, [&](int64_t i, int64_t p) { out[i] = lanes(f, in[I < kElems ? i : p]...); });
}

// out (B, L, C) = f(elementwise inputs (B, L, C)..., per-sample rows (B, C)...): `in` holds
// the kElems elementwise inputs first, then the rows. float4s when C % 4 == 0 and every
// pointer is 16-byte aligned. B, L, C > 0; `op` names the op in errors.
template <size_t kElems, typename F, typename... In>
void launch_map(const char* op, F f, float* out, int64_t B, int64_t L, int64_t C, const In*... in) {
  static_assert(kElems <= sizeof...(In), "more elementwise inputs than inputs");
  const bool vec = C % 4 == 0 && aligned16(out) && (aligned16(in) && ...);
  const int64_t w = vec ? 4 : 1, lc = L * C / w, cu = C / w;
  const dim3 grid = units_grid(B, lc);
  const auto inputs = std::index_sequence_for<In...>();
  if (vec)
    map_kernel<float4, kElems><<<grid, kThreads, 0, stream()>>>(f, inputs, reinterpret_cast<float4*>(out), B, lc,
                                                                cu, reinterpret_cast<const float4*>(in)...);
  else
    map_kernel<float, kElems><<<grid, kThreads, 0, stream()>>>(f, inputs, out, B, lc, cu, in...);
  check_launch(op);
}

constexpr int kCols = 32, kLanes = 8;       // column_sums blocks: 32 columns x 8 row lanes
constexpr int64_t kTargetBlocks = 1024;     // enough blocks to fill any current GPU a few times
constexpr int64_t kMinChunkRows = 64;       // rows per chunk at least (8 per lane)

template <int N>
struct Sums {
  float* p[N];  // each (B·chunks, C), or null when not wanted
};

// fn(i, p, acc) with i an element of (B, L, C), p its (B, C) parameter index: writes the
// elementwise outputs and adds the terms of the N sums into acc[0..N).
template <int N, typename Fn>
__global__ void __launch_bounds__(kCols * kLanes)
    column_partials(Fn fn, Sums<N> sums, int64_t B, int64_t L, int64_t C, int64_t chunks, int64_t chunk_rows) {
  __shared__ float lane_sums[N][kLanes][kCols];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * kCols + tx;
  for (int64_t task = blockIdx.y; task < B * chunks; task += gridDim.y) {  // (b, chunk) pairs
    const int64_t b = task / chunks, first = (task % chunks) * chunk_rows;
    const int64_t last = L < first + chunk_rows ? L : first + chunk_rows;
    float acc[N];
    for (int k = 0; k < N; ++k) acc[k] = 0.0f;
    if (c < C)
      for (int64_t l = first + ty; l < last; l += kLanes) fn((b * L + l) * C + c, b * C + c, acc);
    for (int k = 0; k < N; ++k) lane_sums[k][ty][tx] = acc[k];
    __syncthreads();
    if (ty == 0 && c < C)
      for (int k = 0; k < N; ++k)
        if (sums.p[k]) {
          float s = lane_sums[k][0][tx];
          for (int r = 1; r < kLanes; ++r) s += lane_sums[k][r][tx];
          sums.p[k][task * C + c] = s;
        }
    __syncthreads();  // before the next task overwrites lane_sums
  }
}

// out (B, C) = Σ_k partials (B, chunks, C) over k, in chunk order.
static __global__ void __launch_bounds__(kThreads)
    sum_chunks(float* out, const float* partials, int64_t B, int64_t chunks, int64_t C) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * C; i += stride) {
    const float* p = partials + (i / C) * chunks * C + i % C;
    float s = p[0];
    for (int64_t k = 1; k < chunks; ++k) s += p[k * C];
    out[i] = s;
  }
}

// outputs[k] (B, C) = Σ_L of fn's k-th term (zeros when L == 0); null outputs are skipped
// (fn need not compute their terms). B, C > 0.
template <int N, typename Fn>
void column_sums(const char* op, const Sums<N>& outputs, int64_t B, int64_t L, int64_t C, const Fn& fn) {
  if (L <= 0) {
    for (int k = 0; k < N; ++k)
      if (outputs.p[k]) PIT_CUDA_CHECK(cudaMemsetAsync(outputs.p[k], 0, B * C * sizeof(float), stream()));
    return;
  }
  const int64_t tiles = (C + kCols - 1) / kCols;
  const int64_t wanted = (kTargetBlocks + B * tiles - 1) / (B * tiles);
  const int64_t most = (L + kMinChunkRows - 1) / kMinChunkRows;
  const int64_t split = std::max<int64_t>(1, std::min(wanted, most));
  const int64_t chunk_rows = (L + split - 1) / split;
  const int64_t chunks = (L + chunk_rows - 1) / chunk_rows;
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min<int64_t>(B * chunks, 65535)));
  const dim3 block(kCols, kLanes);
  if (chunks == 1) {  // straight into the outputs
    column_partials<N><<<grid, block, 0, stream()>>>(fn, outputs, B, L, C, chunks, chunk_rows);
    check_launch(op);
    return;
  }
  int wanted_outputs = 0;
  for (int k = 0; k < N; ++k) wanted_outputs += outputs.p[k] != nullptr;
  Scratch scratch(size_t(wanted_outputs * B * chunks * C) * sizeof(float));
  Sums<N> partials{};
  for (int k = 0, used = 0; k < N; ++k)
    partials.p[k] = outputs.p[k] ? scratch.get<float>() + (used++) * B * chunks * C : nullptr;
  column_partials<N><<<grid, block, 0, stream()>>>(fn, partials, B, L, C, chunks, chunk_rows);
  check_launch(op);
  for (int k = 0; k < N; ++k)
    if (outputs.p[k]) {
      sum_chunks<<<grid_for(B * C, kThreads), kThreads, 0, stream()>>>(outputs.p[k], partials.p[k], B, chunks, C);
      check_launch(op);
    }
}

}  // namespace pit::cuda::per_sample
