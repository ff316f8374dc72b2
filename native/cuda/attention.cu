// attention_forward / attention_backward for f32 tensors on the GPU: multi-head self-attention
// on packed qkv (B, L, 3, H, D) -> out (B, L, H, D), scale D^-0.5, no mask (the contract in
// native/core/ops.h). bf16 qkv goes to the tensor-core kernels instead (attention_bf16.cu,
// attention_bf16.cuh); this file is the f32 path: attention at precision 'f32' (the default)
// on the GPU, for head dims up to 128 (the bf16 kernels take exactly 16, 32, 64 or 128).
//
// fp32 loads, fp32 arithmetic, fp32 accumulators, expf/logf (no fast math), and the L x L
// score matrix is never materialised, only one key (or query) tile of K and V
// (or Q and dO) staged in shared memory at a time. It follows native/cpu/attention.cc's
// scalar reference: the same online softmax, lse = m + log(l), Di = rowsum(dO ∘ O),
// p = exp(s·scale − lse), ds = p·(dp − Di). Summation orders differ from the CPU's (dot
// products are split across lanes), so results agree to fp32 rounding, not bit for bit; they
// are deterministic from run to run (no atomics, fixed reduction orders).
//
// Thread layout. Each query (forward, dQ) or key (dK/dV) row is owned by a group of G = DP/16
// adjacent lanes of one warp, each lane holding kSlice = 16 of the row's DP dims in registers:
// lane g of a group owns dims d = c·G + g, c = 0..15 (interleaved, so the G lanes of a group
// read G consecutive floats of a staged shared-memory row: no bank conflicts, and the other
// groups of the warp read the same row: broadcast). A dot product is a 16-term partial sum per
// lane plus an xor butterfly over the G lanes, which leaves the same bits in every lane of
// the group (a+b and b+a), so the per-row softmax state (m, l) is identical across the group.
// DP is the runtime head dim D rounded up to 16, 32, 64 or 128; dims >= D are loaded as 0.
// A block holds kRows = 64 rows (64·G threads: 64, 128, 256, 512). Rows past L still run
// every loop (all lanes take part in the shuffles and __syncthreads) and write nothing.
//
// Tiles. Keys (forward, dQ) or queries (dK/dV) are staged kTile<DP> at a time: 64 rows, 32 at
// DP = 128, so that the two staged tiles take at most 32 KiB of static shared memory.
//
// Grid. One block per (b·H + h, block of 64 rows), flattened into blockIdx.x with a
// block-stride loop (idx -> bh = idx / row_blocks, rb = idx % row_blocks), so B·H has no
// gridDim.y/z limit; every iteration is uniform across the block.
//
// Backward (FlashAttention-2 split, deterministic, no atomics):
//   1) dQ kernel, per query row: Di = rowsum(dO ∘ O) (written to scratch (B, H, L)), then over
//      key tiles: dq += ds·k; dq·scale is written to dqkv's q part.
//   2) dK/dV kernel, per key row, over query tiles (Q, dO, lse, Di staged): dv += p·dO,
//      dk += ds·q; dk·scale and dv are written to dqkv's k and v parts.
//   Every element of dqkv is written exactly once. Kernel 2 reads the Di that kernel 1 wrote
//   (the one stream orders them).
#include <cmath>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kRows = 64;   // query (or key) rows per block
constexpr int kSlice = 16;  // dims per lane
constexpr int kChunk = 8;   // keys per online-softmax rescale in the forward

// Key (or query) rows per staged shared-memory tile: 2·kTile·DP floats <= 32 KiB.
template <int DP>
constexpr int kTile = DP >= 128 ? 32 : 64;

