// Per-element Gaussian-diffusion math (SPEC §4; openai/guided-diffusion's
// gaussian_diffusion.py and losses.py), shared by the CPU ops (cpu/diffusion_loss.cc,
// cpu/diffusion_step.cc) and their CUDA twins, which compile these same functions for the
// device. Only the per-element work lives here, in f32: the schedule itself (ᾱ, β̃, the
// posterior coefficients) is float64 on the host (lib/diffusion/schedule.ts) and arrives as
// per-sample (loss) or per-step (sampling) f32 coefficients.
//
// Notation: ε̂ the model's noise prediction, v its variance interpolation in [-1, 1]; the
// model's log variance is f·log β_t + (1 − f)·log β̃_t with f = (v + 1)/2 ("learned range").
#pragma once
#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace pit::diffusion {

// The row of per-sample coefficients diffusion_loss_* reads (coefs (B, kLossCoefs)), each the
// float64 schedule value at the sample's t rounded to f32. lib/diffusion/loss.ts writes them
// in this order.
enum LossCoef : int {
  kMeanX0 = 0,       // posterior mean coefficient of x₀: β_t √ᾱ_{t−1} / (1 − ᾱ_t)
  kMeanXt = 1,       // posterior mean coefficient of x_t: (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t)
  kRecipSqrtAb = 2,  // √(1/ᾱ_t): x̂₀ = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε̂
  kRecipM1SqrtAb = 3,  // √(1/ᾱ_t − 1)
  kLogBeta = 4,      // log β_t: the learned range's upper end
  kPostLogVar = 5,   // log β̃_t, clipped at t = 0 to log β̃₁: the true posterior's and the lower end
  kFirstStep = 6,    // 1 at t = 0 (the discretised NLL), else 0 (the KL)
  kLossCoefs = 7,
};

constexpr float kLn2 = 0.693147180559945309f;
constexpr float kBinHalfWidth = 1.0f / 255.0f;  // data in [-1, 1] from 8 bits: bins ±1/255
constexpr float kEdge = 0.999f;                 // beyond ±0.999 the bin extends to ±∞
constexpr float kLogFloor = 1e-12f;             // probabilities clamped here before the log

PIT_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// The tanh approximation of the standard normal CDF, Φ(z) ≈ 0.5(1 + tanh(g)), g = √(2/π)(z +
// 0.044715 z³), kept as σ(2g) and its complement σ(−2g) = 1 − Φ: the same numbers without the
// cancellation of 1 − Φ near 1. pdf is its derivative dΦ/dz = 2 g'(z) σ(2g) σ(−2g), 0 where
// either factor underflows (and so never ∞·0).
struct ApproxCdf {
  float cdf, complement, pdf;
};
PIT_HOST_DEVICE inline ApproxCdf approx_standard_normal_cdf(float z) {
  constexpr float k = 0.797884560802865356f;  // √(2/π)
  const float g = k * (z + 0.044715f * z * z * z);
  const float cdf = sigmoid(2.0f * g), complement = sigmoid(-2.0f * g);
  const float both = cdf * complement;
  const float pdf = both == 0.0f ? 0.0f : 2.0f * k * (1.0f + 3.0f * 0.044715f * z * z) * both;
  return {cdf, complement, pdf};
}

// log P(x in its bin) under N(mean, e^{2·log_scale}) discretised to 255 bins of [-1, 1], and
// its derivative by log_scale (guided-diffusion's discretized_gaussian_log_likelihood): the
// bin [x − 1/255, x + 1/255], open-ended below −0.999 and above 0.999; each probability is
// clamped at 1e-12 before the log (no gradient where clamped).
struct LogLikelihood {
  float value, dlog_scale;
};
PIT_HOST_DEVICE inline LogLikelihood discretized_gaussian_log_likelihood(float x, float mean, float log_scale) {
  const float inv_std = expf(-log_scale);
  const float plus_in = inv_std * (x - mean + kBinHalfWidth), min_in = inv_std * (x - mean - kBinHalfWidth);
  const ApproxCdf plus = approx_standard_normal_cdf(plus_in), min = approx_standard_normal_cdf(min_in);
  // d(plus_in)/d(log_scale) = −plus_in, likewise min_in.
  float p, dp;
  if (x < -kEdge) {
    p = plus.cdf;
    dp = -plus.pdf * plus_in;
  } else if (x > kEdge) {
    p = min.complement;
    dp = min.pdf * min_in;
  } else {
    // Φ(plus) − Φ(min) from the complements when both are past the median: no cancellation.
    p = min_in > 0.0f ? min.complement - plus.complement : plus.cdf - min.cdf;
    dp = min.pdf * min_in - plus.pdf * plus_in;
  }
  if (p >= kLogFloor) return {logf(p), dp / p};
  if (p < kLogFloor) return {logf(kLogFloor), 0.0f};
  return {p, p};  // NaN stays NaN, as torch's clamp and log keep it
}

// KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, with mean1 − mean2 = diff, in
// nats, and its derivative by logvar2 (guided-diffusion's normal_kl).
struct Kl {
  float value, dlogvar2;
};
PIT_HOST_DEVICE inline Kl normal_kl(float diff, float logvar1, float logvar2) {
  const float ratio = expf(logvar1 - logvar2), scaled = diff * diff * expf(-logvar2);
  return {0.5f * (-1.0f + logvar2 - logvar1 + ratio + scaled), 0.5f * (1.0f - ratio - scaled)};
}

