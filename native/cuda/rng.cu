// Philox 4x32-10 fills on the GPU: the same counter-based stream (core/rng.h) as cpu/rng.cc.
// Element i is lane i%4 of block i/4 at (seed, offset), so one thread per block of four
// reproduces the CPU exactly for uniform draws; normal draws (Box-Muller) agree up to the
// last bits of the GPU's logf and sincosf, which are not correctly rounded.
#include <cstdint>

#include "core/rng.h"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kTwoPow24Inv = 1.0f / 16777216.0f;

__device__ __forceinline__ float uniform01(uint32_t x) { return static_cast<float>(x >> 8) * kTwoPow24Inv; }

__global__ void __launch_bounds__(kThreads) uniform_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t blk = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks; blk += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(static_cast<uint64_t>(blk), offset, seed);
    for (int lane = 0; lane < 4 && blk * 4 + lane < n; ++lane) out[blk * 4 + lane] = uniform01(r.x[lane]);
  }
}

__global__ void __launch_bounds__(kThreads) normal_kernel(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t blk = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks; blk += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32_10(static_cast<uint64_t>(blk), offset, seed);
    float v[4];
    for (int pair = 0; pair < 2; ++pair) {
      const float u1 = (static_cast<float>(r.x[2 * pair] >> 8) + 1.0f) * kTwoPow24Inv;  // (0, 1]
      const float u2 = uniform01(r.x[2 * pair + 1]);
      const float radius = sqrtf(-2.0f * logf(u1));
      float s, c;
      sincosf(6.2831853071795864f * u2, &s, &c);
      v[2 * pair] = radius * c;
      v[2 * pair + 1] = radius * s;
    }
    for (int lane = 0; lane < 4 && blk * 4 + lane < n; ++lane) out[blk * 4 + lane] = v[lane];
  }
}

}  // namespace

// out (n): uniform [0, 1) draws of the stream (seed, offset).
void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  uniform_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream()>>>(out, n, seed, offset);
  check_launch("randomFill");
}

// out (n): standard normal draws of the stream (seed, offset).
void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  normal_kernel<<<grid_for((n + 3) / 4, kThreads), kThreads, 0, stream()>>>(out, n, seed, offset);
  check_launch("randomFill");
}

}  // namespace pit::cuda

PIT_CUDA_OP(fill_uniform)
PIT_CUDA_OP(fill_normal)
