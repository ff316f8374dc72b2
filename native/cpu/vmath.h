// Branch-free float math that GCC vectorises at every ISA level (used inside
// PIT_MULTIVERSION loops): bit-level selects, e^{-a} to ~1.4 ulp, and a sigmoid accurate in
// both tails. libm's expf is a call (and may set errno), which would keep loops scalar.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace pit::cpu::vmath {

// Branch-free selects through the integer unit. Under -ftrapping-math GCC will not
// if-convert a float compare that feeds float arithmetic except in the AVX-512 clone (it
// has masks), so `x < 0 ? a : b` or std::min on floats would leave the AVX2 and baseline
// loops scalar; integer min/compare and bit blends vectorise at every ISA.
inline int32_t float_bits(float x) { return __builtin_bit_cast(int32_t, x); }
inline float bits_float(int32_t b) { return __builtin_bit_cast(float, b); }
inline float blend(int32_t mask, float if_set, float if_clear) {  // mask: all ones or zeros
  return bits_float((float_bits(if_set) & mask) | (float_bits(if_clear) & ~mask));
}
inline int32_t negative_mask(float x) { return float_bits(x) >> 31; }  // sign bit, spread
// min(a, cap) for a ≥ 0 (non-negative floats sort like their bits); a NaN gives cap.
inline float min_nonnegative(float a, float cap) { return bits_float(std::min(float_bits(a), float_bits(cap))); }

// e^{-a} for a ≥ 0, to ~1.4 ulp: -a = n·ln2 + r (Cody–Waite, |r| ≤ ln2/2), e^r by Cephes'
// expf polynomial, 2^n built in the exponent bits. a is capped at 87 so 2^n stays a normal
// float (e^{-87} ≈ 1.6e-38): callers need the result to vanish there, never to be 0 or
// denormal. Only ever negative arguments, so one cap suffices and nothing overflows.
// (A NaN gives e^{-87}; GELU and SiLU multiply by x as well, so NaN still propagates there.
// Softmax, which does not, keeps its NaN itself: softmax_cross_entropy.cc.)
inline float exp_neg(float a) {
  const float x = -min_nonnegative(a, 87.0f);
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
  return p * bits_float((static_cast<int32_t>(n) + 127) << 23);
}

// σ(x) and 1 − σ(x), both to full relative accuracy: from e = e^{-|x|} ∈ (0, 1],
// σ(|x|) = 1/(1 + e) and σ(-|x|) = e/(1 + e), swapped by the sign of x.
struct Sigmoid {
  float s, one_minus_s;
};
inline Sigmoid sigmoid(float x) {
  const float e = exp_neg(std::abs(x));
  const float r = 1.0f / (1.0f + e), er = e * r;
  const int32_t neg = negative_mask(x);
  return {blend(neg, er, r), blend(neg, r, er)};
}

}  // namespace pit::cpu::vmath
