// Mean squared error with an optional per-token mask (the MAE loss: only masked-out tokens
// count) on the GPU, the same definition as native/cpu/mse.cc:
//   pred, target (B, L, P); mask (B, L) or null. e_t = mean over P of (pred - target)^2.
//   loss = Σ_t mask_t e_t / Σ_t mask_t   (mask null: every mask_t = 1, the plain mean)
// When Σ mask = 0 (or P = 0) no token counts: loss = 0 and dpred = 0, not NaN. Tokens with
// mask 0 are never read, so a NaN there stays out of both directions, as on the CPU.
//
// Launch shape: the sums are taken in float64 without atomics, for bits that repeat from run
// to run and GPU to GPU (cuda/fixed_order_sum.cuh): a grid whose size depends only on the
// element count writes one double partial per block, and one block adds the partials in a
// fixed tree order and finishes the scalar.
// dloss is a device pointer: the backward reads it in that finishing block, which writes
// the gradient's scale to scratch for the elementwise kernel; nothing synchronises.
// Elementwise index math uses 32-bit integers when the sizes allow (the common case): the
// token of an element is i / P, and a 64-bit division would dominate this memory-bound op.
#include <cstdint>

#include "cuda/context.h"
#include "cuda/fixed_order_sum.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = kSumThreads;  // every kernel here; block_sum needs exactly this

// part (gridDim.x): Σ mask_t (pred - target)^2 over n = tokens·P elements (mask null: 1).
template <typename I>
__global__ void squared_error_partials(double* __restrict__ part, const float* __restrict__ pred,
                                       const float* __restrict__ target, const float* __restrict__ mask, I n,
                                       I P) {
  double s = 0.0;
  for (I i = I(blockIdx.x) * kThreads + threadIdx.x; i < n; i += I(gridDim.x) * kThreads) {
    const float w = mask ? mask[i / P] : 1.0f;
    if (w == 0.0f) continue;
    const double d = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    s += w * (d * d);
  }
  s = block_sum(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// part (gridDim.x): Σ mask over `tokens` values.
__global__ void mask_partials(double* __restrict__ part, const float* __restrict__ mask, int64_t tokens) {
  double s = 0.0;
  for (int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x; t < tokens; t += int64_t(gridDim.x) * kThreads)
    s += mask[t];
  s = block_sum(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// loss (1) = Σ squared error / (weight · P), weight = Σ mask (or tokens); 0 when weight is 0.
// One block of kThreads. mask_part is null without a mask.
__global__ void mse_forward_finish(float* __restrict__ loss, const double* __restrict__ se_part,
                                   unsigned se_count, const double* __restrict__ mask_part, unsigned mask_count,
                                   int64_t tokens, int64_t P) {
  const double se = sum_partials(se_part, se_count);
  const double weight = mask_part ? sum_partials(mask_part, mask_count) : static_cast<double>(tokens);
  if (threadIdx.x == 0) loss[0] = weight == 0.0 ? 0.0f : static_cast<float>(se / (weight * P));
}

// scale (1) = 2·dloss[0] / (weight · P), 0 when weight is 0. One block of kThreads.
__global__ void mse_backward_scale(float* __restrict__ scale, const float* __restrict__ dloss,
                                   const double* __restrict__ mask_part, unsigned mask_count, int64_t tokens,
                                   int64_t P) {
  const double weight = mask_part ? sum_partials(mask_part, mask_count) : static_cast<double>(tokens);
  if (threadIdx.x == 0) scale[0] = weight == 0.0 ? 0.0f : static_cast<float>(2.0 * dloss[0] / (weight * P));
}

// dpred (n) = a·mask_t·(pred - target), exactly 0 where mask_t = 0; a = scale[0].
template <typename I>
__global__ void mse_backward_kernel(float* __restrict__ dpred, const float* __restrict__ scale,
                                    const float* __restrict__ pred, const float* __restrict__ target,
                                    const float* __restrict__ mask, I n, I P) {
  const float a = scale[0];
  for (I i = I(blockIdx.x) * kThreads + threadIdx.x; i < n; i += I(gridDim.x) * kThreads) {
    if (!mask) {
      dpred[i] = a * (pred[i] - target[i]);
      continue;
    }
    const float w = mask[i / P];
    dpred[i] = w == 0.0f ? 0.0f : (a * w) * (pred[i] - target[i]);
  }
}

// 32-bit indices when every index (and index + grid stride) fits.
bool fits_32_bits(int64_t n) { return n < (int64_t(1) << 31); }

}  // namespace

// loss (1) from pred, target (B, L, P) and mask (B, L) or null.
void mse_forward(float* loss, const float* pred, const float* target, const float* mask, int64_t B, int64_t L,
                 int64_t P) {
  const int64_t tokens = B * L, n = tokens * P;
  if (n <= 0) {  // no token, or P = 0: the loss is 0 (0.0f is all zero bits)
    PIT_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), stream()));
    return;
  }
  const unsigned se_blocks = sum_blocks(n), mask_blocks = mask ? sum_blocks(tokens) : 0;
  Scratch scratch(sizeof(double) * (se_blocks + mask_blocks));
  double* se_part = scratch.get<double>();
  double* mask_part = mask ? se_part + se_blocks : nullptr;
  if (fits_32_bits(n))
    squared_error_partials<uint32_t><<<se_blocks, kThreads, 0, stream()>>>(
        se_part, pred, target, mask, static_cast<uint32_t>(n), static_cast<uint32_t>(P));
  else
    squared_error_partials<int64_t><<<se_blocks, kThreads, 0, stream()>>>(se_part, pred, target, mask, n, P);
  check_launch("mse_forward");
  if (mask) {
    mask_partials<<<mask_blocks, kThreads, 0, stream()>>>(mask_part, mask, tokens);
    check_launch("mse_forward");
  }
  mse_forward_finish<<<1, kThreads, 0, stream()>>>(loss, se_part, se_blocks, mask_part, mask_blocks, tokens, P);
  check_launch("mse_forward");
  scratch.release();
}

