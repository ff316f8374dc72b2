// matmul on the GPU: out (batch, M, N) = op(A) · op(B) (+ bias), and its gradients, with the
// semantics of native/cpu/matmul.cc (see ops.h), for f32 operands (matmul_forward/_backward)
// and bf16 operands with fp32 accumulation (matmul_forward_bf16/_backward_bf16).
//
// Every product is one strided-batched GEMM (cuda/gemm.h's Gemm):
//   C[z] (M, N, ld ldc) = [C[z] +] op(A[z]) (M, K) · op(B[z]) (K, N) [+ bias (N)]
// run by the first engine that can (cuda/gemm.h, PIT_MATMUL):
//   1. cuBLASLt, when it is loaded (gemm_lt.cu: tensor cores for bf16; for f32
//      CUBLAS_COMPUTE_32F, fp32 products and sums like ours, never TF32, which PyTorch too
//      keeps off by default);
//   2. for bf16 operands, our tensor-core kernel (gemm_bf16.cu, mma.sync with fp32
//      accumulation). f32 operands never take it: their GEMMs keep f32 arithmetic (no caller
//      asks for bf16 compute on f32 tensors; mixed precision casts to bf16 tensors first);
//   3. the SIMT kernel below.
// The forward's bias rides cuBLASLt's BIAS epilogue, or our kernels' epilogue; the backward's
// bias gradient cuBLASLt's BGRADA/BGRADB epilogue on the weight-gradient GEMM, when that GEMM
// covers every row at once; otherwise (and on our kernels) a deterministic two-pass column sum
// of dout.
//
// The SIMT kernel (correctness first: plain CUDA cores, fp32 accumulation whatever the element
// type): a 64 x 64 block tile, K slices of 16, 256 threads each holding a 4 x 4 micro-tile of
// C in registers. Thread (tx, ty) = (t % 16, t / 16) owns rows ty + 16·i and columns tx + 16·j
// (i, j < 4), so a warp's stores cover 16 adjacent columns. Tiles are loaded with bounds
// checks and zero filled outside op(A) / op(B), so any M, N, K >= 0 works; K = 0 gives C = [C
// +] bias (or zeros), as on the CPU. Blocks grid-stride over N tiles, M tiles and the batch
// (times the K splits), so no grid dimension limit is ever hit. Elements are loaded as f32 or
// bf16 and stored as f32 or bf16 (rounded once, to nearest even).
//
// Split-K (cuda/split_k.h, as the tensor-core kernel): when the 64 × 64 tiles of a GEMM would
// fill fewer blocks than the GPU has SMs (the weight gradients: small M·N, K = batch·tokens),
// K is split so that tiles × splits fill one wave, each split at least 128 long; each split
// stores its fp32 partial tile to a workspace and split_k.cuh's second pass adds the splits in
// order and applies the epilogue. Deterministic, as the rest of this file.
//
// Which GEMMs an op is made of is cuda/matmul_plan.h's (pure C++, checked on the CPU with
// cuBLASLt's documented semantics by dev/gemm_lt_map_check.cc); this file runs them. The
// backward uses exactly the CPU's decomposition (matmul.cc, matmul_backward). Everything is
// deterministic: no atomics, and cuBLASLt runs the one algorithm cached for each call's shape.
// db summed over a shared-B batch is one GEMM over the concatenated rows when A is not
// transposed, and otherwise one GEMM per batch entry, accumulating in batch order on the one
// stream. dbias (column sums of dout viewed as (batch·M, N)), when not fused, uses row blocks
// of a length that depends on the row count only, each writing a partial row, then a
// fixed-order pass over the partials per column.
#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/bf16.cuh"
#include "cuda/column_sums.cuh"
#include "cuda/context.h"
#include "cuda/gemm.h"
#include "cuda/matmul_plan.h"
#include "cuda/op_table.h"
#include "cuda/split_k.cuh"
#include "cuda/split_k.h"

