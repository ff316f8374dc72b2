// The hybrid diffusion loss on the GPU, the same definition as native/cpu/diffusion_loss.cc
// (per-element math: core/diffusion.h, compiled for the device):
//   terms = [mean (ε̂ − ε)², mean vb term (bits, ε̂ detached)], loss = their sum,
// over model_out (B, 2C, N) = [ε̂; v] per sample and x0, xt, noise (B, C, N).
//
// Launch shape: as cuda/mse.cu, the two sums are float64 without atomics (fixed_order_sum.cuh):
// a grid sized by the element count alone writes one double partial per block for each sum,
// and one block adds them in a fixed order and writes loss and terms; bits repeat run to run.
// The backward is one elementwise pass that writes both halves of dout, reading dloss on the
// device (nothing synchronises). 32-bit indices when 2n fits (model_out has 2n elements).
#include <cstdint>

#include "core/diffusion.h"
#include "cuda/context.h"
#include "cuda/fixed_order_sum.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = kSumThreads;  // block_sum needs exactly this

template <typename I>
__global__ void loss_partials(double* __restrict__ se_part, double* __restrict__ vb_part, float* __restrict__ vb,
                              const float* __restrict__ model_out, const float* __restrict__ x0,
                              const float* __restrict__ xt, const float* __restrict__ noise,
                              const float* __restrict__ coefs, I n, I per) {
  double se = 0.0, vb_sum = 0.0;
  for (I i = I(blockIdx.x) * kThreads + threadIdx.x; i < n; i += I(gridDim.x) * kThreads) {
    const I b = i / per, e = i + b * per;  // ε̂ at b·2per + (i − b·per); v per further on
    const float eps_hat = model_out[e];
    const double d = static_cast<double>(eps_hat) - static_cast<double>(noise[i]);
    se += d * d;
    const float term =
        diffusion::vb_term(eps_hat, model_out[e + per], x0[i], xt[i], coefs + int64_t(b) * diffusion::kLossCoefs).value;
    if (vb) vb[i] = term;
    vb_sum += term;
  }
  se = block_sum(se);
  if (threadIdx.x == 0) se_part[blockIdx.x] = se;
  vb_sum = block_sum(vb_sum);
  if (threadIdx.x == 0) vb_part[blockIdx.x] = vb_sum;
}

// loss (1) and terms (2, or null) from the partials. One block of kThreads.
__global__ void loss_finish(float* __restrict__ loss, float* __restrict__ terms, const double* __restrict__ se_part,
                            const double* __restrict__ vb_part, unsigned count, int64_t n) {
  const double mse = sum_partials(se_part, count) / n;
  const double vb = sum_partials(vb_part, count) / n;
  if (threadIdx.x != 0) return;
  loss[0] = static_cast<float>(mse + vb);
  if (terms) {
    terms[0] = static_cast<float>(mse);
    terms[1] = static_cast<float>(vb);
  }
}

template <typename I>
__global__ void loss_backward_kernel(float* __restrict__ dout, const float* __restrict__ dloss,
                                     const float* __restrict__ model_out, const float* __restrict__ x0,
                                     const float* __restrict__ xt, const float* __restrict__ noise,
                                     const float* __restrict__ coefs, I n, I per, float inv_n) {
  const float g = dloss[0] * inv_n, mse_scale = 2.0f * g;
  for (I i = I(blockIdx.x) * kThreads + threadIdx.x; i < n; i += I(gridDim.x) * kThreads) {
    const I b = i / per, e = i + b * per;
    const float eps_hat = model_out[e];
    dout[e] = mse_scale * (eps_hat - noise[i]);
    dout[e + per] =
        g * diffusion::vb_term(eps_hat, model_out[e + per], x0[i], xt[i], coefs + int64_t(b) * diffusion::kLossCoefs).dv;
  }
}

bool fits_32_bits(int64_t n) { return 2 * n < (int64_t(1) << 31); }

}  // namespace

void diffusion_loss_forward(float* loss, float* terms, float* vb, const float* model_out, const float* x0,
                            const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                            int64_t N) {
  const int64_t per = C * N, n = B * per;
  if (n <= 0) {  // nothing to average: 0 (all zero bits), not NaN
    PIT_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), stream()));
    if (terms) PIT_CUDA_CHECK(cudaMemsetAsync(terms, 0, 2 * sizeof(float), stream()));
    return;
  }
  const unsigned blocks = sum_blocks(n);
  Scratch scratch(sizeof(double) * 2 * blocks);
  double* se_part = scratch.get<double>();
  double* vb_part = se_part + blocks;
  if (fits_32_bits(n))
    loss_partials<uint32_t><<<blocks, kThreads, 0, stream()>>>(se_part, vb_part, vb, model_out, x0, xt, noise, coefs,
                                                               static_cast<uint32_t>(n), static_cast<uint32_t>(per));
  else
    loss_partials<int64_t><<<blocks, kThreads, 0, stream()>>>(se_part, vb_part, vb, model_out, x0, xt, noise, coefs, n,
                                                              per);
  check_launch("diffusion_loss_forward");
  loss_finish<<<1, kThreads, 0, stream()>>>(loss, terms, se_part, vb_part, blocks, n);
  check_launch("diffusion_loss_forward");
  scratch.release();
}

void diffusion_loss_backward(float* dout, const float* dloss, const float* model_out, const float* x0,
                             const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                             int64_t N) {
  const int64_t per = C * N, n = B * per;
  if (n <= 0) return;
  const unsigned blocks = grid_for(n, kThreads);
  const float inv_n = static_cast<float>(1.0 / static_cast<double>(n));
  if (fits_32_bits(n))
    loss_backward_kernel<uint32_t><<<blocks, kThreads, 0, stream()>>>(
        dout, dloss, model_out, x0, xt, noise, coefs, static_cast<uint32_t>(n), static_cast<uint32_t>(per), inv_n);
  else
    loss_backward_kernel<int64_t><<<blocks, kThreads, 0, stream()>>>(dout, dloss, model_out, x0, xt, noise, coefs, n,
                                                                     per, inv_n);
  check_launch("diffusion_loss_backward");
}

}  // namespace pit::cuda

PIT_CUDA_OP(diffusion_loss_forward)
PIT_CUDA_OP(diffusion_loss_backward)