// One element's variational-bound term in bits, and its derivative by v (ε̂ is detached: it
// sets the model's mean, which gets no gradient). coef is the sample's LossCoef row.
//   t > 0: KL(q(x_{t−1} | x_t, x₀) ‖ p(x_{t−1} | x_t)) / ln 2
//   t = 0: −log p(x₀ | x₁) / ln 2, the discretised Gaussian at the model's mean and σ
// The two means differ by coef[kMeanX0]·(x₀ − x̂₀): computed as that, not as a difference of
// two rounded means.
struct VbTerm {
  float value, dv;
};
PIT_HOST_DEVICE inline VbTerm vb_term(float eps_hat, float v, float x0, float xt, const float* coef) {
  const float pred_x0 = coef[kRecipSqrtAb] * xt - coef[kRecipM1SqrtAb] * eps_hat;
  const float frac = 0.5f * (v + 1.0f);
  const float max_log = coef[kLogBeta], min_log = coef[kPostLogVar];
  const float model_log_var = frac * max_log + (1.0f - frac) * min_log;
  const float dlogvar_dv = 0.5f * (max_log - min_log);
  if (coef[kFirstStep] != 0.0f) {
    const float model_mean = coef[kMeanX0] * pred_x0 + coef[kMeanXt] * xt;
    const LogLikelihood ll = discretized_gaussian_log_likelihood(x0, model_mean, 0.5f * model_log_var);
    return {-ll.value / kLn2, -ll.dlog_scale * 0.5f * dlogvar_dv / kLn2};
  }
  const Kl kl = normal_kl(coef[kMeanX0] * (x0 - pred_x0), min_log, model_log_var);
  return {kl.value / kLn2, kl.dlogvar2 * dlogvar_dv / kLn2};
}

// The scalars of one sampling step (diffusion_step), the respaced schedule's values at the
// step's index, rounded to f32. Every sample of the batch is at the same step.
struct Step {
  float recip_sqrt_ab;     // √(1/ᾱ_t)
  float recip_m1_sqrt_ab;  // √(1/ᾱ_t − 1)
  float mean_x0, mean_xt;  // posterior mean coefficients
  float log_var_max;       // learned range: log β_t (fixed variance: the log variance)
  float log_var_min;       // learned range: log β̃_t clipped (fixed variance: unused)
  float sqrt_ab_prev;      // DDIM: √ᾱ_{t−1} (1 at the first index)
  float sqrt_one_minus_ab_prev;  // DDIM: √(1 − ᾱ_{t−1})
  float guidance_scale;    // s: ε = ε_u + s·(ε_c − ε_u) on the guided channels
  int32_t guided_channels; // output channels [0, g) are guided (C: the noise; 3: DiT's slice)
  bool clip;               // clip x̂₀ to [-1, 1]
  bool ddim;               // DDIM (η = 0) instead of the ancestral step
};

// x_{t−1} for one element: eps, v the model's outputs at it (v unused without learned σ), xt
// the current sample, z its standard-normal noise (unused for a step without noise).
//   ancestral: μ(x̂₀, x_t) + exp(½ log σ²)·z
//   DDIM:      x̂₀·√ᾱ_{t−1} + √(1 − ᾱ_{t−1})·ε', ε' = (√(1/ᾱ_t)·x_t − x̂₀) / √(1/ᾱ_t − 1)
PIT_HOST_DEVICE inline float step_element(float eps, float v, bool learned_sigma, float xt, bool add_noise, float z,
                                          const Step& s) {
  float pred_x0 = s.recip_sqrt_ab * xt - s.recip_m1_sqrt_ab * eps;
  // Not fminf/fmaxf: they return the other operand for NaN, and a diverged model must show.
  if (s.clip) pred_x0 = pred_x0 < -1.0f ? -1.0f : pred_x0 > 1.0f ? 1.0f : pred_x0;
  if (s.ddim) {
    const float eps_again = (s.recip_sqrt_ab * xt - pred_x0) / s.recip_m1_sqrt_ab;
    return pred_x0 * s.sqrt_ab_prev + s.sqrt_one_minus_ab_prev * eps_again;
  }
  const float mean = s.mean_x0 * pred_x0 + s.mean_xt * xt;
  if (!add_noise) return mean;
  float log_var = s.log_var_max;
  if (learned_sigma) {
    const float frac = 0.5f * (v + 1.0f);
    log_var = frac * s.log_var_max + (1.0f - frac) * s.log_var_min;
  }
  return mean + expf(0.5f * log_var) * z;
}

// The guided value of output channel k: uncond + s·(cond − uncond) when k is guided (SPEC §4,
// DiT's forward_with_cfg), else cond. uncond is null without guidance. Written as the SPEC
// writes it, not as s·cond + (1 − s)·uncond: equal up to rounding for finite values, but an
// infinite uncond must give NaN (∞ − ∞), not ∓∞, which clipping x̂₀ would turn into a finite
// sample and so hide a diverged model. s = 1 is cond + 0·uncond: exactly cond for a finite
// uncond and NaN for a non-finite one, as the SPEC's form gives (s = 0 gives uncond exactly).
PIT_HOST_DEVICE inline float guided(const float* cond, const float* uncond, int64_t i, int64_t channel, const Step& s) {
  if (!uncond || channel >= s.guided_channels) return cond[i];
  const float c = cond[i], u = uncond[i];
  if (s.guidance_scale == 1.0f) return c + 0.0f * u;
  return u + s.guidance_scale * (c - u);
}

}  // namespace pit::diffusion