namespace pit::cuda {
namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr int kMaxGridYZ = 65535;

constexpr int64_t kSimtMinKPerSplit = 8 * kTileK;  // split-K: at least 8 K slices per split
constexpr int64_t kSimtMaxSplits = 32;

constexpr int64_t kMaxRowBlocks = 512;  // partial rows for dbias
constexpr int64_t kMinRowsPerBlock = 32;

// The SIMT kernel's arguments: cuda/gemm.h's Gemm with its element types made static.
template <typename In, typename Out>
struct SimtArgs {
  const In* a;
  const In* b;
  Out* c;
  const Out* bias;  // (N) or null
  int64_t M, N, K, batch;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;  // per batch entry; 0 = shared
  bool accumulate;
  // Split-K: split s reduces K range [s·k_per_split, …) and, with splits > 1, stores its raw
  // fp32 tile to partial (splits, batch, M, N) for split_k.cuh's reduction.
  int64_t splits, k_per_split;
  float* partial;
};

// grid = (N tiles, M tiles, batch·splits), each capped; blocks grid-stride over all three (the
// loop bounds are the same for every thread of a block, so the __syncthreads are uniform).
template <bool TA, bool TB, typename In, typename Out>
__global__ void __launch_bounds__(kGemmThreads) simt_gemm_kernel(const SimtArgs<In, Out> g) {
  // k-major tiles: As[k][i] = op(A)(m0 + i, k0 + k), Bs[k][j] = op(B)(k0 + k, n0 + j).
  // Padded by one: the transposing tile loads are not 16-way bank conflicts.
  __shared__ float As[kTileK][kTileM + 1];
  __shared__ float Bs[kTileK][kTileN + 1];
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int64_t m_tiles = (g.M + kTileM - 1) / kTileM, n_tiles = (g.N + kTileN - 1) / kTileN;

  for (int64_t zs = blockIdx.z; zs < g.batch * g.splits; zs += gridDim.z) {
    const int64_t z = zs / g.splits, split = zs % g.splits;
    const int64_t k_begin = split * g.k_per_split;
    const int64_t k_end = g.K - k_begin < g.k_per_split ? g.K : k_begin + g.k_per_split;
    const In* A = g.a + z * g.stride_a;
    const In* B = g.b + z * g.stride_b;
    Out* C = g.c + z * g.stride_c;
    float* part = g.splits > 1 ? g.partial + (split * g.batch + z) * g.M * g.N : nullptr;
    for (int64_t tm = blockIdx.y; tm < m_tiles; tm += gridDim.y) {
      for (int64_t tn = blockIdx.x; tn < n_tiles; tn += gridDim.x) {
        const int64_t m0 = tm * kTileM, n0 = tn * kTileN;
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

        for (int64_t k0 = k_begin; k0 < k_end; k0 += kTileK) {
          // Each tile is 64 x 16 = 1024 elements: 4 per thread, consecutive threads on the
          // stored-contiguous index so the global loads coalesce.
#pragma unroll
          for (int l = 0; l < 4; ++l) {
            const int idx = t + l * kGemmThreads;
            // op(A) tile
            {
              const int row = TA ? idx % kTileM : idx / kTileK;
              const int kk = TA ? idx / kTileM : idx % kTileK;
              const int64_t gi = m0 + row, gk = k0 + kk;
              float v = 0.0f;
              if (gi < g.M && gk < k_end) v = load_f32(TA ? A + gk * g.lda + gi : A + gi * g.lda + gk);
              As[kk][row] = v;
            }
            // op(B) tile
            {
              const int col = TB ? idx / kTileK : idx % kTileN;
              const int kk = TB ? idx % kTileK : idx / kTileN;
              const int64_t gj = n0 + col, gk = k0 + kk;
              float v = 0.0f;
              if (gj < g.N && gk < k_end) v = load_f32(TB ? B + gj * g.ldb + gk : B + gk * g.ldb + gj);
              Bs[kk][col] = v;
            }
          }
          __syncthreads();
#pragma unroll
          for (int kk = 0; kk < kTileK; ++kk) {
            float ar[4], br[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) ar[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) br[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
              for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
          }
          __syncthreads();  // the tiles are rewritten by the next K slice
        }

#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int64_t r = m0 + ty + 16 * i;
          if (r >= g.M) continue;
          Out* row = C + r * g.ldc;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int64_t c = n0 + tx + 16 * j;
            if (c >= g.N) continue;
            if (g.splits > 1)
              part[r * g.N + c] = acc[i][j];
            else
              split_k::store_out(row + c, split_k::finish(acc[i][j], row + c, g.bias ? g.bias + c : nullptr,
                                                          g.accumulate, false));
          }
        }
      }
    }
  }
}

