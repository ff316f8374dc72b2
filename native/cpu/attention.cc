// attention: multi-head self-attention on packed qkv, forward and backward (see ops.h).
//
// Flash attention on the CPU: the L x L score matrix is never stored, only Bc x Br tiles of
// it, per thread. With pixel tokens L is 197..4096+ and the head dim D only 16..64, so at
// D = 16 a score costs 2·D = 32 FLOPs of Q·Kᵀ and as many of P·V, but also one exp: the
// exponential is as expensive as the matmuls, and the kernels are built around that.
//
//   forward, per (b, h, query tile of Br):     m = -inf, l = 0, O = 0
//     per key tile of Bc:  S = Q·Kᵀ·scale;  m' = max(m, rowmax S);  P = exp(S - m')
//                          l = l·exp(m - m') + rowsum P;  O = O·exp(m - m') + P·V;  m = m'
//     O /= l;  lse = m + log l
//   backward (FlashAttention-2), Di = rowsum(dO ∘ O), per (b, h, key tile of Bc):
//     per query tile of Br:  P = exp(Q·Kᵀ·scale - lse);  dV += Pᵀ·dO;  dP = dO·Vᵀ
//                            dS = P ∘ (dP - Di);  dK += dSᵀ·Q·scale;  dQ += dS·K·scale
//
// Layout. Score tiles are kept transposed, Sᵀ (keys, queries), with the queries along the
// vector lanes: Q and dO are packed d-major (D, queries) so that every score is a sum over d
// of (one key's broadcast element) x (a vector of queries); K and V are copied to contiguous
// rows (in qkv consecutive tokens are 3·H·D floats apart) and read as broadcast scalars; the
// softmax's max and sum and the rescale are lane-wise (no horizontal reductions); lse and Di
// load as vectors; any D works without padding. O and dQ accumulate transposed (D, queries)
// and are transposed once at the end. Only dK and dV, whose sums run over the queries, are
// computed along d, from row-major copies of Q and dO padded to whole vectors.
//
// exp. exp2_lanes costs ~13 vector operations per W exps: scale·log2(e) is applied to the
// score differences (S - max, or in one FMA with -lse·log2 e), then a rounding split
// x = n + f, a degree-6 polynomial for 2^f (at most 1 ulp from the correctly rounded 2^x,
// measured over [-100, 1]; exactly 0 below -100, NaN kept NaN) and n added into the float's
// exponent. At D = 16 it is still a fifth of the forward's time ({2,12,1025,16}: 66 GFLOP/s per core, 82 with the exp left out).
//
// Parallelism. The forward splits (b, h, run of query tiles): whole heads when B·H gives every
// thread a few, so K and V are copied once per head. The backward is one pass, split into
// (b, h, key group) items: each item owns its keys' dK and dV outright and sums its own
// partial dQ from the same recomputed P and dS (nothing is recomputed for dQ); with several key
// groups per head (B·H < 8) the partials are added in a fixed order afterwards. Both splits
// leave every sum in the same order whatever the thread count, and the AVX2 path does each
// lane's arithmetic in the AVX-512 path's order: results are bitwise identical across thread
// counts and ISAs (not the scalar path, which rounds differently).
//
// ISAs. The vector kernels are written once, over W lanes, with GCC vector extensions, as
// always-inline templates; each is instantiated inside a PIT_TARGET_AVX512 (W = 16) or
// PIT_TARGET_AVX2 (W = 8) entry function, so it compiles to zmm or ymm code there. The plain
// scalar functions at the top are the readable reference and the fallback
// (PIT_CPU_ISA=scalar).
//
// Measured on the 2-core Sapphire Rapids dev VM (AVX-512, ~2.0 GHz, FMA peak ~131 GFLOP/s per
// core), g++ 12 -O3, 2 threads, GFLOP/s = 4·B·H·L²·D forward, 2.5x that backward. The VM
// shares its host: wall-clock speed swings by 2x with the neighbours' load, so the table gives
// FLOPs per CPU-second of each thread (best of 4-30 runs; what two free cores deliver), and in
// brackets the best wall-clock fwd+bwd seen on a quiet machine:
//                     fwd    bwd    fwd+bwd          AVX2 fwd+bwd
//   {8,12,197,16}     104    116    113 (~110)       56
//   {2,12,1025,16}    134    157    150 (~145)       60
//   {1,6,2049,64}     163    131    139 (~125)       61
//   {2,6,1025,32}     151    143    145
//   {1,3,1025,128}    180    116    129
// Tile choices, measured on one thread (GFLOP/s fwd / bwd; best of 5 runs per variant, variants
// alternated; differences under ~10% were within this VM's noise):
//   - backward Br = 32 instead of 64 above D = 32, so the Q and dO tiles stay in L1:
//     D = 64: bwd 55 vs 44; D = 128: 46 vs 32 (at D <= 32, 64 was as fast or faster).
//   - a budget of 16 accumulator registers per micro-tile; 24 was no faster (D = 16: 48/52
//     vs 52/59; D = 64: 67/55 vs 63/55).
//   - P/dS micro-tile of 2 keys x 4 vectors: 1 key: D = 16 bwd 69 vs 86, D = 64 50 vs 71;
//     3 keys: 76 and 69. dK/dV micro-tile of 8/ND keys: 4/ND: 78 vs 86; 12/ND: 79.
//   - key tiles Bc = 64 in both passes: 32 and 128 were not faster.
//   - copying K and V to contiguous rows: backward D = 16, 80 vs 70.
//   - at most ~8 backward items per head: every item packs the head's Q and dO, and with 16
//     (B·H = 1, D = 128, L = 1025) that packing halved the speed (bwd 23 vs 47).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/attention_common.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

