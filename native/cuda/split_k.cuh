// The GEMM epilogue shared by the tensor-core kernel (gemm_bf16.cuh) and the SIMT kernel
// (matmul.cu), and the second pass of deterministic split-K (split_k.h): for every output
// element, the fp32 partials of the splits are added in split order 0, 1, …, splits − 1, then
//   v = [C +] Σ [+ bias (N)], [GELU(v)]
// is stored as Out (f32, or bf16 rounded once). Emulated on the CPU by dev/gemm_bf16_emulate.cc.
#pragma once
#include <cmath>
#include <cstdint>

#include "cuda/ptx.cuh"

namespace pit::cuda::split_k {

// An element of an f32 (float) or bf16 (uint16_t) output, as a float; and back.
__device__ __forceinline__ float load_out(const float* p) { return *p; }
__device__ __forceinline__ float load_out(const uint16_t* p) { return ptx::bf16_bits_to_float(*p); }
__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_out(uint16_t* p, float v) { *p = ptx::float_to_bf16_bits(v); }

// The erf GELU of ViT/PiT, x·Φ(x), exactly as cuda/gelu.cu's forward: Φ from erfcf of
// z = min(|x|/√2, 9), flipped by the sign of x (no 1 + erf cancellation in the left tail;
// NaN stays NaN, ±inf give +inf and 0·… as the CPU).
__device__ __forceinline__ float gelu_erf(float x) {
  const float z = fminf(fabsf(x) * 0.70710678118654752f, 9.0f);
  const float half_erfc = 0.5f * erfcf(z);
  return x * (x < 0.0f ? half_erfc : 1.0f - half_erfc);
}

// v = [*c +] sum [+ *bias], then GELU when asked. c is read only when accumulating, bias
// may be null. The order of the additions is the SIMT kernel's of old: (C + Σ) + bias.
template <typename Out>
__device__ __forceinline__ float finish(float sum, const Out* c, const Out* bias, bool accumulate, bool gelu) {
  float v = sum;
  if (accumulate) v = load_out(c) + v;
  if (bias) v += load_out(bias);
  return gelu ? gelu_erf(v) : v;
}

template <typename Out>
struct ReduceArgs {
  Out* c;                 // (batch, M, N), leading dimension ldc, batch stride stride_c
  const float* partial;   // (splits, batch, M, N), compact
  const Out* bias;        // (N) or null
  int64_t M, N, batch, splits;
  int64_t ldc, stride_c;
  bool accumulate, gelu;
};

constexpr int kReduceThreads = 256;

// One thread per output element, grid-stride; consecutive threads take consecutive columns
// (coalesced partial reads and C writes).
template <typename Out>
__global__ void __launch_bounds__(kReduceThreads) reduce_kernel(const ReduceArgs<Out> r) {
  const int64_t plane = r.batch * r.M * r.N;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < plane; e += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int64_t s = 0; s < r.splits; ++s) sum += r.partial[s * plane + e];
    const int64_t j = e % r.N, i = (e / r.N) % r.M, z = e / (r.N * r.M);
    Out* c = r.c + z * r.stride_c + i * r.ldc + j;
    store_out(c, finish(sum, c, r.bias ? r.bias + j : nullptr, r.accumulate, r.gelu));
  }
}

}  // namespace pit::cuda::split_k
