// Elementwise maps over n floats for the CUDA op files (elementwise, gelu, silu; modulate and
// gated_residual use its float4 helpers): out[i] = f(in0[i], in1[i], ...) with f a functor of
// floats. One grid-stride loop in int64
// (n may pass 2^31), reading and writing float4 when every pointer is 16-byte aligned (pool
// allocations are; offset views may not be), with the last n % 4 elements done one by one in
// the same launch. Memory-bound maps need nothing more: 4-wide accesses and a grid of a few
// blocks per SM (grid_for) keep enough bytes in flight.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/context.h"

namespace pit::cuda {

constexpr int kMapThreads = 256;

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// f applied lane by lane to float4s (zip(f) with no inputs is four calls of f()).
template <typename F, typename... A>
__device__ __forceinline__ float4 zip(const F& f, A... a) {
  return make_float4(f(a.x...), f(a.y...), f(a.z...), f(a.w...));
}

// f on floats, or lane by lane when the first argument (and so all) are float4s.
template <typename F, typename A0, typename... A>
__device__ __forceinline__ auto lanes(const F& f, A0 a0, A... a) {
  if constexpr (std::is_same_v<A0, float4>)
    return zip(f, a0, a...);
  else
    return f(a0, a...);
}

template <bool kVec, typename F, typename... In>
__global__ void __launch_bounds__(kMapThreads) map_kernel(F f, int64_t n, float* out, const In*... in) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec) {
    const int64_t n4 = n / 4;
    for (int64_t i = start; i < n4; i += stride)
      reinterpret_cast<float4*>(out)[i] = zip(f, reinterpret_cast<const float4*>(in)[i]...);
    done = n4 * 4;
  }
  for (int64_t i = done + start; i < n; i += stride) out[i] = f(in[i]...);
}

// out (n) = f(in (n)...) on stream(); nothing when n == 0. `op` names the op in errors.
// in... are const float*; out may alias any of them (same index only).
template <typename F, typename... In>
void launch_map(const char* op, F f, int64_t n, float* out, const In*... in) {
  if (n <= 0) return;
  if (aligned16(out) && (aligned16(in) && ...))
    map_kernel<true><<<grid_for((n + 3) / 4, kMapThreads), kMapThreads, 0, stream()>>>(f, n, out, in...);
  else
    map_kernel<false><<<grid_for(n, kMapThreads), kMapThreads, 0, stream()>>>(f, n, out, in...);
  check_launch(op);
}

}  // namespace pit::cuda
