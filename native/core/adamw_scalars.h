// AdamW's per-step scalars, computed on the host once per step and shared by cpu/adamw.cc
// and cuda/adamw.cu, so both backends update with the very same floats. The step
//   p -= lr (m̂ / (√v̂ + eps) + wd p)
// is computed, as PyTorch's AdamW does, as
//   p = p (1 - lr wd) - (lr / bc1) m / (√v / √bc2 + eps),  bc_i = 1 - beta_i^step:
// the same value, with the bias corrections folded into two scalars (float64, then rounded
// to float) instead of two divides per element.
#pragma once
#include <cmath>
#include <cstdint>

namespace pit {

struct AdamwScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float decay;         // 1 - lr·wd
  float step_size;     // lr / bc1
  float inv_sqrt_bc2;  // 1 / √bc2
  float eps;
};

// step counts from 1.
inline AdamwScalars adamw_scalars(float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  AdamwScalars s;
  s.beta1 = beta1;
  s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  s.beta2 = beta2;
  s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  s.decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  s.step_size = static_cast<float>(lr / bc1);
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  s.eps = eps;
  return s;
}

}  // namespace pit
