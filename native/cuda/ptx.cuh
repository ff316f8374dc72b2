// The warp-level primitives the bf16 tensor-core GEMM (gemm_bf16.cuh) is written with, as
// inline PTX: mma.sync m16n8k16, ldmatrix x4 (and .trans), cp.async with zero fill, 16-byte
// shared stores, bf16 bit conversions. Host emulators (native/cuda/dev/warp_emulate.h) define
// PIT_WARP_EMULATE and supply their own versions of exactly these, checked against the PTX
// ISA's definitions, so a kernel written only with them runs unchanged on the CPU. The bf16
// attention kernels (attention_bf16.cuh) take these too, beside their own shuffles and exp2.
#pragma once
#include <cstdint>

#ifndef PIT_WARP_EMULATE
#include <cuda_runtime.h>

namespace pit::cuda::ptx {

// The kernel's dynamic shared memory (16-byte aligned: cp.async and ldmatrix need it).
__device__ __forceinline__ unsigned char* smem_base() {
  extern __shared__ __align__(16) unsigned char pit_ptx_dynamic_smem[];
  return pit_ptx_dynamic_smem;
}
__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void block_sync() { __syncthreads(); }

// d (16×8 fp32) += a (16×16 bf16, row) · b (16×8 bf16, col); fragments as in the PTX ISA:
// lane = 4·g + t holds a {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)},
// b {(2t..2t+1, g), (2t+8.., g)} and d {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8×8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and r[i] is
// lane (4·g + t)'s pair (row g, columns 2t, 2t+1), or with .trans (rows 2t, 2t+1, column g).
// The "memory" clobber orders them after plain shared-memory stores (epilogues, staging).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

// 16 bytes global -> shared, asynchronously (L2 only, .cg): the first `bytes` (0..16) from
// src, the rest zero-filled. src must be 16-byte aligned and, for bytes = 0 (nothing is
// read), any address of the tensor.
__device__ __forceinline__ void cp_async_zfill(uint16_t* dst, const uint16_t* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void store_shared_16(void* dst, const uint4& v) { *static_cast<uint4*>(dst) = v; }
__device__ __forceinline__ uint16_t load_global_u16(const uint16_t* p) { return *p; }

__device__ __forceinline__ float bf16_bits_to_float(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
// Round to nearest even; a NaN stays a (quiet) NaN: core/dtype.h's conversion, as bf16.cuh's to_bf16.
__device__ __forceinline__ uint16_t float_to_bf16_bits(float f) {
  uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace pit::cuda::ptx

#endif  // !PIT_WARP_EMULATE
