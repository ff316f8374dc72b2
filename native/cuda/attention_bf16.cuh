// attention_bf16: multi-head self-attention on packed bf16 qkv (B, L, 3, H, D) -> out
// (B, L, H, D) bf16 and lse (B, H, L) f32 (natural log, of the scaled scores), scale D^-0.5, no
// mask; backward dout, qkv, out, lse -> dqkv (B, L, 3, H, D) bf16. The tensor-core kernels
// behind attention_forward_bf16 / attention_backward_bf16 (dispatch in attention_bf16.cu, one
// instantiation per head dim in attention_bf16_d{16,32,64,128}.cu, every variant in each).
//
// FlashAttention-2 structure on mma.sync.m16n8k16 (bf16 in, fp32 accumulate; sm_80 and sm_90):
// a CTA of W warps owns 16·W rows (queries in the forward and dQ, keys in dK/dV), each warp one
// m16 tile of 16 rows, whose operand fragments and accumulators live in registers. The other
// side (keys and values, or queries and dO) streams through shared memory one tile at a time,
// double-buffered with cp.async (the next tile loads while this one is computed), each staged
// tile shared by all W warps. Scores never leave registers: an S accumulator of the mma is
// turned into the bf16 A operand of the next mma in place (the m16n8 C layout of two adjacent
// n-tiles is the m16k16 A layout).
//
// Variants, chosen per call by PIT_ATTENTION_VARIANT (attention_bf16.cu; default v1), all
// compiled from this one file through Config<D, V> below, so that a lent GPU can time them side
// by side (bench/gpu-session.sh) before one replaces the other. GPU speed of v2 is UNMEASURED:
// it was written without a GPU and checked in the emulator only (every case, every variant).
//   v1 (validated on an H200: forward 123-243 TFLOP/s): 4 warps, 64-row blocks everywhere; the
//      dK/dV kernel loads lse·log2e and Di for each query tile with plain global loads inside
//      the tile's staging (the block waits on them at the next barrier); at D = 128 the
//      backward re-reads the held side's fragments (K, V or Q, dO) by ldmatrix on every tile.
//   v2 (issue 15): 8 warps, 128-row blocks in all three kernels (each K/V or Q/dO tile staged
//      once for 128 rows: half the global-to-shared bytes per score); the delta kernel also
//      writes lse·log2e, and both statistics are padded per head to a multiple of 128 rows
//      (+inf and 0 past L), so dK/dV stages them with cp.async in the same copy group as their
//      Q, dO tile, with no bounds checks; at D = 128 the dK/dV query tile shrinks to 16 so that
//      K and V fragments stay in registers (255 registers, no spills, by ptxas -v for sm_90),
//      and dQ holds Q and dO in registers too (235); at D = 16, 32 a quarter of the score
//      exponentials run as an FMA polynomial (below). Not done yet: 4 warps × 32 rows (two
//      m16 tiles per warp, halving ldmatrix traffic per mma, as FlashAttention-2 does).
//   v3: v2 with every exp2 on MUFU, at D = 16, 32 only (elsewhere it is v2): the A/B of the
//      polynomial alone.
//
// Numerics. Every product accumulates in fp32. The softmax works in base 2 with the scale
// folded into one FFMA: p = exp2(s·scale·log2e − m·scale·log2e) with m the running row max of
// the raw scores s (forward), p = exp2(s·scale·log2e − lse·log2e) (backward). exp2 is one
// ex2.approx.ftz (MUFU.EX2) per score, or in v2 at D <= 32 for every 4th n-tile exp2_poly: a
// round-to-nearest range reduction and a degree-3 minimax polynomial on the FMA pipe, relative
// error 7.5e-5 (the emulator measures it against exp2f), far below P's bf16 rounding (2^-9).
// P is rounded to bf16 for the P·V product (its fp32 value feeds the row sum); dS = P ∘ (dP −
// Di) is formed in fp32 and rounded to bf16 for the dS·K and dSᵀ·Q products. lse = m·scale +
// ln(l).
//
// Exponentials per score (the ceiling at D = 16 and 32, where the mma work per score is only
// 4·D flops forward): forward 1 (the p above), plus 2 per lane and key tile for the rescale
// factors, i.e. 1/32 more per score with 128-key tiles (D 16, 32) and 1/16 with 64-key tiles
// (D 64, 128); backward 2 (p recomputed once in the dK/dV kernel and once in the dQ kernel).
// An SM issues 16 MUFU.EX2 per clock against 128 FFMA, so the polynomial's ~10 FMA-pipe and
// integer instructions cost less than the MUFU slot it frees as long as the FMA pipe has room:
// with ~3.5 other FMA-pipe instructions per score (the FFMA, FMNMX, FADD and half a bf16x2
// conversion forward), moving a fraction f to the polynomial balances the two units near f =
// 1/4 — an estimate from instruction counts, to be checked by timing (Config::poly_exp_every).
//
// Masking (any L >= 1). Rows past L of a staged tile are zero-filled by cp.async (src-size
// 0), so no poison or NaN from past the tensor ever reaches an mma. In the forward and dQ the
// scores of keys >= L are set to -inf before the row max (p = 0); in dK/dV the queries >= L
// get lse = +inf (p = 0) and Di = 0 (dS = 0). Rows >= L are never written; L = 1 works.
// Offsets are int64 ((b·L + l)·3·H·D exceeds 2^31 at L = 65,536 with a few heads); row
// indices within a tile are int.
//
// Backward (FlashAttention-2 split with recomputation; deterministic, no atomics):
//   1) delta kernel: Di = rowsum(dO ∘ O) in fp32 -> scratch (B, H, Ls) (v2: and lse·log2e).
//   2) dK/dV kernel, one CTA per 16·W keys, over all query tiles: Sᵀ = K·Qᵀ, Pᵀ, dPᵀ = V·dOᵀ,
//      dV += Pᵀ·dO, dSᵀ = Pᵀ ∘ (dPᵀ − Di), dK += dSᵀ·Q; each key row owned by one warp.
//   3) dQ kernel, one CTA per 16·W queries, over all key tiles: S = Q·Kᵀ, P, dP = dO·Vᵀ, dS,
//      dQ += dS·K.
//   Kernels 2 and 3 each recompute S (and dP): twice the QKᵀ and dO·Vᵀ work (7 matmuls of the
//   (L, L, D) size instead of 5) of a single pass that accumulates dQ across key blocks, in
//   exchange for every element of dqkv being written exactly once, by one thread, in a fixed
//   summation order: bitwise repeatable from run to run. A deterministic single pass was
//   considered (issue 15) and not taken, for now. It must add the dQ partials of all key
//   blocks in a fixed order: either (a) a semaphore per (head, query tile) that lets key block
//   j add its fp32 partial only after block j − 1 has (FlashAttention-3's deterministic mode:
//   the key blocks of a head run staggered, each waiting on its predecessor at every query
//   tile, with the dQ accumulator round-tripping through global memory), or (b) fp32 partials
//   (L/BK, L, D) summed in order afterwards (L²·D·4/BK bytes per head: 512 MiB at L = 16k,
//   D = 64, BK = 128; 6 GiB for 12 heads: too much). (a) saves 2 of the 7 matmuls (~29% of
//   the backward's mma work) against cross-CTA waits and dQ traffic whose cost only a GPU can
//   tell, and its ordering cannot be checked by this emulator (one CTA at a time), so it waits
//   until v2 has been measured.
//
// Grid. One CTA per (b·H + h, row block), flattened into blockIdx.x with a CTA-stride loop,
// so B·H has no gridDim.y/z limit and any L fits.
//
// Shared memory. Tiles are row-major (rows, D) with each row padded by 16 bytes (stride D + 8
// elements): the 8 row addresses of one ldmatrix phase (row stride an odd number of 16-byte
// units) then fall in 8 distinct groups of 4 banks, so ldmatrix and the 16-byte cp.async
// writes are conflict-free at every D without a swizzle.
//
// Tile sizes per head dim and variant (Config): chosen from register and shared-memory
// arithmetic, not yet from measurements (bench them: bench/gpu-session.sh times every variant).
//   forward keys per tile: 128 at D = 16, 32 (S is 16×128 fp32 = 64 registers per lane, and
//   the exp-bound inner loop wants long runs between barriers); 64 at D = 64, 128 (O at D =
//   128 is already 64 registers). Shared memory v1: 27, 45, 45, 85 KiB; v2: 30, 50, 54, 102.
//   backward tile (queries per dK/dV step, keys per dQ step): 64 at D <= 64; at D = 128, v1
//   32 with fragments re-read; v2 16 queries (dK/dV) and 32 keys (dQ), fragments in registers.
//
// The host emulator in native/cuda/dev/ compiles this file with its own versions of the
// primitives below (PIT_ATTENTION_BF16_EMULATE) to check the fragment bookkeeping on the CPU.
#pragma once
#include <cmath>
#include <cstdint>

