// LayerNorm over the last axis of x (N, C), with the per-row mean and rstd kept for the
// backward. Rows are independent, so both directions split rows across cores, and each row
// (C floats) stays in L1 between its passes: the op is memory-bound on its first touch.
// dweight / dbias (C) are summed per row block into private partials and reduced in block
// order afterwards; the block split depends only on N and C, so the sums are deterministic.
#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;      // elements per chunk: ~128 KiB per operand
constexpr int64_t kMaxBlocks = 64;       // row blocks for the dweight/dbias partial sums
constexpr int64_t kStatBlock = 512;      // float lanes sum this many, then a double total
constexpr int64_t kPartialAlign = 16;    // partial rows padded to a cache line (no sharing)

// Σ x[i] and Σ (x[i] - m)² over one row (C). omp simd keeps one float partial per lane;
// adding block totals in double keeps the error at a few ulp even for C in the thousands.
inline float row_sum(const float* x, int64_t C) {
  double total = 0;
  for (int64_t c0 = 0; c0 < C; c0 += kStatBlock) {
    const int64_t n = std::min(kStatBlock, C - c0);
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < n; ++c) s += x[c0 + c];
    total += s;
  }
  return static_cast<float>(total);
}

inline float row_sum_sq_dev(const float* x, float m, int64_t C) {
  double total = 0;
  for (int64_t c0 = 0; c0 < C; c0 += kStatBlock) {
    const int64_t n = std::min(kStatBlock, C - c0);
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < n; ++c) {
      const float d = x[c0 + c] - m;
      s += d * d;
    }
    total += s;
  }
  return static_cast<float>(total);
}

// rows of x (rows, C) -> out (rows, C), mean (rows), rstd (rows). Two-pass statistics (mean,
// then squared deviations from it) so a large mean does not cancel the variance away.
// w, b (C) are never null here (ones / zeros stand in for the non-affine form).
PIT_MULTIVERSION void layernorm_forward_rows(float* out, float* mean, float* rstd, const float* x,
                                             const float* w, const float* b, int64_t rows, int64_t C,
                                             float eps) {
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = out + r * C;
    const float m = row_sum(xr, C) * inv_c;
    const float var = row_sum_sq_dev(xr, m, C) * inv_c;
    const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + eps));
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
  }
}

// dx (rows, C) for rows of x (rows, C); dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w.
// With acc_w / acc_b (C) non-null, also accumulates Σ dout·x̂ and Σ dout into them.
// dx may be null (only the parameter gradients wanted).
PIT_MULTIVERSION void layernorm_backward_rows(float* dx, float* acc_w, float* acc_b, const float* dout,
                                              const float* x, const float* w, const float* mean,
                                              const float* rstd, int64_t rows, int64_t C) {
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float* gr = dout + r * C;
    const float m = mean[r], rs = rstd[r];
    if (acc_w && acc_b) {
      for (int64_t c = 0; c < C; ++c) {
        acc_w[c] += gr[c] * ((xr[c] - m) * rs);
        acc_b[c] += gr[c];
      }
    } else if (acc_w) {
      for (int64_t c = 0; c < C; ++c) acc_w[c] += gr[c] * ((xr[c] - m) * rs);
    } else if (acc_b) {
      for (int64_t c = 0; c < C; ++c) acc_b[c] += gr[c];
    }
    if (!dx) continue;
    float sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t c = 0; c < C; ++c) {
      const float g = gr[c] * w[c];
      sg += g;
      sgx += g * ((xr[c] - m) * rs);
    }
    const float mg = sg * inv_c, mgx = sgx * inv_c;
    float* dr = dx + r * C;
    for (int64_t c = 0; c < C; ++c) dr[c] = rs * (gr[c] * w[c] - mg - ((xr[c] - m) * rs) * mgx);
  }
}

#if PIT_X86
// AVX-512 row kernels: the same arithmetic as the plain ones, with masked tails so odd C
// stays vectorised. They pay because the plain reductions do not vectorise well: GCC keeps
// an omp simd reduction's lanes in a stack array and folds them one scalar add at a time.
// Measured on one core, C = 192 rows in L1: forward 60 vs 84 ns per row, backward 48 vs
// 76; at (8192, 192) from L3, forward 20.5 vs 16.4 GB/s (memcpy 22.7).
PIT_TARGET_AVX512 inline __mmask16 tail_mask(int64_t n) {  // lanes [0, n), n < 16
  return static_cast<__mmask16>((1u << n) - 1u);
}

// Horizontal sum of 16 lanes. (_mm512_reduce_add_ps and _mm512_castps512_ps256 trip GCC 12's
// -Wmaybe-uninitialized through _mm256_undefined_pd; the zero-masked extracts do not.)
PIT_TARGET_AVX512 inline float hsum(__m512 v) {
  const __m256 h8 = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0), _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
  const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
  return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

