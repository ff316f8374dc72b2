// Gated residual (DiT's adaLN-Zero) on the GPU, as native/cpu/gated_residual.cc:
// out = x + gate[b]·y for x, y (B, L, C), one gate row (C) per sample. The forward and a
// dy-only backward are elementwise (per_sample::for_units: grid.y over samples, a grid-stride
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

struct Residual {  // x + gate·y
  __device__ float operator()(float x, float y, float gate) const { return x + gate * y; }
};
struct Gate {  // dout·gate
  __device__ float operator()(float g, float gate) const { return g * gate; }
};

// out (B, L, C) = x + gate[b]·y when kResidual, else y·gate[b] (dy from dout), in units V.
template <typename V, bool kResidual>
__global__ void __launch_bounds__(per_sample::kThreads)
    gated_kernel(V* out, const V* x, const V* y, const V* gate, int64_t B, int64_t lc, int64_t cu) {
  per_sample::for_units(B, lc, cu, [&](int64_t i, int64_t p) {
    if constexpr (kResidual)
      out[i] = lanes(Residual(), x[i], y[i], gate[p]);
    else
      out[i] = lanes(Gate(), y[i], gate[p]);
  });
}

template <bool kResidual>
void launch_gated(const char* op, float* out, const float* x, const float* y, const float* gate, int64_t B,
                  int64_t L, int64_t C) {
  const bool vec = C % 4 == 0 && aligned16(out) && aligned16(x) && aligned16(y) && aligned16(gate);
  const int64_t w = vec ? 4 : 1, lc = L * C / w, cu = C / w;
  const dim3 grid = per_sample::units_grid(B, lc);
  if (vec)
    gated_kernel<float4, kResidual><<<grid, per_sample::kThreads, 0, stream()>>>(
        reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(y),
        reinterpret_cast<const float4*>(gate), B, lc, cu);
  else
    gated_kernel<float, kResidual><<<grid, per_sample::kThreads, 0, stream()>>>(out, x, y, gate, B, lc, cu);
  check_launch(op);
}

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
  launch_gated<true>("gated_residual_forward", out, x, y, gate, B, L, C);
}

// dy (B, L, C), dgate (B, C), each null when not wanted; dout, y (B, L, C), gate (B, C).
void gated_residual_backward(float* dy, float* dgate, const float* dout, const float* y, const float* gate,
                             int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dgate) {
    if (dy && L > 0) launch_gated<false>("gated_residual_backward", dy, nullptr, dout, gate, B, L, C);
    return;
  }
  per_sample::column_sums<1>("gated_residual_backward", per_sample::Sums<1>{{dgate}}, B, L, C,
                             GatedBackward{dy, dout, y, gate});
}

}  // namespace pit::cuda

PIT_CUDA_OP(gated_residual_forward)
PIT_CUDA_OP(gated_residual_backward)