using namespace attention_detail;

// ---- scalar reference --------------------------------------------------------------------

// One query row at a time, one key at a time: the textbook online softmax.
void forward_scalar(float* out, float* lse, const float* qkv, const Layout& t) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(t.D));
  parallel_for(t.B * t.H * t.L, 8, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(t.D);
    for (int64_t row = begin; row < end; ++row) {  // row = (b, h, i), lse's own order
      const int64_t b = row / (t.H * t.L), h = row / t.L % t.H, i = row % t.L;
      const float* q = qkv + t.qkv_row(b, i, 0, h);
      float m = -INFINITY, l = 0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < t.L; ++j) {
        const float* k = qkv + t.qkv_row(b, j, 1, h);
        const float* v = qkv + t.qkv_row(b, j, 2, h);
        float s = 0;
        for (int64_t d = 0; d < t.D; ++d) s += q[d] * k[d];
        s *= scale;
        if (s > m) {  // a new maximum: rescale what was summed against the old one
          const float r = std::exp(m - s);
          l *= r;
          for (float& a : acc) a *= r;
          m = s;
        }
        // A -inf score weighs 0 (exp(s - m) would be exp(-inf - -inf) = NaN while m is -inf);
        // a query whose scores are all -inf then ends with l = 0 and out = 0/0 = NaN.
        const float p = s == -INFINITY ? 0.0f : std::exp(s - m);
        l += p;
        for (int64_t d = 0; d < t.D; ++d) acc[d] += p * v[d];
      }
      float* o = out + t.row(b, i, h);
      for (int64_t d = 0; d < t.D; ++d) o[d] = acc[d] / l;
      lse[row] = m + std::log(l);
    }
  });
}

// One (b, h) at a time, every (query, key) pair once; dq, dk, dv accumulate in place.
void backward_scalar(float* dqkv, const float* dout, const float* qkv, const float* out,
                     const float* lse, const Layout& t) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(t.D));
  parallel_for(t.B * t.H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> di(t.L);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / t.H, h = bh % t.H;
      for (int64_t i = 0; i < t.L; ++i) {
        const float* o = out + t.row(b, i, h);
        const float* go = dout + t.row(b, i, h);
        float s = 0;
        for (int64_t d = 0; d < t.D; ++d) s += go[d] * o[d];
        di[i] = s;
        for (int64_t part = 0; part < 3; ++part)
          std::fill_n(dqkv + t.qkv_row(b, i, part, h), t.D, 0.0f);
      }
      for (int64_t i = 0; i < t.L; ++i) {
        const float* q = qkv + t.qkv_row(b, i, 0, h);
        const float* go = dout + t.row(b, i, h);
        float* dq = dqkv + t.qkv_row(b, i, 0, h);
        for (int64_t j = 0; j < t.L; ++j) {
          const float* k = qkv + t.qkv_row(b, j, 1, h);
          const float* v = qkv + t.qkv_row(b, j, 2, h);
          float* dk = dqkv + t.qkv_row(b, j, 1, h);
          float* dv = dqkv + t.qkv_row(b, j, 2, h);
          float s = 0, dp = 0;
          for (int64_t d = 0; d < t.D; ++d) {
            s += q[d] * k[d];
            dp += go[d] * v[d];
          }
          const float p = std::exp(s * scale - lse[bh * t.L + i]);
          const float ds = p * (dp - di[i]) * scale;
          for (int64_t d = 0; d < t.D; ++d) {
            dv[d] += p * go[d];
            dq[d] += ds * k[d];
            dk[d] += ds * q[d];
          }
        }
      }
    }
  });
}

