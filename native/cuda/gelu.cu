// GELU on the GPU, elementwise over n floats, in its two forms (as native/cpu/gelu.cc):
//   erf form   out = x·Φ(x),  Φ(x) = 0.5·erfc(-x/√2), derivative Φ(x) + x·φ(x)
//   tanh form  out = 0.5x(1 + tanh u), u = √(2/π)(x + 0.044715x³), computed as x·σ(2u),
//              derivative s + x·s(1 − s)·(k0 + 3·k1·x²) with s = σ(2u)
// Φ comes from CUDA's erfcf of z = min(|x|/√2, 9), flipped by the sign of x: relative
// accuracy in the left tail (no 1 + erf cancellation), and the same cap as the CPU, so
// ±inf and NaN come out as they do there. The sigmoid is also the CPU's: e = e^{-min(|v|, 87)},
// σ(|v|) = 1/(1 + e), σ(-|v|) = e/(1 + e), both tails to full relative accuracy.
// Launch: map.cuh's grid-stride float4 map; these are compute-light enough to stay
// memory-bound on the GPU.
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1/√(2π)
constexpr float kTanhK0 = 1.5957691216057308f;        // 2·√(2/π): 2u = x·(k0 + k1·x²)
constexpr float kTanhK1 = kTanhK0 * 0.044715f;

// Φ(x), from z = min(|x|/√2, 9) (fminf gives 9 for a NaN, as the CPU's cap does).
__device__ __forceinline__ float normal_cdf(float x, float z) {
  const float half_erfc = 0.5f * erfcf(z);
  return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}
__device__ __forceinline__ float capped_z(float x) { return fminf(fabsf(x) * kInvSqrt2, 9.0f); }

struct ErfForward {
  __device__ float operator()(float x) const { return x * normal_cdf(x, capped_z(x)); }
};
struct ErfBackward {
  __device__ float operator()(float g, float x) const {
    const float z = capped_z(x);
    const float gauss = expf(-z * z);  // e^{-x²/2}, ≥ e^{-81} past the cap
    return g * (normal_cdf(x, z) + x * (kInvSqrt2Pi * gauss));
  }
};

// σ(v) and 1 − σ(v).
struct Sigmoid {
  float s, one_minus_s;
};
__device__ __forceinline__ Sigmoid sigmoid(float v) {
  const float e = expf(-fminf(fabsf(v), 87.0f));
  const float r = 1.0f / (1.0f + e), er = e * r;
  return v < 0.0f ? Sigmoid{er, r} : Sigmoid{r, er};
}

struct TanhForward {
  __device__ float operator()(float x) const { return x * sigmoid(x * (kTanhK0 + kTanhK1 * x * x)).s; }
};
struct TanhBackward {
  __device__ float operator()(float g, float x) const {
    const float x2 = x * x;
    const Sigmoid sg = sigmoid(x * (kTanhK0 + kTanhK1 * x2));
    return g * (sg.s + x * sg.s * sg.one_minus_s * (kTanhK0 + 3.0f * kTanhK1 * x2));
  }
};

}  // namespace

// out, x (n)
void gelu_forward(float* out, const float* x, int64_t n, GeluForm form) {
  if (form == GeluForm::Erf)
    launch_map("gelu_forward", ErfForward{}, n, out, x);
  else
    launch_map("gelu_forward", TanhForward{}, n, out, x);
}

// dx, dout, x (n)
void gelu_backward(float* dx, const float* dout, const float* x, int64_t n, GeluForm form) {
  if (form == GeluForm::Erf)
    launch_map("gelu_backward", ErfBackward{}, n, dx, dout, x);
  else
    launch_map("gelu_backward", TanhBackward{}, n, dx, dout, x);
}

}  // namespace pit::cuda

PIT_CUDA_OP(gelu_forward)
PIT_CUDA_OP(gelu_backward)
