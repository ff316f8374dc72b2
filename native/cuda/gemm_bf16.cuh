// gemm_bf16: our own bf16 tensor-core GEMM, the fallback when cuBLASLt is not loaded (and the
// engine PIT_MATMUL=mma forces). cuda/gemm.h's strided-batched GEMM for bf16 operands:
//   C[z] (M, N, ld ldc) = [C[z] +] op(A[z]) (M, K) · op(B[z]) (K, N) [+ bias (N)] [then erf GELU]
// with fp32 accumulation, C f32 or bf16 (rounded once), row-major operands in any of the four
// layouts (op = transpose or not, each with its own leading dimension), batch strides of 0 for
// a shared operand, any M, N, K >= 1. Launched by gemm_bf16.cu; run unchanged on the CPU by the
// emulator in dev/gemm_bf16_emulate.cc (ptx.cuh's primitives swapped for emulated ones).
//
// Tiles. A CTA of 8 warps (256 threads) computes a 128 × 128 tile of C, K in slices of 32.
// The warps form a 2 (M) × 4 (N) grid, each owning a 64 × 32 warp tile: 4 m16 × 4 n8 mma
// tiles, 64 fp32 accumulators per lane. Per 16-wide K step a warp issues 4 + 2 ldmatrix.x4 and
// 16 mma.sync.m16n8k16 (bf16 in, fp32 accumulate; sm_80 and sm_90 alike).
//
// Shared memory: 3 stages, each an A tile and a B tile stored as the operands lie in global
// memory (so every global read is a 16-byte copy along the contiguous dimension):
//   op(A) not transposed: A tile [128 m][32 k], k contiguous; transposed: [32 k][128 m].
//   op(B) transposed:     B tile [128 n][32 k], k contiguous; not:        [32 k][128 n].
// Each row is padded by 8 elements (16 bytes): row strides of 80 and 272 bytes are odd
// multiples of 16, so the 8 row addresses of an ldmatrix phase fall in 8 distinct 4-bank
// groups (no conflicts), without a swizzle. 3 × (10 + 10) KiB at most = 60 KiB (dynamic, the
// launcher raises the 48 KiB limit), leaving room for 2 CTAs per SM on sm_80/sm_90.
//
// Fragments (PTX ISA, mma.m16n8k16 with .row.col; lane = 4g + t):
//   A, m16 × k16: regs {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}. One
//     ldmatrix.x4 loads them: matrix i (row addresses from lanes 8i..8i+7) is rows 8·(i%2)..,
//     k 8·(i/2).. of the m16k16 block. From a k-contiguous tile that is a plain ldmatrix; from
//     an m-contiguous tile (A transposed) the same 8 × 8 blocks read with .trans.
//   B, k16 × n8: regs {(2t..2t+1, g), (2t+8.., g)}. One ldmatrix.x4 loads two n8 tiles: matrix
//     i is k 8·(i%2).., n 8·(i/2)..; plain from the n-rows tile (B transposed, k contiguous),
//     .trans from the k-rows tile.
//   C, m16 × n8: {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}: the epilogue stores pairs of
//     adjacent columns straight from registers.
//
// Pipeline (cp.async, multi-stage): the prologue issues K slices 0 .. S−2, one commit group
// each. Iteration kt waits until slice kt has landed (cp.async.wait_group S−2: the S−2 newer
// groups may still fly), syncs the block (everyone's copies visible; everyone done computing
// slice kt−1), then issues slice kt+S−1 into the stage slice kt−1 used, and computes slice kt
// while S−1 slices are in flight. A group is committed every iteration, empty or not, so the
// wait count stays right at the tail.
//
// Bounds. Copies are 16 bytes (8 elements) along the contiguous dimension; at a tail the
// copy's src-size is the bytes that exist (0 past the last row or column, or past this
// split's K range), and cp.async zero-fills the rest, so the mma sees zeros outside op(A) and
// op(B) and nothing past a tensor is ever read. The epilogue stores only rows < M, columns < N.
// cp.async needs 16-byte aligned sources: every operand's base 16-byte aligned, its leading
// dimension and batch stride multiples of 8 elements (all of this project's tensors, whose
// rows hold a multiple of 8 elements). Otherwise the launcher picks the kernel's Aligned =
// false form: the same tiles filled by guarded 2-byte loads and 16-byte shared stores
// (synchronous, slower; correct for any layout).
//
// Work. One work item per (batch entry, K split, M tile, N tile), N tiles fastest, flattened
// into blockIdx.x with a CTA-stride loop: no grid-dimension limit for any size.
//
// Split-K (split_k.h): with splits > 1, split s reduces K range [s·k_per_split, …) and stores
// its raw fp32 tile to the workspace `partial` (splits, batch, M, N); split_k.cuh's second pass
// adds the splits in order and applies the epilogue. Deterministic: no atomics anywhere.
//
// Not yet measured: no GPU was lent while this was written. The tile shape, stage count and
// the unswizzled padded layout are the common choices for mma.sync GEMMs on sm_80/sm_90, not
// the result of a measurement here; bench/gpu-session.sh times it beside cuBLASLt.
#pragma once
#include <cstdint>

