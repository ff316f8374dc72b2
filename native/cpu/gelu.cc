// GELU, elementwise over n floats, in its two forms:
//   erf form   out = x·Φ(x),  Φ(x) = 0.5(1 + erf(x/√2)) = 0.5·erfc(-x/√2)
//   tanh form  out = 0.5x(1 + tanh u), u = √(2/π)(x + 0.044715x³), computed as x·σ(2u)
// (the same value: 0.5(1 + tanh u) = σ(2u)), with the exact derivative of each form.
//
// The loops are plain C++ compiled once per ISA (PIT_MULTIVERSION) and split across cores.
// They vectorise because exp and erfc below are branch-free float arithmetic: libm's are
// calls (and may set errno), which would leave the loop scalar. Even so these loops are
// compute-bound, not memory-bound (~40 vector ops per 16 floats for the erf form), so the
// cost per element, not the passes over memory, is what the choices below minimise. (AVX-512
// intrinsics for the same math measured only ~12% faster: not worth a second copy.)
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/vmath.h"

namespace pit::cpu {
namespace {

using namespace vmath;

constexpr int64_t kGrain = 1 << 15;  // elements per chunk: ~128 KiB per operand


// Φ(x), the standard normal CDF, and e^{-x²/2}, from z = min(|x|/√2, 9):
// Φ = 0.5·erfc(z) for x < 0 and 1 − 0.5·erfc(z) otherwise, with erfc(z) = e^{-z²}·R(t),
// t = 1/(1 + z/2), and R(t) a degree-9 fit of erfcx(z) = e^{z²}·erfc(z) in t (minimax in
// relative error over z ∈ [0, 9], 2.8e-8 exact, 2.2e-7 evaluated in float). Relative accuracy
// in erfc keeps x·Φ(x) accurate in the left tail, where 1 + erf(...) would cancel; sharing
// e^{-z²} with the density saves the backward an exp; the cap at 9 (erfc(9) ≈ 4e-37) keeps
// everything normal.
struct NormalCdf {
  float cdf, gauss;  // Φ(x), e^{-x²/2} (e^{-81} past the cap)
};
inline NormalCdf normal_cdf(float x) {
  const float z = min_nonnegative(std::abs(x) * 0.70710678118654752f, 9.0f);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float r = -5.303674564e-02f;
  r = r * t + 2.533234656e-01f;
  r = r * t - 4.175212383e-01f;
  r = r * t + 1.905722171e-01f;
  r = r * t + 4.135340825e-02f;
  r = r * t + 1.689027101e-01f;
  r = r * t + 2.538115680e-01f;
  r = r * t + 2.802935839e-01f;
  r = r * t + 2.823112607e-01f;
  r = r * t - 1.027049893e-05f;
  const float gauss = exp_neg(z * z);
  const float half_erfc = 0.5f * gauss * r;
  return {blend(negative_mask(x), half_erfc, 1.0f - half_erfc), gauss};
}

constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1/√(2π)
constexpr float kTanhK0 = 1.5957691216057308f;        // 2·√(2/π): 2u = x·(k0 + k1·x²)
constexpr float kTanhK1 = kTanhK0 * 0.044715f;

PIT_MULTIVERSION void gelu_erf_forward_span(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * normal_cdf(x[i]).cdf;
}

// d/dx x·Φ(x) = Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π).
PIT_MULTIVERSION void gelu_erf_backward_span(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const NormalCdf nc = normal_cdf(x[i]);
    dx[i] = dout[i] * (nc.cdf + x[i] * (kInvSqrt2Pi * nc.gauss));
  }
}

PIT_MULTIVERSION void gelu_tanh_forward_span(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    out[i] = v * sigmoid(v * (kTanhK0 + kTanhK1 * v * v)).s;  // x·σ(2u)
  }
}

// With s = σ(2u): d/dx x·s = s + x·s(1 − s)·d(2u)/dx, d(2u)/dx = k0 + 3·k1·x² — the
// tanh form's exact derivative 0.5(1 + tanh u) + 0.5x·sech²(u)·u', since sech² u = 4s(1 − s).
PIT_MULTIVERSION void gelu_tanh_backward_span(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], v2 = v * v;
    const Sigmoid sg = sigmoid(v * (kTanhK0 + kTanhK1 * v2));
    dx[i] = dout[i] * (sg.s + v * sg.s * sg.one_minus_s * (kTanhK0 + 3.0f * kTanhK1 * v2));
  }
}

}  // namespace

// out, x (n)
void gelu_forward(float* out, const float* x, int64_t n, GeluForm form) {
  auto span = form == GeluForm::Erf ? gelu_erf_forward_span : gelu_tanh_forward_span;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { span(out + begin, x + begin, end - begin); });
}

// dx, dout, x (n)
void gelu_backward(float* dx, const float* dout, const float* x, int64_t n, GeluForm form) {
  auto span = form == GeluForm::Erf ? gelu_erf_backward_span : gelu_tanh_backward_span;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    span(dx + begin, dout + begin, x + begin, end - begin);
  });
}

}  // namespace pit::cpu
