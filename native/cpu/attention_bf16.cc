// attention, bf16: attention_forward_bf16 / attention_backward_bf16 on packed bf16 qkv (see
// ops.h), the GPU's bf16 numerics on the CPU.
//
// Numerics (those of native/cuda/attention_bf16.cuh): S = Q·Kᵀ from bf16 products with fp32
// accumulation; the softmax's max, sum and lse in fp32; P rounded to bf16 before P·V. In the
// backward dP = dO·Vᵀ and S again from bf16 products, P recomputed in fp32 from lse, Di =
// rowsum(dO ∘ O) in fp32, dS = P ∘ (dP − Di) and P rounded to bf16 before dV = Pᵀ·dO,
// dK = dSᵀ·Q and dQ = dS·K. Every sum is fp32; out, dq, dk and dv are rounded to bf16 once.
//
// Kernels. AVX512-BF16's vdpbf16ps (per f32 lane: acc += a[2l]·b[2l] + a[2l+1]·b[2l+1]) does
// two multiply-adds of bf16 pairs per lane, so every matmul of attention.cc's layout (see its
// header: scores transposed, queries on the lanes, one operand broadcast) runs on pairs along
// its summed index:
//   Sᵀ, dPᵀ (keys, queries)  sum over d:       Q, dO packed (D/2, queries) of (d, d+1) words;
//                                               K, V rows broadcast one (d, d+1) word at a time
//   Oᵀ, dQᵀ (D, queries)     sum over keys:    P, dS converted to (key, key+1) words per
//                                               query lane (vcvtne2ps2bf16 + one vpermw);
//                                               V, K packed (keys/2, D) of (j, j+1) words
//   dV, dK (keys, D)         sum over queries: dO, Q packed (queries/2, D) of (i, i+1) words;
//                                               P, dS rows in bf16 broadcast (i, i+1) words
// Half the multiply instructions of the f32 kernels, and half the bytes packed. The exp2
// polynomial, the online softmax, the split into work items and the fixed-order dQ sums are
// attention.cc's (attention_common.h).
//
// One pass. The backward is FlashAttention-2's single pass: per item (b, h, key group) and per
// key tile, P, dS, dV, dK and the item's partial dQ are computed from one recomputation of the
// scores; nothing is recomputed for dQ. With one key group per head the item writes its dQ
// itself; with several (B·H < 8), the partials are summed in group order afterwards. The split
// depends on the shape alone, so results are bitwise identical whatever the thread count.
//
// Without AVX512-BF16 (older CPUs, or PIT_CPU_ISA=avx512|avx2|scalar), and for head dims that
// are not multiples of 16 (the binding allows 16, 32, 64, 128 only), the bf16 ops widen their
// inputs to f32 (exact), run the f32 kernels and round the outputs to bf16: the reference path,
// whose P and dS are not rounded.
//
// Measured on the 2-core Zen 4 dev VM (AVX512-BF16, shared with other work: best runs on a
// quiet machine, wall clock, 2 threads), g++ 12 -O3, GFLOP/s = 4·B·H·L²·D forward, 2.5x that
// backward (`pit bench kernels --device cpu --ops attention --dtype f32,bf16 --head-dims 16,64`):
//                     f32: fwd   bwd   fwd+bwd    bf16: fwd   bwd   fwd+bwd
//   {8,12,256,16}          131   154   145              184   234   214   (1.48x)
//   {2,12,1024,16}         153   145   147              209   234   223   (1.52x)
//   {8,12,256,64}          166   165   165              279   290   290   (1.76x)
//   {2,12,1024,64}         192   162   170              314   288   295   (1.74x)
// At D = 16 the exp2 polynomial (unchanged, fp32) bounds the gain: the matmuls halve, the exps
// do not.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "cpu/attention_common.h"
#include "cpu/backend.h"

#if PIT_X86
#include <immintrin.h>
#endif

