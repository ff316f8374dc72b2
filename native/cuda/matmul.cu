// matmul on the GPU: out (batch, M, N) = op(A) · op(B) (+ bias), and its gradients, with the
// semantics of native/cpu/matmul.cc (see ops.h).
//
// This is the correctness-first f32 path: fp32 operands, fp32 accumulation, plain CUDA
// cores (no tensor cores, no TF32). It stands in until the bf16 tensor-core path exists.
//
// Everything goes through one strided-batched SGEMM kernel:
//   C[z] (M, N, ld ldc) = [C[z] +] op(A[z]) (M, K) · op(B[z]) (K, N) [+ bias (N)]
// with op = optional transpose (a template parameter each) and a per-operand batch stride
// (0 for an operand shared by the whole batch). Classic shared-memory tiling: a 64 x 64
// block tile, K slices of 16, 256 threads each holding a 4 x 4 micro-tile of C in registers.
// Thread (tx, ty) = (t % 16, t / 16) owns rows ty + 16·i and columns tx + 16·j (i, j < 4), so
// a warp's stores cover 16 adjacent columns. Tiles are loaded with bounds checks and zero
// filled outside op(A) / op(B), so any M, N, K >= 0 works; K = 0 gives C = [C +] bias (or
// zeros), as on the CPU. Blocks grid-stride over N tiles, M tiles and the batch, so no grid
// dimension limit is ever hit.
//
// The backward uses exactly the CPU's decomposition into GEMMs (matmul.cc, matmul_backward).
// Everything is deterministic: no atomics. db summed over a shared-B batch is one GEMM over
// the concatenated rows when A is not transposed, and otherwise one GEMM per batch entry,
// accumulating in batch order on the one stream. dbias (column sums of dout viewed as
// (batch·M, N)) uses row blocks of a length that depends on the row count only, each
// writing a partial row, then a fixed-order pass over the partials per column.
#include <climits>
#include <cstdint>

#include "cuda/column_sums.cuh"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr int kMaxGridYZ = 65535;

constexpr int64_t kMaxRowBlocks = 512;  // partial rows for dbias
constexpr int64_t kMinRowsPerBlock = 32;

// One strided-batched GEMM (all element counts, not bytes). op(A)(i, k) is a[i·lda + k],
// or a[k·lda + i] when transposed; op(B)(k, j) is b[k·ldb + j], or b[j·ldb + k].
struct Gemm {
  const float* a;
  const float* b;
  float* c;
  const float* bias;  // (N) or null
  int64_t M, N, K, batch;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;  // per batch entry; 0 = shared
  bool accumulate;
};

// grid = (N tiles, M tiles, batch), each capped; blocks grid-stride over all three (the loop
// bounds are the same for every thread of a block, so the __syncthreads are uniform).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kGemmThreads) sgemm_kernel(const Gemm g) {
  // k-major tiles: As[k][i] = op(A)(m0 + i, k0 + k), Bs[k][j] = op(B)(k0 + k, n0 + j).
  // Padded by one: the transposing tile loads are not 16-way bank conflicts.
  __shared__ float As[kTileK][kTileM + 1];
  __shared__ float Bs[kTileK][kTileN + 1];
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int64_t m_tiles = (g.M + kTileM - 1) / kTileM, n_tiles = (g.N + kTileN - 1) / kTileN;

  for (int64_t z = blockIdx.z; z < g.batch; z += gridDim.z) {
    const float* A = g.a + z * g.stride_a;
    const float* B = g.b + z * g.stride_b;
    float* C = g.c + z * g.stride_c;
    for (int64_t tm = blockIdx.y; tm < m_tiles; tm += gridDim.y) {
      for (int64_t tn = blockIdx.x; tn < n_tiles; tn += gridDim.x) {
        const int64_t m0 = tm * kTileM, n0 = tn * kTileN;
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

        for (int64_t k0 = 0; k0 < g.K; k0 += kTileK) {
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
              if (gi < g.M && gk < g.K) v = TA ? A[gk * g.lda + gi] : A[gi * g.lda + gk];
              As[kk][row] = v;
            }
            // op(B) tile
            {
              const int col = TB ? idx / kTileK : idx % kTileN;
              const int kk = TB ? idx % kTileK : idx / kTileN;
              const int64_t gj = n0 + col, gk = k0 + kk;
              float v = 0.0f;
              if (gj < g.N && gk < g.K) v = TB ? B[gj * g.ldb + gk] : B[gk * g.ldb + gj];
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
          float* row = C + r * g.ldc;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int64_t c = n0 + tx + 16 * j;
            if (c >= g.N) continue;
            float v = acc[i][j];
            if (g.accumulate) v = row[c] + v;
            if (g.bias) v += g.bias[c];
            row[c] = v;
          }
        }
      }
    }
  }
}

// Launches one strided-batched GEMM; nothing to do when batch, M or N is empty. K <= 0
// still writes C = [C +] bias (zeros without bias or accumulate).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
          int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
          int64_t stride_c, int64_t batch, bool accumulate, const float* bias, const char* op) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const Gemm g{a,   b,   c,   bias,     M,        N,        std::max<int64_t>(K, 0), batch,
               lda, ldb, ldc, stride_a, stride_b, stride_c, accumulate};
  const int64_t m_tiles = (M + kTileM - 1) / kTileM, n_tiles = (N + kTileN - 1) / kTileN;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(n_tiles, INT_MAX)),
                  static_cast<unsigned>(std::min<int64_t>(m_tiles, kMaxGridYZ)),
                  static_cast<unsigned>(std::min<int64_t>(batch, kMaxGridYZ)));
  if (!trans_a && !trans_b)
    sgemm_kernel<false, false><<<grid, kGemmThreads, 0, stream()>>>(g);
  else if (!trans_a && trans_b)
    sgemm_kernel<false, true><<<grid, kGemmThreads, 0, stream()>>>(g);
  else if (trans_a && !trans_b)
    sgemm_kernel<true, false><<<grid, kGemmThreads, 0, stream()>>>(g);
  else
    sgemm_kernel<true, true><<<grid, kGemmThreads, 0, stream()>>>(g);
  check_launch(op);
}

