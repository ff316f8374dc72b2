// out (B, n) = a[b]·x + c[b]·y on the GPU, as native/cpu/per_sample_axpby.cc: grid.y over
// samples (each reads its a[b], c[b] once), a grid-stride loop over the sample's n elements,
// float4s when n % 4 == 0 and every pointer is 16-byte aligned.
#include <algorithm>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"
#include "cuda/per_sample.cuh"

namespace pit::cuda {
namespace {

using per_sample::kThreads;

__device__ __forceinline__ float axpby(float a, float x, float c, float y) { return a * x + c * y; }
__device__ __forceinline__ float4 axpby(float a, float4 x, float c, float4 y) {
  return make_float4(a * x.x + c * y.x, a * x.y + c * y.y, a * x.z + c * y.z, a * x.w + c * y.w);
}
__device__ __forceinline__ float scaled(float a, float x) { return a * x; }
__device__ __forceinline__ float4 scaled(float a, float4 x) { return make_float4(a * x.x, a * x.y, a * x.z, a * x.w); }

// Units V (float, or float4 with n counted in float4s) of (B, n).
template <typename V>
__global__ void __launch_bounds__(kThreads)
    axpby_kernel(V* out, const V* x, const V* y, const float* a, const float* c, int64_t B, int64_t n) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const float ab = a[b], cb = y ? c[b] : 0.0f;
    const int64_t row = b * n;
    for (int64_t i = start; i < n; i += stride)
      out[row + i] = y ? axpby(ab, x[row + i], cb, y[row + i]) : scaled(ab, x[row + i]);
  }
}

}  // namespace

void per_sample_axpby(float* out, const float* x, const float* y, const float* a, const float* c, int64_t B,
                      int64_t n) {
  if (B <= 0 || n <= 0) return;
  const bool vec = n % 4 == 0 && aligned16(out) && aligned16(x) && (!y || aligned16(y));
  const int64_t w = vec ? 4 : 1, units = n / w;
  const dim3 grid = per_sample::units_grid(B, units);
  if (vec)
    axpby_kernel<float4><<<grid, kThreads, 0, stream()>>>(reinterpret_cast<float4*>(out),
                                                          reinterpret_cast<const float4*>(x),
                                                          reinterpret_cast<const float4*>(y), a, c, B, units);
  else
    axpby_kernel<float><<<grid, kThreads, 0, stream()>>>(out, x, y, a, c, B, units);
  check_launch("per_sample_axpby");
}

}  // namespace pit::cuda

PIT_CUDA_OP(per_sample_axpby)