#ifndef PIT_ATTENTION_BF16_EMULATE
#include "cuda/context.h"
#include "cuda/ptx.cuh"
#endif

namespace pit::cuda::attention_bf16 {

constexpr int kWarpRows = 16;  // one m16 tile per warp
constexpr int kDeltaThreads = 256;
constexpr float kLog2e = 1.4426950408889634f;
// v2's row statistics (lse·log2e, Di) are stored per head padded to a multiple of this many
// rows (every tile and block size divides it), so their tiles are staged without bounds checks.
constexpr int kStatsPad = 128;

// The kernels' compile-time shape, per head dim D and variant V (selected at run time by
// PIT_ATTENTION_VARIANT, attention_bf16.cu). v1 is the kernel as first validated on an H200;
// v2 the FlashAttention-2-level changes of issue 15; v3 is v2 with every exp2 on MUFU (no
// polynomial), so that a timing tells the polynomial's share of v2's change at D = 16, 32 (at
// D >= 64 v3 is v2, and the dispatch runs v2's instantiation). None is tuned by measurement yet.
template <int D_, int V>
struct Config {
  static_assert(D_ == 16 || D_ == 32 || D_ == 64 || D_ == 128, "head dims 16, 32, 64, 128");
  static_assert(V >= 1 && V <= 3, "variants 1, 2, 3");
  static constexpr int D = D_, variant = V;
  static constexpr int stride = D + 8;  // shared-memory row stride in elements (16 B pad)

  // Forward: warps × 16 queries per CTA, each K/V tile shared by all of them. v2's 8 warps
  // (128 queries) halve the K/V bytes staged per score.
  static constexpr int forward_warps = V == 1 ? 4 : 8;
  static constexpr int forward_keys = D <= 32 ? 128 : 64;
  // dK/dV: warps × 16 keys per CTA over query tiles of dkdv_queries. v2: 128 keys, and at D =
  // 128 K, V fragments held in registers (16-query tiles leave room for them) instead of
  // re-read by ldmatrix on every tile.
  static constexpr int dkdv_warps = V == 1 ? 4 : 8;
  static constexpr int dkdv_queries = D <= 64 ? 64 : V == 1 ? 32 : 16;
  static constexpr bool dkdv_fragments_in_registers = D <= 64 || V >= 2;
  // dQ: warps × 16 queries per CTA over key tiles of dq_keys; v2: 128 queries, and Q, dO
  // fragments in registers at D = 128 too (dQ is 64 registers there, not dK + dV's 128).
  static constexpr int dq_warps = V == 1 ? 4 : 8;
  static constexpr int dq_keys = D <= 64 ? 64 : 32;
  static constexpr bool dq_fragments_in_registers = D <= 64 || V >= 2;
  // v2: lse·log2e and Di come from padded buffers written by the delta kernel, staged with
  // cp.async beside their Q, dO tile (v1 loads them synchronously inside each tile).
  static constexpr bool staged_row_stats = V >= 2;
  // v2 at D <= 32: every poly_exp_every-th n-tile of scores takes exp2 as an FMA polynomial
  // (exp2_poly), off the MUFU unit, which is the ceiling there; 0: every exp2 on MUFU (v1, v3).
  static constexpr int poly_exp_every = V == 2 && D <= 32 ? 4 : 0;