namespace pit::cpu {
namespace {

using namespace attention_detail;

// ---- the reference path: widened to f32 ------------------------------------------------------

std::vector<float> widen(const uint16_t* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  cast_bf16_to_f32(out.data(), x, n);
  return out;
}

void forward_widened(uint16_t* out, float* lse, const uint16_t* qkv, const Layout& t) {
  const int64_t n = t.B * t.L * t.H * t.D;
  const std::vector<float> qkv32 = widen(qkv, 3 * n);
  std::vector<float> out32(static_cast<size_t>(n));
  attention_forward(out32.data(), lse, qkv32.data(), t.B, t.L, t.H, t.D);
  cast_f32_to_bf16(out, out32.data(), n);
}

void backward_widened(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                      const float* lse, const Layout& t) {
  const int64_t n = t.B * t.L * t.H * t.D;
  const std::vector<float> dout32 = widen(dout, n), qkv32 = widen(qkv, 3 * n), out32 = widen(out, n);
  std::vector<float> dqkv32(static_cast<size_t>(3 * n));
  attention_backward(dqkv32.data(), dout32.data(), qkv32.data(), out32.data(), lse, t.B, t.L, t.H, t.D);
  cast_f32_to_bf16(dqkv, dqkv32.data(), 3 * n);
}

// ---- AVX512-BF16 -------------------------------------------------------------------------------
#if PIT_X86
#pragma GCC push_options
#pragma GCC target("avx512bf16,avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")

constexpr int W = 16;  // f32 lanes; a word is one 32-bit lane holding a bf16 pair
using V = vf<W>;

// Tile sizes: the f32 kernels' AVX-512 choices. Re-measured for bf16 (2 threads, variants
// alternated, the VM loaded by other work, so only differences over ~15% count):
//   - backward Br = 64 also at D = 64 (bf16 tiles are half the bytes): bwd {.,12,.,64} 126-135
//     vs 135-166 with Br = 32; kept 32.
//   - 24 accumulators instead of 16: D = 16 fwd+bwd 110-116 vs 113-128, D = 64 164-184 vs
//     185-198 (L = 1024); kept 16.
struct BF16Tiles {
  static constexpr int kAccumulators = 16;  // accumulator registers per micro-tile
  static constexpr int kFwdQueryVecs = 4;   // forward query tile Br = 64
  static constexpr int64_t kFwdKeys = 64;   // forward key tile Bc
  static constexpr int64_t kBwdKeys = 64;   // backward key tile Bc
  static constexpr int kBwdQueryVecs = 4;   // backward query tile Br = 64 for D <= kBwdWideD,
  static constexpr int64_t kBwdWideD = 32;  // 32 above
};
constexpr int rows_for(int accumulators_per_row) {
  return std::max(1, BF16Tiles::kAccumulators / accumulators_per_row);
}

// acc + a[2l]·b[2l] + a[2l+1]·b[2l+1] per lane l.
PIT_INLINE V dot2(const V& acc, __m512i a, __m512i b) {
  return (V)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
}
PIT_INLINE __m512i load_words(const uint32_t* p) { return _mm512_loadu_si512(p); }
PIT_INLINE __m512i splat_word(uint32_t w) { return _mm512_set1_epi32(static_cast<int>(w)); }
PIT_INLINE uint32_t word_at(const uint16_t* p) {  // the bf16 pair (p[0], p[1])
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}
// 16 floats to bf16, round to nearest even (NaN stays NaN), as 16 contiguous halves.
PIT_INLINE __m256i to_bf16(const V& x) { return (__m256i)_mm512_cvtneps_pbh((__m512)x); }
// Lane l of the result: the word (a[l], b[l]) (a in the low half): a pair along the summed index.
PIT_INLINE __m512i interleave(__m512i halves_ab) {  // halves 0..15 from a, 16..31 from b
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, halves_ab);
}
PIT_INLINE __m512i pair_words(const V& a, const V& b) {
  return interleave((__m512i)_mm512_cvtne2ps_pbh((__m512)b, (__m512)a));
}

// dst (ceil(n/2), D) words = rows (2r, 2r + 1) of src (n, D) bf16 (row stride lds)
// interleaved; a missing last row is zero. D a multiple of 16.
PIT_INLINE void pack_row_pairs(uint32_t* dst, const uint16_t* src, int64_t lds, int64_t n, int64_t D) {
  // Result half 2l from a's half l, 2l + 1 from b's (index 32 + l of the two-table permute).
  const __m512i order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                         39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  for (int64_t r = 0; r < n; r += 2) {
    const uint16_t* a = src + r * lds;
    for (int64_t d = 0; d < D; d += W) {
      const __m512i lo = _mm512_maskz_loadu_epi16(0xffff, a + d);
      const __m512i hi = r + 1 < n ? _mm512_maskz_loadu_epi16(0xffff, a + lds + d) : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + r / 2 * D + d, _mm512_permutex2var_epi16(lo, order, hi));
    }
  }
}

// dst (D/2, ldd) words = the (d, d+1) words of n rows of src (row stride lds halves),
// transposed: queries along lanes; lanes [n, ldd) zero.
PIT_INLINE void pack_pairs_transposed(uint32_t* dst, int64_t ldd, const uint16_t* src, int64_t lds, int64_t n,
                                      int64_t D) {
  transpose_tile<W>(reinterpret_cast<float*>(dst), ldd, reinterpret_cast<const float*>(src), lds / 2, n, D / 2);
  if (n < ldd)
    for (int64_t w = 0; w < D / 2; ++w) std::fill(dst + w * ldd + n, dst + (w + 1) * ldd, 0u);
}

