// f32 <-> bf16 conversion on the GPU (round to nearest even), the storage format of GPU
// activations. Same op as cpu/cast.cc, bit for bit: the conversion is core/dtype.h's integer
// f32_to_bf16 written again for the device in cuda/bf16.cuh (not __float2bfloat16, so NaN
// handling and rounding are the CPU's by construction): a NaN keeps its sign and top payload
// bits and is made quiet (| 0x40), everything else (infinities, denormals included) rounds to
// nearest even on the bit pattern, overflowing to infinity.
//
// Launch shape: memory-bound, one thread per element in a grid-stride loop, four elements
// per thread (16-byte f32 and 8-byte bf16 accesses) when both pointers allow it; the
// n % 4 tail is done by the first threads afterwards.
#include <cstdint>

#include "cuda/bf16.cuh"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;

// out (n) bf16 bits = x (n) f32; float4 -> 4 x u16 (one 8-byte store) when kVec4.
template <bool kVec4>
__global__ void f32_to_bf16_kernel(uint16_t* __restrict__ out, const float* __restrict__ x, int64_t n) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec4) {
    const int64_t n4 = n / 4;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    uint2* out4 = reinterpret_cast<uint2*>(out);
    for (int64_t i = tid; i < n4; i += stride) {
      const float4 f = x4[i];
      uint2 o;  // little-endian: element 0 in the low half of the first word
      o.x = static_cast<uint32_t>(to_bf16(f.x)) | (static_cast<uint32_t>(to_bf16(f.y)) << 16);
      o.y = static_cast<uint32_t>(to_bf16(f.z)) | (static_cast<uint32_t>(to_bf16(f.w)) << 16);
      out4[i] = o;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) out[i] = to_bf16(x[i]);
}

// out (n) f32 = x (n) bf16 bits; 4 x u16 (one 8-byte load) -> float4 when kVec4.
template <bool kVec4>
__global__ void bf16_to_f32_kernel(float* __restrict__ out, const uint16_t* __restrict__ x, int64_t n) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec4) {
    const int64_t n4 = n / 4;
    const uint2* x4 = reinterpret_cast<const uint2*>(x);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (int64_t i = tid; i < n4; i += stride) {
      const uint2 h = x4[i];
      out4[i] = make_float4(__uint_as_float(h.x << 16), __uint_as_float(h.x & 0xffff0000u),
                            __uint_as_float(h.y << 16), __uint_as_float(h.y & 0xffff0000u));
    }
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) out[i] = from_bf16(x[i]);
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

void cast_f32_to_bf16(uint16_t* out, const float* x, int64_t n) {
  if (n <= 0) return;
  const bool vec4 = aligned(x, 16) && aligned(out, 8);
  const unsigned blocks = grid_for(vec4 ? (n + 3) / 4 : n, kThreads);
  if (vec4) f32_to_bf16_kernel<true><<<blocks, kThreads, 0, stream()>>>(out, x, n);
  else f32_to_bf16_kernel<false><<<blocks, kThreads, 0, stream()>>>(out, x, n);
  check_launch("cast_f32_to_bf16");
}

void cast_bf16_to_f32(float* out, const uint16_t* x, int64_t n) {
  if (n <= 0) return;
  const bool vec4 = aligned(x, 8) && aligned(out, 16);
  const unsigned blocks = grid_for(vec4 ? (n + 3) / 4 : n, kThreads);
  if (vec4) bf16_to_f32_kernel<true><<<blocks, kThreads, 0, stream()>>>(out, x, n);
  else bf16_to_f32_kernel<false><<<blocks, kThreads, 0, stream()>>>(out, x, n);
  check_launch("cast_bf16_to_f32");
}

}  // namespace pit::cuda

PIT_CUDA_OP(cast_f32_to_bf16)
PIT_CUDA_OP(cast_bf16_to_f32)