  static constexpr int forward_rows = kWarpRows * forward_warps, forward_threads = 32 * forward_warps;
  static constexpr int dkdv_rows = kWarpRows * dkdv_warps, dkdv_threads = 32 * dkdv_warps;
  static constexpr int dq_rows = kWarpRows * dq_warps, dq_threads = 32 * dq_warps;
  static_assert(kStatsPad % dq_rows == 0 && kStatsPad % dkdv_queries == 0, "padded statistics cover every tile");

  // Shared memory per CTA.
  static constexpr int forward_smem_bytes = (forward_rows + 4 * forward_keys) * stride * 2;  // Q; 2 × (K, V)
  static constexpr int dkdv_smem_bytes =  // K, V; 2 × (Q, dO); 2 × (lse·log2e, Di)
      (2 * dkdv_rows + 4 * dkdv_queries) * stride * 2 + 4 * dkdv_queries * 4;
  static constexpr int dq_smem_bytes = (2 * dq_rows + 4 * dq_keys) * stride * 2;  // Q, dO; 2 × (K, V)
};

// Row stride of the backward's statistics buffers (delta, and v2's lse_log2e): L, or L padded.
template <class C>
__host__ __device__ constexpr int64_t stats_stride(int64_t L) {
  return C::staged_row_stats ? (L + kStatsPad - 1) / kStatsPad * kStatsPad : L;
}
// Floats of backward scratch: delta (BH, stride), and v2's lse_log2e (BH, stride) after it.
template <class C>
__host__ __device__ constexpr int64_t backward_scratch_floats(int64_t BH, int64_t L) {
  return (C::staged_row_stats ? 2 : 1) * BH * stats_stride<C>(L);
}

struct ForwardParams {
  uint16_t* out;        // (B, L, H, D) bf16
  float* lse;           // (B, H, L)
  const uint16_t* qkv;  // (B, L, 3, H, D) bf16
  int64_t BH, L, H;
  float scale, scale_log2;  // D^-0.5 and D^-0.5·log2(e)
};

struct BackwardParams {
  uint16_t* dqkv;        // (B, L, 3, H, D) bf16, every element written once
  float* delta;          // (B, H, Ls) scratch: Di = rowsum(dO ∘ O); rows >= L (v2): 0
  float* lse_log2e;      // v2: (B, H, Ls) scratch: lse·log2e; rows >= L: +inf. v1: null
  const uint16_t* dout;  // (B, L, H, D) bf16
  const uint16_t* qkv;   // (B, L, 3, H, D) bf16
  const uint16_t* out;   // (B, L, H, D) bf16
  const float* lse;      // (B, H, L)
  int64_t BH, L, H;
  int64_t Ls;  // row stride of delta and lse_log2e: stats_stride<C>(L)
  float scale, scale_log2;
};

// ---- warp-level primitives (PTX) ---------------------------------------------------------
#ifndef PIT_ATTENTION_BF16_EMULATE
// Shared with the GEMM (cuda/ptx.cuh): shared memory, barriers, mma.sync, ldmatrix, cp.async.
using ptx::block_sync;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_trans;
using ptx::mma_bf16_16816;
using ptx::smem_address;
using ptx::smem_base;

__device__ __forceinline__ void warp_sync() { __syncwarp(); }
__device__ __forceinline__ float shfl_xor(float v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }

// 16 bytes global -> shared, asynchronously; zero-filled (nothing read) when !valid.
__device__ __forceinline__ void cp_async_16(uint16_t* dst, const uint16_t* src, bool valid) {
  ptx::cp_async_zfill(dst, src, valid ? 16 : 0);
}

// 2^x in one MUFU.EX2 (relative error ~2^-22; denormal results flush to 0, 2^-inf = 0).
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// The bf16 in the low / high half of a word, as a float.
__device__ __forceinline__ float bf16_low(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_high(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

// A float's bits as an integer and back (no instruction: a register reinterpreted).
__device__ __forceinline__ uint32_t float_bits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ float bits_float(uint32_t b) { return __uint_as_float(b); }

// Two floats as a bf16 pair, round to nearest even; lo in the low half (the lower column).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

#endif  // !PIT_ATTENTION_BF16_EMULATE

// 2^x on the FMA pipe, for x <= 0 (a score minus its row max, or minus lse): range reduction
// x = j + f with j = round(x), f in [-1/2, 1/2] (exact: the magic-number add rounds, and the
// subtraction is exact by Sterbenz), then 2^f by a degree-3 minimax polynomial (relative
// error 7.5e-5, far under P's bf16 rounding of 2^-9), then 2^j added into the exponent bits.
// 10 FMA-pipe and integer instructions instead of one MUFU.EX2 at a quarter of their rate: at
// D = 16, 32 the exponential unit is the ceiling and this moves part of its load elsewhere.
// Special values as ex2.approx.ftz: -inf (and any x < -125) -> 0, NaN -> NaN.
__device__ __forceinline__ float exp2_poly(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: x + kRound rounds x to an integer
  const bool tiny = x < -125.0f;         // false for NaN, which then stays NaN throughout
  const float xc = tiny ? -125.0f : x;
  const float t = xc + kRound;
  const float f = xc - (t - kRound);  // in [-0.5, 0.5]
  // Minimax for 2^f on [-1/2, 1/2] (Remez, relative error; coefficients rounded to fp32).
  float q = fmaf(0.0551716685f, f, 0.2426111251f);
  q = fmaf(q, f, 0.6932609677f);
  q = fmaf(q, f, 0.9999280572f);
  // t's low mantissa bits hold j (two's complement, offset 2^22): << 23 leaves exactly j·2^23.
  const float r = bits_float(float_bits(q) + (float_bits(t) << 23));
  return tiny ? 0.0f : r;
}

// exp2 of a score in n-tile nt (a compile-time constant once unrolled): on the polynomial for
// every EVERY-th n-tile, on MUFU otherwise (EVERY = 0: always MUFU).
template <int EVERY>
__device__ __forceinline__ float exp2_score(int nt, float x) {
  if constexpr (EVERY > 0) {
    if (nt % EVERY == EVERY - 1) return exp2_poly(x);
  }
  return exp2_approx(x);
}

// Double buffering over `tiles` tiles: before the math on tile t, issue tile t + 1's copies
// into the other stage (stage_next(t + 1, (t + 1) & 1)), then wait for tile t's alone and
// sync the block, so the copies of one tile overlap the math of the one before.
template <typename StageNext>
__device__ __forceinline__ void await_tile(int64_t t, int64_t tiles, StageNext stage_next) {
  if (t + 1 < tiles) {
    stage_next(t + 1, static_cast<int>((t + 1) & 1));
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  block_sync();
}

// ---- tiles and fragments -----------------------------------------------------------------

__host__ __device__ constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }
// Rows of a `rows`-row tile starting at row r0 that exist (r0 < n), at most `rows`; may be <= 0.
__device__ __forceinline__ int rows_left(int64_t n, int64_t r0, int rows) {
  return static_cast<int>(n - r0 < rows ? n - r0 : rows);
}

// Element offsets of head h of batch b in the packed layouts.
template <int D>
struct HeadRows {
  int64_t token0;  // b·L
  int64_t H, h;
  __device__ __forceinline__ int64_t qkv(int64_t l, int part) const {  // part 0 q, 1 k, 2 v
    return ((token0 + l) * 3 + part) * H * D + h * D;
  }
  __device__ __forceinline__ int64_t out(int64_t l) const { return ((token0 + l) * H + h) * D; }
};

// Stages a ROWS-row tile (ROWS, D) into shared memory (row stride D + 8) with cp.async by a
// block of THREADS threads; rows >= n are zero-filled. row(r) is row r's first element in
// global memory (called for r < n).
template <int D, int ROWS, int THREADS, typename RowPtr>
__device__ __forceinline__ void stage_rows(uint16_t* tile, int n, RowPtr row) {
  constexpr int kChunks = D / 8, S = D + 8, kTotal = ROWS * kChunks;  // 16-byte chunks
#pragma unroll
  for (int i = 0; i < (kTotal + THREADS - 1) / THREADS; ++i) {
    const int c = i * THREADS + static_cast<int>(threadIdx.x);
    if (kTotal % THREADS != 0 && c >= kTotal) break;
    const int r = c / kChunks, k = c % kChunks;
    const bool valid = r < n;
    cp_async_16(tile + r * S + k * 8, row(valid ? r : 0) + k * 8, valid);
  }
}

// Stages key rows [k0, k0 + ROWS) of one head's K and V (zero-filled past L) into stage `stage`
// of the double-buffered tiles ks and vs, each 2 stages of (ROWS, D + 8).
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void stage_keys(uint16_t* ks, uint16_t* vs, int stage, int64_t k0, int64_t L, const uint16_t* qkv,
                                           const HeadRows<D>& head) {
  constexpr int S = D + 8;
  const int n = rows_left(L, k0, ROWS);
  stage_rows<D, ROWS, THREADS>(ks + stage * ROWS * S, n, [&](int r) { return qkv + head.qkv(k0 + r, 1); });
  stage_rows<D, ROWS, THREADS>(vs + stage * ROWS * S, n, [&](int r) { return qkv + head.qkv(k0 + r, 2); });
}

// Stages N floats (N % 4 == 0) from global src to shared dst, 16 bytes per cp.async, by
// threads [first, first + N / 4) of a block of THREADS. Both 16-byte aligned.
template <int N, int THREADS>
__device__ __forceinline__ void stage_floats(float* dst, const float* src, int first) {
  for (int c = static_cast<int>(threadIdx.x) - first; c >= 0 && c < N / 4; c += THREADS)
    cp_async_16(reinterpret_cast<uint16_t*>(dst + 4 * c), reinterpret_cast<const uint16_t*>(src + 4 * c), true);
}

// A-operand fragments (16 rows × K) of a warp's rows of a shared-memory tile: all held in
// registers (loaded once), or re-read with ldmatrix at each use (kInRegisters false, to save
// K/4 registers per lane where the accumulators need them).
template <int K, int S, bool kInRegisters>
struct AFragments;

template <int K, int S>
struct AFragments<K, S, true> {
  uint32_t f[K / 16][4];
  __device__ __forceinline__ void load(const uint16_t* rows) {  // rows: the warp's 16 rows
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int kc = 0; kc < K / 16; ++kc) ldmatrix_x4(f[kc], rows + (lane % 16) * S + kc * 16 + (lane / 16) * 8);
  }
  __device__ __forceinline__ void get(int kc, uint32_t (&a)[4]) const {
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = f[kc][i];
  }
};

template <int K, int S>
struct AFragments<K, S, false> {
  const uint16_t* rows_ = nullptr;
  __device__ __forceinline__ void load(const uint16_t* rows) { rows_ = rows; }
  __device__ __forceinline__ void get(int kc, uint32_t (&a)[4]) const {
    const int lane = threadIdx.x % 32;
    ldmatrix_x4(a, rows_ + (lane % 16) * S + kc * 16 + (lane / 16) * 8);
  }
};

// acc (16 × N) += A (16 × K) · Bᵀ, with B (N × K) row-major in shared memory (row stride S).
// B's rows are the n index, so the plain ldmatrix of 8 rows × 8 columns is the "col" operand:
// one x4 covers two n-tiles (16 rows) × 16 k.
template <int N, int K, int S, typename A>
__device__ __forceinline__ void mma_a_bt(float (&acc)[N / 8][4], const A& a, const uint16_t* b) {
  const int lane = threadIdx.x % 32;
  const uint16_t* lane_b = b + ((lane / 16) * 8 + lane % 8) * S + (lane / 8 % 2) * 8;
#pragma unroll
  for (int kc = 0; kc < K / 16; ++kc) {
    uint32_t af[4];
    a.get(kc, af);
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      uint32_t bf[4];
      ldmatrix_x4(bf, lane_b + np * 16 * S + kc * 16);
      mma_bf16_16816(acc[2 * np], af, bf[0], bf[1]);
      mma_bf16_16816(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (16 × N) += P (16 × K) · B, with P as bf16 A fragments and B (K × N) row-major in shared
// memory. B's rows are the k index, so the transposed ldmatrix gives the "col" operand: one
// x4 covers 16 k × two n-tiles.
template <int K, int N, int S>
__device__ __forceinline__ void mma_p_b(float (&acc)[N / 8][4], const uint32_t (&p)[K / 16][4], const uint16_t* b) {
  const int lane = threadIdx.x % 32;
  const uint16_t* lane_b = b + ((lane / 8 % 2) * 8 + lane % 8) * S + (lane / 16) * 8;
#pragma unroll
  for (int kc = 0; kc < K / 16; ++kc) {
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, lane_b + kc * 16 * S + np * 16);
      mma_bf16_16816(acc[2 * np], p[kc], bf[0], bf[1]);
      mma_bf16_16816(acc[2 * np + 1], p[kc], bf[2], bf[3]);
    }
  }
}

// A (16 × K) fp32 accumulator as bf16 A fragments: n-tiles 2kc and 2kc+1 of the C layout are
// exactly the four registers of the A layout for k-chunk kc.
template <int K>
__device__ __forceinline__ void to_a_fragments(uint32_t (&p)[K / 16][4], const float (&acc)[K / 8][4]) {
#pragma unroll
  for (int kc = 0; kc < K / 16; ++kc) {
    p[kc][0] = pack_bf16x2(acc[2 * kc][0], acc[2 * kc][1]);
    p[kc][1] = pack_bf16x2(acc[2 * kc][2], acc[2 * kc][3]);
    p[kc][2] = pack_bf16x2(acc[2 * kc + 1][0], acc[2 * kc + 1][1]);
    p[kc][3] = pack_bf16x2(acc[2 * kc + 1][2], acc[2 * kc + 1][3]);
  }
}

// Column (within the tile) of accumulator element e of n-tile nt for this lane.
__device__ __forceinline__ int acc_column(int nt, int e) { return nt * 8 + 2 * (static_cast<int>(threadIdx.x) % 4) + (e & 1); }

template <int N>
__device__ __forceinline__ void mask_columns(float (&s)[N / 8][4], int n) {
#pragma unroll
  for (int nt = 0; nt < N / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (acc_column(nt, e) >= n) s[nt][e] = -INFINITY;
}

// Writes a warp's (16 × D) accumulator, rows scaled by mul[0] (row g) and mul[1] (row g + 8),
// as bf16 rows r < n of global memory at dst(r). Staged through the warp's own 16 rows of a
// shared tile (which no other warp reads) so the global stores are 16 bytes wide.
template <int D, typename RowPtr>
__device__ __forceinline__ void store_rows(const float (&acc)[D / 8][4], const float (&mul)[2], uint16_t* stage, int n,
                                           RowPtr dst) {
  constexpr int S = D + 8, kChunks = D / 8;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  warp_sync();
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
    *reinterpret_cast<uint32_t*>(stage + g * S + dt * 8 + 2 * t) = pack_bf16x2(acc[dt][0] * mul[0], acc[dt][1] * mul[0]);
    *reinterpret_cast<uint32_t*>(stage + (g + 8) * S + dt * 8 + 2 * t) =
        pack_bf16x2(acc[dt][2] * mul[1], acc[dt][3] * mul[1]);
  }
  warp_sync();
#pragma unroll
  for (int i = 0; i < kWarpRows * kChunks / 32; ++i) {
    const int c = i * 32 + lane, r = c / kChunks, k = c % kChunks;
    if (r < n) *reinterpret_cast<uint4*>(dst(r) + k * 8) = *reinterpret_cast<const uint4*>(stage + r * S + k * 8);
  }
}

// ---- forward -----------------------------------------------------------------------------

template <class C>
__global__ void __launch_bounds__(C::forward_threads) forward_kernel(const ForwardParams p) {
  constexpr int D = C::D, BN = C::forward_keys, S = C::stride, ROWS = C::forward_rows, THREADS = C::forward_threads;
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem_base());  // (ROWS, S)
  uint16_t* ks = qs + ROWS * S;                               // 2 stages of (BN, S)
  uint16_t* vs = ks + 2 * BN * S;                             // 2 stages of (BN, S)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
  const int64_t L = p.L, q_tiles = ceil_div(L, ROWS), key_tiles = ceil_div(L, BN);

  for (int64_t item = blockIdx.x; item < p.BH * q_tiles; item += gridDim.x) {
    const int64_t bh = item / q_tiles, q0 = item % q_tiles * ROWS;
    const HeadRows<D> head{bh / p.H * L, p.H, bh % p.H};
    auto stage_kv = [&](int64_t k0, int stage) { stage_keys<D, BN, THREADS>(ks, vs, stage, k0, L, p.qkv, head); };

    block_sync();  // the previous item's readers of qs, ks, vs are done
    stage_rows<D, ROWS, THREADS>(qs, rows_left(L, q0, ROWS), [&](int r) { return p.qkv + head.qkv(q0 + r, 0); });
    stage_kv(0, 0);
    cp_async_commit();

    AFragments<D, S, true> q;
    float o[D / 8][4] = {};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8, raw-score max
    for (int64_t t = 0; t < key_tiles; ++t) {
      const int64_t k0 = t * BN;
      await_tile(t, key_tiles, [&](int64_t next, int stage) { stage_kv(next * BN, stage); });
      if (t == 0) q.load(qs + warp * kWarpRows * S);

      float s[BN / 8][4] = {};
      mma_a_bt<BN, D, S>(s, q, ks + (t & 1) * BN * S);  // S = Q·Kᵀ, raw
      if (k0 + BN > L) mask_columns<BN>(s, static_cast<int>(L - k0));

      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
      }
      float ms[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], shfl_xor(mx[r], 1));  // the 4 lanes of a quad share a row
        mx[r] = fmaxf(mx[r], shfl_xor(mx[r], 2));
        // Key 0 is real, so mx is finite from the first tile on; the guard keeps a row of
        // only masked keys at p = 0 instead of NaN.
        ms[r] = mx[r] == -INFINITY ? 0.0f : mx[r] * p.scale_log2;
        const float rescale = exp2_approx(m[r] * p.scale_log2 - ms[r]);  // 0 on the first tile
        m[r] = mx[r];
        l[r] *= rescale;
#pragma unroll
        for (int dt = 0; dt < D / 8; ++dt) {
          o[dt][2 * r] *= rescale;
          o[dt][2 * r + 1] *= rescale;
        }
      }
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[nt][e] = exp2_score<C::poly_exp_every>(nt, fmaf(s[nt][e], p.scale_log2, -ms[e / 2]));  // 1 FFMA + 1 exp2
          l[e / 2] += s[nt][e];  // this lane's part of the row sum; the quad sums at the end
        }