// ---- tile sizes ---------------------------------------------------------------------------

// Every micro-kernel keeps a block of accumulators in registers, sized from one budget
// (kAccumulators vectors, leaving the rest of the register file for operands and the exp
// constants): with NV query vectors a block spans kAccumulators / NV keys or dims.
template <int W>
struct Tiles;
template <>
struct Tiles<16> {                           // AVX-512: 32 vector registers
  static constexpr int kAccumulators = 16;
  static constexpr int kFwdQueryVecs = 4;    // forward query tile Br = 64
  static constexpr int64_t kFwdKeys = 64;    // forward key tile Bc
  static constexpr int64_t kBwdKeys = 64;    // backward key tile Bc
  static constexpr int kBwdQueryVecs = 4;    // backward query tile Br = 64 for D <= kBwdWideD,
  static constexpr int64_t kBwdWideD = 32;   // Br = 32 above (Q, dO tiles stay in L1)
};
template <>
struct Tiles<8> {  // AVX2: 16 vector registers
  static constexpr int kAccumulators = 8;
  static constexpr int kFwdQueryVecs = 4;
  static constexpr int64_t kFwdKeys = 64;
  static constexpr int64_t kBwdKeys = 64;
  static constexpr int kBwdQueryVecs = 4;
  static constexpr int64_t kBwdWideD = 32;
};
template <int W>
constexpr int block_rows(int accumulators_per_row) {
  return std::max(1, Tiles<W>::kAccumulators / accumulators_per_row);
}

// ---- micro-kernels --------------------------------------------------------------------------
// "rows" are keys or values, (r, d) at rows[r * rs + d], used as broadcast scalars.
// "…T" buffers hold one row per key (or per d) of NV·W query lanes.

// sT (R, NV·W) = rows (R, D) · qT (D, ldq); tmax (NV·W) = max(tmax, column max).
template <int W, int NV, int R>
PIT_INLINE void scores_rows(float* sT, float* tmax, const float* rows, int64_t rs, const float* qT,
                            int64_t ldq, int64_t D) {
  vf<W> acc[R][NV] = {};
  for (int64_t d = 0; d < D; ++d) {
    vf<W> q[NV];
    for (int v = 0; v < NV; ++v) q[v] = load<W>(qT + d * ldq + v * W);
    for (int r = 0; r < R; ++r) {
      const vf<W> k = splat<W>(rows[r * rs + d]);
      for (int v = 0; v < NV; ++v) acc[r][v] += k * q[v];
    }
  }
  for (int v = 0; v < NV; ++v) {
    vf<W> m = load<W>(tmax + v * W);
    for (int r = 0; r < R; ++r) {
      store<W>(sT + r * NV * W + v * W, acc[r][v]);
      m = max<W>(m, acc[r][v]);
    }
    store<W>(tmax + v * W, m);
  }
}

