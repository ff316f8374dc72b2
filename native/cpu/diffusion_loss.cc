// The hybrid diffusion loss (SPEC §4): MSE(ε̂, ε) + the variational-bound term in bits with ε̂
// detached, over model_out (B, 2C, N) = [ε̂; v] per sample. The per-element math is
// core/diffusion.h's, shared with cuda/diffusion_loss.cu.
//
// The two means are summed in float64 over fixed chunks whose boundaries do not depend on the
// thread count, the chunk sums added in order (as cpu/mse.cc): the same bits with 1 thread
// or 16. The element loop is plain scalar libm code: the loss reads 5 floats and costs a few
// exp/log per element, nothing beside the model that produced them.
#include <algorithm>
#include <vector>

#include "core/diffusion.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per deterministic chunk

struct Sums {
  double squared_error = 0.0, vb = 0.0;
};

// Element i of (B, C, N) and its ε̂ / v offsets in (B, 2C, N): per = C·N.
struct Split {
  int64_t b, eps, v;
};
inline Split split(int64_t i, int64_t per) {
  const int64_t b = i / per, j = i - b * per;
  return {b, b * 2 * per + j, b * 2 * per + per + j};
}

}  // namespace

void diffusion_loss_forward(float* loss, float* terms, float* vb, const float* model_out, const float* x0,
                            const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                            int64_t N) {
  const int64_t per = C * N, n = B * per;
  if (n <= 0) {  // nothing to average: 0, not NaN
    if (loss) loss[0] = 0.0f;
    if (terms) terms[0] = terms[1] = 0.0f;
    return;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Sums> partial(chunks);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      Sums s;
      for (int64_t i = c * kChunk, end = std::min(n, i + kChunk); i < end; ++i) {
        const Split at = split(i, per);
        const float eps_hat = model_out[at.eps];
        const double d = static_cast<double>(eps_hat) - static_cast<double>(noise[i]);
        s.squared_error += d * d;
        const float term =
            diffusion::vb_term(eps_hat, model_out[at.v], x0[i], xt[i], coefs + at.b * diffusion::kLossCoefs).value;
        if (vb) vb[i] = term;
        s.vb += term;
      }
      partial[c] = s;
    }
  });
  Sums total;
  for (const Sums& s : partial) {
    total.squared_error += s.squared_error;
    total.vb += s.vb;
  }
  const double mse = total.squared_error / n, vb_mean = total.vb / n;
  if (loss) loss[0] = static_cast<float>(mse + vb_mean);
  if (terms) {
    terms[0] = static_cast<float>(mse);
    terms[1] = static_cast<float>(vb_mean);
  }
}

void diffusion_loss_backward(float* dout, const float* dloss, const float* model_out, const float* x0,
                             const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                             int64_t N) {
  const int64_t per = C * N, n = B * per;
  if (n <= 0) return;
  const float mse_scale = static_cast<float>(2.0 * dloss[0] / n), vb_scale = static_cast<float>(dloss[0] / n);
  parallel_for(n, kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Split at = split(i, per);
      const float eps_hat = model_out[at.eps];
      dout[at.eps] = mse_scale * (eps_hat - noise[i]);
      dout[at.v] =
          vb_scale * diffusion::vb_term(eps_hat, model_out[at.v], x0[i], xt[i], coefs + at.b * diffusion::kLossCoefs).dv;
    }
  });
}

}  // namespace pit::cpu
