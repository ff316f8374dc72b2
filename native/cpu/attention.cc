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
// of (one key's broadcast element) x (a vector of queries), K and V are read in place from
// qkv as broadcast scalars, the softmax's max and sum and the rescale are lane-wise (no
// horizontal reductions), lse and Di load as vectors, and any D works without padding.
// O and dQ accumulate transposed (D, queries) and are transposed once at the end. Only dK
// and dV, whose sums run over the queries, are computed along d, from row-major copies of Q
// and dO padded to whole vectors.
//
// exp. The scale and log2(e) are folded into the packed Q, so the kernels take exp2 of the
// scores: a rounding split x = n + f, a degree-6 polynomial for 2^f and n written into the
// float's exponent (exp2_lanes); about 12 vector operations for W exps.
//
// Parallelism. The forward splits (b, h, query tile). The backward splits (b, h, key group):
// each work item owns its keys' dK and dV outright and sums its own partial dQ; with several
// key groups per head (when B·H alone would leave threads idle) the partials are added in a
// fixed order afterwards. The split depends only on the shape, so results are bitwise
// reproducible whatever the thread count.
//
// ISAs. The vector kernels are written once, over W lanes, with GCC vector extensions, as
// always-inline templates; each is instantiated inside a PIT_TARGET_AVX512 (W = 16) or
// PIT_TARGET_AVX2 (W = 8) entry function, so it compiles to zmm or ymm code there. The plain
// scalar functions at the top are the readable reference and the fallback
// (PIT_CPU_ISA=scalar).
//
// Tile choices (2-core Sapphire Rapids at 2.0 GHz, g++ 12 -O3; harness in the PR notes;
// GFLOP/s = 4·B·H·L²·D forward, 2.5x that backward):
//   TILE-MEASUREMENTS
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

namespace pit::cpu {
namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Where token l, head h of a (B, L, 3, H, D) qkv or (B, L, H, D) tensor starts.
struct Layout {
  int64_t B, L, H, D;
  int64_t qkv_row(int64_t b, int64_t l, int64_t part, int64_t h) const {
    return ((b * L + l) * 3 + part) * H * D + h * D;
  }
  int64_t row(int64_t b, int64_t l, int64_t h) const { return ((b * L + l) * H + h) * D; }
  int64_t qkv_stride() const { return 3 * H * D; }  // between tokens, in qkv
};

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
        const float p = std::exp(s - m);
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

// ---- vector lanes (GCC vector extensions) -------------------------------------------------

#define PIT_INLINE inline __attribute__((always_inline))
// Vectors passed by value between always-inline helpers of this file never cross a real call,
// so GCC's note that such calls' ABI depends on -mavx512f does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

template <int W>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));
};
template <int W>
using vf = typename Lanes<W>::F;
template <int W>
using vi = typename Lanes<W>::I;

