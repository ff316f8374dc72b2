// One sampling step of Gaussian diffusion on the GPU, as native/cpu/diffusion_step.cc:
// core/diffusion.h's step_element per element of x (B, C, N), with classifier-free guidance
// read from the two halves of model_out. One grid-stride pass; 32-bit indices when the model
// output's element count fits.
#include <cstdint>

#include "core/diffusion.h"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;

template <typename I>
__global__ void __launch_bounds__(kThreads)
    step_kernel(float* __restrict__ x_next, const float* __restrict__ model_out, const float* __restrict__ uncond,
                const float* xt, const float* __restrict__ noise, diffusion::Step step, I n, I per, I N, I C,
                I Cout) {
  // xt is not __restrict__: x_next may be xt (element for element).
  const bool learned_sigma = Cout == 2 * C;
  for (I i = I(blockIdx.x) * kThreads + threadIdx.x; i < n; i += I(gridDim.x) * kThreads) {
    const I b = i / per, j = i - b * per, c = j / N;
    const I at = b * Cout * N + j;
    const float eps = diffusion::guided(model_out, uncond, at, c, step);
    const float v = learned_sigma ? diffusion::guided(model_out, uncond, at + per, C + c, step) : 0.0f;
    x_next[i] = diffusion::step_element(eps, v, learned_sigma, xt[i], noise != nullptr, noise ? noise[i] : 0.0f, step);
  }
}

}  // namespace

void diffusion_step(float* x_next, const float* model_out, const float* xt, const float* noise,
                    const diffusion::Step& step, bool guided, int64_t B, int64_t C, int64_t Cout, int64_t N) {
  const int64_t per = C * N, n = B * per;
  if (n <= 0) return;
  const float* uncond = guided ? model_out + B * Cout * N : nullptr;
  const unsigned blocks = grid_for(n, kThreads);
  const int64_t model_elements = (guided ? 2 : 1) * B * Cout * N;
  if (model_elements < (int64_t(1) << 31))
    step_kernel<uint32_t><<<blocks, kThreads, 0, stream()>>>(x_next, model_out, uncond, xt, noise, step, uint32_t(n),
                                                             uint32_t(per), uint32_t(N), uint32_t(C), uint32_t(Cout));
  else
    step_kernel<int64_t><<<blocks, kThreads, 0, stream()>>>(x_next, model_out, uncond, xt, noise, step, n, per, N, C,
                                                            Cout);
  check_launch("diffusion_step");
}

}  // namespace pit::cuda

PIT_CUDA_OP(diffusion_step)