#include "cuda/ptx.cuh"
#include "cuda/split_k.cuh"
#include "cuda/split_k.h"

namespace pit::cuda::gemm_bf16 {

using namespace ::pit::cuda::ptx;

constexpr int kTileM = 128, kTileN = 128, kTileK = 32;
constexpr int kStages = 3;
constexpr int kWarpsM = 2, kWarpsN = 4;
constexpr int kThreads = 32 * kWarpsM * kWarpsN;
constexpr int kWarpTileM = kTileM / kWarpsM, kWarpTileN = kTileN / kWarpsN;  // 64 × 32
constexpr int kMmaTilesM = kWarpTileM / 16, kMmaTilesN = kWarpTileN / 8;     // 4 × 4
constexpr int kPad = 8;  // elements (16 bytes) at the end of every shared-memory row
// Split-K: at least 8 K slices per split; at most 32 splits (split_k.h).
constexpr int64_t kMinKPerSplit = 8 * kTileK;
constexpr int64_t kMaxSplits = 32;

static_assert(kWarpTileM % 16 == 0 && kWarpTileN % 16 == 0, "whole m16 tiles, pairs of n8 tiles");
static_assert(kTileK % 16 == 0, "whole k16 steps");

__host__ __device__ constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// One operand's tile in one stage. k-contiguous: [rows][kTileK + kPad] (a row is one m or n);
// otherwise [kTileK][rows + kPad] (a row is one k). `outer` rows of `inner` elements.
template <bool KContiguous, int Rows>
struct OperandTile {
  static constexpr int outer = KContiguous ? Rows : kTileK;
  static constexpr int inner = KContiguous ? kTileK : Rows;
  static constexpr int stride = inner + kPad;
  static constexpr int elements = outer * stride;
  static constexpr int chunks = outer * inner / 8;  // 16-byte pieces per stage
  static_assert(inner % 8 == 0 && chunks % kThreads == 0, "every thread copies the same number of pieces");
  static_assert((stride * 2 / 16) % 2 == 1, "an odd number of 16-byte units per row: conflict-free ldmatrix");
};
template <bool TA>
using TileA = OperandTile<!TA, kTileM>;
template <bool TB>
using TileB = OperandTile<TB, kTileN>;

template <bool TA, bool TB>
__host__ __device__ constexpr int stage_elements() {
  return TileA<TA>::elements + TileB<TB>::elements;
}
template <bool TA, bool TB>
__host__ __device__ constexpr int smem_bytes() {
  return kStages * stage_elements<TA, TB>() * 2;
}
inline int smem_bytes(bool ta, bool tb) {
  return ta ? (tb ? smem_bytes<true, true>() : smem_bytes<true, false>())
            : (tb ? smem_bytes<false, true>() : smem_bytes<false, false>());
}

template <typename Out>
struct Params {
  const uint16_t* a;  // bf16
  const uint16_t* b;  // bf16
  Out* c;
  const Out* bias;  // (N) or null
  float* partial;   // split-K workspace (splits, batch, M, N), when splits > 1
  int64_t M, N, K, batch;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;  // per batch entry; 0 = shared
  int64_t splits, k_per_split;           // splits = 1: k_per_split >= K
  bool accumulate, gelu;
  bool pair_stores;  // c, ldc and stride_c allow 2-element stores (4 bytes bf16, 8 bytes f32)
};

// ---- host: the launch's shape (pure C++; the emulator runs the same) -------------------------

// cp.async's 16-byte sources: base aligned, ld and the batch stride whole 16-byte units.
inline bool copyable(const void* p, int64_t ld, int64_t stride, int64_t batch) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0 && (batch == 1 || stride % 8 == 0);
}
inline int64_t work_items(int64_t M, int64_t N, int64_t batch, int64_t splits) {
  return ceil_div(M, kTileM) * ceil_div(N, kTileN) * batch * splits;
}
inline SplitK split_for(int64_t M, int64_t N, int64_t K, int64_t batch, int64_t sms) {
  return choose_split_k(ceil_div(M, kTileM) * ceil_div(N, kTileN) * batch, K, kTileK, kMinKPerSplit, sms, kMaxSplits);
}

// ---- device --------------------------------------------------------------------------------

