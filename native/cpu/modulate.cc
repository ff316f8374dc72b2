// adaLN modulation (DiT): out = x·(1 + scale[b]) + shift[b] for x (B, L, C), with one
// shift and scale row (C) per sample. The forward and dx are elementwise over rows of C;
// dshift = Σ_L dout and dscale = Σ_L dout·x are summed per row block into private partials
// and reduced in block order, so they are deterministic: the split depends only on B, L, C.
#include <algorithm>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/per_sample.h"

namespace pit::cpu {
namespace {

// rows (rows, C) of one sample; shift, scale (C) are that sample's.
PIT_MULTIVERSION void modulate_rows(float* out, const float* x, const float* shift, const float* scale,
                                    int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[r * C + c] * (1.0f + scale[c]) + shift[c];
}

// dx rows = dout·(1 + scale); acc_shift (C) += Σ_rows dout, acc_scale (C) += Σ_rows dout·x.
// Any of dx, acc_shift, acc_scale may be null. The row (C floats) stays in L1 across the
// three loops, so only the first touches memory.
PIT_MULTIVERSION void modulate_backward_rows(float* dx, float* acc_shift, float* acc_scale, const float* dout,
                                             const float* x, const float* scale, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dout + r * C;
    if (dx)
      for (int64_t c = 0; c < C; ++c) dx[r * C + c] = g[c] * (1.0f + scale[c]);
    if (acc_shift)
      for (int64_t c = 0; c < C; ++c) acc_shift[c] += g[c];
    if (acc_scale)
      for (int64_t c = 0; c < C; ++c) acc_scale[c] += g[c] * x[r * C + c];
  }
}


}  // namespace

// out, x (B, L, C); shift, scale (B, C).
void modulate_forward(float* out, const float* x, const float* shift, const float* scale, int64_t B,
                      int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  per_sample::for_rows(B, L, C, [&](int64_t row, int64_t rows, int64_t b) {
    modulate_rows(out + row * C, x + row * C, shift + b * C, scale + b * C, rows, C);
  });
}

// dx (B, L, C), dshift, dscale (B, C), each null when not wanted; dout, x (B, L, C), scale (B, C).
void modulate_backward(float* dx, float* dshift, float* dscale, const float* dout, const float* x,
                       const float* scale, int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dshift && !dscale) {
    if (dx && L > 0)
      per_sample::for_rows(B, L, C, [&](int64_t row, int64_t rows, int64_t b) {
        modulate_backward_rows(dx + row * C, nullptr, nullptr, dout + row * C, x + row * C, scale + b * C, rows, C);
      });
    return;
  }
  per_sample::column_sums<2>({dshift, dscale}, B, L, C,
                             [&](int64_t row, int64_t rows, int64_t b, std::array<float*, 2> acc) {
    modulate_backward_rows(dx ? dx + row * C : nullptr, acc[0], acc[1], dout + row * C, x + row * C, scale + b * C,
                           rows, C);
  });
}

}  // namespace pit::cpu
