// Σ x² of one tensor in float64 on the GPU: the global gradient norm adds these over all
// parameters (native/cpu/grad_norm.cc is the CPU twin). Clipping decisions must repeat bit
// for bit, so there are no atomics: a grid whose size depends only on n (at most kMaxBlocks
// blocks of 256 threads, grid-stride) writes one double partial per block to scratch, and
// one block adds the partials in a fixed tree order.
//
// Unlike the other ops this one returns a host value, so it copies the result to the host
// on stream() and SYNCHRONISES that stream before returning.
#include <cstdint>

#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1024;
constexpr int64_t kItemsPerThread = 8;  // at least this many elements per thread before another block

// Σ v over the block (kThreads threads) in a fixed tree order, returned to every thread.
__device__ double block_sum(double v) {
  __shared__ double s[kThreads];
  __syncthreads();  // a previous call's readers of s[0] are done
  s[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  return s[0];
}

// part (gridDim.x): Σ x² over the block's grid-stride share of x (n).
__global__ void sum_of_squares_partials(double* __restrict__ part, const float* __restrict__ x, int64_t n) {
  double s = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const double d = x[i];
    s += d * d;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// total (1) = Σ part (count), one block of kThreads.
__global__ void sum_partials_kernel(double* __restrict__ total, const double* __restrict__ part, unsigned count) {
  double s = 0.0;
  for (unsigned k = threadIdx.x; k < count; k += kThreads) s += part[k];
  s = block_sum(s);
  if (threadIdx.x == 0) total[0] = s;
}

}  // namespace

// Σ x² over x (n), in float64. Synchronises stream() (the result is read on the host).
double sum_of_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t want = (n + kThreads * kItemsPerThread - 1) / (kThreads * kItemsPerThread);
  const unsigned blocks = static_cast<unsigned>(std::clamp<int64_t>(want, 1, kMaxBlocks));
  // (total, partials (blocks)) in doubles.
  Scratch scratch(sizeof(double) * (1 + size_t(blocks)));
  double* total = scratch.get<double>();
  double* part = total + 1;
  sum_of_squares_partials<<<blocks, kThreads, 0, stream()>>>(part, x, n);
  check_launch("sum_of_squares");
  sum_partials_kernel<<<1, kThreads, 0, stream()>>>(total, part, blocks);
  check_launch("sum_of_squares");
  double result = 0.0;
  PIT_CUDA_CHECK(cudaMemcpyAsync(&result, total, sizeof(double), cudaMemcpyDeviceToHost, stream()));
  scratch.release();  // stream-ordered: after the copy has read it
  // The one synchronisation among these ops: the caller reads `result` on the host next.
  PIT_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return result;
}

}  // namespace pit::cuda

PIT_CUDA_OP(sum_of_squares)