PIT_TARGET_AVX512 void layernorm_forward_rows_avx512(float* out, float* mean, float* rstd, const float* x,
                                                    const float* w, const float* b, int64_t rows, int64_t C,
                                                    float eps) {
  const int64_t full = C & ~int64_t{15};
  const __mmask16 tail = tail_mask(C & 15);
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    float* yr = out + r * C;
    // Two accumulators halve the add chain; blocks of kStatBlock fold into a double.
    double total = 0;
    for (int64_t c0 = 0; c0 < C; c0 += kStatBlock) {
      const int64_t end = std::min(full, c0 + kStatBlock);
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
      int64_t c = c0;
      for (; c + 32 <= end; c += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + c));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + c + 16));
      }
      if (c < end) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + c));
      if (c0 + kStatBlock >= C && tail) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, xr + full));
      total += hsum(_mm512_add_ps(s0, s1));
    }
    const float m = static_cast<float>(total) * inv_c;
    const __m512 vm = _mm512_set1_ps(m);
    total = 0;
    for (int64_t c0 = 0; c0 < C; c0 += kStatBlock) {
      const int64_t end = std::min(full, c0 + kStatBlock);
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
      int64_t c = c0;
      for (; c + 32 <= end; c += 32) {
        const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + c), vm);
        const __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(xr + c + 16), vm);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
      }
      if (c < end) {
        const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xr + c), vm);
        s0 = _mm512_fmadd_ps(d, d, s0);
      }
      if (c0 + kStatBlock >= C && tail) {
        const __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + full), vm);
        s1 = _mm512_fmadd_ps(d, d, s1);
      }
      total += hsum(_mm512_add_ps(s0, s1));
    }
    const float var = static_cast<float>(total) * inv_c;
    const float rs = static_cast<float>(1.0 / std::sqrt(static_cast<double>(var) + eps));
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
    const __m512 vrs = _mm512_set1_ps(rs);
    int64_t c = 0;
    for (; c < full; c += 16) {
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + c), vm), vrs);
      _mm512_storeu_ps(yr + c, _mm512_fmadd_ps(xh, _mm512_loadu_ps(w + c), _mm512_loadu_ps(b + c)));
    }
    if (tail) {
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xr + c), vm), vrs);
      _mm512_mask_storeu_ps(yr + c, tail,
                            _mm512_fmadd_ps(xh, _mm512_maskz_loadu_ps(tail, w + c), _mm512_maskz_loadu_ps(tail, b + c)));
    }
  }
}

PIT_TARGET_AVX512 void layernorm_backward_rows_avx512(float* dx, float* acc_w, float* acc_b, const float* dout,
                                                     const float* x, const float* w, const float* mean,
                                                     const float* rstd, int64_t rows, int64_t C) {
  const int64_t full = C & ~int64_t{15};
  const __mmask16 tail = tail_mask(C & 15);
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float* gr = dout + r * C;
    const __m512 vm = _mm512_set1_ps(mean[r]), vrs = _mm512_set1_ps(rstd[r]);
    // Pass 1: Σ g, Σ g·x̂ (g = dout·w) and the parameter-gradient partials. Every load is
    // masked the same way, so the tail needs no second copy of the body.
    __m512 sg = _mm512_setzero_ps(), sgx = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = c < full ? __mmask16(0xFFFF) : tail;
      const __m512 go = _mm512_maskz_loadu_ps(k, gr + c);
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + c), vm), vrs);
      const __m512 g = _mm512_mul_ps(go, _mm512_maskz_loadu_ps(k, w + c));
      sg = _mm512_add_ps(sg, g);
      sgx = _mm512_fmadd_ps(g, xh, sgx);
      if (acc_w) _mm512_mask_storeu_ps(acc_w + c, k, _mm512_fmadd_ps(go, xh, _mm512_maskz_loadu_ps(k, acc_w + c)));
      if (acc_b) _mm512_mask_storeu_ps(acc_b + c, k, _mm512_add_ps(go, _mm512_maskz_loadu_ps(k, acc_b + c)));
    }
    if (!dx) continue;
    // x̂ of masked-off lanes is -mean·rstd, not 0, but g is 0 there: the sums are exact.
    const __m512 mg = _mm512_set1_ps(hsum(sg) * inv_c);
    const __m512 mgx = _mm512_set1_ps(hsum(sgx) * inv_c);
    float* dr = dx + r * C;
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = c < full ? __mmask16(0xFFFF) : tail;
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + c), vm), vrs);
      const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, gr + c), _mm512_maskz_loadu_ps(k, w + c));
      const __m512 t = _mm512_sub_ps(_mm512_sub_ps(g, mg), _mm512_mul_ps(xh, mgx));
      _mm512_mask_storeu_ps(dr + c, k, _mm512_mul_ps(vrs, t));
    }
  }
}
#endif

