// bf16 on the device, as raw uint16_t bits (the storage of every bf16 tensor): core/dtype.h's
// conversions written again for device code (not __float2bfloat16, so NaN handling and
// rounding are the CPU's by construction): a NaN keeps its sign and top payload bits and is
// made quiet (| 0x40); everything else rounds to nearest even on the bit pattern. And the
// element loads/stores that let one kernel template read and write either f32 or bf16.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace pit::cuda {

__device__ __forceinline__ uint16_t to_bf16(float f) {
  uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

__device__ __forceinline__ float from_bf16(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// An element of an f32 (float) or bf16 (uint16_t) array, as a float; and back.
__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const uint16_t* p) { return from_bf16(*p); }
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(uint16_t* p, float v) { *p = to_bf16(v); }

}  // namespace pit::cuda
