// Sum (or mean) over the middle axis of x viewed as (outer, n, inner) on the GPU, and its
// backward; the same definition as native/cpu/reduce.cc (out = a · Σ_j x[o, j, i], a = 1/n
// for the mean, applied once after the sum; n = 0 gives zeros).
//
// Launch shape: the middle axis is cut into splits of a length that depends on n only (at
// least kMinSplitRows rows, at most kMaxSplits splits), so the work parallelises even when
// outer·inner is small (a bias gradient: outer = 1, n = B·L) and the summation order, hence
// the bits, never depend on the GPU or on timing; no atomics. Each (o, split) reduces into
// its own partial row, and a second kernel adds the partials of each output in split order
// (with one split the first kernel writes the output directly).
//   inner > 1: a 32 x 8 block per (o, split, 32-column tile): 32 adjacent columns (coalesced
//     loads), 8 row lanes combined through shared memory in lane order.
//   inner = 1: rows are contiguous, so a warp per (o, split) walks its row with coalesced
//     loads and reduces with a fixed shuffle tree.
// The backward is a broadcast: one thread per element of dx, 32-bit index math when it fits.
#include <cstdint>

#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int64_t kMinSplitRows = 64;
constexpr int64_t kMaxSplits = 256;

// dst (outer, splits, inner) or out (outer, inner) when splits = 1: dst[(o·splits + s)·inner + i]
// = a · Σ_{j in split s} x[(o·n + j)·inner + i]. blockDim = (32, 8); one block per item
// (o, s, tile), grid-stride over the items.
__global__ void sum_columns_kernel(float* __restrict__ dst, const float* __restrict__ x, int64_t outer, int64_t n,
                                   int64_t inner, int64_t split_rows, int64_t splits, float a) {
  __shared__ float acc[8][33];  // padded: no bank conflicts on the column reads
  const int64_t tiles = (inner + 31) / 32, items = outer * splits * tiles;
  for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {  // the same for the whole block
    const int64_t tile = it % tiles, os = it / tiles, s = os % splits, o = os / splits;
    const int64_t i = tile * 32 + threadIdx.x;
    const int64_t j0 = s * split_rows, j1 = min(n, j0 + split_rows);
    float v = 0.0f;
    if (i < inner)
      for (int64_t j = j0 + threadIdx.y; j < j1; j += 8) v += x[(o * n + j) * inner + i];
    acc[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    if (threadIdx.y == 0 && i < inner) {
      for (int k = 1; k < 8; ++k) v += acc[k][threadIdx.x];
      dst[os * inner + i] = a * v;
    }
    __syncthreads();  // acc is rewritten by the next item
  }
}

// inner = 1: dst[o·splits + s] = a · Σ_{j in split s} x[o·n + j]. blockDim = (32, 8): a warp
// per item (o, s), grid-stride over the items.
__global__ void sum_rows_kernel(float* __restrict__ dst, const float* __restrict__ x, int64_t outer, int64_t n,
                                int64_t split_rows, int64_t splits, float a) {
  const int64_t items = outer * splits;
  for (int64_t it = int64_t(blockIdx.x) * 8 + threadIdx.y; it < items; it += int64_t(gridDim.x) * 8) {
    const int64_t s = it % splits, o = it / splits;
    const int64_t j0 = s * split_rows, j1 = min(n, j0 + split_rows);
    const float* row = x + o * n;
    float v = 0.0f;
    for (int64_t j = j0 + threadIdx.x; j < j1; j += 32) v += row[j];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (threadIdx.x == 0) dst[it] = a * v;
  }
}

// out (outer, inner) = a · Σ_s partial (outer, splits, inner)[o, s, i], s in order.
__global__ void combine_splits_kernel(float* __restrict__ out, const float* __restrict__ partial, int64_t outer,
                                      int64_t splits, int64_t inner, float a) {
  const int64_t total = outer * inner;
  for (int64_t oi = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; oi < total;
       oi += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = oi / inner, i = oi - o * inner;
    const float* p = partial + o * splits * inner + i;
    float v = 0.0f;
    for (int64_t s = 0; s < splits; ++s) v += p[s * inner];
    out[oi] = a * v;
  }
}

// dx (outer, n, inner) = a · dout (outer, inner) broadcast along n; total = outer·n·inner.
template <typename I>
__global__ void sum_backward_kernel(float* __restrict__ dx, const float* __restrict__ dout, I total, I n, I inner,
                                    float a) {
  for (I k = I(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += I(gridDim.x) * blockDim.x) {
    const I row = k / inner, i = k - row * inner;  // row = o·n + j
    dx[k] = a * dout[(row / n) * inner + i];
  }
}

constexpr int kThreads = 256;  // the elementwise kernels

}  // namespace

// out (outer, inner) = Σ_j x (outer, n, inner)[:, j, :], times 1/n when mean.
void sum_forward(float* out, const float* x, int64_t outer, int64_t n, int64_t inner, bool mean) {
  if (outer * inner == 0) return;
  if (n == 0) {  // the empty sum (and, like the CPU op, the empty mean) is 0: all zero bits
    PIT_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(outer * inner) * sizeof(float), stream()));
    return;
  }
  const float a = mean ? 1.0f / static_cast<float>(n) : 1.0f;
  const int64_t split_rows = std::max(kMinSplitRows, (n + kMaxSplits - 1) / kMaxSplits);
  const int64_t splits = (n + split_rows - 1) / split_rows;  // <= kMaxSplits
  Scratch scratch(splits > 1 ? size_t(outer * splits * inner) * sizeof(float) : 0);
  float* dst = splits > 1 ? scratch.get<float>() : out;
  const float item_scale = splits > 1 ? 1.0f : a;  // the mean's 1/n, applied once at the end
  if (inner == 1) {
    sum_rows_kernel<<<grid_for(outer * splits, 8), dim3(32, 8), 0, stream()>>>(dst, x, outer, n, split_rows,
                                                                                splits, item_scale);
  } else {
    const int64_t items = outer * splits * ((inner + 31) / 32);
    sum_columns_kernel<<<grid_for(items, 1), dim3(32, 8), 0, stream()>>>(dst, x, outer, n, inner, split_rows,
                                                                         splits, item_scale);
  }
  check_launch("sum_forward");
  if (splits > 1) {
    combine_splits_kernel<<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(out, dst, outer, splits,
                                                                                       inner, a);
    check_launch("sum_forward");
  }
  scratch.release();
}

// dx (outer, n, inner) = dout (outer, inner) repeated along n, times 1/n when mean.
void sum_backward(float* dx, const float* dout, int64_t outer, int64_t n, int64_t inner, bool mean) {
  const int64_t total = outer * n * inner;
  if (total <= 0) return;
  const float a = mean ? 1.0f / static_cast<float>(n) : 1.0f;  // n > 0 here
  const unsigned blocks = grid_for(total, kThreads);
  if (total < (int64_t(1) << 31))  // every index, plus the grid stride, fits 32 bits
    sum_backward_kernel<uint32_t><<<blocks, kThreads, 0, stream()>>>(
        dx, dout, static_cast<uint32_t>(total), static_cast<uint32_t>(n), static_cast<uint32_t>(inner), a);
  else
    sum_backward_kernel<int64_t><<<blocks, kThreads, 0, stream()>>>(dx, dout, total, n, inner, a);
  check_launch("sum_backward");
}

}  // namespace pit::cuda

PIT_CUDA_OP(sum_forward)
PIT_CUDA_OP(sum_backward)
