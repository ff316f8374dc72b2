// LayerNorm over the last axis of x (N, C) on the GPU, with the per-row mean and rstd kept
// for the backward; the same arithmetic as native/cpu/layernorm.cc (two-pass fp32 statistics,
// biased variance, rstd = 1/sqrt(var + eps) taken in double as there).
//
// Launch shape: rows are independent, so a "row group" of T threads owns one row at a time
// and strides over the rows of the grid. For C <= 1024 the group is one warp (T = 32, 8 rows
// per 256-thread block): a row is reduced with shuffles alone, and short rows (C = 192) do
// not leave most of a block idle. Longer rows get a whole block (T = 256, or 1024 beyond
// 8192) so each thread still has only a few elements. Every pass after the first re-reads
// the row from L1/L2, like the CPU kernel re-reads it from L1.
//
// dweight / dbias (C) are column sums over the N rows. They are computed without atomics:
// row blocks of a fixed length (a function of N only) each write a partial row to scratch
// (row_blocks, C), and a second kernel adds the partials of each column in a fixed tree
// order, so the result is bit-identical from run to run and from GPU to GPU.
#include "cuda/column_sums.cuh"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int64_t kMaxRowBlocks = 512;  // partial rows for dweight / dbias
constexpr int64_t kMinRowsPerBlock = 32;

// Σ v over the T threads (threadIdx.x) of a row group; every thread gets the same total.
// The xor butterfly adds a+b in one lane and b+a in its partner, which are equal, so all
// lanes agree bit for bit. T > 32 means one row group per block: scratch holds T/32 floats.
template <int T>
__device__ float group_sum(float v, float* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  if constexpr (T > 32) {
    __syncthreads();  // the previous call's readers are done with scratch
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = 0.0f;
#pragma unroll
    for (int w = 0; w < T / 32; ++w) v += scratch[w];  // the same order in every thread
  }
  return v;
}

// out (N, C), mean (N), rstd (N) or null; weight, bias (C) or null (1 and 0).
// blockDim = (T, G): G row groups of T threads; threadIdx.y picks the group.
template <int T, int G>
__global__ void layernorm_forward_kernel(float* __restrict__ out, float* __restrict__ mean,
                                         float* __restrict__ rstd, const float* __restrict__ x,
                                         const float* __restrict__ weight, const float* __restrict__ bias,
                                         int64_t N, int64_t C, float eps) {
  __shared__ float scratch[T > 32 ? T / 32 : 1];
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = int64_t(blockIdx.x) * G + threadIdx.y; r < N; r += int64_t(gridDim.x) * G) {
    const float* xr = x + r * C;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += T) s += xr[c];
    const float m = group_sum<T>(s, scratch) * inv_c;
    float q = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += T) {
      const float d = xr[c] - m;
      q += d * d;
    }
    const float var = group_sum<T>(q, scratch) * inv_c;
    const float rs = static_cast<float>(1.0 / sqrt(static_cast<double>(var) + eps));
    if (threadIdx.x == 0) {
      if (mean) mean[r] = m;
      if (rstd) rstd[r] = rs;
    }
    float* yr = out + r * C;
    for (int64_t c = threadIdx.x; c < C; c += T) {
      const float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
      yr[c] = (xr[c] - m) * rs * w + b;
    }
  }
}

// dx (N, C) = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w, x̂ = (x − mean)·rstd.
template <int T, int G>
__global__ void layernorm_backward_dx_kernel(float* __restrict__ dx, const float* __restrict__ dout,
                                             const float* __restrict__ x, const float* __restrict__ weight,
                                             const float* __restrict__ mean, const float* __restrict__ rstd,
                                             int64_t N, int64_t C) {
  __shared__ float scratch[2][T > 32 ? T / 32 : 1];
  const float inv_c = 1.0f / static_cast<float>(C);
  for (int64_t r = int64_t(blockIdx.x) * G + threadIdx.y; r < N; r += int64_t(gridDim.x) * G) {
    const float* xr = x + r * C;
    const float* gr = dout + r * C;
    const float m = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += T) {
      const float g = gr[c] * (weight ? weight[c] : 1.0f);
      sg += g;
      sgx += g * ((xr[c] - m) * rs);
    }
    const float mg = group_sum<T>(sg, scratch[0]) * inv_c;
    const float mgx = group_sum<T>(sgx, scratch[1]) * inv_c;
    float* dr = dx + r * C;
    for (int64_t c = threadIdx.x; c < C; c += T) {
      const float g = gr[c] * (weight ? weight[c] : 1.0f);
      dr[c] = rs * (g - mg - ((xr[c] - m) * rs) * mgx);
    }
  }
}