__host__ __device__ constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Where token l, head h of a (B, L, 3, H, D) qkv starts (part 0 = q, 1 = k, 2 = v), and of a
// (B, L, H, D) tensor. int64 throughout: (b·L + l)·3·H·D exceeds 2^31 at large L.
__device__ __forceinline__ int64_t qkv_row(int64_t b, int64_t l, int64_t part, int64_t h, int64_t L,
                                           int64_t H, int64_t D) {
  return ((b * L + l) * 3 + part) * H * D + h * D;
}
__device__ __forceinline__ int64_t out_row(int64_t b, int64_t l, int64_t h, int64_t L, int64_t H,
                                           int64_t D) {
  return ((b * L + l) * H + h) * D;
}

// Σ v over the G adjacent lanes of a row group (G a power of two dividing 32, groups aligned);
// every lane of the group ends with the same bits. All 32 lanes of the warp must call it.
template <int G>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int offset = G / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// One (query, key) pair of the backward: p = exp(a·x·scale − lse) and ds = p·(b·y − di), where
// a, b are a lane's kSlice register dims of one row (q and dO, or k and v) and x, y the staged
// rows of the other side read at stride G; both dots are summed over the row's G lanes.
template <int G>
__device__ __forceinline__ void prob_and_score_grad(const float (&a)[kSlice], const float* x, const float (&b)[kSlice],
                                                    const float* y, float scale, float lse, float di, float& p,
                                                    float& ds) {
  float s = 0.0f, dp = 0.0f;
#pragma unroll
  for (int c = 0; c < kSlice; ++c) {
    s += a[c] * x[c * G];
    dp += b[c] * y[c * G];
  }
  s = group_sum<G>(s);
  dp = group_sum<G>(dp);
  p = expf(s * scale - lse);
  ds = p * (dp - di);
}

// Stages n rows of src into tile (kTile<DP>, DP), zero-padded past n rows and D dims;
// src_row(r) is the element offset in src of the tile's row r (r < n).
template <int DP, int T, typename RowOffset>
__device__ __forceinline__ void stage_tile(float* __restrict__ tile, const float* __restrict__ src,
                                           int64_t n, int64_t D, RowOffset src_row) {
  for (int e = threadIdx.x; e < kTile<DP> * DP; e += T) {
    const int r = e / DP, d = e % DP;
    tile[e] = (r < n && d < D) ? src[src_row(r) + d] : 0.0f;
  }
}

// ---- forward -----------------------------------------------------------------------------