template <int W>
PIT_INLINE vf<W> load(const float* p) {
  vf<W> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int W>
PIT_INLINE void store(float* p, vf<W> v) {
  std::memcpy(p, &v, sizeof v);
}
template <int W>
PIT_INLINE vf<W> splat(float s) {  // lane 0, shuffled to all lanes: one vbroadcastss
  return __builtin_shuffle(vf<W>{s}, vi<W>{});
}
template <int W>
PIT_INLINE vf<W> max(vf<W> a, vf<W> b) {
  return a > b ? a : b;
}

// Scores "minus infinity", kept finite: exp2 of anything near it is 2^-100 (see below).
constexpr float kMinusHuge = -1e30f;

// 2^x, lane-wise, for x <= ~1 (attention only ever asks for 2^(s - max) and 2^(s - lse)).
// x = n + f with n = round(x), |f| <= 1/2; 2^f = 1 + f·(c1 + f·(c2 + ...)) (degree-6
// minimax fit to 2^f on [-1/2, 1/2], relative error 2e-9; ~1e-7 measured in float); 2^n
// is added into the exponent bits. x is first clamped to -100: the result, 2^-100 instead
// of something smaller, is 1e-30 of the largest term of any sum it joins, and the clamp
// keeps every value a normal float (no denormal slow paths) and -inf or kMinusHuge harmless.
template <int W>
PIT_INLINE vf<W> exp2_lanes(vf<W> x) {
  x = max<W>(x, splat<W>(-100.0f));
  // Adding 1.5·2^23 rounds x to an integer held in t's low mantissa bits; the empty asm stops
  // the compiler folding (x + c) - c back to x under -ffast-math.
  vf<W> t = x + 12582912.0f;
  __asm__("" : "+v"(t));
  const vf<W> f = x - (t - 12582912.0f);
  vf<W> p = splat<W>(1.5353362e-4f);
  p = p * f + 1.3398875e-3f;
  p = p * f + 9.6184369e-3f;
  p = p * f + 5.5503324e-2f;
  p = p * f + 2.4022648e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  // t's bits are 0x4B400000 + n: shifted left by 23 only n << 23 survives.
  // (A cast between vector types of one size keeps the bits.)
  return (vf<W>)((vi<W>)p + ((vi<W>)t << 23));
}

// ---- tile sizes ---------------------------------------------------------------------------

template <int W>
struct Tiles;
template <>
struct Tiles<16> {  // AVX-512: 32 vector registers
  static constexpr int kFwdQueryVecs = 4;  // forward query tile Br = 4·16 = 64
  static constexpr int64_t kFwdKeys = 64;  // forward key tile Bc
  static constexpr int kScoreRows = 4;     // Sᵀ micro-tile: 4 keys x kFwdQueryVecs vectors
  static constexpr int kAccRows = 4;       // Oᵀ/dQᵀ micro-tile: 4 dims x query vectors
  static constexpr int kBwdQueryVecs = 4;  // backward query tile Br = 64
  static constexpr int64_t kBwdKeys = 64;  // backward key tile Bc
  static constexpr int kProbRows = 2;      // P/dS micro-tile: 2 keys x kBwdQueryVecs vectors
  static constexpr int kGradRows = 8;      // dK/dV micro-tile: 8 keys x (8 / that) dim vectors
};
template <>
struct Tiles<8> {  // AVX2: 16 vector registers
  static constexpr int kFwdQueryVecs = 4;
  static constexpr int64_t kFwdKeys = 64;
  static constexpr int kScoreRows = 2;
  static constexpr int kAccRows = 2;
  static constexpr int kBwdQueryVecs = 4;
  static constexpr int64_t kBwdKeys = 64;
  static constexpr int kProbRows = 1;
  static constexpr int kGradRows = 4;
};

// ---- micro-kernels --------------------------------------------------------------------------
// "rows" are keys (or values) read in place: element (r, d) at rows[r * rs + d].
// "Tᵀ" buffers hold one row per key (or per d) of NV·W query lanes.

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
  constexpr int R = Tiles<W>::kAccRows;
  int64_t d = 0;
  for (; d + R <= D; d += R) accumulate_rows<W, NV, R>(accT + d * ldo, ldo, rows + d, rs, pT, nj);
  for (; d < D; ++d) accumulate_rows<W, NV, 1>(accT + d * ldo, ldo, rows + d, rs, pT, nj);
}

