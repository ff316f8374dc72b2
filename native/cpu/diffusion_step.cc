// One sampling step of Gaussian diffusion for every element (ancestral or DDIM, with
// classifier-free guidance folded in): core/diffusion.h's step_element over x (B, C, N),
// shared with cuda/diffusion_step.cu.
#include <algorithm>

#include "core/diffusion.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk

}  // namespace

void diffusion_step(float* x_next, const float* model_out, const float* xt, const float* noise,
                    const diffusion::Step& step, bool guided, int64_t B, int64_t C, int64_t Cout, int64_t N) {
  const int64_t per = C * N, n = B * per;
  const bool learned_sigma = Cout == 2 * C;
  // The conditional half is model_out's first B samples, the unconditional its last B.
  const float* uncond = guided ? model_out + B * Cout * N : nullptr;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / per, j = i - b * per, c = j / N;
      const int64_t at = b * Cout * N + j;  // ε̂ of this element; v is C channels on
      const float eps = diffusion::guided(model_out, uncond, at, c, step);
      const float v = learned_sigma ? diffusion::guided(model_out, uncond, at + per, C + c, step) : 0.0f;
      x_next[i] = diffusion::step_element(eps, v, learned_sigma, xt[i], noise != nullptr, noise ? noise[i] : 0.0f, step);
    }
  });
}

}  // namespace pit::cpu
