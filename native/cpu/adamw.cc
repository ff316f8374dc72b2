// One AdamW step over a flat parameter tensor, in place, fused into a single pass over
// param, grad, m and v (memory-bound: 16 bytes read and 12 written per element), with the
// step's scalars of core/adamw_scalars.h (the bias corrections folded in, as PyTorch does).
#include <algorithm>
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/adamw_scalars.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk: 4 streams x 64 KiB

// The plain loop: the reference and the fallback. GCC will not vectorise it (std::sqrt
// may set errno, and the build keeps -fmath-errno), hence the two paths below. They do the
// same operations in the same order; GCC contracts a·b + c into FMA where the ISA has it,
// so the paths agree to rounding, not bit for bit.
void adamw_span_scalar(float* param, const float* grad, float* m, float* v, int64_t n, const AdamwScalars& s) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    float mi = s.beta1 * m[i] + s.one_minus_beta1 * g;
    float vi = s.beta2 * v[i] + s.one_minus_beta2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * s.decay - s.step_size * (mi / (std::sqrt(vi) * s.inv_sqrt_bc2 + s.eps));
  }
}

#if PIT_X86
PIT_TARGET_AVX512 void adamw_span_avx512(float* param, const float* grad, float* m, float* v, int64_t n,
                                         const AdamwScalars& s) {
  const __m512 b1 = _mm512_set1_ps(s.beta1), c1 = _mm512_set1_ps(s.one_minus_beta1);
  const __m512 b2 = _mm512_set1_ps(s.beta2), c2 = _mm512_set1_ps(s.one_minus_beta2);
  const __m512 decay = _mm512_set1_ps(s.decay), step_size = _mm512_set1_ps(s.step_size);
  // (maskz_sqrt with a full mask: _mm512_sqrt_ps trips a GCC 12 -Wmaybe-uninitialized.)
  const __m512 inv_sqrt_bc2 = _mm512_set1_ps(s.inv_sqrt_bc2), eps = _mm512_set1_ps(s.eps);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 g = _mm512_loadu_ps(grad + i);
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(c1, g));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(c2, _mm512_mul_ps(g, g)));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_sqrt_ps(0xFFFF, vi), inv_sqrt_bc2), eps);
    __m512 update = _mm512_mul_ps(step_size, _mm512_div_ps(mi, denom));
    _mm512_storeu_ps(param + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(param + i), decay), update));
  }
  adamw_span_scalar(param + i, grad + i, m + i, v + i, n - i, s);
}

PIT_TARGET_AVX2 void adamw_span_avx2(float* param, const float* grad, float* m, float* v, int64_t n,
                                     const AdamwScalars& s) {
  const __m256 b1 = _mm256_set1_ps(s.beta1), c1 = _mm256_set1_ps(s.one_minus_beta1);
  const __m256 b2 = _mm256_set1_ps(s.beta2), c2 = _mm256_set1_ps(s.one_minus_beta2);
  const __m256 decay = _mm256_set1_ps(s.decay), step_size = _mm256_set1_ps(s.step_size);
  const __m256 inv_sqrt_bc2 = _mm256_set1_ps(s.inv_sqrt_bc2), eps = _mm256_set1_ps(s.eps);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 g = _mm256_loadu_ps(grad + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, g));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(c2, _mm256_mul_ps(g, g)));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), inv_sqrt_bc2), eps);
    __m256 update = _mm256_mul_ps(step_size, _mm256_div_ps(mi, denom));
    _mm256_storeu_ps(param + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(param + i), decay), update));
  }
  adamw_span_scalar(param + i, grad + i, m + i, v + i, n - i, s);
}
#endif

}  // namespace

// param, grad, m, v (n); step counts from 1.
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weight_decay, int64_t step) {
  const AdamwScalars s = adamw_scalars(lr, beta1, beta2, eps, weight_decay, step);
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    float *p = param + begin, *mb = m + begin, *vb = v + begin;
    const float* g = grad + begin;
#if PIT_X86
    if (cpu_has_avx512()) return adamw_span_avx512(p, g, mb, vb, end - begin, s);
    if (cpu_has_avx2()) return adamw_span_avx2(p, g, mb, vb, end - begin, s);
#endif
    adamw_span_scalar(p, g, mb, vb, end - begin, s);
  });
}

}  // namespace pit::cpu
