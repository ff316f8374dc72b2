// Deterministic column sums shared by the op files: the second pass of a two-pass sum, which
// adds per-block partial rows in a fixed order (no atomics), so results repeat bit for bit.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pit::cuda {

// total (N) = Σ_k partials (blocks, N)[k], one warp per column: lane l adds blocks l, l+32, …
// in order, then a fixed shuffle tree. blockDim = (32, 8), grid-stride over columns. (A
// template so that every op file may include it.)
template <typename T = float>
__global__ void sum_partials_kernel(T* __restrict__ total, const T* __restrict__ partials, int64_t blocks,
                                    int64_t N) {
  for (int64_t c = int64_t(blockIdx.x) * 8 + threadIdx.y; c < N; c += int64_t(gridDim.x) * 8) {
    T s = 0;
    for (int64_t k = threadIdx.x; k < blocks; k += 32) s += partials[k * N + c];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (threadIdx.x == 0) total[c] = s;
  }
}

}  // namespace pit::cuda