// Copies one operand's K slice into a stage: tile rows [rc0, rc0 + Rows) of the M or N
// dimension (ending at rc_end), K range [k0, min(k0 + kTileK, k_end)). g is the operand of this
// batch entry, element (row or column r, k) at g[r·ld + k] when k-contiguous, g[k·ld + r] if not.
template <bool KContiguous, int Rows, bool Aligned>
__device__ __forceinline__ void load_operand(uint16_t* tile, const uint16_t* g, int64_t ld, int64_t rc0,
                                             int64_t rc_end, int64_t k0, int64_t k_end) {
  using T = OperandTile<KContiguous, Rows>;
  const int64_t outer0 = KContiguous ? rc0 : k0, outer_end = KContiguous ? rc_end : k_end;
  const int64_t inner0 = KContiguous ? k0 : rc0, inner_end = KContiguous ? k_end : rc_end;
#pragma unroll
  for (int i = 0; i < T::chunks / kThreads; ++i) {
    const int piece = static_cast<int>(threadIdx.x) + i * kThreads;
    const int row = piece / (T::inner / 8), col = piece % (T::inner / 8) * 8;
    const int64_t go = outer0 + row, gi = inner0 + col;
    const int64_t left = go < outer_end ? inner_end - gi : 0;
    const int valid = left <= 0 ? 0 : left >= 8 ? 8 : static_cast<int>(left);  // elements that exist
    uint16_t* dst = tile + row * T::stride + col;
    if constexpr (Aligned) {
      cp_async_zfill(dst, valid > 0 ? g + go * ld + gi : g, 2 * valid);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const uint32_t lo = 2 * e < valid ? load_global_u16(g + go * ld + gi + 2 * e) : 0u;
        const uint32_t hi = 2 * e + 1 < valid ? load_global_u16(g + go * ld + gi + 2 * e + 1) : 0u;
        w[e] = lo | (hi << 16);
      }
      store_shared_16(dst, uint4{w[0], w[1], w[2], w[3]});
    }
  }
}

// The warp's A fragments (4 m16 tiles from row warp_m0) at k offset kk of a stage's A tile.
template <bool TA>
__device__ __forceinline__ void load_a_fragments(uint32_t (&a)[kMmaTilesM][4], const uint16_t* tile, int warp_m0,
                                                 int kk, int lane) {
  constexpr int S = TileA<TA>::stride;
  const int r = lane % 8, i = lane / 8;  // row r of 8 × 8 matrix i
#pragma unroll
  for (int mi = 0; mi < kMmaTilesM; ++mi) {
    const int m0 = warp_m0 + 16 * mi;
    if constexpr (!TA)
      ldmatrix_x4(a[mi], tile + (m0 + r + 8 * (i % 2)) * S + kk + 8 * (i / 2));
    else
      ldmatrix_x4_trans(a[mi], tile + (kk + r + 8 * (i / 2)) * S + m0 + 8 * (i % 2));
  }
}

// The warp's B fragments (4 n8 tiles from column warp_n0, loaded in pairs) at k offset kk.
template <bool TB>
__device__ __forceinline__ void load_b_fragments(uint32_t (&b)[kMmaTilesN][2], const uint16_t* tile, int warp_n0,
                                                 int kk, int lane) {
  constexpr int S = TileB<TB>::stride;
  const int r = lane % 8, i = lane / 8;
#pragma unroll
  for (int pair = 0; pair < kMmaTilesN / 2; ++pair) {
    const int n0 = warp_n0 + 16 * pair;
    uint32_t q[4];
    if constexpr (TB)
      ldmatrix_x4(q, tile + (n0 + r + 8 * (i / 2)) * S + kk + 8 * (i % 2));
    else
      ldmatrix_x4_trans(q, tile + (kk + r + 8 * (i % 2)) * S + n0 + 8 * (i / 2));
    b[2 * pair][0] = q[0];
    b[2 * pair][1] = q[1];
    b[2 * pair + 1][0] = q[2];
    b[2 * pair + 1][1] = q[3];
  }
}

// Stores columns col and col + 1 of one row (col + 1 only when has_next), finishing each.
template <typename Out>
__device__ __forceinline__ void store_pair(const Params<Out>& p, Out* dst, int64_t col, float v0, float v1,
                                           bool has_next) {
  const Out* bias = p.bias ? p.bias + col : nullptr;
  const float r0 = split_k::finish(v0, dst, bias, p.accumulate, p.gelu);
  if (!has_next) {
    split_k::store_out(dst, r0);
    return;
  }
  const float r1 = split_k::finish(v1, dst + 1, bias ? bias + 1 : nullptr, p.accumulate, p.gelu);
  if (p.pair_stores) {
    if constexpr (sizeof(Out) == 4) {
      *reinterpret_cast<float2*>(dst) = float2{r0, r1};
    } else {
      *reinterpret_cast<uint32_t*>(dst) = uint32_t(float_to_bf16_bits(r0)) | (uint32_t(float_to_bf16_bits(r1)) << 16);
    }
  } else {
    split_k::store_out(dst, r0);
    split_k::store_out(dst + 1, r1);
  }
}