// dst row i (bf16, D) = srcT[:, i] · scale for i < n: srcT (D, lds) f32, through tmp (16, D).
PIT_INLINE void store_rows_bf16(uint16_t* dst, int64_t ldd, const float* srcT, int64_t lds, int64_t n, int64_t D,
                                float scale, float* tmp) {
  for (int64_t i0 = 0; i0 < n; i0 += W) {
    const int64_t rows = std::min<int64_t>(W, n - i0);
    transpose_tile<W>(tmp, D, srcT + i0, lds, D, rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < D; d += W)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (i0 + r) * ldd + d), to_bf16(load<W>(tmp + r * D + d) * scale));
  }
}

// ---- micro-kernels (names and shapes as attention.cc's, on words) ----------------------------

// sT (R, NV·W) = K rows (R, D) · Qᵀ, the rows' (d, d+1) words broadcast (row stride D/2
// words), qP (D/2, ldq); tmax (NV·W) = max(tmax, column max).
template <int NV, int R>
PIT_INLINE void scores_rows(float* sT, float* tmax, const uint32_t* rows, const uint32_t* qP, int64_t ldq,
                            int64_t D2) {
  V acc[R][NV] = {};
  for (int64_t w = 0; w < D2; ++w) {
    __m512i q[NV];
    for (int v = 0; v < NV; ++v) q[v] = load_words(qP + w * ldq + v * W);
    for (int r = 0; r < R; ++r) {
      const __m512i k = splat_word(rows[r * D2 + w]);
      for (int v = 0; v < NV; ++v) acc[r][v] = dot2(acc[r][v], q[v], k);
    }
  }
  for (int v = 0; v < NV; ++v) {
    V m = load<W>(tmax + v * W);
    for (int r = 0; r < R; ++r) {
      store<W>(sT + r * NV * W + v * W, acc[r][v]);
      m = max<W>(m, acc[r][v]);
    }
    store<W>(tmax + v * W, m);
  }
}

