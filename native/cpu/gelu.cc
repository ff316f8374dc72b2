// GELU, elementwise over n floats, in its two forms:
//   erf form   out = x·Φ(x),  Φ(x) = 0.5(1 + erf(x/√2)) = 0.5·erfc(-x/√2)
//   tanh form  out = 0.5x(1 + tanh u), u = √(2/π)(x + 0.044715x³), computed as x·σ(2u)
// (the same value: 0.5(1 + tanh u) = σ(2u)), with the exact derivative of each form.
//
// The loops are plain C++ compiled once per ISA (PIT_MULTIVERSION) and split across cores.
// They vectorise because exp and erfc below are branch-free float arithmetic: libm's are
// calls (and may set errno), which would leave the loop scalar and compute-bound.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per chunk: ~128 KiB per operand

// Branch-free selects through the integer unit. Under -ftrapping-math GCC will not
// if-convert a float compare that feeds float arithmetic except in the AVX-512 clone (it
// has masks), so a plain `x < lo ? lo : x` would leave the AVX2 and baseline loops scalar;
// integer compares and bit blends vectorise at every ISA.
inline int32_t float_bits(float x) { return __builtin_bit_cast(int32_t, x); }
inline float blend(int32_t mask, float if_set, float if_clear) {  // mask: all ones or zeros
  return __builtin_bit_cast(float, (float_bits(if_set) & mask) | (float_bits(if_clear) & ~mask));
}
inline int32_t order_key(float x) {  // an int32 that sorts like x (for non-NaN x)
  const int32_t b = float_bits(x);
  return b ^ ((b >> 31) & 0x7fffffff);
}
inline float clamp(float x, float lo, float hi) {  // a NaN comes out as lo or hi
  const int32_t k = order_key(x);
  const int32_t below = -static_cast<int32_t>(k < order_key(lo));
  const int32_t above = -static_cast<int32_t>(k > order_key(hi));
  return blend(below, lo, blend(above, hi, x));
}

// e^x to ~1.4 ulp: x = n·ln2 + r (Cody–Waite, |r| ≤ ln2/2), e^r by Cephes' expf polynomial,
// 2^n built in the exponent bits. x is clamped to [-87, 88] so 2^n stays a normal float:
// callers only need e^x to vanish or saturate there, never to reach 0, inf or a denormal.
// (Every caller multiplies the result into a term with x, so a NaN x still gives NaN.)
inline float exp_approx(float x) {
  x = clamp(x, -87.0f, 88.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x·log2 e)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

// Φ(x), the standard normal CDF, as 0.5·erfc(|x|/√2) on the far side. erfc(z) for z ≥ 0 is
// Numerical Recipes' Chebyshev fit t·exp(-z² + P(t)), t = 1/(1 + z/2), relative error
// < 1.2e-7 everywhere: so Φ keeps its relative accuracy in the left tail (where x·Φ(x) is
// tiny) instead of losing it to 1 + erf(...) cancelling. z is capped at 9 (erfc(9) ≈ 4e-37)
// so nothing turns denormal.
inline float normal_cdf(float x) {
  const float z = clamp(std::abs(x) * 0.70710678118654752f, 0.0f, 9.0f);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float half_erfc = 0.5f * t * exp_approx(p - z * z);
  return blend(float_bits(x) >> 31, half_erfc, 1.0f - half_erfc);  // x < 0 (or -0): Φ = half_erfc
}

constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // 1/√(2π)
constexpr float kTanhK0 = 1.5957691216057308f;        // 2·√(2/π): 2u = x·(k0 + k1·x²)
constexpr float kTanhK1 = kTanhK0 * 0.044715f;

PIT_MULTIVERSION void gelu_erf_forward_span(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * normal_cdf(x[i]);
}

// d/dx x·Φ(x) = Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π).
PIT_MULTIVERSION void gelu_erf_backward_span(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float pdf = kInvSqrt2Pi * exp_approx(-0.5f * v * v);
    dx[i] = dout[i] * (normal_cdf(v) + v * pdf);
  }
}

PIT_MULTIVERSION void gelu_tanh_forward_span(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float two_u = v * (kTanhK0 + kTanhK1 * v * v);
    out[i] = v / (1.0f + exp_approx(-two_u));  // x·σ(2u)
  }
}

// With s = σ(2u): d/dx x·s = s + x·s(1 − s)·d(2u)/dx, d(2u)/dx = k0 + 3·k1·x² — the
// tanh form's exact derivative 0.5(1 + tanh u) + 0.5x·sech²(u)·u', since sech² u = 4s(1 − s).
PIT_MULTIVERSION void gelu_tanh_backward_span(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], v2 = v * v;
    const float s = 1.0f / (1.0f + exp_approx(-v * (kTanhK0 + kTanhK1 * v2)));
    dx[i] = dout[i] * (s + v * s * (1.0f - s) * (kTanhK0 + 3.0f * kTanhK1 * v2));
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