template <bool TA, bool TB, bool Aligned, typename Out>
__global__ void __launch_bounds__(kThreads, 2) gemm_kernel(const Params<Out> p) {
  uint16_t* smem = reinterpret_cast<uint16_t*>(smem_base());
  constexpr int kStage = stage_elements<TA, TB>();
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int warp_m0 = warp / kWarpsN * kWarpTileM, warp_n0 = warp % kWarpsN * kWarpTileN;
  const int g = lane / 4, t = lane % 4;
  const int64_t m_tiles = ceil_div(p.M, kTileM), n_tiles = ceil_div(p.N, kTileN);
  const int64_t items = m_tiles * n_tiles * p.splits * p.batch;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t tn = item % n_tiles, tm = item / n_tiles % m_tiles;
    const int64_t split = item / (n_tiles * m_tiles) % p.splits, z = item / (n_tiles * m_tiles * p.splits);
    const int64_t m0 = tm * kTileM, n0 = tn * kTileN;
    const int64_t k_begin = split * p.k_per_split;
    const int64_t k_end = p.K - k_begin < p.k_per_split ? p.K : k_begin + p.k_per_split;
    const int64_t k_slices = ceil_div(k_end - k_begin, kTileK);
    const uint16_t* A = p.a + z * p.stride_a;
    const uint16_t* B = p.b + z * p.stride_b;

    auto load_slice = [&](int64_t kt) {
      uint16_t* stage = smem + static_cast<int>(kt % kStages) * kStage;
      const int64_t k0 = k_begin + kt * kTileK;
      load_operand<!TA, kTileM, Aligned>(stage, A, p.lda, m0, p.M, k0, k_end);
      load_operand<TB, kTileN, Aligned>(stage + TileA<TA>::elements, B, p.ldb, n0, p.N, k0, k_end);
    };

    float acc[kMmaTilesM][kMmaTilesN][4];
#pragma unroll
    for (int mi = 0; mi < kMmaTilesM; ++mi)
#pragma unroll
      for (int ni = 0; ni < kMmaTilesN; ++ni)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < k_slices) load_slice(s);
      cp_async_commit();
    }
    for (int64_t kt = 0; kt < k_slices; ++kt) {
      cp_async_wait<kStages - 2>();
      block_sync();
      if (kt + kStages - 1 < k_slices) load_slice(kt + kStages - 1);
      cp_async_commit();
      const uint16_t* stage = smem + static_cast<int>(kt % kStages) * kStage;
#pragma unroll
      for (int kk = 0; kk < kTileK; kk += 16) {
        uint32_t af[kMmaTilesM][4], bf[kMmaTilesN][2];
        load_a_fragments<TA>(af, stage, warp_m0, kk, lane);
        load_b_fragments<TB>(bf, stage + TileA<TA>::elements, warp_n0, kk, lane);
#pragma unroll
        for (int mi = 0; mi < kMmaTilesM; ++mi)
#pragma unroll
          for (int ni = 0; ni < kMmaTilesN; ++ni) mma_bf16_16816(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
      }
    }
    cp_async_wait<0>();  // only empty groups remain; none may outlive the item

    // Epilogue, from registers: lane (g, t) holds rows g and g + 8, columns 2t and 2t + 1 of
    // each mma tile.
#pragma unroll
    for (int mi = 0; mi < kMmaTilesM; ++mi)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t row = m0 + warp_m0 + 16 * mi + g + 8 * half;
        if (row >= p.M) continue;
#pragma unroll
        for (int ni = 0; ni < kMmaTilesN; ++ni) {
          const int64_t col = n0 + warp_n0 + 8 * ni + 2 * t;
          if (col >= p.N) continue;
          const float v0 = acc[mi][ni][2 * half], v1 = acc[mi][ni][2 * half + 1];
          if (p.splits > 1) {
            float* part = p.partial + ((split * p.batch + z) * p.M + row) * p.N + col;
            part[0] = v0;
            if (col + 1 < p.N) part[1] = v1;
          } else {
            store_pair(p, p.c + z * p.stride_c + row * p.ldc + col, col, v0, v1, col + 1 < p.N);
          }
        }
      }
    block_sync();  // every warp is done with the stages before the next item refills them
  }
}

}  // namespace pit::cuda::gemm_bf16