// accT (R, ldo) += rowP (np, D)ᵀ · pP (np, NV·W): R output dims, summed over np key pairs;
// rowP holds (j, j+1) words of V or K (row stride rs), pP the matching P or dS words.
template <int NV, int R>
PIT_INLINE void accumulate_rows(float* accT, int64_t ldo, const uint32_t* rowP, int64_t rs, const uint32_t* pP,
                                int64_t np) {
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = load<W>(accT + r * ldo + v * W);
  for (int64_t j = 0; j < np; ++j) {
    __m512i p[NV];
    for (int v = 0; v < NV; ++v) p[v] = load_words(pP + j * NV * W + v * W);
    for (int r = 0; r < R; ++r) {
      const __m512i a = splat_word(rowP[j * rs + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = dot2(acc[r][v], p[v], a);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store<W>(accT + r * ldo + v * W, acc[r][v]);
}

// accT (D, ldo) += rowP (np, D)ᵀ · pP (np, NV·W).
template <int NV>
PIT_INLINE void accumulate_tile(float* accT, int64_t ldo, const uint32_t* rowP, const uint32_t* pP, int64_t np,
                                int64_t D) {
  constexpr int R = rows_for(NV);
  int64_t d = 0;
  for (; d + R <= D; d += R) accumulate_rows<NV, R>(accT + d * ldo, ldo, rowP + d, D, pP, np);
  for (; d < D; ++d) accumulate_rows<NV, 1>(accT + d * ldo, ldo, rowP + d, D, pP, np);
}

// Backward scores for R keys (R even, or the tile's odd last key alone) x NV·W queries:
//   P  = 2^(K·Qᵀ·c - lse·log2 e),  dS = P ∘ (V·dOᵀ - Di)
// stored as bf16 rows pB, dsB (R, ldp halves) for dV and dK, and dS as (key, key+1) words
// dsP (R/2, NV·W) for dQ. ndi = -Di seeds the dP accumulators.
template <int NV, int R>
PIT_INLINE void probs_rows(uint16_t* pB, uint16_t* dsB, int64_t ldp, uint32_t* dsP, const uint32_t* krows,
                           const uint32_t* vrows, const uint32_t* qP, const uint32_t* doP, int64_t ldq,
                           const float* nlse, const float* ndi, float c, int64_t D2) {
  static_assert(R == 1 || R % 2 == 0, "keys pair up within a block");
  V s[R][NV] = {}, dp[R][NV];
  for (int v = 0; v < NV; ++v) {
    const V a = load<W>(ndi + v * W);
    for (int r = 0; r < R; ++r) dp[r][v] = a;
  }
  for (int64_t w = 0; w < D2; ++w) {
    __m512i q[NV], o[NV];
    for (int v = 0; v < NV; ++v) {
      q[v] = load_words(qP + w * ldq + v * W);
      o[v] = load_words(doP + w * ldq + v * W);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i k = splat_word(krows[r * D2 + w]), vv = splat_word(vrows[r * D2 + w]);
      for (int v = 0; v < NV; ++v) {
        s[r][v] = dot2(s[r][v], q[v], k);
        dp[r][v] = dot2(dp[r][v], o[v], vv);
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    V ds[R];
    for (int r = 0; r < R; ++r) {
      const V p = exp2_lanes<W>(s[r][v] * c + load<W>(nlse + v * W));
      ds[r] = p * dp[r][v];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(pB + r * ldp + v * W), to_bf16(p));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dsB + r * ldp + v * W), to_bf16(ds[r]));
    }
    for (int r = 0; r < R; r += 2)
      _mm512_storeu_si512(dsP + r / 2 * NV * W + v * W, pair_words(ds[r], r + 1 < R ? ds[r + 1] : V{}));
  }
}

// dv (R, ND·W) += P (R, queries) · dO;  dk (R, ND·W) += dS (R, queries) · Q: pB, dsB rows of
// bf16 (stride ldp halves) broadcast a query pair at a time; doQ, qQ (nq/2, ldg) words of
// (i, i+1) pairs. ldg: row stride of dv/dk (D floats) and of doQ/qQ (D words).
template <int R, int ND>
PIT_INLINE void grads_rows(float* dv, float* dk, int64_t ldg, const uint16_t* pB, const uint16_t* dsB, int64_t ldp,
                           const uint32_t* doQ, const uint32_t* qQ, int64_t nq) {
  V av[R][ND], ak[R][ND];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < ND; ++c) {
      av[r][c] = load<W>(dv + r * ldg + c * W);
      ak[r][c] = load<W>(dk + r * ldg + c * W);
    }
  for (int64_t i = 0; i < nq; i += 2) {
    __m512i o[ND], q[ND];
    for (int c = 0; c < ND; ++c) {
      o[c] = load_words(doQ + i / 2 * ldg + c * W);
      q[c] = load_words(qQ + i / 2 * ldg + c * W);
    }
    for (int r = 0; r < R; ++r) {
      const __m512i p = splat_word(word_at(pB + r * ldp + i)), ds = splat_word(word_at(dsB + r * ldp + i));
      for (int c = 0; c < ND; ++c) {
        av[r][c] = dot2(av[r][c], o[c], p);
        ak[r][c] = dot2(ak[r][c], q[c], ds);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < ND; ++c) {
      store<W>(dv + r * ldg + c * W, av[r][c]);
      store<W>(dk + r * ldg + c * W, ak[r][c]);
    }
}

template <int ND>
PIT_INLINE void grads_cols(float* dv, float* dk, int64_t ldg, const uint16_t* pB, const uint16_t* dsB, int64_t ldp,
                           const uint32_t* doQ, const uint32_t* qQ, int64_t nq, int64_t nj) {
  constexpr int R = rows_for(2 * ND);
  int64_t j = 0;
  for (; j + R <= nj; j += R)
    grads_rows<R, ND>(dv + j * ldg, dk + j * ldg, ldg, pB + j * ldp, dsB + j * ldp, ldp, doQ, qQ, nq);
  for (; j < nj; ++j)
    grads_rows<1, ND>(dv + j * ldg, dk + j * ldg, ldg, pB + j * ldp, dsB + j * ldp, ldp, doQ, qQ, nq);
}

// ---- forward -----------------------------------------------------------------------------------

struct ForwardArgs {
  uint16_t* out;
  float* lse;
  const uint16_t* qkv;
  Layout t;
  int64_t groups;  // work items per (b, h), each a run of query tiles
};

// The key loop of one query tile of NV vectors (attention.cc's forward_query_tile on words):
// kR (L, D/2) words, vP (L/2, D) words, qP (D/2, NV·W); pP (Bc/2, NV·W) scratch.
template <int NV>
PIT_INLINE void forward_query_tile(float* oT, float* m, float* l, float* sT, float* tmax, uint32_t* pP,
                                   const uint32_t* qP, const uint32_t* kR, const uint32_t* vP, int64_t L, int64_t D,
                                   float c) {
  constexpr int R = rows_for(NV);
  constexpr int64_t nl = NV * W;
  const int64_t D2 = D / 2;
  for (int64_t j0 = 0; j0 < L; j0 += BF16Tiles::kFwdKeys) {
    const int64_t nj = std::min(BF16Tiles::kFwdKeys, L - j0);
    for (int v = 0; v < NV; ++v) store<W>(tmax + v * W, splat<W>(kMinusHuge));
    int64_t j = 0;
    for (; j + R <= nj; j += R) scores_rows<NV, R>(sT + j * nl, tmax, kR + (j0 + j) * D2, qP, nl, D2);
    for (; j < nj; ++j) scores_rows<NV, 1>(sT + j * nl, tmax, kR + (j0 + j) * D2, qP, nl, D2);
    V mnew[NV], sum[NV];
    for (int v = 0; v < NV; ++v) {
      const V mold = load<W>(m + v * W);
      mnew[v] = max<W>(mold, load<W>(tmax + v * W));
      const V alpha = exp2_lanes<W>((mold - mnew[v]) * c);
      sum[v] = load<W>(l + v * W) * alpha;
      for (int64_t d = 0; d < D; ++d) store<W>(oT + d * nl + v * W, load<W>(oT + d * nl + v * W) * alpha);
      store<W>(m + v * W, mnew[v]);
    }
    // P = 2^((S - m')·c) in fp32 for l, in bf16 (key, key+1) words for P·V; an odd last key
    // pairs with a zero.
    for (j = 0; j < nj; j += 2)
      for (int v = 0; v < NV; ++v) {
        const V p0 = exp2_lanes<W>((load<W>(sT + j * nl + v * W) - mnew[v]) * c);
        const V p1 = j + 1 < nj ? exp2_lanes<W>((load<W>(sT + (j + 1) * nl + v * W) - mnew[v]) * c) : V{};
        sum[v] += p0 + p1;
        _mm512_storeu_si512(pP + j / 2 * nl + v * W, pair_words(p0, p1));
      }
    for (int v = 0; v < NV; ++v) store<W>(l + v * W, sum[v]);
    accumulate_tile<NV>(oT, nl, vP + j0 / 2 * D, pP, ceil_div(nj, 2), D);
  }
}

bool forward_item(const ForwardArgs& a, int64_t item) {
  const Layout& t = a.t;
  const int64_t D = t.D, L = t.L, D2 = D / 2;
  const int64_t bh = item / a.groups, g = item % a.groups, b = bh / t.H, h = bh % t.H;
  constexpr int64_t br = BF16Tiles::kFwdQueryVecs * W, bc = BF16Tiles::kFwdKeys;
  const int64_t query_tiles = ceil_div(L, br);
  const int64_t q_begin = g * query_tiles / a.groups, q_end = (g + 1) * query_tiles / a.groups;
  const int64_t Le = round_up(L, 2);
  // In 4-byte units: kR (L, D/2), vP (Le/2, D); per query tile qP (D/2, br), oT (D, br),
  // sT (bc, br), pP (bc/2, br), m, l, tmax (br), tmp (W, D).
  float* base = thread_scratch(L * D2 + Le / 2 * D + D2 * br + D * br + bc * br + bc / 2 * br + 3 * br + W * D);
  if (!base) return false;
  uint32_t* kR = reinterpret_cast<uint32_t*>(base);
  uint32_t* vP = kR + L * D2;
  uint32_t* qP = vP + Le / 2 * D;
  float* oT = reinterpret_cast<float*>(qP + D2 * br);
  float* sT = oT + D * br;
  uint32_t* pP = reinterpret_cast<uint32_t*>(sT + bc * br);
  float* m = reinterpret_cast<float*>(pP + bc / 2 * br);
  float* l = m + br;
  float* tmax = l + br;
  float* tmp = tmax + br;
  const int64_t stride = 3 * t.H * D;  // halves between tokens in qkv
  const uint16_t* q0 = a.qkv + t.qkv_row(b, 0, 0, h);
  for (int64_t j = 0; j < L; ++j) std::memcpy(kR + j * D2, q0 + j * stride + t.H * D, 2 * D);
  pack_row_pairs(vP, q0 + 2 * t.H * D, stride, L, D);
  if (a.groups == 1 && bh + 1 < t.B * t.H) {  // the next item, most likely this thread's
    const int64_t nb = (bh + 1) / t.H, nh = (bh + 1) % t.H;
    const float* q = reinterpret_cast<const float*>(a.qkv + t.qkv_row(nb, 0, 0, nh));
    prefetch_head({{q, stride / 2, false}, {q + t.H * D2, stride / 2, false}, {q + t.H * D, stride / 2, false},
                   {reinterpret_cast<const float*>(a.out + t.row(nb, 0, nh)), t.H * D2, true}},
                  L, D2);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), c = scale * kLog2e;
  for (int64_t qt = q_begin; qt < q_end; ++qt) {
    const int64_t i0 = qt * br, ni = std::min(br, L - i0);
    const int nv = static_cast<int>(ceil_div(ni, W));
    const int64_t nl = nv * W;
    pack_pairs_transposed(qP, nl, q0 + i0 * stride, stride, ni, D);
    std::fill_n(oT, D * nl, 0.0f);
    std::fill_n(m, nl, kMinusHuge);
    std::fill_n(l, nl, 0.0f);
    switch (nv) {
      case 1: forward_query_tile<1>(oT, m, l, sT, tmax, pP, qP, kR, vP, L, D, c); break;
      case 2: forward_query_tile<2>(oT, m, l, sT, tmax, pP, qP, kR, vP, L, D, c); break;
      case 3: forward_query_tile<3>(oT, m, l, sT, tmax, pP, qP, kR, vP, L, D, c); break;
      default: forward_query_tile<4>(oT, m, l, sT, tmax, pP, qP, kR, vP, L, D, c); break;
    }
    static_assert(BF16Tiles::kFwdQueryVecs == 4, "forward_item's switch covers 1..4 vectors");
    for (int64_t x = 0; x < nl; x += W) {
      const V inv = 1.0f / load<W>(l + x);
      for (int64_t d = 0; d < D; ++d) store<W>(oT + d * nl + x, load<W>(oT + d * nl + x) * inv);
    }
    store_rows_bf16(a.out + t.row(b, i0, h), t.H * D, oT, nl, ni, D, 1.0f, tmp);
    for (int64_t i = 0; i < ni; ++i)
      a.lse[bh * L + i0 + i] = static_cast<float>(m[i] * static_cast<double>(scale) + std::log(l[i]));
  }
  return true;
}

// ---- backward ----------------------------------------------------------------------------------

struct BackwardArgs {
  uint16_t* dqkv;
  const uint16_t* dout;
  const uint16_t* qkv;
  const uint16_t* out;
  const float* lse;
  Layout t;
  int64_t groups;     // key groups per (b, h)
  float* dq_partial;  // (B·H, groups, D, Lp) when groups > 1
};

// One key tile (nj keys) against one query tile of NV vectors (i0 applied to every
// per-query pointer).
template <int NV>
PIT_INLINE void backward_block(float* dv, float* dk, float* dqT, uint16_t* pB, uint16_t* dsB, uint32_t* dsP,
                               const uint32_t* kR, const uint32_t* vR, const uint32_t* kP, const uint32_t* qP,
                               const uint32_t* doP, const float* nlse, const float* ndi, const uint32_t* qQ,
                               const uint32_t* doQ, int64_t Lp, int64_t nj, int64_t D, float c) {
  constexpr int R = rows_for(2 * NV) / 2 * 2;  // keys per block: even, for the dS pairs
  static_assert(R >= 2, "the dS pairs need two keys per block");
  constexpr int64_t nl = NV * W;
  const int64_t D2 = D / 2;
  int64_t j = 0;
  for (; j + R <= nj; j += R)
    probs_rows<NV, R>(pB + j * nl, dsB + j * nl, nl, dsP + j / 2 * nl, kR + j * D2, vR + j * D2, qP, doP, Lp, nlse,
                      ndi, c, D2);
  for (; j + 2 <= nj; j += 2)
    probs_rows<NV, 2>(pB + j * nl, dsB + j * nl, nl, dsP + j / 2 * nl, kR + j * D2, vR + j * D2, qP, doP, Lp, nlse,
                      ndi, c, D2);
  if (j < nj)
    probs_rows<NV, 1>(pB + j * nl, dsB + j * nl, nl, dsP + j / 2 * nl, kR + j * D2, vR + j * D2, qP, doP, Lp, nlse,
                      ndi, c, D2);
  // dV += Pᵀ·dO and dK += dSᵀ·Q (scaled at the end), along d in blocks of up to 4 vectors.
  const int64_t nd = D / W;
  for (int64_t col = 0; col < nd; col += 4) {
    const int64_t o = col * W;
    switch (std::min<int64_t>(4, nd - col)) {
      case 1: grads_cols<1>(dv + o, dk + o, D, pB, dsB, nl, doQ + o, qQ + o, nl, nj); break;
      case 2: grads_cols<2>(dv + o, dk + o, D, pB, dsB, nl, doQ + o, qQ + o, nl, nj); break;
      case 3: grads_cols<3>(dv + o, dk + o, D, pB, dsB, nl, doQ + o, qQ + o, nl, nj); break;
      default: grads_cols<4>(dv + o, dk + o, D, pB, dsB, nl, doQ + o, qQ + o, nl, nj); break;
    }
  }
  // dQᵀ += Kᵀ·dSᵀ (scaled at the end).
  accumulate_tile<NV>(dqT, Lp, kP, dsP, ceil_div(nj, 2), D);
}

bool backward_item(const BackwardArgs& a, int64_t item) {
  const Layout& t = a.t;
  const int64_t D = t.D, L = t.L, D2 = D / 2;
  const int64_t bh = item / a.groups, g = item % a.groups, b = bh / t.H, h = bh % t.H;
  const int64_t Lp = round_up(L, W);
  constexpr int64_t bc = BF16Tiles::kBwdKeys;
  const int64_t br = (D <= BF16Tiles::kBwdWideD ? BF16Tiles::kBwdQueryVecs : 2) * W;
  const int64_t key_tiles = ceil_div(L, bc);
  const int64_t t_begin = g * key_tiles / a.groups, t_end = (g + 1) * key_tiles / a.groups;

  // In 4-byte units: whole-head packs qP, doP (D/2, Lp), qQ, doQ (Lp/2, D), dqT (D, Lp),
  // nlse, ndi (Lp); per key tile kR, vR (bc, D/2), kP (bc/2, D), pB, dsB (bc, br) halves,
  // dsP (bc/2, br), dv, dk (bc, D); tmp (W, D).
  float* base = thread_scratch(3 * D * Lp + 2 * Lp + bc * D + bc / 2 * D + bc * br + bc / 2 * br + 2 * bc * D + W * D);
  if (!base) return false;
  uint32_t* qP = reinterpret_cast<uint32_t*>(base);
  uint32_t* doP = qP + D2 * Lp;
  uint32_t* qQ = doP + D2 * Lp;
  uint32_t* doQ = qQ + Lp / 2 * D;
  float* dqT = reinterpret_cast<float*>(doQ + Lp / 2 * D);
  float* nlse = dqT + D * Lp;
  float* ndi = nlse + Lp;
  uint32_t* kR = reinterpret_cast<uint32_t*>(ndi + Lp);
  uint32_t* vR = kR + bc * D2;
  uint32_t* kP = vR + bc * D2;
  uint16_t* pB = reinterpret_cast<uint16_t*>(kP + bc / 2 * D);
  uint16_t* dsB = pB + bc * br;
  uint32_t* dsP = reinterpret_cast<uint32_t*>(dsB + bc * br);
  float* dv = reinterpret_cast<float*>(dsP + bc / 2 * br);
  float* dk = dv + bc * D;
  float* tmp = dk + bc * D;

  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), c = scale * kLog2e;
  const int64_t stride = 3 * t.H * D;
  const uint16_t* q0 = a.qkv + t.qkv_row(b, 0, 0, h);
  const uint16_t* do0 = a.dout + t.row(b, 0, h);
  const uint16_t* o0 = a.out + t.row(b, 0, h);
  for (int64_t i = 0; i < L; ++i) {
    float di = 0;
    for (int64_t d = 0; d < D; ++d) di += bf16_to_f32(do0[i * t.H * D + d]) * bf16_to_f32(o0[i * t.H * D + d]);
    nlse[i] = static_cast<float>(-a.lse[bh * L + i] * static_cast<double>(kLog2e));
    ndi[i] = -di;
  }
  std::fill(nlse + L, nlse + Lp, kMinusHuge);  // padding queries: P = 0, dS = 0
  std::fill(ndi + L, ndi + Lp, 0.0f);
  pack_pairs_transposed(qP, Lp, q0, stride, L, D);
  pack_pairs_transposed(doP, Lp, do0, t.H * D, L, D);
  pack_row_pairs(qQ, q0, stride, L, D);
  pack_row_pairs(doQ, do0, t.H * D, L, D);
  const int64_t Le = round_up(L, 2);  // pack_row_pairs wrote rows [0, Le); zero the rest
  std::fill(qQ + Le / 2 * D, qQ + Lp / 2 * D, 0u);
  std::fill(doQ + Le / 2 * D, doQ + Lp / 2 * D, 0u);
  std::fill_n(dqT, D * Lp, 0.0f);
  if (a.groups == 1 && bh + 1 < t.B * t.H) {  // the next item, most likely this thread's
    const int64_t nb = (bh + 1) / t.H, nh = (bh + 1) % t.H, s = stride / 2;
    const float* q = reinterpret_cast<const float*>(a.qkv + t.qkv_row(nb, 0, 0, nh));
    const float* dq = reinterpret_cast<const float*>(a.dqkv + t.qkv_row(nb, 0, 0, nh));
    prefetch_head({{q, s, false}, {q + t.H * D2, s, false}, {q + t.H * D, s, false},
                   {reinterpret_cast<const float*>(a.dout + t.row(nb, 0, nh)), t.H * D2, false},
                   {reinterpret_cast<const float*>(a.out + t.row(nb, 0, nh)), t.H * D2, false}, {dq, s, true},
                   {dq + t.H * D2, s, true}, {dq + t.H * D, s, true}},
                  L, D2);
  }

  for (int64_t tile = t_begin; tile < t_end; ++tile) {
    const int64_t j0 = tile * bc, nj = std::min(bc, L - j0);
    for (int64_t j = 0; j < nj; ++j) {
      std::memcpy(kR + j * D2, q0 + (j0 + j) * stride + t.H * D, 2 * D);
      std::memcpy(vR + j * D2, q0 + (j0 + j) * stride + 2 * t.H * D, 2 * D);
    }
    pack_row_pairs(kP, q0 + j0 * stride + t.H * D, stride, nj, D);
    std::fill_n(dv, nj * D, 0.0f);
    std::fill_n(dk, nj * D, 0.0f);
    for (int64_t i0 = 0; i0 < Lp; i0 += br) {
      const int nv = static_cast<int>(std::min(br, Lp - i0) / W);
      switch (nv) {
#define PIT_BACKWARD_BLOCK(NV)                                                                              \
  backward_block<NV>(dv, dk, dqT + i0, pB, dsB, dsP, kR, vR, kP, qP + i0, doP + i0, nlse + i0, ndi + i0, \
                     qQ + i0 / 2 * D, doQ + i0 / 2 * D, Lp, nj, D, c)
        case 1: PIT_BACKWARD_BLOCK(1); break;
        case 2: PIT_BACKWARD_BLOCK(2); break;
        case 3: PIT_BACKWARD_BLOCK(3); break;
        default: PIT_BACKWARD_BLOCK(4); break;
#undef PIT_BACKWARD_BLOCK
      }
    }
    static_assert(BF16Tiles::kBwdQueryVecs == 4, "backward_item's switch covers 1..4 vectors");
    for (int64_t j = 0; j < nj; ++j) {
      uint16_t* gk = a.dqkv + t.qkv_row(b, j0 + j, 1, h);
      uint16_t* gv = a.dqkv + t.qkv_row(b, j0 + j, 2, h);
      for (int64_t d = 0; d < D; d += W) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(gk + d), to_bf16(load<W>(dk + j * D + d) * scale));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(gv + d), to_bf16(load<W>(dv + j * D + d)));
      }
    }
  }
  if (a.groups == 1)
    store_rows_bf16(a.dqkv + t.qkv_row(b, 0, 0, h), stride, dqT, Lp, L, D, scale, tmp);
  else
    std::copy_n(dqT, D * Lp, a.dq_partial + (bh * a.groups + g) * D * Lp);
  return true;
}

