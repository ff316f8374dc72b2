// Float64 sums that repeat bit for bit from run to run and GPU to GPU, without atomics, for
// grad_norm.cu (clipping decisions) and mse.cu (the loss): a grid whose size depends only on
// the item count (sum_blocks: at most kSumMaxBlocks blocks of kSumThreads, grid-stride) writes
// one double partial per block (block_sum), and one block of kSumThreads adds the partials in
// a fixed tree order (sum_partials).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace pit::cuda {

constexpr int kSumThreads = 256;           // threads of every block that calls block_sum
constexpr int64_t kSumMaxBlocks = 1024;
constexpr int64_t kSumItemsPerThread = 8;  // at least this many items per thread before another block

// Blocks for a grid-stride partial-sum kernel over n items: a function of n only.
inline unsigned sum_blocks(int64_t n) {
  const int64_t want = (n + kSumThreads * kSumItemsPerThread - 1) / (kSumThreads * kSumItemsPerThread);
  return static_cast<unsigned>(std::clamp<int64_t>(want, 1, kSumMaxBlocks));
}

// Σ v over the block (kSumThreads threads) in a fixed tree order, returned to every thread.
__device__ inline double block_sum(double v) {
  __shared__ double s[kSumThreads];
  __syncthreads();  // a previous call's readers of s[0] are done
  s[threadIdx.x] = v;
  __syncthreads();
#pragma unroll
  for (int half = kSumThreads / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  return s[0];
}

// Σ part (count) in a fixed order, for a one-block launch of kSumThreads; every thread gets it.
__device__ inline double sum_partials(const double* part, unsigned count) {
  double s = 0.0;
  for (unsigned k = threadIdx.x; k < count; k += kSumThreads) s += part[k];
  return block_sum(s);
}

}  // namespace pit::cuda