// Returns whether K was split (the path counted: "simt" or "simt/split-K").
template <typename In, typename Out>
bool launch_simt(const Gemm& g, const char* op) {
  const int64_t K = std::max<int64_t>(g.K, 0);
  const int64_t m_tiles = (g.M + kTileM - 1) / kTileM, n_tiles = (g.N + kTileN - 1) / kTileN;
  const SplitK split =
      choose_split_k(m_tiles * n_tiles * g.batch, K, kTileK, kSimtMinKPerSplit, multiprocessors(), kSimtMaxSplits);
  Scratch workspace(split.splits > 1 ? size_t(split.splits * g.batch * g.M * g.N) * sizeof(float) : 0);
  const SimtArgs<In, Out> s{static_cast<const In*>(g.a), static_cast<const In*>(g.b), static_cast<Out*>(g.c),
                            static_cast<const Out*>(g.bias), g.M, g.N, K, g.batch,
                            g.lda, g.ldb, g.ldc, g.stride_a, g.stride_b, g.stride_c, g.accumulate,
                            split.splits, split.k_per_split, workspace.get<float>()};
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(n_tiles, INT_MAX)),
                  static_cast<unsigned>(std::min<int64_t>(m_tiles, kMaxGridYZ)),
                  static_cast<unsigned>(std::min<int64_t>(g.batch * split.splits, kMaxGridYZ)));
  if (!g.trans_a && !g.trans_b)
    simt_gemm_kernel<false, false, In, Out><<<grid, kGemmThreads, 0, stream()>>>(s);
  else if (!g.trans_a && g.trans_b)
    simt_gemm_kernel<false, true, In, Out><<<grid, kGemmThreads, 0, stream()>>>(s);
  else if (g.trans_a && !g.trans_b)
    simt_gemm_kernel<true, false, In, Out><<<grid, kGemmThreads, 0, stream()>>>(s);
  else
    simt_gemm_kernel<true, true, In, Out><<<grid, kGemmThreads, 0, stream()>>>(s);
  check_launch(op);
  if (split.splits > 1) {
    const split_k::ReduceArgs<Out> r{s.c, s.partial, s.bias, g.M, g.N, g.batch, split.splits,
                                     g.ldc, g.stride_c, g.accumulate, false};
    split_k::reduce_kernel<Out><<<grid_for(g.batch * g.M * g.N, split_k::kReduceThreads), split_k::kReduceThreads, 0,
                                  stream()>>>(r);
    check_launch(op);
  }
  workspace.release();
  return split.splits > 1;
}