#pragma GCC pop_options

// The AVX512-BF16 kernels run this shape (the binding's head dims 16, 32, 64, 128 all do).
bool bf16_kernels_for(int64_t D) { return cpu_has_avx512_bf16() && D % 16 == 0; }
#endif  // PIT_X86

}  // namespace

// ---- entry points ------------------------------------------------------------------------------

void attention_forward_bf16(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H,
                            int64_t D) {
  const Layout t{B, L, H, D};
  if (B * L * H * D == 0) return;
#if PIT_X86
  if (bf16_kernels_for(D)) {
    const int64_t groups = forward_query_groups(B, H, L, BF16Tiles::kFwdQueryVecs * W);
    run_items(B * H * groups, forward_item, ForwardArgs{out, lse, qkv, t, groups});
    return;
  }
#endif
  forward_widened(out, lse, qkv, t);
}

void attention_backward_bf16(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                             const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) {
  const Layout t{B, L, H, D};
  if (B * L * H * D == 0) return;
#if PIT_X86
  if (bf16_kernels_for(D)) {
    const int64_t Lp = round_up(L, W), groups = backward_key_groups(B, H, L, BF16Tiles::kBwdKeys);
    std::vector<float> partial(groups > 1 ? B * H * groups * D * Lp : 0);
    run_items(B * H * groups, backward_item, BackwardArgs{dqkv, dout, qkv, out, lse, t, groups, partial.data()});
    if (groups > 1)
      sum_dq_partials(partial.data(), t, groups, Lp, [&](int64_t b, int64_t i, int64_t h, const float* dq) {
        uint16_t* gq = dqkv + t.qkv_row(b, i, 0, h);
        for (int64_t d = 0; d < D; ++d) gq[d] = f32_to_bf16(dq[d]);
      });
    return;
  }
#endif
  backward_widened(dqkv, dout, qkv, out, lse, t);
}

}  // namespace pit::cpu