// accT (R, ldo) += rows (nj, R)ᵀ · pT (nj, NV·W): R output dims, summed over nj keys.
template <int W, int NV, int R>
PIT_INLINE void accumulate_rows(float* accT, int64_t ldo, const float* rows, int64_t rs,
                                const float* pT, int64_t nj) {
  vf<W> acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = load<W>(accT + r * ldo + v * W);
  for (int64_t j = 0; j < nj; ++j) {
    vf<W> p[NV];
    for (int v = 0; v < NV; ++v) p[v] = load<W>(pT + j * NV * W + v * W);
    for (int r = 0; r < R; ++r) {
      const vf<W> a = splat<W>(rows[j * rs + r]);
      for (int v = 0; v < NV; ++v) acc[r][v] += a * p[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store<W>(accT + r * ldo + v * W, acc[r][v]);
}

// accT (D, ldo) += rows (nj, D)ᵀ · pT (nj, NV·W).
template <int W, int NV>
PIT_INLINE void accumulate_tile(float* accT, int64_t ldo, const float* rows, int64_t rs,
                                const float* pT, int64_t nj, int64_t D) {
  constexpr int R = block_rows<W>(NV);
  int64_t d = 0;
  for (; d + R <= D; d += R) accumulate_rows<W, NV, R>(accT + d * ldo, ldo, rows + d, rs, pT, nj);
  for (; d < D; ++d) accumulate_rows<W, NV, 1>(accT + d * ldo, ldo, rows + d, rs, pT, nj);
}

// Backward scores for R keys x NV·W queries:
//   pT  = 2^(K·Qᵀ·c - lse·log2 e)        (c = scale·log2 e)
//   dsT = pT ∘ (V·dOᵀ - Di)
// ndi = -Di seeds the dP accumulators, so that subtraction is free.
template <int W, int NV, int R>
PIT_INLINE void probs_rows(float* pT, float* dsT, const float* krows, const float* vrows,
                           int64_t rs, const float* qT, const float* doT, int64_t ldq,
                           const float* nlse, const float* ndi, float c, int64_t D) {
  vf<W> s[R][NV] = {}, dp[R][NV];
  for (int v = 0; v < NV; ++v) {
    const vf<W> a = load<W>(ndi + v * W);
    for (int r = 0; r < R; ++r) dp[r][v] = a;
  }
  for (int64_t d = 0; d < D; ++d) {
    vf<W> q[NV], o[NV];
    for (int v = 0; v < NV; ++v) {
      q[v] = load<W>(qT + d * ldq + v * W);
      o[v] = load<W>(doT + d * ldq + v * W);
    }
    for (int r = 0; r < R; ++r) {
      const vf<W> k = splat<W>(krows[r * rs + d]), vv = splat<W>(vrows[r * rs + d]);
      for (int v = 0; v < NV; ++v) {
        s[r][v] += k * q[v];
        dp[r][v] += vv * o[v];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      const vf<W> p = exp2_lanes<W>(s[r][v] * c + load<W>(nlse + v * W));
      store<W>(pT + r * NV * W + v * W, p);
      store<W>(dsT + r * NV * W + v * W, p * dp[r][v]);
    }
}

// dv (R, ND·W) += pT (R, nl) · doR (nl, ND·W);  dk (R, ND·W) += dsT (R, nl) · qR (nl, ND·W).
// ldg: row stride of dv/dk/doR/qR (the padded D); ldp: of pT/dsT.
template <int W, int R, int ND>
PIT_INLINE void grads_rows(float* dv, float* dk, int64_t ldg, const float* pT, const float* dsT,
                           int64_t ldp, const float* doR, const float* qR, int64_t nl) {
  vf<W> av[R][ND], ak[R][ND];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < ND; ++c) {
      av[r][c] = load<W>(dv + r * ldg + c * W);
      ak[r][c] = load<W>(dk + r * ldg + c * W);
    }
  for (int64_t i = 0; i < nl; ++i) {
    vf<W> o[ND], q[ND];
    for (int c = 0; c < ND; ++c) {
      o[c] = load<W>(doR + i * ldg + c * W);
      q[c] = load<W>(qR + i * ldg + c * W);
    }
    for (int r = 0; r < R; ++r) {
      const vf<W> p = splat<W>(pT[r * ldp + i]), ds = splat<W>(dsT[r * ldp + i]);
      for (int c = 0; c < ND; ++c) {
        av[r][c] += p * o[c];
        ak[r][c] += ds * q[c];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < ND; ++c) {
      store<W>(dv + r * ldg + c * W, av[r][c]);
      store<W>(dk + r * ldg + c * W, ak[r][c]);
    }
}

// grads_rows over nj keys, for ND dim vectors starting at dv/dk/doR/qR.
template <int W, int ND>
PIT_INLINE void grads_cols(float* dv, float* dk, int64_t ldg, const float* pT, const float* dsT,
                           int64_t ldp, const float* doR, const float* qR, int64_t nl, int64_t nj) {
  constexpr int R = block_rows<W>(2 * ND);
  int64_t j = 0;
  for (; j + R <= nj; j += R)
    grads_rows<W, R, ND>(dv + j * ldg, dk + j * ldg, ldg, pT + j * ldp, dsT + j * ldp, ldp, doR,
                         qR, nl);
  for (; j < nj; ++j)
    grads_rows<W, 1, ND>(dv + j * ldg, dk + j * ldg, ldg, pT + j * ldp, dsT + j * ldp, ldp, doR,
                         qR, nl);
}

// ---- forward -----------------------------------------------------------------------------

struct ForwardArgs {
  float* out;
  float* lse;
  const float* qkv;
  Layout t;
  int64_t groups;  // work items per (b, h), each a run of query tiles
};

// The key loop of one query tile of NV vectors: qT (D, NV·W) packed, m (the running max of
// the unscaled scores Q·Kᵀ), l (the running sum of e^(S - m)) (NV·W) and oT (D, NV·W) carried
// across key tiles; sT and tmax are scratch; c = scale·log2 e.
template <int W, int NV>
PIT_INLINE void forward_query_tile(float* oT, float* m, float* l, float* sT, float* tmax,
                                   const float* qT, const float* krows, const float* vrows,
                                   int64_t rs, int64_t L, int64_t D, float c) {
  constexpr int R = block_rows<W>(NV);
  constexpr int64_t nl = NV * W;
  for (int64_t j0 = 0; j0 < L; j0 += Tiles<W>::kFwdKeys) {
    const int64_t nj = std::min(Tiles<W>::kFwdKeys, L - j0);
    const float* k = krows + j0 * rs;
    // Sᵀ = K·Qᵀ (unscaled) for this key tile, and its column max.
    for (int v = 0; v < NV; ++v) store<W>(tmax + v * W, splat<W>(kMinusHuge));
    int64_t j = 0;
    for (; j + R <= nj; j += R) scores_rows<W, NV, R>(sT + j * nl, tmax, k + j * rs, rs, qT, nl, D);
    for (; j < nj; ++j) scores_rows<W, NV, 1>(sT + j * nl, tmax, k + j * rs, rs, qT, nl, D);
    // Online softmax: new max, rescale l and O by e^(m - m'), P = e^(S - m') in place (the
    // differences are taken before scaling, so they are exact near the maximum).
    vf<W> mnew[NV], sum[NV];
    for (int v = 0; v < NV; ++v) {
      const vf<W> mold = load<W>(m + v * W);
      mnew[v] = max<W>(mold, load<W>(tmax + v * W));
      const vf<W> alpha = exp2_lanes<W>((mold - mnew[v]) * c);
      sum[v] = load<W>(l + v * W) * alpha;
      for (int64_t d = 0; d < D; ++d)
        store<W>(oT + d * nl + v * W, load<W>(oT + d * nl + v * W) * alpha);
      store<W>(m + v * W, mnew[v]);
    }
    for (j = 0; j < nj; ++j)
      for (int v = 0; v < NV; ++v) {
        const vf<W> p = exp2_lanes<W>((load<W>(sT + j * nl + v * W) - mnew[v]) * c);
        store<W>(sT + j * nl + v * W, p);
        sum[v] += p;
      }
    for (int v = 0; v < NV; ++v) store<W>(l + v * W, sum[v]);
    // Oᵀ += Vᵀ·Pᵀ.
    accumulate_tile<W, NV>(oT, nl, vrows + j0 * rs, rs, sT, nj, D);
  }
}

// Copies rows [j0, j0 + n) of head h's K and V out of qkv into k, v (n, D), contiguous:
// in place, consecutive rows are 3·H·D floats apart, a stride the L1 prefetcher does not
// follow and one 4 KiB page per row or two.
template <int W>
PIT_INLINE void pack_keys(float* k, float* v, const float* qkv, const Layout& t, int64_t b,
                          int64_t h, int64_t j0, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    copy_row<W>(k + j * t.D, qkv + t.qkv_row(b, j0 + j, 1, h), t.D);
    copy_row<W>(v + j * t.D, qkv + t.qkv_row(b, j0 + j, 2, h), t.D);
  }
}

// One work item: (b, h, run of query tiles).
template <int W>
PIT_INLINE bool forward_item(const ForwardArgs& a, int64_t item) {
  const Layout& t = a.t;
  const int64_t D = t.D, L = t.L;
  const int64_t bh = item / a.groups, g = item % a.groups, b = bh / t.H, h = bh % t.H;
  constexpr int64_t br = Tiles<W>::kFwdQueryVecs * W, bc = Tiles<W>::kFwdKeys;
  const int64_t query_tiles = ceil_div(L, br);
  const int64_t q_begin = g * query_tiles / a.groups, q_end = (g + 1) * query_tiles / a.groups;
  // K, V (L, D); per query tile qT, oT (D, br); sT (bc, br); m, l, tmax (br).
  float* k = thread_scratch(2 * L * D + 2 * D * br + bc * br + 3 * br);
  if (!k) return false;
  float* v = k + L * D;
  float* qT = v + L * D;
  float* oT = qT + D * br;
  float* sT = oT + D * br;
  float* m = sT + bc * br;
  float* l = m + br;
  float* tmax = l + br;
  pack_keys<W>(k, v, a.qkv, t, b, h, 0, L);
  if (a.groups == 1 && bh + 1 < t.B * t.H) {  // the next item, most likely this thread's
    const int64_t nb = (bh + 1) / t.H, nh = (bh + 1) % t.H, s = 3 * t.H * D;
    const float* q = a.qkv + t.qkv_row(nb, 0, 0, nh);
    prefetch_head({{q, s, false}, {q + t.H * D, s, false}, {q + 2 * t.H * D, s, false},
                   {a.out + t.row(nb, 0, nh), t.H * D, true}}, L, D);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), c = scale * kLog2e;
  for (int64_t qt = q_begin; qt < q_end; ++qt) {
    const int64_t i0 = qt * br, ni = std::min(br, L - i0);
    const int nv = static_cast<int>(ceil_div(ni, W));
    const int64_t nl = nv * W;
    // Qᵀ (D, nl); lanes past the sequence are zero.
    transpose_tile<W>(qT, nl, a.qkv + t.qkv_row(b, i0, 0, h), 3 * t.H * D, ni, D);
    if (ni < nl)
      for (int64_t d = 0; d < D; ++d) std::fill(qT + d * nl + ni, qT + (d + 1) * nl, 0.0f);
    std::fill_n(oT, D * nl, 0.0f);
    std::fill_n(m, nl, kMinusHuge);
    std::fill_n(l, nl, 0.0f);
    switch (nv) {
      case 1: forward_query_tile<W, 1>(oT, m, l, sT, tmax, qT, k, v, D, L, D, c); break;
      case 2: forward_query_tile<W, 2>(oT, m, l, sT, tmax, qT, k, v, D, L, D, c); break;
      case 3: forward_query_tile<W, 3>(oT, m, l, sT, tmax, qT, k, v, D, L, D, c); break;
      default: forward_query_tile<W, 4>(oT, m, l, sT, tmax, qT, k, v, D, L, D, c); break;
    }
    static_assert(Tiles<W>::kFwdQueryVecs == 4, "forward_item's switch covers 1..4 vectors");
    // out = Oᵀ / l, transposed back; lse = m·scale + log l.
    for (int64_t x = 0; x < nl; x += W) {
      const vf<W> inv = 1.0f / load<W>(l + x);
      for (int64_t d = 0; d < D; ++d) store<W>(oT + d * nl + x, load<W>(oT + d * nl + x) * inv);
    }
    transpose_tile<W>(a.out + t.row(b, i0, h), t.H * D, oT, nl, D, ni);
    for (int64_t i = 0; i < ni; ++i)
      a.lse[bh * L + i0 + i] =
          static_cast<float>(m[i] * static_cast<double>(scale) + std::log(l[i]));
  }
  return true;
}

#if PIT_X86
PIT_TARGET_AVX512 bool forward_item_avx512(const ForwardArgs& a, int64_t item) {
  return forward_item<16>(a, item);
}
PIT_TARGET_AVX2 bool forward_item_avx2(const ForwardArgs& a, int64_t item) {
  return forward_item<8>(a, item);
}
#endif

// ---- backward ----------------------------------------------------------------------------

struct BackwardArgs {
  float* dqkv;
  const float* dout;
  const float* qkv;
  const float* out;
  const float* lse;
  Layout t;
  int64_t groups;     // key groups per (b, h)
  float* dq_partial;  // (B·H, groups, D, Lp) when groups > 1
};

// The inner loop of one key tile against one query tile of NV vectors (i0 already applied
// to qT/doT/nlse/ndi/doR/qR/dqT).
template <int W, int NV>
PIT_INLINE void backward_block(float* dv, float* dk, float* dqT, float* pT, float* dsT,
                               const float* krows, const float* vrows, int64_t rs,
                               const float* qT, const float* doT, const float* nlse,
                               const float* ndi, const float* qR, const float* doR, int64_t Lp,
                               int64_t Dp, int64_t nj, int64_t D, float c) {
  constexpr int R = block_rows<W>(2 * NV);
  constexpr int64_t nl = NV * W;
  // P and dS for the tile, transposed (nj, nl).
  int64_t j = 0;
  for (; j + R <= nj; j += R)
    probs_rows<W, NV, R>(pT + j * nl, dsT + j * nl, krows + j * rs, vrows + j * rs, rs, qT, doT,
                         Lp, nlse, ndi, c, D);
  for (; j < nj; ++j)
    probs_rows<W, NV, 1>(pT + j * nl, dsT + j * nl, krows + j * rs, vrows + j * rs, rs, qT, doT,
                         Lp, nlse, ndi, c, D);
  // dV += Pᵀ·dO and dK += dSᵀ·Q (scaled at the end), along d in blocks of up to 4 vectors.
  const int64_t nd = Dp / W;
  for (int64_t col = 0; col < nd; col += 4) {
    const int64_t o = col * W;
    switch (std::min<int64_t>(4, nd - col)) {
      case 1: grads_cols<W, 1>(dv + o, dk + o, Dp, pT, dsT, nl, doR + o, qR + o, nl, nj); break;
      case 2: grads_cols<W, 2>(dv + o, dk + o, Dp, pT, dsT, nl, doR + o, qR + o, nl, nj); break;
      case 3: grads_cols<W, 3>(dv + o, dk + o, Dp, pT, dsT, nl, doR + o, qR + o, nl, nj); break;
      default: grads_cols<W, 4>(dv + o, dk + o, Dp, pT, dsT, nl, doR + o, qR + o, nl, nj); break;
    }
  }
  // dQᵀ += Kᵀ·dSᵀ (scaled at the end).
  accumulate_tile<W, NV>(dqT, Lp, krows, rs, dsT, nj, D);
}

// One work item: (b, h, key group).
template <int W>
PIT_INLINE bool backward_item(const BackwardArgs& a, int64_t item) {
  const Layout& t = a.t;
  const int64_t D = t.D, L = t.L;
  const int64_t bh = item / a.groups, g = item % a.groups, b = bh / t.H, h = bh % t.H;
  const int64_t Lp = round_up(L, W), Dp = round_up(D, W);
  constexpr int64_t bc = Tiles<W>::kBwdKeys;
  const int64_t br = (D <= Tiles<W>::kBwdWideD ? Tiles<W>::kBwdQueryVecs : 2) * W;
  const int64_t key_tiles = ceil_div(L, bc);
  const int64_t t_begin = g * key_tiles / a.groups, t_end = (g + 1) * key_tiles / a.groups;

  // Whole-head packs: qT, doT, dqT (D, Lp); qR, doR (Lp, Dp); nlse, ndi (Lp);
  // tile scratch: pT, dsT (bc, br); dv, dk (bc, Dp); kt, vt (bc, D).
  float* qT = thread_scratch(3 * D * Lp + 2 * Lp * Dp + 2 * Lp + 2 * bc * br + 2 * bc * Dp +
                             2 * bc * D);
  if (!qT) return false;
  float* doT = qT + D * Lp;
  float* dqT = doT + D * Lp;
  float* qR = dqT + D * Lp;
  float* doR = qR + Lp * Dp;
  float* nlse = doR + Lp * Dp;
  float* ndi = nlse + Lp;
  float* pT = ndi + Lp;
  float* dsT = pT + bc * br;
  float* dv = dsT + bc * br;
  float* dk = dv + bc * Dp;
  float* kt = dk + bc * Dp;
  float* vt = kt + bc * D;

  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), c = scale * kLog2e;
  for (int64_t i = 0; i < L; ++i) {
    const float* go = a.dout + t.row(b, i, h);
    const float* o = a.out + t.row(b, i, h);
    copy_row<W>(qR + i * Dp, a.qkv + t.qkv_row(b, i, 0, h), D);
    copy_row<W>(doR + i * Dp, go, D);
    float di = 0;
    for (int64_t d = 0; d < D; ++d) di += go[d] * o[d];
    nlse[i] = static_cast<float>(-a.lse[bh * L + i] * static_cast<double>(kLog2e));
    ndi[i] = -di;
  }
  // Padding: zero rows of qR and doR (so the padding lanes' P = 0 adds nothing to dK
  // and dV) and zero columns past D.
  for (int64_t i = D < Dp ? 0 : L; i < Lp; ++i) {
    const int64_t from = i < L ? D : 0;
    std::fill(qR + i * Dp + from, qR + (i + 1) * Dp, 0.0f);
    std::fill(doR + i * Dp + from, doR + (i + 1) * Dp, 0.0f);
  }
  std::fill(nlse + L, nlse + Lp, kMinusHuge);
  std::fill(ndi + L, ndi + Lp, 0.0f);
  transpose_tile<W>(qT, Lp, qR, Dp, Lp, D);
  transpose_tile<W>(doT, Lp, doR, Dp, Lp, D);
  std::fill_n(dqT, D * Lp, 0.0f);
  if (a.groups == 1 && bh + 1 < t.B * t.H) {  // the next item, most likely this thread's
    const int64_t nb = (bh + 1) / t.H, nh = (bh + 1) % t.H, s = 3 * t.H * D;
    const float* q = a.qkv + t.qkv_row(nb, 0, 0, nh);
    float* dq = a.dqkv + t.qkv_row(nb, 0, 0, nh);
    prefetch_head({{q, s, false}, {q + t.H * D, s, false}, {q + 2 * t.H * D, s, false},
                   {a.dout + t.row(nb, 0, nh), t.H * D, false},
                   {a.out + t.row(nb, 0, nh), t.H * D, false}, {dq, s, true},
                   {dq + t.H * D, s, true}, {dq + 2 * t.H * D, s, true}}, L, D);
  }

  for (int64_t tile = t_begin; tile < t_end; ++tile) {
    const int64_t j0 = tile * bc, nj = std::min(bc, L - j0);
    pack_keys<W>(kt, vt, a.qkv, t, b, h, j0, nj);
    std::fill_n(dv, nj * Dp, 0.0f);
    std::fill_n(dk, nj * Dp, 0.0f);
    for (int64_t i0 = 0; i0 < Lp; i0 += br) {
      const int nv = static_cast<int>(std::min(br, Lp - i0) / W);
      switch (nv) {
#define PIT_BACKWARD_BLOCK(NV)                                                               \
  backward_block<W, NV>(dv, dk, dqT + i0, pT, dsT, kt, vt, D, qT + i0, doT + i0,            \
                        nlse + i0, ndi + i0, qR + i0 * Dp, doR + i0 * Dp, Lp, Dp, nj, D, c)
        case 1: PIT_BACKWARD_BLOCK(1); break;
        case 2: PIT_BACKWARD_BLOCK(2); break;
        case 3: PIT_BACKWARD_BLOCK(3); break;
        default: PIT_BACKWARD_BLOCK(4); break;
#undef PIT_BACKWARD_BLOCK
      }
    }
    static_assert(Tiles<W>::kBwdQueryVecs == 4, "backward_item's switch covers 1..4 vectors");
    for (int64_t j = 0; j < nj; ++j) {
      float* gk = a.dqkv + t.qkv_row(b, j0 + j, 1, h);
      float* gv = a.dqkv + t.qkv_row(b, j0 + j, 2, h);
      for (int64_t d = 0; d < D; ++d) {
        gk[d] = dk[j * Dp + d] * scale;
        gv[d] = dv[j * Dp + d];
      }
    }
  }
  if (a.groups == 1) {
    for (int64_t x = 0; x < D * Lp; x += W) store<W>(dqT + x, load<W>(dqT + x) * scale);
    transpose_tile<W>(a.dqkv + t.qkv_row(b, 0, 0, h), 3 * t.H * D, dqT, Lp, D, L);
  } else {
    std::copy_n(dqT, D * Lp, a.dq_partial + (bh * a.groups + g) * D * Lp);
  }
  return true;
}

#if PIT_X86
PIT_TARGET_AVX512 bool backward_item_avx512(const BackwardArgs& a, int64_t item) {
  return backward_item<16>(a, item);
}
PIT_TARGET_AVX2 bool backward_item_avx2(const BackwardArgs& a, int64_t item) {
  return backward_item<8>(a, item);
}
#endif

}  // namespace

// ---- entry points ----------------------------------------------------------------------------

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t L, int64_t H,
                       int64_t D) {
  const Layout t{B, L, H, D};
  if (B * L * H * D == 0) return;
#if PIT_X86
  if (cpu_has_avx2()) {
    const bool wide = cpu_has_avx512();
    const int64_t br = wide ? Tiles<16>::kFwdQueryVecs * 16 : Tiles<8>::kFwdQueryVecs * 8;
    const int64_t groups = forward_query_groups(B, H, L, br);
    const ForwardArgs args{out, lse, qkv, t, groups};
    run_items(B * H * groups, wide ? forward_item_avx512 : forward_item_avx2, args);
    return;
  }
#endif
  forward_scalar(out, lse, qkv, t);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) {
  const Layout t{B, L, H, D};
  if (B * L * H * D == 0) return;
#if PIT_X86
  if (cpu_has_avx2()) {
    const bool wide = cpu_has_avx512();
    const int64_t W = wide ? 16 : 8, bc = wide ? Tiles<16>::kBwdKeys : Tiles<8>::kBwdKeys;
    const int64_t Lp = round_up(L, W);
    const int64_t groups = backward_key_groups(B, H, L, bc);
    std::vector<float> partial(groups > 1 ? B * H * groups * D * Lp : 0);
    const BackwardArgs args{dqkv, dout, qkv, out, lse, t, groups, partial.data()};
    run_items(B * H * groups, wide ? backward_item_avx512 : backward_item_avx2, args);
    if (groups > 1)
      sum_dq_partials(partial.data(), t, groups, Lp, [&](int64_t b, int64_t i, int64_t h, const float* dq) {
        std::copy_n(dq, D, dqkv + t.qkv_row(b, i, 0, h));
      });
    return;
  }
#endif
  backward_scalar(dqkv, dout, qkv, out, lse, t);
}

}  // namespace pit::cpu