// Runs one GEMM; nothing to do when batch, M or N is empty. K <= 0 still writes C = [C +]
// bias (zeros without bias or accumulate). Returns whether g.bias_grad was written too (only
// cuBLASLt fuses it; the caller sums dout apart otherwise).
bool gemm(const Gemm& g, const char* op) {
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return false;
  const MatmulMode mode = matmul_mode();
  if (mode == MatmulMode::Mma && g.in != DType::BF16)  // before anything runs, K = 0 or not
    throw TypeError(cat(op, ": PIT_MATMUL=mma, but the bf16 tensor-core GEMM cannot run this GEMM: ",
                        dtype_name(g.in), " operands (f32 GEMMs keep f32 arithmetic: use auto or simt)"));
  std::string why = "K = 0";
  if (g.K > 0) {
    // 1. cuBLASLt (it refuses at once under PIT_MATMUL=simt or mma).
    if (gemm_cublaslt(g, mode, &why)) return g.bias_grad != Gemm::BiasGrad::None;
    Gemm plain = g;  // the GEMM without the fused bias gradient: the column-sum step does it
    plain.bias_grad = Gemm::BiasGrad::None;
    plain.grad = nullptr;
    if (g.bias_grad != Gemm::BiasGrad::None) {
      const std::string fused = why;  // counted once: here, or below if this fails too
      if (gemm_cublaslt(plain, mode, &why)) {
        if (mode == MatmulMode::Auto) count_fallback(fused);
        return false;
      }
    }
    if (mode == MatmulMode::Cublaslt)
      throw TypeError(cat(op, ": PIT_MATMUL=cublaslt, but cuBLASLt cannot run this GEMM: ", why));
    if (mode == MatmulMode::Auto) count_fallback(why);
    // 2. Our tensor-core kernel, for bf16 operands.
    if (mode == MatmulMode::Mma || (mode == MatmulMode::Auto && g.in == DType::BF16)) {
      std::string mma_why;
      if (gemm_mma(plain, op, &mma_why)) return false;
      if (mode == MatmulMode::Mma)
        throw TypeError(cat(op, ": PIT_MATMUL=mma, but the bf16 tensor-core GEMM cannot run this GEMM: ", mma_why));
      count_fallback("tensor-core GEMM: " + mma_why);
    }
  }
  // 3. The SIMT kernel; also every K = 0 GEMM (C = [C +] bias, or zeros), whatever the mode.
  bool split = false;
  if (g.in == DType::F32 && g.out == DType::F32)
    split = launch_simt<float, float>(g, op);
  else if (g.in == DType::BF16 && g.out == DType::BF16)
    split = launch_simt<uint16_t, uint16_t>(g, op);
  else if (g.in == DType::BF16 && g.out == DType::F32)
    split = launch_simt<uint16_t, float>(g, op);
  else
    throw TypeError(cat(op, ": no GEMM for ", dtype_name(g.in), " operands into ", dtype_name(g.out)));
  count_path(split ? "simt/split-K" : "simt");
  return false;
}

// Partial column sums of x (rows, N): part (row_blocks, N) row k = Σ over rows
// [k·rows_per_block, +rows_per_block), in fp32. blockDim = (32, 8): 32 adjacent columns
// (coalesced loads), 8 row lanes combined in shared memory in lane order. grid = (ceil(N /
// 32), row_blocks); row_blocks <= kMaxRowBlocks. With one row block, the partial row is the
// answer and is stored as Out.
template <typename In, typename Out>
__global__ void column_partials_kernel(Out* __restrict__ part, const In* __restrict__ x, int64_t rows, int64_t N,
                                       int64_t rows_per_block) {
  __shared__ float s[8][33];  // padded: no bank conflicts on the column reads
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_block;
  const int64_t r1 = min(rows, r0 + rows_per_block);
  float v = 0.0f;
  if (c < N)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) v += load_f32(x + r * N + c);
  s[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0 && c < N) {
    for (int k = 1; k < 8; ++k) v += s[k][threadIdx.x];
    store_f32(part + int64_t(blockIdx.y) * N + c, v);
  }
}

// out (N) = column sums of x (rows, N), deterministic, summed in fp32; zeros when rows = 0.
template <typename In, typename Out>
void column_sums(Out* out, const In* x, int64_t rows, int64_t N) {
  if (rows <= 0) {
    PIT_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(N) * sizeof(Out), stream()));
    return;
  }
  const int64_t rows_per_block = std::max(kMinRowsPerBlock, (rows + kMaxRowBlocks - 1) / kMaxRowBlocks);
  const int64_t row_blocks = (rows + rows_per_block - 1) / rows_per_block;  // <= kMaxRowBlocks
  const dim3 grid(static_cast<unsigned>((N + 31) / 32), static_cast<unsigned>(row_blocks));
  if (row_blocks == 1) {  // the one partial row is the answer
    column_partials_kernel<<<grid, dim3(32, 8), 0, stream()>>>(out, x, rows, N, rows_per_block);
    check_launch("matmul_backward");
    return;
  }
  constexpr bool kF32Out = std::is_same_v<Out, float>;
  Scratch scratch(size_t(row_blocks * N + (kF32Out ? 0 : N)) * sizeof(float));
  float* part = scratch.get<float>();
  float* total;
  if constexpr (kF32Out)
    total = out;
  else
    total = part + row_blocks * N;  // summed in f32, then rounded once
  column_partials_kernel<<<grid, dim3(32, 8), 0, stream()>>>(part, x, rows, N, rows_per_block);
  check_launch("matmul_backward");
  sum_partials_kernel<<<grid_for(N, 8), dim3(32, 8), 0, stream()>>>(total, part, row_blocks, N);
  check_launch("matmul_backward");
  if constexpr (!kF32Out) cast_f32_to_bf16(out, total, N);  // the bf16 dbias, rounded once
  scratch.release();
}

