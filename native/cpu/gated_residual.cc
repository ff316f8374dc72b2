// Gated residual (DiT's adaLN-Zero): out = x + gate[b]·y for x, y (B, L, C), with one gate
// row (C) per sample. The forward and dy are elementwise over rows of C (dx = dout, so the
// backward never writes it); dgate = Σ_L dout·y is summed per row block into private
// partials and reduced in block order, so it is deterministic: the split depends only on
// B, L, C.
#include <algorithm>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/per_sample.h"

namespace pit::cpu {
namespace {

// rows (rows, C) of one sample; gate (C) is that sample's.
PIT_MULTIVERSION void gated_residual_rows(float* out, const float* x, const float* y, const float* gate,
                                          int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) out[r * C + c] = x[r * C + c] + gate[c] * y[r * C + c];
}

// dy rows = dout·gate; acc_gate (C) += Σ_rows dout·y. Either output may be null.
PIT_MULTIVERSION void gated_residual_backward_rows(float* dy, float* acc_gate, const float* dout, const float* y,
                                                   const float* gate, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = dout + r * C;
    if (dy)
      for (int64_t c = 0; c < C; ++c) dy[r * C + c] = g[c] * gate[c];
    if (acc_gate)
      for (int64_t c = 0; c < C; ++c) acc_gate[c] += g[c] * y[r * C + c];
  }
}


}  // namespace

// out, x, y (B, L, C); gate (B, C).
void gated_residual_forward(float* out, const float* x, const float* y, const float* gate, int64_t B,
                            int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  per_sample::for_rows(B, L, C, [&](int64_t row, int64_t rows, int64_t b) {
    gated_residual_rows(out + row * C, x + row * C, y + row * C, gate + b * C, rows, C);
  });
}

// dy (B, L, C), dgate (B, C), each null when not wanted; dout, y (B, L, C), gate (B, C).
void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                             int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dgate) {
    if (dy && L > 0)
      per_sample::for_rows(B, L, C, [&](int64_t row, int64_t rows, int64_t b) {
        gated_residual_backward_rows(dy + row * C, nullptr, dout + row * C, y + row * C, gate + b * C, rows, C);
      });
    return;
  }
  per_sample::column_sums<1>({dgate}, B, L, C, [&](int64_t row, int64_t rows, int64_t b, std::array<float*, 1> acc) {
    gated_residual_backward_rows(dy ? dy + row * C : nullptr, acc[0], dout + row * C, y + row * C, gate + b * C,
                                 rows, C);
  });
}

}  // namespace pit::cpu