// out (B, L, H, D), lse (B, H, L). blockDim = kRows·G; grid-stride over BH·ceil(L/kRows).
template <int DP>
__global__ void __launch_bounds__(kRows * (DP / kSlice), 1)
    attention_forward_kernel(float* __restrict__ out, float* __restrict__ lse,
                             const float* __restrict__ qkv, int64_t BH, int64_t L, int64_t H,
                             int64_t D, float scale) {
  constexpr int G = DP / kSlice, T = kRows * G, BK = kTile<DP>;
  static_assert(BK % kChunk == 0, "key tiles are whole chunks");
  __shared__ float ks[BK * DP], vs[BK * DP];
  const int g = threadIdx.x % G, r = threadIdx.x / G;
  const int64_t row_blocks = ceil_div(L, kRows);
  for (int64_t idx = blockIdx.x; idx < BH * row_blocks; idx += gridDim.x) {
    const int64_t bh = idx / row_blocks, b = bh / H, h = bh % H;
    const int64_t i = idx % row_blocks * kRows + r;
    const bool valid = i < L;

    float q[kSlice], o[kSlice];
    const float* qp = qkv + qkv_row(b, valid ? i : 0, 0, h, L, H, D);
#pragma unroll
    for (int c = 0; c < kSlice; ++c) {
      const int d = c * G + g;
      q[c] = (valid && d < D) ? qp[d] : 0.0f;
      o[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    for (int64_t j0 = 0; j0 < L; j0 += BK) {
      const int64_t n = min(int64_t(BK), L - j0);
      __syncthreads();  // the previous tile's readers are done
      stage_tile<DP, T>(ks, qkv, n, D, [&](int rr) { return qkv_row(b, j0 + rr, 1, h, L, H, D); });
      stage_tile<DP, T>(vs, qkv, n, D, [&](int rr) { return qkv_row(b, j0 + rr, 2, h, L, H, D); });
      __syncthreads();
      // n is the same for the whole block, so every lane runs the same chunks. Keys past n
      // (zero rows in the tile, jc + u < BK always) are scored but masked to -inf.
      for (int jc = 0; jc < n; jc += kChunk) {
        float s[kChunk];
        float cmax = -INFINITY;
#pragma unroll
        for (int u = 0; u < kChunk; ++u) {
          const float* kr = ks + (jc + u) * DP + g;
          float a = 0.0f;
#pragma unroll
          for (int c = 0; c < kSlice; ++c) a += q[c] * kr[c * G];
          a = group_sum<G>(a) * scale;
          s[u] = (jc + u < n) ? a : -INFINITY;
          cmax = fmaxf(cmax, s[u]);
        }
        // exp(-inf - mn) = 0 both for the first chunk's m and for masked keys. mn is -inf
        // while every score so far is -inf (a -inf in q or k, or L = 1): the shift is then 0,
        // not -inf, so those weights are exp(-inf) = 0 instead of exp(-inf - -inf) = NaN, and
        // a query whose scores are all -inf ends with l = 0 and out = NaN, as softmax does.
        // fmaxf skips NaN scores, but their weights exp(NaN - shift) are NaN whatever mn is.
        const float mn = fmaxf(m, cmax);
        const float shift = mn == -INFINITY ? 0.0f : mn;
        const float rescale = expf(m - shift);
        l *= rescale;
#pragma unroll
        for (int c = 0; c < kSlice; ++c) o[c] *= rescale;
#pragma unroll
        for (int u = 0; u < kChunk; ++u) {
          const float p = expf(s[u] - shift);
          l += p;
          const float* vr = vs + (jc + u) * DP + g;
#pragma unroll
          for (int c = 0; c < kSlice; ++c) o[c] += p * vr[c * G];
        }
        m = mn;
      }
    }

    if (valid) {
      float* op = out + out_row(b, i, h, L, H, D);
#pragma unroll
      for (int c = 0; c < kSlice; ++c) {
        const int d = c * G + g;
        if (d < D) op[d] = o[c] / l;
      }
      if (g == 0) lse[bh * L + i] = m + logf(l);
    }
  }
}

// ---- backward ----------------------------------------------------------------------------

// dq part of dqkv, and delta (B, H, L) = rowsum(dout ∘ out). Layout as the forward.
template <int DP>
__global__ void __launch_bounds__(kRows * (DP / kSlice), 1)
    attention_backward_dq_kernel(float* __restrict__ dqkv, float* __restrict__ delta,
                                 const float* __restrict__ dout, const float* __restrict__ qkv,
                                 const float* __restrict__ out, const float* __restrict__ lse,
                                 int64_t BH, int64_t L, int64_t H, int64_t D, float scale) {
  constexpr int G = DP / kSlice, T = kRows * G, BK = kTile<DP>;
  __shared__ float ks[BK * DP], vs[BK * DP];
  const int g = threadIdx.x % G, r = threadIdx.x / G;
  const int64_t row_blocks = ceil_div(L, kRows);
  for (int64_t idx = blockIdx.x; idx < BH * row_blocks; idx += gridDim.x) {
    const int64_t bh = idx / row_blocks, b = bh / H, h = bh % H;
    const int64_t i = idx % row_blocks * kRows + r;
    const bool valid = i < L;
    const int64_t ic = valid ? i : 0;  // rows past L read row 0's addresses, never its values

    float q[kSlice], go[kSlice], dq[kSlice];
    const float* qp = qkv + qkv_row(b, ic, 0, h, L, H, D);
    const float* gp = dout + out_row(b, ic, h, L, H, D);
    const float* op = out + out_row(b, ic, h, L, H, D);
    float di = 0.0f;
#pragma unroll
    for (int c = 0; c < kSlice; ++c) {
      const int d = c * G + g;
      const bool in = valid && d < D;
      q[c] = in ? qp[d] : 0.0f;
      go[c] = in ? gp[d] : 0.0f;
      di += go[c] * (in ? op[d] : 0.0f);
      dq[c] = 0.0f;
    }
    di = group_sum<G>(di);
    const float lse_i = valid ? lse[bh * L + i] : 0.0f;  // past L: p = 1, ds = 0, unused
    if (valid && g == 0) delta[bh * L + i] = di;

    for (int64_t j0 = 0; j0 < L; j0 += BK) {
      const int64_t n = min(int64_t(BK), L - j0);
      __syncthreads();
      stage_tile<DP, T>(ks, qkv, n, D, [&](int rr) { return qkv_row(b, j0 + rr, 1, h, L, H, D); });
      stage_tile<DP, T>(vs, qkv, n, D, [&](int rr) { return qkv_row(b, j0 + rr, 2, h, L, H, D); });
      __syncthreads();
      for (int j = 0; j < n; ++j) {  // n is uniform across the block
        const float* kr = ks + j * DP + g;
        float p, ds;
        prob_and_score_grad<G>(q, kr, go, vs + j * DP + g, scale, lse_i, di, p, ds);
#pragma unroll
        for (int c = 0; c < kSlice; ++c) dq[c] += ds * kr[c * G];
      }
    }

    if (valid) {
      float* dqp = dqkv + qkv_row(b, i, 0, h, L, H, D);
#pragma unroll
      for (int c = 0; c < kSlice; ++c) {
        const int d = c * G + g;
        if (d < D) dqp[d] = dq[c] * scale;
      }
    }
  }
}

// dk and dv parts of dqkv, one key row per lane group, over staged query tiles (q, dout, lse,
// delta). Layout as the forward, with keys in place of queries.
template <int DP>
__global__ void __launch_bounds__(kRows * (DP / kSlice), 1)
    attention_backward_dkdv_kernel(float* __restrict__ dqkv, const float* __restrict__ dout,
                                   const float* __restrict__ qkv, const float* __restrict__ lse,
                                   const float* __restrict__ delta, int64_t BH, int64_t L,
                                   int64_t H, int64_t D, float scale) {
  constexpr int G = DP / kSlice, T = kRows * G, BQ = kTile<DP>;
  __shared__ float qs[BQ * DP], gs[BQ * DP], ls[BQ], dls[BQ];
  const int g = threadIdx.x % G, r = threadIdx.x / G;
  const int64_t row_blocks = ceil_div(L, kRows);
  for (int64_t idx = blockIdx.x; idx < BH * row_blocks; idx += gridDim.x) {
    const int64_t bh = idx / row_blocks, b = bh / H, h = bh % H;
    const int64_t j = idx % row_blocks * kRows + r;
    const bool valid = j < L;
    const int64_t jc = valid ? j : 0;

    float k[kSlice], v[kSlice], dk[kSlice], dv[kSlice];
    const float* kp = qkv + qkv_row(b, jc, 1, h, L, H, D);
    const float* vp = qkv + qkv_row(b, jc, 2, h, L, H, D);
#pragma unroll
    for (int c = 0; c < kSlice; ++c) {
      const int d = c * G + g;
      const bool in = valid && d < D;
      k[c] = in ? kp[d] : 0.0f;
      v[c] = in ? vp[d] : 0.0f;
      dk[c] = 0.0f;
      dv[c] = 0.0f;
    }

    for (int64_t i0 = 0; i0 < L; i0 += BQ) {
      const int64_t n = min(int64_t(BQ), L - i0);
      __syncthreads();
      stage_tile<DP, T>(qs, qkv, n, D, [&](int rr) { return qkv_row(b, i0 + rr, 0, h, L, H, D); });
      stage_tile<DP, T>(gs, dout, n, D, [&](int rr) { return out_row(b, i0 + rr, h, L, H, D); });
      for (int e = threadIdx.x; e < BQ; e += T) {
        ls[e] = e < n ? lse[bh * L + i0 + e] : 0.0f;
        dls[e] = e < n ? delta[bh * L + i0 + e] : 0.0f;
      }
      __syncthreads();
      for (int i = 0; i < n; ++i) {  // n is uniform across the block
        const float* qr = qs + i * DP + g;
        const float* gr = gs + i * DP + g;
        float p, ds;
        prob_and_score_grad<G>(k, qr, v, gr, scale, ls[i], dls[i], p, ds);
#pragma unroll
        for (int c = 0; c < kSlice; ++c) {
          dv[c] += p * gr[c * G];
          dk[c] += ds * qr[c * G];
        }
      }
    }

    if (valid) {
      float* dkp = dqkv + qkv_row(b, j, 1, h, L, H, D);
      float* dvp = dqkv + qkv_row(b, j, 2, h, L, H, D);
#pragma unroll
      for (int c = 0; c < kSlice; ++c) {
        const int d = c * G + g;
        if (d < D) {
          dkp[d] = dk[c] * scale;
          dvp[d] = dv[c];
        }
      }
    }
  }
}

// ---- host side ---------------------------------------------------------------------------

template <int DP>
struct Padded {
  static constexpr int dims = DP, threads = kRows * (DP / kSlice);
};

// Runs launch(Padded<DP>{}) with D rounded up to 16, 32, 64 or 128 (D <= 128, checked by the
// binding).
template <typename Launch>
void with_padded_dim(int64_t D, Launch launch) {
  if (D <= 16)
    launch(Padded<16>{});
  else if (D <= 32)
    launch(Padded<32>{});
  else if (D <= 64)
    launch(Padded<64>{});
  else
    launch(Padded<128>{});
}

// Blocks for BH·ceil(L/kRows) row blocks: one each, up to gridDim.x's limit (the kernels
// stride over the rest).
unsigned grid_blocks(int64_t BH, int64_t L) {
  const int64_t blocks = BH * ceil_div(L, kRows);
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 0x7fffffff)));
}

}  // namespace