// Backward scores for R keys x NV·W queries:
//   pT  = 2^(K·Qsᵀ - lse·log2 e)         (Qs = Q·scale·log2 e)
//   dsT = pT ∘ (V·dOᵀ - Di)
// nlse = -lse·log2 e and ndi = -Di seed the accumulators, so the subtractions are free.
template <int W, int NV, int R>
PIT_INLINE void probs_rows(float* pT, float* dsT, const float* krows, const float* vrows,
                           int64_t rs, const float* qT, const float* doT, int64_t ldq,
                           const float* nlse, const float* ndi, int64_t D) {
  vf<W> s[R][NV], dp[R][NV];
  for (int v = 0; v < NV; ++v) {
    const vf<W> a = load<W>(nlse + v * W), c = load<W>(ndi + v * W);
    for (int r = 0; r < R; ++r) {
      s[r][v] = a;
      dp[r][v] = c;
    }
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
      const vf<W> p = exp2_lanes<W>(s[r][v]);
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
  constexpr int R = Tiles<W>::kGradRows / ND > 0 ? Tiles<W>::kGradRows / ND : 1;
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
  int64_t query_tiles;  // per (b, h)
};

// Per-thread scratch that only grows; the pool's threads live as long as the process.
// Returns null when the allocation fails (the caller reports it after the parallel loop).
float* thread_scratch(int64_t floats) {
  struct Buffer {
    float* data = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.size < floats) {
    std::free(buffer.data);
    buffer.size = 0;
    buffer.data = static_cast<float*>(
        std::aligned_alloc(64, static_cast<size_t>(round_up(floats * 4, 64))));
    if (buffer.data) buffer.size = floats;
  }
  return buffer.data;
}

// The key loop of one query tile of NV vectors: qT (D, NV·W) packed and scaled, m, l
// (NV·W) and oT (D, NV·W) carried across key tiles; sT and tmax are scratch.
template <int W, int NV>
PIT_INLINE void forward_query_tile(float* oT, float* m, float* l, float* sT, float* tmax,
                                   const float* qT, const float* krows, const float* vrows,
                                   int64_t rs, int64_t L, int64_t D) {
  constexpr int R = Tiles<W>::kScoreRows;
  constexpr int64_t nl = NV * W;
  for (int64_t j0 = 0; j0 < L; j0 += Tiles<W>::kFwdKeys) {
    const int64_t nj = std::min(Tiles<W>::kFwdKeys, L - j0);
    const float* k = krows + j0 * rs;
    // Sᵀ = K·Qsᵀ for this key tile, and its column max.
    for (int v = 0; v < NV; ++v) store<W>(tmax + v * W, splat<W>(kMinusHuge));
    int64_t j = 0;
    for (; j + R <= nj; j += R) scores_rows<W, NV, R>(sT + j * nl, tmax, k + j * rs, rs, qT, nl, D);
    for (; j < nj; ++j) scores_rows<W, NV, 1>(sT + j * nl, tmax, k + j * rs, rs, qT, nl, D);
    // Online softmax: new max, rescale l and O by 2^(m - m'), P = 2^(S - m') in place.
    vf<W> mnew[NV], sum[NV];
    for (int v = 0; v < NV; ++v) {
      const vf<W> mold = load<W>(m + v * W);
      mnew[v] = max<W>(mold, load<W>(tmax + v * W));
      const vf<W> alpha = exp2_lanes<W>(mold - mnew[v]);
      sum[v] = load<W>(l + v * W) * alpha;
      for (int64_t d = 0; d < D; ++d) store<W>(oT + d * nl + v * W, load<W>(oT + d * nl + v * W) * alpha);
      store<W>(m + v * W, mnew[v]);
    }
    for (j = 0; j < nj; ++j)
      for (int v = 0; v < NV; ++v) {
        const vf<W> p = exp2_lanes<W>(load<W>(sT + j * nl + v * W) - mnew[v]);
        store<W>(sT + j * nl + v * W, p);
        sum[v] += p;
      }
    for (int v = 0; v < NV; ++v) store<W>(l + v * W, sum[v]);
    // Oᵀ += Vᵀ·Pᵀ.
    accumulate_tile<W, NV>(oT, nl, vrows + j0 * rs, rs, sT, nj, D);
  }
}

// One work item: (b, h, query tile).
template <int W>
PIT_INLINE bool forward_item(const ForwardArgs& a, int64_t item) {
  const Layout& t = a.t;
  const int64_t D = t.D, L = t.L, rs = t.qkv_stride();
  const int64_t bh = item / a.query_tiles, b = bh / t.H, h = bh % t.H;
  const int64_t br = Tiles<W>::kFwdQueryVecs * W;
  const int64_t i0 = item % a.query_tiles * br, ni = std::min(br, L - i0);
  const int nv = static_cast<int>(ceil_div(ni, W));
  const int64_t nl = nv * W;
  float* qT = thread_scratch(2 * D * nl + Tiles<W>::kFwdKeys * nl + 3 * nl);
  if (!qT) return false;
  float* oT = qT + D * nl;
  float* sT = oT + D * nl;
  float* m = sT + Tiles<W>::kFwdKeys * nl;
  float* l = m + nl;
  float* tmax = l + nl;
  // Qsᵀ (D, nl) = Q·scale·log2(e), transposed; lanes past the sequence are zero.
  const float c = kLog2e / std::sqrt(static_cast<float>(D));
  for (int64_t i = 0; i < ni; ++i) {
    const float* q = a.qkv + t.qkv_row(b, i0 + i, 0, h);
    for (int64_t d = 0; d < D; ++d) qT[d * nl + i] = q[d] * c;
  }
  for (int64_t d = 0; d < D; ++d) std::fill(qT + d * nl + ni, qT + (d + 1) * nl, 0.0f);
  std::fill_n(oT, D * nl, 0.0f);
  std::fill_n(m, nl, kMinusHuge);
  std::fill_n(l, nl, 0.0f);
  const float* krows = a.qkv + t.qkv_row(b, 0, 1, h);
  const float* vrows = a.qkv + t.qkv_row(b, 0, 2, h);
  switch (nv) {
    case 1: forward_query_tile<W, 1>(oT, m, l, sT, tmax, qT, krows, vrows, rs, L, D); break;
    case 2: forward_query_tile<W, 2>(oT, m, l, sT, tmax, qT, krows, vrows, rs, L, D); break;
    case 3: forward_query_tile<W, 3>(oT, m, l, sT, tmax, qT, krows, vrows, rs, L, D); break;
    default: forward_query_tile<W, 4>(oT, m, l, sT, tmax, qT, krows, vrows, rs, L, D); break;
  }
  static_assert(Tiles<W>::kFwdQueryVecs == 4, "forward_item's switch covers 1..4 vectors");
  for (int64_t i = 0; i < ni; ++i) {
    const float inv = 1.0f / l[i];
    float* o = a.out + t.row(b, i0 + i, h);
    for (int64_t d = 0; d < D; ++d) o[d] = oT[d * nl + i] * inv;
    a.lse[bh * L + i0 + i] = (m[i] + std::log2(l[i])) * kLn2;
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
                               int64_t Dp, int64_t nj, int64_t D) {
  constexpr int R = Tiles<W>::kProbRows;
  constexpr int64_t nl = NV * W;
  // P and dS for the tile, transposed (nj, nl).
  int64_t j = 0;
  for (; j + R <= nj; j += R)
    probs_rows<W, NV, R>(pT + j * nl, dsT + j * nl, krows + j * rs, vrows + j * rs, rs, qT, doT,
                         Lp, nlse, ndi, D);
  for (; j < nj; ++j)
    probs_rows<W, NV, 1>(pT + j * nl, dsT + j * nl, krows + j * rs, vrows + j * rs, rs, qT, doT,
                         Lp, nlse, ndi, D);
  // dV += Pᵀ·dO and dK += dSᵀ·Q (scaled at the end), along d in blocks of up to 4 vectors.
  const int64_t nd = Dp / W;
  for (int64_t c = 0; c < nd; c += 4) {
    const int64_t o = c * W;
    switch (std::min<int64_t>(4, nd - c)) {
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
  const int64_t D = t.D, L = t.L, rs = t.qkv_stride();
  const int64_t bh = item / a.groups, g = item % a.groups, b = bh / t.H, h = bh % t.H;
  const int64_t Lp = round_up(L, W), Dp = round_up(D, W);
  constexpr int64_t bc = Tiles<W>::kBwdKeys, br = Tiles<W>::kBwdQueryVecs * W;
  const int64_t key_tiles = ceil_div(L, bc);
  const int64_t t_begin = g * key_tiles / a.groups, t_end = (g + 1) * key_tiles / a.groups;

  // Whole-head packs: qT, doT, dqT (D, Lp); qR, doR (Lp, Dp); nlse, ndi (Lp);
  // tile scratch: pT, dsT (bc, br); dv, dk (bc, Dp).
  float* qT = thread_scratch(3 * D * Lp + 2 * Lp * Dp + 2 * Lp + 2 * bc * br + 2 * bc * Dp);
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

  const float scale = 1.0f / std::sqrt(static_cast<float>(D)), c = scale * kLog2e;
  for (int64_t i = 0; i < Lp; ++i) {
    if (i < L) {
      const float* q = a.qkv + t.qkv_row(b, i, 0, h);
      const float* go = a.dout + t.row(b, i, h);
      const float* o = a.out + t.row(b, i, h);
      float di = 0;
      for (int64_t d = 0; d < D; ++d) {
        qT[d * Lp + i] = q[d] * c;
        doT[d * Lp + i] = go[d];
        qR[i * Dp + d] = q[d];
        doR[i * Dp + d] = go[d];
        di += go[d] * o[d];
      }
      std::fill(qR + i * Dp + D, qR + (i + 1) * Dp, 0.0f);
      std::fill(doR + i * Dp + D, doR + (i + 1) * Dp, 0.0f);
      nlse[i] = -a.lse[bh * L + i] * kLog2e;
      ndi[i] = -di;
    } else {  // padding lanes: P = 2^-100, harmless against the zero rows of qR and doR
      for (int64_t d = 0; d < D; ++d) qT[d * Lp + i] = doT[d * Lp + i] = 0.0f;
      std::fill(qR + i * Dp, qR + (i + 1) * Dp, 0.0f);
      std::fill(doR + i * Dp, doR + (i + 1) * Dp, 0.0f);
      nlse[i] = kMinusHuge;
      ndi[i] = 0.0f;
    }
  }
  std::fill_n(dqT, D * Lp, 0.0f);

  for (int64_t tile = t_begin; tile < t_end; ++tile) {
    const int64_t j0 = tile * bc, nj = std::min(bc, L - j0);
    const float* krows = a.qkv + t.qkv_row(b, j0, 1, h);
    const float* vrows = a.qkv + t.qkv_row(b, j0, 2, h);
    std::fill_n(dv, nj * Dp, 0.0f);
    std::fill_n(dk, nj * Dp, 0.0f);
    for (int64_t i0 = 0; i0 < Lp; i0 += br) {
      const int nv = static_cast<int>(std::min(br, Lp - i0) / W);
      switch (nv) {
#define PIT_BACKWARD_BLOCK(NV)                                                               \
  backward_block<W, NV>(dv, dk, dqT + i0, pT, dsT, krows, vrows, rs, qT + i0, doT + i0,     \
                        nlse + i0, ndi + i0, qR + i0 * Dp, doR + i0 * Dp, Lp, Dp, nj, D)
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
    for (int64_t i = 0; i < L; ++i) {
      float* gq = a.dqkv + t.qkv_row(b, i, 0, h);
      for (int64_t d = 0; d < D; ++d) gq[d] = dqT[d * Lp + i] * scale;
    }
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

// Runs item(args, i) for i in [0, n) on all threads; throws bad_alloc if any ran out of scratch.
template <class Args>
void run_items(int64_t n, bool (*item)(const Args&, int64_t), const Args& args) {
  std::atomic<bool> failed{false};
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (!item(args, i)) failed.store(true);
  });
  if (failed.load()) throw std::bad_alloc();
}

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
    const ForwardArgs args{out, lse, qkv, t, ceil_div(L, br)};
    run_items(B * H * args.query_tiles, wide ? forward_item_avx512 : forward_item_avx2, args);
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
    // Enough items to keep every core of a large machine busy when B·H is small; fixed by
    // the shape alone so that the dQ sums do not depend on the thread count.
    constexpr int64_t kMinItems = 16;
    const int64_t groups = std::min(ceil_div(L, bc), ceil_div(kMinItems, B * H));
    std::vector<float> partial(groups > 1 ? B * H * groups * D * Lp : 0);
    const BackwardArgs args{dqkv, dout, qkv, out, lse, t, groups, partial.data()};
    run_items(B * H * groups, wide ? backward_item_avx512 : backward_item_avx2, args);
    if (groups > 1) {  // dq = scale · Σ_g partial[g], in g order
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      parallel_for(B * H * L, 64, [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          const int64_t bh = row / L, i = row % L;
          float* gq = dqkv + t.qkv_row(bh / H, i, 0, bh % H);
          const float* p = partial.data() + bh * groups * D * Lp + i;
          for (int64_t d = 0; d < D; ++d) {
            float s = 0;
            for (int64_t g = 0; g < groups; ++g) s += p[(g * D + d) * Lp];
            gq[d] = s * scale;
          }
        }
      });
    }
    return;
  }
#endif
  backward_scalar(dqkv, dout, qkv, out, lse, t);
}

}  // namespace pit::cpu
