// Gated residual (DiT's adaLN-Zero) on the GPU, as native/cpu/gated_residual.cc:
// out = x + gate[b]·y for x, y (B, L, C), one gate row (C) per sample. The forward and a
// dy-only backward are elementwise (per_sample::launch_map: grid.y over samples, a grid-stride
// loop over each sample's L·C, float4s when C % 4 == 0 and the pointers are aligned); dx = dout,
// so the backward never writes it. dgate = Σ_L dout·y goes through per_sample::column_sums,
// which writes dy in the same pass and sums deterministically (fixed order, no atomics; the
// split depends only on B, L, C).
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"
#include "cuda/per_sample.cuh"

namespace pit::cuda {
namespace {

// per_sample::launch_map's functions: elementwise x, y or dout first, then the gate row.
struct Residual {  // x + gate·y
  __device__ float operator()(float x, float y, float gate) const { return x + gate * y; }
};
struct Gate {  // dout·gate
  __device__ float operator()(float g, float gate) const { return g * gate; }
};

// column_sums' per-element step: dy = dout·gate; dgate += dout·y.
struct GatedBackward {
  float* dy;  // or null
  const float* dout;
  const float* y;
  const float* gate;
  __device__ void operator()(int64_t i, int64_t p, float* acc) const {
    const float g = dout[i];
    const float yv = y[i];  // read before dy is written: dy may share y's storage
    if (dy) dy[i] = g * gate[p];
    acc[0] += g * yv;
  }
};

}  // namespace

// out, x, y (B, L, C); gate (B, C).
void gated_residual_forward(float* out, const float* x, const float* y, const float* gate, int64_t B,
                            int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  per_sample::launch_map<2>("gated_residual_forward", Residual(), out, B, L, C, x, y, gate);
}

// dy (B, L, C), dgate (B, C), each null when not wanted; dout, y (B, L, C), gate (B, C).
void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                             int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dgate) {
    if (dy && L > 0) per_sample::launch_map<1>("gated_residual_backward", Gate(), dy, B, L, C, dout, gate);
    return;
  }
  per_sample::column_sums<1>("gated_residual_backward", per_sample::Sums<1>{{dgate}}, B, L, C,
                             GatedBackward{dy, dout, y, gate});
}

}  // namespace pit::cuda

PIT_CUDA_OP(gated_residual_forward)
PIT_CUDA_OP(gated_residual_backward)