void attention_forward(float* out, float* lse, const float* qkv, int64_t B, int64_t L, int64_t H,
                       int64_t D) {
  if (B <= 0 || L <= 0 || H <= 0 || D <= 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t BH = B * H;
  with_padded_dim(D, [&](auto padded) {
    constexpr int DP = decltype(padded)::dims, T = decltype(padded)::threads;
    attention_forward_kernel<DP>
        <<<grid_blocks(BH, L), T, 0, stream()>>>(out, lse, qkv, BH, L, H, D, scale);
  });
  check_launch("attention_forward");
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                        const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) {
  if (B <= 0 || L <= 0 || H <= 0 || D <= 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t BH = B * H;
  Scratch scratch(size_t(BH * L) * sizeof(float));  // delta (B, H, L)
  float* delta = scratch.get<float>();
  with_padded_dim(D, [&](auto padded) {
    constexpr int DP = decltype(padded)::dims, T = decltype(padded)::threads;
    attention_backward_dq_kernel<DP><<<grid_blocks(BH, L), T, 0, stream()>>>(
        dqkv, delta, dout, qkv, out, lse, BH, L, H, D, scale);
    check_launch("attention_backward");
    attention_backward_dkdv_kernel<DP><<<grid_blocks(BH, L), T, 0, stream()>>>(
        dqkv, dout, qkv, lse, delta, BH, L, H, D, scale);
    check_launch("attention_backward");
  });
  scratch.release();
}

}  // namespace pit::cuda

PIT_CUDA_OP(attention_forward)
PIT_CUDA_OP(attention_backward)
