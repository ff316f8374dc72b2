// Mean squared error with an optional per-token mask (the MAE loss: only masked-out tokens
// count). The loss is one number, so it is summed in float64 over fixed chunks whose
// boundaries do not depend on the thread count, and the chunk sums are added in order:
// the same inputs give the same bits with 1 thread or 16.
//
// pred, target (B, L, P); mask (B, L) or null. e_t = mean over P of (pred - target)^2.
//   loss = Σ_t mask_t e_t / Σ_t mask_t   (mask null: every mask_t = 1, the plain mean)
// When Σ mask = 0 no token counts: the loss is defined as 0 and dpred as 0 (not NaN), so
// a batch that happens to mask nothing does not poison the run.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per deterministic chunk

PIT_MULTIVERSION double squared_error_sum(const float* pred, const float* target, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    s += d * d;
  }
  return s;
}

// Σ_t mask_t Σ_p (pred - target)^2 over `tokens` tokens of P values; tokens with mask 0
// are skipped (MAE scores only the hidden tokens, so the visible ones cost nothing).
PIT_MULTIVERSION double masked_squared_error_sum(const float* pred, const float* target, const float* mask,
                                                 int64_t tokens, int64_t P) {
  double s = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    if (mask[t] == 0.0f) continue;
    const float *p = pred + t * P, *q = target + t * P;
    double e = 0.0;
#pragma omp simd reduction(+ : e)
    for (int64_t i = 0; i < P; ++i) {
      double d = static_cast<double>(p[i]) - static_cast<double>(q[i]);
      e += d * d;
    }
    s += mask[t] * e;
  }
  return s;
}

// out = a·mask_t·(pred - target) per token of P values; exactly 0 where mask_t = 0, like
// the forward, which never reads those tokens (so a NaN there stays out of both).
PIT_MULTIVERSION void masked_scaled_difference(float* out, const float* pred, const float* target,
                                               const float* mask, float a, int64_t tokens, int64_t P) {
  for (int64_t t = 0; t < tokens; ++t) {
    const float at = a * mask[t];
    if (mask[t] == 0.0f) {
      for (int64_t i = 0; i < P; ++i) out[t * P + i] = 0.0f;
      continue;
    }
    for (int64_t i = 0; i < P; ++i) out[t * P + i] = at * (pred[t * P + i] - target[t * P + i]);
  }
}

PIT_MULTIVERSION void scaled_difference(float* out, const float* pred, const float* target, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a * (pred[i] - target[i]);
}

// Σ mask over (B·L) tokens, in order (cheap: one float per token).
double mask_total(const float* mask, int64_t tokens) {
  double s = 0.0;
  for (int64_t t = 0; t < tokens; ++t) s += mask[t];
  return s;
}

// Σ_t w_t Σ_p (pred - target)^2 over all tokens, in fixed chunks of whole tokens.
double weighted_squared_error(const float* pred, const float* target, const float* mask, int64_t tokens,
                              int64_t P) {
  const int64_t per_chunk = std::max<int64_t>(1, kChunk / std::max<int64_t>(P, 1));  // tokens
  const int64_t chunks = (tokens + per_chunk - 1) / per_chunk;
  std::vector<double> partial(chunks);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t t0 = c * per_chunk, t1 = std::min(tokens, t0 + per_chunk);
      partial[c] = mask ? masked_squared_error_sum(pred + t0 * P, target + t0 * P, mask + t0, t1 - t0, P)
                        : squared_error_sum(pred + t0 * P, target + t0 * P, (t1 - t0) * P);
    }
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

void mse_forward(float* loss, const float* pred, const float* target, const float* mask, int64_t B, int64_t L,
                 int64_t P) {
  const int64_t tokens = B * L;
  const double weight = mask ? mask_total(mask, tokens) : static_cast<double>(tokens);
  if (weight == 0.0 || P == 0) {
    loss[0] = 0.0f;
    return;
  }
  loss[0] = static_cast<float>(weighted_squared_error(pred, target, mask, tokens, P) / (weight * P));
}

// dpred (B, L, P) = dloss · 2 (pred - target) · mask_t / (P · Σ mask).
void mse_backward(float* dpred, const float* dloss, const float* pred, const float* target, const float* mask,
                  int64_t B, int64_t L, int64_t P) {
  const int64_t tokens = B * L;
  const double weight = mask ? mask_total(mask, tokens) : static_cast<double>(tokens);
  const float a = weight == 0.0 ? 0.0f : static_cast<float>(2.0 * dloss[0] / (weight * P));
  const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(P, 1));
  parallel_for(tokens, grain, [&](int64_t t0, int64_t t1) {
    if (mask)
      masked_scaled_difference(dpred + t0 * P, pred + t0 * P, target + t0 * P, mask + t0, a, t1 - t0, P);
    else
      scaled_difference(dpred + t0 * P, pred + t0 * P, target + t0 * P, a, (t1 - t0) * P);
  });
}

}  // namespace pit::cpu