      uint32_t pf[BN / 16][4];
      to_a_fragments<BN>(pf, s);
      mma_p_b<BN, D, S>(o, pf, vs + (t & 1) * BN * S);  // O += P·V
      block_sync();  // every warp is done with this stage before it is refilled
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[r] += shfl_xor(l[r], 1);
      l[r] += shfl_xor(l[r], 2);
    }
    const int64_t row0 = q0 + warp * kWarpRows;
    const float inv[2] = {1.0f / l[0], 1.0f / l[1]};
    store_rows<D>(o, inv, qs + warp * kWarpRows * S, rows_left(L, row0, kWarpRows),
                  [&](int r) { return p.out + head.out(row0 + r); });
    if (lane % 4 == 0) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t i = row0 + g + 8 * r;
        if (i < L) p.lse[bh * L + i] = m[r] * p.scale + logf(l[r]);
      }
    }
  }
}

// ---- backward ----------------------------------------------------------------------------

// delta (B, H, Ls) = rowsum(dout ∘ out) in fp32, one thread per (b, l, h) row of D elements
// (16-byte loads); with staged row statistics (v2) also lse_log2e = lse·log2e, and the
// padding rows L <= l < Ls of both: delta 0, lse_log2e +inf (so p = 0 and dS = 0 there).
template <class C>
__global__ void __launch_bounds__(kDeltaThreads) backward_delta_kernel(const BackwardParams p) {
  constexpr int D = C::D;
  const int64_t rows = p.BH * p.L, pads = C::staged_row_stats ? p.BH * (p.Ls - p.L) : 0;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kDeltaThreads + threadIdx.x; r < rows + pads;
       r += static_cast<int64_t>(gridDim.x) * kDeltaThreads) {
    if (C::staged_row_stats && r >= rows) {
      const int64_t k = r - rows, per_head = p.Ls - p.L, at = k / per_head * p.Ls + p.L + k % per_head;
      p.delta[at] = 0.0f;
      p.lse_log2e[at] = INFINITY;
      continue;
    }
    const uint4* go = reinterpret_cast<const uint4*>(p.dout + r * D);
    const uint4* o = reinterpret_cast<const uint4*>(p.out + r * D);
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < D / 8; ++k) {
      const uint4 a = go[k], b = o[k];
      const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        acc = fmaf(bf16_low(aw[w]), bf16_low(bw[w]), acc);
        acc = fmaf(bf16_high(aw[w]), bf16_high(bw[w]), acc);
      }
    }
    const int64_t h = r % p.H, bl = r / p.H, b = bl / p.L, l = bl % p.L;
    p.delta[(b * p.H + h) * p.Ls + l] = acc;
    if (C::staged_row_stats) p.lse_log2e[(b * p.H + h) * p.Ls + l] = p.lse[(b * p.H + h) * p.L + l] * kLog2e;
  }
}