// Partial column sums of x (rows, N): part (row_blocks, N) row k = Σ over rows
// [k·rows_per_block, +rows_per_block). blockDim = (32, 8): 32 adjacent columns (coalesced
// loads), 8 row lanes combined in shared memory in lane order. grid = (ceil(N / 32),
// row_blocks); row_blocks <= kMaxRowBlocks.
__global__ void column_partials_kernel(float* __restrict__ part, const float* __restrict__ x, int64_t rows,
                                       int64_t N, int64_t rows_per_block) {
  __shared__ float s[8][33];  // padded: no bank conflicts on the column reads
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_block;
  const int64_t r1 = min(rows, r0 + rows_per_block);
  float v = 0.0f;
  if (c < N)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) v += x[r * N + c];
  s[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0 && c < N) {
    for (int k = 1; k < 8; ++k) v += s[k][threadIdx.x];
    part[int64_t(blockIdx.y) * N + c] = v;
  }
}

// out (N) = column sums of x (rows, N), deterministic; zeros when rows = 0. N > 0.
void column_sums(float* out, const float* x, int64_t rows, int64_t N) {
  if (rows <= 0) {
    PIT_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(N) * sizeof(float), stream()));
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
  Scratch scratch(size_t(row_blocks * N) * sizeof(float));
  float* part = scratch.get<float>();
  column_partials_kernel<<<grid, dim3(32, 8), 0, stream()>>>(part, x, rows, N, rows_per_block);
  check_launch("matmul_backward");
  sum_partials_kernel<<<grid_for(N, 8), dim3(32, 8), 0, stream()>>>(out, part, row_blocks, N);
  check_launch("matmul_backward");
  scratch.release();
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                    bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (b_shared && !trans_a) {  // the batch is just more rows of A: (batch·M, K)
    gemm(false, trans_b, batch * M, N, K, a, lda, 0, b, ldb, 0, out, N, 0, 1, accumulate, bias,
         "matmul_forward");
    return;
  }
  const int64_t b_stride = b_shared ? 0 : K * N;
  gemm(trans_a, trans_b, M, N, K, a, lda, M * K, b, ldb, b_stride, out, N, M * N, batch, accumulate,
       bias, "matmul_forward");
}

void matmul_backward(float* da, float* db, float* dbias, const float* dout, const float* a,
                     const float* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                     bool trans_b, bool b_shared) {
  const char* op = "matmul_backward";
  batch = std::max<int64_t>(batch, 0);
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  const int64_t b_stride = b_shared ? 0 : K * N;
  if (dbias && N > 0) column_sums(dbias, dout, std::max<int64_t>(M, 0) * batch, N);

  if (da && M > 0 && K > 0) {
    if (!trans_a) {
      // da (M, K) = dout (M, N) · op(B)ᵀ (N, K); op(B)ᵀ is B read as stored when trans_b.
      if (b_shared)
        gemm(false, !trans_b, batch * M, K, N, dout, N, 0, b, ldb, 0, da, K, 0, 1, false, nullptr, op);
      else
        gemm(false, !trans_b, M, K, N, dout, N, M * N, b, ldb, b_stride, da, K, M * K, batch, false,
             nullptr, op);
    } else {
      // da stored (K, M) = op(B) (K, N) · doutᵀ (N, M).
      gemm(trans_b, true, K, M, N, b, ldb, b_stride, dout, N, M * N, da, M, M * K, batch, false,
           nullptr, op);
    }
  }

  if (db && K > 0 && N > 0) {
    // db for `count` batch entries (strides sa, sd, sdb) over `rows` rows each: op(A)ᵀ (K, rows)
    // · dout (rows, N) in B's stored layout, i.e. when trans_b db (N, K) = doutᵀ (N, rows) ·
    // op(A) (rows, K). op(A)ᵀ is A as stored when trans_a.
    auto db_items = [&](int64_t rows, const float* ai, int64_t sa, const float* douti, int64_t sd,
                        float* dbi, int64_t sdb, int64_t count, bool accumulate) {
      if (!trans_b)
        gemm(!trans_a, false, K, N, rows, ai, lda, sa, douti, N, sd, dbi, N, sdb, count, accumulate,
             nullptr, op);
      else
        gemm(true, trans_a, N, K, rows, douti, N, sd, ai, lda, sa, dbi, K, sdb, count, accumulate,
             nullptr, op);
    };
    if (!b_shared) {
      db_items(M, a, M * K, dout, M * N, db, K * N, batch, false);
    } else if (!trans_a) {  // Σ over the batch = one GEMM over batch·M rows (0 rows: zeros)
      db_items(std::max<int64_t>(M, 0) * batch, a, 0, dout, 0, db, 0, 1, false);
    } else if (batch == 0) {
      PIT_CUDA_CHECK(cudaMemsetAsync(db, 0, size_t(K * N) * sizeof(float), stream()));
    } else {  // the batch entries all add into one db: one after another, in batch order
      for (int64_t i = 0; i < batch; ++i)
        db_items(M, a + i * M * K, 0, dout + i * M * N, 0, db, 0, 1, i > 0);
    }
  }
}

}  // namespace pit::cuda

PIT_CUDA_OP(matmul_forward)
PIT_CUDA_OP(matmul_backward)