// dpred (B, L, P) = dloss[0] · 2 (pred - target) · mask_t / (P · Σ mask); dloss on the device.
void mse_backward(float* dpred, const float* dloss, const float* pred, const float* target, const float* mask,
                  int64_t B, int64_t L, int64_t P) {
  const int64_t tokens = B * L, n = tokens * P;
  if (n <= 0) return;
  const unsigned mask_blocks = mask ? sum_blocks(tokens) : 0;
  // (mask_blocks doubles of partials, then the float scale), doubles first for alignment.
  Scratch scratch(sizeof(double) * (mask_blocks + 1));
  double* mask_part = mask ? scratch.get<double>() : nullptr;
  float* scale = reinterpret_cast<float*>(scratch.get<double>() + mask_blocks);
  if (mask) {
    mask_partials<<<mask_blocks, kThreads, 0, stream()>>>(mask_part, mask, tokens);
    check_launch("mse_backward");
  }
  mse_backward_scale<<<1, kThreads, 0, stream()>>>(scale, dloss, mask_part, mask_blocks, tokens, P);
  check_launch("mse_backward");
  const unsigned blocks = grid_for(n, kThreads);
  if (fits_32_bits(n))
    mse_backward_kernel<uint32_t><<<blocks, kThreads, 0, stream()>>>(
        dpred, scale, pred, target, mask, static_cast<uint32_t>(n), static_cast<uint32_t>(P));
  else
    mse_backward_kernel<int64_t><<<blocks, kThreads, 0, stream()>>>(dpred, scale, pred, target, mask, n, P);
  check_launch("mse_backward");
  scratch.release();
}

}  // namespace pit::cuda

PIT_CUDA_OP(mse_forward)
PIT_CUDA_OP(mse_backward)