// dK, dV of dkdv_rows keys per CTA (16 per warp) over all query tiles.
template <class C>
__global__ void __launch_bounds__(C::dkdv_threads) backward_dkdv_kernel(const BackwardParams p) {
  constexpr int D = C::D, BQ = C::dkdv_queries, S = C::stride, ROWS = C::dkdv_rows, THREADS = C::dkdv_threads;
  constexpr bool kRegs = C::dkdv_fragments_in_registers;
  uint16_t* kts = reinterpret_cast<uint16_t*>(smem_base());  // (ROWS, S)
  uint16_t* vts = kts + ROWS * S;                              // (ROWS, S)
  uint16_t* qs = vts + ROWS * S;                               // 2 stages of (BQ, S)
  uint16_t* dos = qs + 2 * BQ * S;                             // 2 stages of (BQ, S)
  float* lse2s = reinterpret_cast<float*>(dos + 2 * BQ * S);   // 2 stages of BQ: lse·log2e
  float* dis = lse2s + 2 * BQ;                                 // 2 stages of BQ: Di
  const int warp = threadIdx.x / 32;
  const int64_t L = p.L, k_tiles = ceil_div(L, ROWS), q_tiles = ceil_div(L, BQ);

  for (int64_t item = blockIdx.x; item < p.BH * k_tiles; item += gridDim.x) {
    const int64_t bh = item / k_tiles, k0 = item % k_tiles * ROWS;
    const HeadRows<D> head{bh / p.H * L, p.H, bh % p.H};
    auto stage_queries = [&](int64_t i0, int stage) {
      const int n = rows_left(L, i0, BQ);
      stage_rows<D, BQ, THREADS>(qs + stage * BQ * S, n, [&](int r) { return p.qkv + head.qkv(i0 + r, 0); });
      stage_rows<D, BQ, THREADS>(dos + stage * BQ * S, n, [&](int r) { return p.dout + head.out(i0 + r); });
      // Queries past L get p = exp2(s·c − inf) = 0 and Di = 0, so dS = 0 and they add nothing.
      if (C::staged_row_stats) {
        // From the padded buffers (the padding holds +inf and 0): in the tile's copy group.
        stage_floats<BQ, THREADS>(lse2s + stage * BQ, p.lse_log2e + bh * p.Ls + i0, 0);
        stage_floats<BQ, THREADS>(dis + stage * BQ, p.delta + bh * p.Ls + i0, BQ / 4);
      } else {
        // Plain loads and stores, made visible by the block_sync before their use.
        for (int c = threadIdx.x; c < BQ; c += THREADS) {
          const bool valid = c < n;
          lse2s[stage * BQ + c] = valid ? p.lse[bh * L + i0 + c] * kLog2e : INFINITY;
          dis[stage * BQ + c] = valid ? p.delta[bh * p.Ls + i0 + c] : 0.0f;
        }
      }
    };

    block_sync();
    const int nk = rows_left(L, k0, ROWS);
    stage_rows<D, ROWS, THREADS>(kts, nk, [&](int r) { return p.qkv + head.qkv(k0 + r, 1); });
    stage_rows<D, ROWS, THREADS>(vts, nk, [&](int r) { return p.qkv + head.qkv(k0 + r, 2); });
    stage_queries(0, 0);
    cp_async_commit();

    AFragments<D, S, kRegs> kf, vf;
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    for (int64_t t = 0; t < q_tiles; ++t) {
      const int st = t & 1;
      await_tile(t, q_tiles, [&](int64_t next, int stage) { stage_queries(next * BQ, stage); });
      if (t == 0) {
        kf.load(kts + warp * kWarpRows * S);
        vf.load(vts + warp * kWarpRows * S);
      }
      const uint16_t* qt = qs + st * BQ * S;
      const uint16_t* dot = dos + st * BQ * S;
      const float* lse2 = lse2s + st * BQ;
      const float* di = dis + st * BQ;

      float s[BQ / 8][4] = {};
      mma_a_bt<BQ, D, S>(s, kf, qt);  // Sᵀ = K·Qᵀ (keys × queries), raw
#pragma unroll
      for (int nt = 0; nt < BQ / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[nt][e] = exp2_score<C::poly_exp_every>(nt, fmaf(s[nt][e], p.scale_log2, -lse2[acc_column(nt, e)]));
      float dp[BQ / 8][4] = {};
      mma_a_bt<BQ, D, S>(dp, vf, dot);  // dPᵀ = V·dOᵀ
      uint32_t pf[BQ / 16][4];
      to_a_fragments<BQ>(pf, s);
      mma_p_b<BQ, D, S>(dv, pf, dot);  // dV += Pᵀ·dO
#pragma unroll
      for (int nt = 0; nt < BQ / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[nt][e] = s[nt][e] * (dp[nt][e] - di[acc_column(nt, e)]);  // dSᵀ
      to_a_fragments<BQ>(pf, dp);
      mma_p_b<BQ, D, S>(dk, pf, qt);  // dK += dSᵀ·Q
      block_sync();
    }

    const int64_t row0 = k0 + warp * kWarpRows;
    const int n = rows_left(L, row0, kWarpRows);
    const float dk_mul[2] = {p.scale, p.scale}, dv_mul[2] = {1.0f, 1.0f};
    store_rows<D>(dk, dk_mul, kts + warp * kWarpRows * S, n, [&](int r) { return p.dqkv + head.qkv(row0 + r, 1); });
    store_rows<D>(dv, dv_mul, vts + warp * kWarpRows * S, n, [&](int r) { return p.dqkv + head.qkv(row0 + r, 2); });
  }
}

// dQ of dq_rows queries per CTA (16 per warp) over all key tiles.
template <class C>
__global__ void __launch_bounds__(C::dq_threads) backward_dq_kernel(const BackwardParams p) {
  constexpr int D = C::D, BK = C::dq_keys, S = C::stride, ROWS = C::dq_rows, THREADS = C::dq_threads;
  constexpr bool kRegs = C::dq_fragments_in_registers;
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem_base());  // (ROWS, S)
  uint16_t* dos = qs + ROWS * S;                              // (ROWS, S)
  uint16_t* ks = dos + ROWS * S;                              // 2 stages of (BK, S)
  uint16_t* vs = ks + 2 * BK * S;                             // 2 stages of (BK, S)
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4;
  const int64_t L = p.L, q_tiles = ceil_div(L, ROWS), k_tiles = ceil_div(L, BK);

  for (int64_t item = blockIdx.x; item < p.BH * q_tiles; item += gridDim.x) {
    const int64_t bh = item / q_tiles, q0 = item % q_tiles * ROWS;
    const HeadRows<D> head{bh / p.H * L, p.H, bh % p.H};
    auto stage_kv = [&](int64_t k0, int stage) { stage_keys<D, BK, THREADS>(ks, vs, stage, k0, L, p.qkv, head); };

    block_sync();
    const int nq = rows_left(L, q0, ROWS);
    stage_rows<D, ROWS, THREADS>(qs, nq, [&](int r) { return p.qkv + head.qkv(q0 + r, 0); });
    stage_rows<D, ROWS, THREADS>(dos, nq, [&](int r) { return p.dout + head.out(q0 + r); });
    stage_kv(0, 0);
    cp_async_commit();

    const int64_t row0 = q0 + warp * kWarpRows;
    float lse2[2], di[2];  // rows g and g + 8; rows past L: p = 0
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t i = row0 + g + 8 * r;
      if (C::staged_row_stats) {  // padded: rows past L hold +inf and 0
        lse2[r] = p.lse_log2e[bh * p.Ls + i];
        di[r] = p.delta[bh * p.Ls + i];
      } else {
        lse2[r] = i < L ? p.lse[bh * L + i] * kLog2e : INFINITY;
        di[r] = i < L ? p.delta[bh * p.Ls + i] : 0.0f;
      }
    }

    AFragments<D, S, kRegs> qf, df;
    float dq[D / 8][4] = {};
    for (int64_t t = 0; t < k_tiles; ++t) {
      const int64_t k0 = t * BK;
      const int st = t & 1;
      await_tile(t, k_tiles, [&](int64_t next, int stage) { stage_kv(next * BK, stage); });
      if (t == 0) {
        qf.load(qs + warp * kWarpRows * S);
        df.load(dos + warp * kWarpRows * S);
      }
      const uint16_t* kt = ks + st * BK * S;
      const uint16_t* vt = vs + st * BK * S;

      float s[BK / 8][4] = {};
      mma_a_bt<BK, D, S>(s, qf, kt);  // S = Q·Kᵀ, raw
      if (k0 + BK > L) mask_columns<BK>(s, static_cast<int>(L - k0));
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[nt][e] = exp2_score<C::poly_exp_every>(nt, fmaf(s[nt][e], p.scale_log2, -lse2[e / 2]));  // P
      float dp[BK / 8][4] = {};
      mma_a_bt<BK, D, S>(dp, df, vt);  // dP = dO·Vᵀ
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[nt][e] = s[nt][e] * (dp[nt][e] - di[e / 2]);  // dS
      uint32_t pf[BK / 16][4];
      to_a_fragments<BK>(pf, dp);
      mma_p_b<BK, D, S>(dq, pf, kt);  // dQ += dS·K
      block_sync();
    }

    const float dq_mul[2] = {p.scale, p.scale};
    store_rows<D>(dq, dq_mul, qs + warp * kWarpRows * S, rows_left(L, row0, kWarpRows),
                  [&](int r) { return p.dqkv + head.qkv(row0 + r, 0); });
  }
}

