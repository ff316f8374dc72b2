// Fused softmax cross-entropy with label smoothing: loss and dlogits for a row in one visit,
// rows split across cores. The exponential is a polynomial in plain float arithmetic so
// that GCC vectorises it per ISA (libm's expf would keep the loop scalar).
//
// For a row x (K) with label y, smoothing s and smoothed target t = (1-s)·onehot(y) + s/K:
//   loss   = logsumexp(x) - Σ_k t_k x_k = log Σ_k e^(x_k - m) - Σ_k t_k (x_k - m),  m = max x
//   dlogit = grad_scale · (softmax(x) - t)
// Shifting by m (Σ t = 1) keeps both terms small, so the subtraction loses nothing.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/vmath.h"

namespace pit::cpu {
namespace {

// e^x for x <= 0 (the shifted logits), ~1.4 ulp; below -87 it is e^-87 ≈ 1.6e-38, which
// adds nothing to a row sum that is at least 1. NaN stays NaN (exp_neg would cap it to
// e^-87): the max may skip a NaN logit (std::max keeps its first argument), and a +Inf logit
// minus the +Inf max is NaN; either makes the row's sum, loss and every dlogit NaN, as
// softmax does. The check lives here, not in exp_neg, which GELU and SiLU run on every element.
inline float exp_nonpositive(float x) { return x != x ? x : vmath::exp_neg(-x); }

// Rows [begin, end): every pass runs over K floats already in L1 (max; e^(x - m) and its
// sum, stored into the gradient row; Σ (x - m) when smoothing; the gradient's scale and
// shift). One multiversioned function per range of rows, not per pass, so small K
// (CIFAR's 10 classes) does not pay an indirect call per pass per row.
PIT_MULTIVERSION void softmax_cross_entropy_rows(float* losses, float* dlogits, const float* logits,
                                                 const int32_t* targets, int64_t begin, int64_t end, int64_t K,
                                                 float smoothing, float grad_scale) {
  const float on_label = 1.0f - smoothing, uniform = smoothing / static_cast<float>(K);
  for (int64_t i = begin; i < end; ++i) {
    const float* x = logits + i * K;
    float* d = dlogits ? dlogits + i * K : nullptr;
    const int32_t y = targets[i];
    float m = x[0];
#pragma omp simd reduction(max : m)
    for (int64_t k = 0; k < K; ++k) m = std::max(m, x[k]);
    float sum = 0.0f;
    if (d) {
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < K; ++k) {
        float e = exp_nonpositive(x[k] - m);
        d[k] = e;
        sum += e;
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < K; ++k) sum += exp_nonpositive(x[k] - m);
    }
    // Σ_k t_k (x_k - m): the smoothing term only costs a pass when s != 0.
    float target_dot = on_label * (x[y] - m);
    if (smoothing != 0.0f) {
      float shifted = 0.0f;
#pragma omp simd reduction(+ : shifted)
      for (int64_t k = 0; k < K; ++k) shifted += x[k] - m;
      target_dot += uniform * shifted;
    }
    losses[i] = std::log(sum) - target_dot;
    if (d) {
      const float a = grad_scale / sum, b = grad_scale * uniform;
      for (int64_t k = 0; k < K; ++k) d[k] = a * d[k] - b;
      d[y] -= grad_scale * on_label;
    }
  }
}

}  // namespace

// losses (N), dlogits (N, K) or null, logits (N, K), targets (N) in [0, K).
void softmax_cross_entropy(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                           int64_t N, int64_t K, float smoothing, float grad_scale) {
  // ~16K logits per chunk: enough work to amortise a hand-off, small enough to balance.
  const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(K, 1));
  parallel_for(N, grain, [&](int64_t begin, int64_t end) {
    softmax_cross_entropy_rows(losses, dlogits, logits, targets, begin, end, K, smoothing, grad_scale);
  });
}

}  // namespace pit::cpu