// Partial column sums: part_w, part_b (row_blocks, C) row k = Σ over rows
// [k·rows_per_block, +rows_per_block) of dout·x̂ and dout. blockDim = (32, 8): 32 adjacent
// columns (coalesced loads), 8 row lanes whose sums are combined in shared memory in lane
// order. grid = (ceil(C / 32), row_blocks). Either output may be null.
__global__ void layernorm_param_partials_kernel(float* __restrict__ part_w, float* __restrict__ part_b,
                                                const float* __restrict__ dout, const float* __restrict__ x,
                                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                                int64_t N, int64_t C, int64_t rows_per_block) {
  __shared__ float sw[8][33], sb[8][33];  // padded: no bank conflicts on the column reads
  const int64_t c = int64_t(blockIdx.x) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_block;
  const int64_t r1 = min(N, r0 + rows_per_block);
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const float g = dout[r * C + c];
      aw += g * ((x[r * C + c] - mean[r]) * rstd[r]);
      ab += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < 8; ++k) aw += sw[k][threadIdx.x], ab += sb[k][threadIdx.x];
    if (part_w) part_w[int64_t(blockIdx.y) * C + c] = aw;
    if (part_b) part_b[int64_t(blockIdx.y) * C + c] = ab;
  }
}

// Runs launch(Shape<T, G>{}) with the row-group shape for rows of C floats (see the header):
// a warp per row with 8 rows per block, or a block of 256 or 1024 threads per row.
template <int T, int G>
struct Shape {
  static constexpr int threads = T, groups = G;
};
template <typename Launch>
void with_row_shape(int64_t C, Launch launch) {
  if (C <= 1024)
    launch(Shape<32, 8>{});
  else if (C <= 8192)
    launch(Shape<256, 1>{});
  else
    launch(Shape<1024, 1>{});
}

}  // namespace

// out (N, C), mean (N), rstd (N) (either may be null) from x (N, C); weight, bias (C) or null.
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  with_row_shape(C, [&](auto shape) {
    constexpr int T = decltype(shape)::threads, G = decltype(shape)::groups;
    layernorm_forward_kernel<T, G>
        <<<grid_for(N, G), dim3(T, G), 0, stream()>>>(out, mean, rstd, x, weight, bias, N, C, eps);
  });
  check_launch("layernorm_forward");
}

// dx (N, C), dweight, dbias (C), each null when not wanted, from dout, x (N, C), weight (C)
// or null, mean, rstd (N).
void layernorm_backward(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                        const float* weight, const float* mean, const float* rstd, int64_t N,
                        int64_t C) {
  if (C <= 0) return;
  if (N <= 0) {  // an empty batch still owes zero parameter gradients (0.0f is all zero bits)
    if (dweight) PIT_CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(C) * sizeof(float), stream()));
    if (dbias) PIT_CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(C) * sizeof(float), stream()));
    return;
  }
  if (dx) {
    with_row_shape(C, [&](auto shape) {
      constexpr int T = decltype(shape)::threads, G = decltype(shape)::groups;
      layernorm_backward_dx_kernel<T, G>
          <<<grid_for(N, G), dim3(T, G), 0, stream()>>>(dx, dout, x, weight, mean, rstd, N, C);
    });
    check_launch("layernorm_backward");
  }
  if (!dweight && !dbias) return;

  // Row blocks of a length that depends on N only: at least kMinRowsPerBlock rows, at most
  // kMaxRowBlocks blocks. partials (2, row_blocks, C): dweight's, then dbias's.
  const int64_t rows_per_block = std::max(kMinRowsPerBlock, (N + kMaxRowBlocks - 1) / kMaxRowBlocks);
  const int64_t row_blocks = (N + rows_per_block - 1) / rows_per_block;  // <= kMaxRowBlocks
  Scratch scratch(size_t(2 * row_blocks * C) * sizeof(float));
  float* part_w = scratch.get<float>();
  float* part_b = part_w + row_blocks * C;
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(row_blocks));
  layernorm_param_partials_kernel<<<grid, dim3(32, 8), 0, stream()>>>(
      dweight ? part_w : nullptr, dbias ? part_b : nullptr, dout, x, mean, rstd, N, C, rows_per_block);
  check_launch("layernorm_backward");
  if (dweight) {
    sum_partials_kernel<<<grid_for(C, 8), dim3(32, 8), 0, stream()>>>(dweight, part_w, row_blocks, C);
    check_launch("layernorm_backward");
  }
  if (dbias) {
    sum_partials_kernel<<<grid_for(C, 8), dim3(32, 8), 0, stream()>>>(dbias, part_b, row_blocks, C);
    check_launch("layernorm_backward");
  }
  scratch.release();
}

}  // namespace pit::cuda

PIT_CUDA_OP(layernorm_forward)
PIT_CUDA_OP(layernorm_backward)