// total (C) = Σ_k partials[k] (row stride `stride`), k in order: a fixed summation order.
PIT_MULTIVERSION void sum_partials(float* total, const float* partials, int64_t blocks, int64_t stride,
                                   int64_t C) {
  for (int64_t c = 0; c < C; ++c) total[c] = partials[c];
  for (int64_t k = 1; k < blocks; ++k)
    for (int64_t c = 0; c < C; ++c) total[c] += partials[k * stride + c];
}

using ForwardRows = void (*)(float*, float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                            float);
using BackwardRows = void (*)(float*, float*, float*, const float*, const float*, const float*, const float*,
                              const float*, int64_t, int64_t);

ForwardRows forward_rows() {
#if PIT_X86
  if (cpu_has_avx512()) return layernorm_forward_rows_avx512;
#endif
  return layernorm_forward_rows;
}
BackwardRows backward_rows() {
#if PIT_X86
  if (cpu_has_avx512()) return layernorm_backward_rows_avx512;
#endif
  return layernorm_backward_rows;
}

}  // namespace

// out (N, C), mean (N), rstd (N) from x (N, C); weight, bias (C) or null.
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  // Ones / zeros stand in for a missing weight / bias: one extra L1 load per element is
  // cheaper than a second copy of the loop, and the row kernel stays branch-free.
  std::vector<float> ones, zeros;
  if (!weight) ones.assign(C, 1.0f), weight = ones.data();
  if (!bias) zeros.assign(C, 0.0f), bias = zeros.data();
  const int64_t grain_rows = std::max<int64_t>(1, kGrain / C);
  const ForwardRows rows = forward_rows();
  parallel_for(N, grain_rows, [&](int64_t begin, int64_t end) {
    rows(out + begin * C, mean ? mean + begin : nullptr, rstd ? rstd + begin : nullptr, x + begin * C, weight,
         bias, end - begin, C, eps);
  });
}

// dx (N, C), dweight, dbias (C), each null when not wanted, from dout, x (N, C), weight (C)
// or null, mean, rstd (N).
void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, const float* mean, const float* rstd, int64_t N,
                        int64_t C) {
  if (C <= 0) return;
  if (N <= 0) {  // an empty batch still owes zero parameter gradients
    if (dweight) std::fill(dweight, dweight + C, 0.0f);
    if (dbias) std::fill(dbias, dbias + C, 0.0f);
    return;
  }
  std::vector<float> ones;
  if (!weight) ones.assign(C, 1.0f), weight = ones.data();
  const int64_t grain_rows = std::max<int64_t>(1, kGrain / C);
  const BackwardRows rows = backward_rows();

  if (!dweight && !dbias) {
    if (!dx) return;
    parallel_for(N, grain_rows, [&](int64_t begin, int64_t end) {
      rows(dx + begin * C, nullptr, nullptr, dout + begin * C, x + begin * C, weight, mean + begin, rstd + begin,
           end - begin, C);
    });
    return;
  }

  // Row blocks of ~kGrain elements, at most kMaxBlocks of them, each with its own partial
  // dweight and dbias rows.
  const int64_t want = std::min<int64_t>(kMaxBlocks, (N * C + kGrain - 1) / kGrain);  // >= 1
  const int64_t rows_per_block = (N + want - 1) / want;
  const int64_t blocks = (N + rows_per_block - 1) / rows_per_block;
  const int64_t stride = (C + kPartialAlign - 1) / kPartialAlign * kPartialAlign;
  std::vector<float> partials(static_cast<size_t>(2 * blocks * stride), 0.0f);  // (2, blocks, stride)
  float* part_w = partials.data();
  float* part_b = partials.data() + blocks * stride;
  parallel_for(blocks, 1, [&](int64_t kb, int64_t ke) {
    for (int64_t k = kb; k < ke; ++k) {
      const int64_t begin = k * rows_per_block, end = std::min(N, begin + rows_per_block);
      rows(dx ? dx + begin * C : nullptr, dweight ? part_w + k * stride : nullptr,
           dbias ? part_b + k * stride : nullptr, dout + begin * C, x + begin * C, weight, mean + begin,
           rstd + begin, end - begin, C);
    }
  });
  if (dweight) sum_partials(dweight, part_w, blocks, stride, C);
  if (dbias) sum_partials(dbias, part_b, blocks, stride, C);
}

}  // namespace pit::cpu