// ---- host side ---------------------------------------------------------------------------
#ifndef PIT_ATTENTION_BF16_EMULATE

// One CTA per work item, up to gridDim.x's limit (the kernels stride over the rest).
inline unsigned blocks_for(int64_t items) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(items, 0x7fffffff)));
}

template <typename Kernel>
void allow_smem(Kernel kernel, int bytes, const char* op) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), op);
}

// out (B, L, H, D) bf16, lse (B, H, L) from qkv (B, L, 3, H, D) bf16; V the variant.
template <int D, int V>
void forward(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H) {
  using C = Config<D, V>;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const ForwardParams p{out, lse, qkv, B * H, L, H, scale, scale * kLog2e};
  allow_smem(forward_kernel<C>, C::forward_smem_bytes, "attention_forward_bf16 (shared-memory limit)");
  forward_kernel<C><<<blocks_for(p.BH * ceil_div(L, C::forward_rows)), C::forward_threads, C::forward_smem_bytes,
                      stream()>>>(p);
  check_launch("attention_forward_bf16");
}

// dqkv (B, L, 3, H, D) bf16 from dout (B, L, H, D), qkv, out (bf16) and lse (B, H, L).
template <int D, int V>
void backward(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out, const float* lse,
              int64_t B, int64_t L, int64_t H) {
  using C = Config<D, V>;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t BH = B * H, Ls = stats_stride<C>(L);
  Scratch scratch(size_t(backward_scratch_floats<C>(BH, L)) * sizeof(float));  // delta (, lse_log2e)
  float* delta = scratch.get<float>();
  float* lse_log2e = C::staged_row_stats ? delta + BH * Ls : nullptr;
  const BackwardParams p{dqkv, delta, lse_log2e, dout, qkv, out, lse, BH, L, H, Ls, scale, scale * kLog2e};
  allow_smem(backward_dkdv_kernel<C>, C::dkdv_smem_bytes, "attention_backward_bf16 (shared-memory limit)");
  allow_smem(backward_dq_kernel<C>, C::dq_smem_bytes, "attention_backward_bf16 (shared-memory limit)");
  const int64_t delta_rows = C::staged_row_stats ? BH * Ls : BH * L;
  backward_delta_kernel<C><<<grid_for(delta_rows, kDeltaThreads), kDeltaThreads, 0, stream()>>>(p);
  check_launch("attention_backward_bf16 (delta)");
  backward_dkdv_kernel<C><<<blocks_for(BH * ceil_div(L, C::dkdv_rows)), C::dkdv_threads, C::dkdv_smem_bytes,
                            stream()>>>(p);
  check_launch("attention_backward_bf16 (dK, dV)");
  backward_dq_kernel<C><<<blocks_for(BH * ceil_div(L, C::dq_rows)), C::dq_threads, C::dq_smem_bytes, stream()>>>(p);
  check_launch("attention_backward_bf16 (dQ)");
  scratch.release();
}

#endif  // !PIT_ATTENTION_BF16_EMULATE

}  // namespace pit::cuda::attention_bf16