void column_sums(void* out, DType out_dtype, const void* x, DType x_dtype, int64_t rows, int64_t N) {
  count_path("colsum");
  const bool in16 = x_dtype == DType::BF16, out16 = out_dtype == DType::BF16;
  if (!in16 && !out16)
    column_sums(static_cast<float*>(out), static_cast<const float*>(x), rows, N);
  else if (in16 && !out16)
    column_sums(static_cast<float*>(out), static_cast<const uint16_t*>(x), rows, N);
  else if (in16 && out16)
    column_sums(static_cast<uint16_t*>(out), static_cast<const uint16_t*>(x), rows, N);
  else
    column_sums(static_cast<uint16_t*>(out), static_cast<const float*>(x), rows, N);
}

// Runs a plan (cuda/matmul_plan.h) in order on the stream.
void run(const std::vector<MatmulStep>& steps, const char* op) {
  bool bias_grad_written = false;
  for (const MatmulStep& s : steps) {
    switch (s.kind) {
      case MatmulStep::Kind::Gemm:
        bias_grad_written |= gemm(s.gemm, op);
        break;
      case MatmulStep::Kind::Zero:
        PIT_CUDA_CHECK(cudaMemsetAsync(s.ptr, 0, s.bytes, stream()));
        break;
      case MatmulStep::Kind::ColumnSums:
        if (!bias_grad_written) column_sums(s.ptr, s.out_dtype, s.x, s.x_dtype, s.rows, s.N);
        break;
    }
  }
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch, int64_t M,
                    int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared, bool accumulate) {
  run(matmul_forward_plan(out, DType::F32, a, b, DType::F32, bias, batch, M, N, K, trans_a, trans_b, b_shared,
                          accumulate),
      "matmul_forward");
}

void matmul_backward(float* da, float* db, float* dbias, const float* dout, const float* a, const float* b,
                     int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared) {
  run(matmul_backward_plan(da, db, DType::F32, dbias, DType::F32, dout, a, b, DType::F32, batch, M, N, K, trans_a,
                           trans_b, b_shared),
      "matmul_backward");
}

void matmul_forward_bf16(void* out, DType out_dtype, const uint16_t* a, const uint16_t* b, const void* bias,
                         int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                         bool accumulate) {
  run(matmul_forward_plan(out, out_dtype, a, b, DType::BF16, bias, batch, M, N, K, trans_a, trans_b, b_shared,
                          accumulate),
      "matmul_forward");
}

void matmul_backward_bf16(uint16_t* da, void* db, DType db_dtype, void* dbias, DType dbias_dtype, const uint16_t* dout,
                          const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                          bool trans_a, bool trans_b, bool b_shared) {
  run(matmul_backward_plan(da, db, db_dtype, dbias, dbias_dtype, dout, a, b, DType::BF16, batch, M, N, K, trans_a,
                           trans_b, b_shared),
      "matmul_backward");
}

}  // namespace pit::cuda

PIT_CUDA_OP(matmul_forward)
PIT_CUDA_OP(matmul_backward)
PIT_CUDA_OP(matmul_forward_bf16)
PIT_CUDA_OP(matmul_backward_bf16)
