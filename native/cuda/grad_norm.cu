// Σ x² of one tensor in float64 on the GPU: the global gradient norm adds these over all
// parameters (native/cpu/grad_norm.cc is the CPU twin). Clipping decisions must repeat bit
// for bit, so the sum is cuda/fixed_order_sum.cuh's: one double partial per block of a grid
// sized by n alone, to scratch, then one block adds the partials in a fixed tree order.
//
// Unlike the other ops this one returns a host value, so it copies the result to the host
// on stream() and SYNCHRONISES that stream before returning.
#include <cstdint>

#include "cuda/context.h"
#include "cuda/fixed_order_sum.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = kSumThreads;  // block_sum needs exactly this

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
  const double s = sum_partials(part, count);
  if (threadIdx.x == 0) total[0] = s;
}

}  // namespace

// Σ x² over x (n), in float64. Synchronises stream() (the result is read on the host).
double sum_of_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const unsigned blocks = sum_blocks(n);
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
