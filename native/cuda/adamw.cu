// One AdamW step over a flat parameter tensor on the GPU, in place, fused into a single pass
// over param, grad, m and v. Same op as cpu/adamw.cc:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
//   p = p (1 - lr wd) - (lr / bc1) m / (√v / √bc2 + eps),  bc_i = 1 - beta_i^step,
// with the scalars (decay, step size, 1/√bc2, 1-b1, 1-b2) of core/adamw_scalars.h, the
// very floats the CPU uses.
//
// Rounding: the per-element arithmetic is written with explicit round-to-nearest intrinsics
// (so nvcc contracts nothing on its own) in the order the CPU's vector loops execute it:
// GCC 12 compiles adamw_span_avx512 / adamw_span_avx2 (target "fma") to
//   m' = fma(1-b1, g, b1·m)          v' = fma(g·g, 1-b2, b2·v)
//   d  = fma(√v', 1/√bc2, eps)        p' = fma(-(m'/d), lr/bc1, p·decay)
// with IEEE sqrt and division, and that is what each thread computes, so the GPU matches
// the CPU's vector body bit for bit. (The CPU's scalar tail and its no-FMA fallback contract
// differently or not at all: those elements agree to rounding.)
//
// Launch shape: memory-bound (16 bytes read, 12 written per element), one thread per
// element in a grid-stride loop, as float4 when all four pointers are 16-byte aligned (the
// n % 4 tail is done by the first threads afterwards).
#include <cmath>
#include <cstdint>

#include "core/adamw_scalars.h"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void update(float& p, float g, float& m, float& v, const AdamwScalars& s) {
  const float mi = __fmaf_rn(s.one_minus_beta1, g, __fmul_rn(s.beta1, m));
  const float vi = __fmaf_rn(__fmul_rn(g, g), s.one_minus_beta2, __fmul_rn(s.beta2, v));
  m = mi;
  v = vi;
  const float denom = __fmaf_rn(__fsqrt_rn(vi), s.inv_sqrt_bc2, s.eps);
  p = __fmaf_rn(-__fdiv_rn(mi, denom), s.step_size, __fmul_rn(p, s.decay));
}

// param, grad, m, v (n), updated in place; float4 loads and stores when kVec4.
template <bool kVec4>
__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, const AdamwScalars s) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec4) {
    const int64_t n4 = n / 4;
    float4* p4 = reinterpret_cast<float4*>(param);
    const float4* g4 = reinterpret_cast<const float4*>(grad);
    float4* m4 = reinterpret_cast<float4*>(m);
    float4* v4 = reinterpret_cast<float4*>(v);
    for (int64_t i = tid; i < n4; i += stride) {
      float4 p = p4[i], g = g4[i], mi = m4[i], vi = v4[i];
      update(p.x, g.x, mi.x, vi.x, s);
      update(p.y, g.y, mi.y, vi.y, s);
      update(p.z, g.z, mi.z, vi.z, s);
      update(p.w, g.w, mi.w, vi.w, s);
      p4[i] = p;
      m4[i] = mi;
      v4[i] = vi;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride) {
    float p = param[i], mi = m[i], vi = v[i];
    update(p, grad[i], mi, vi, s);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

// param, grad, m, v (n); step counts from 1.
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weight_decay, int64_t step) {
  if (n <= 0) return;
  const AdamwScalars s = adamw_scalars(lr, beta1, beta2, eps, weight_decay, step);
  const bool vec4 = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v);
  const unsigned blocks = grid_for(vec4 ? (n + 3) / 4 : n, kThreads);
  if (vec4) adamw_kernel<true><<<blocks, kThreads, 0, stream()>>>(param, grad, m, v, n, s);
  else adamw_kernel<false><<<blocks, kThreads, 0, stream()>>>(param, grad, m, v, n, s);
  check_launch("adamw");
}

}  // namespace pit::cuda

PIT_CUDA_OP(adamw)
