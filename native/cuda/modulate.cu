// adaLN modulation (DiT) on the GPU, as native/cpu/modulate.cc: out = x·(1 + scale[b]) +
// shift[b] for x (B, L, C), one shift and scale row (C) per sample. The forward and a dx-only
// backward are elementwise (per_sample::for_units: grid.y over samples, a grid-stride loop over
// each sample's L·C, float4s when C % 4 == 0 and the pointers are aligned). dshift = Σ_L dout
// and dscale = Σ_L dout·x go through per_sample::column_sums, which writes dx in the same pass
// and sums deterministically (fixed order, no atomics; the split depends only on B, L, C).
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"
#include "cuda/per_sample.cuh"

namespace pit::cuda {
namespace {

struct Modulate {  // x·(1 + scale) + shift
  __device__ float operator()(float x, float scale, float shift) const { return x * (1.0f + scale) + shift; }
};
struct ScaleOnly {  // dout·(1 + scale)
  __device__ float operator()(float g, float scale) const { return g * (1.0f + scale); }
};

// out (B, L, C) = x·(1 + scale[b]) (+ shift[b] when kShift), in units V; shift, scale (B, C).
template <typename V, bool kShift>
__global__ void __launch_bounds__(per_sample::kThreads)
    modulate_kernel(V* out, const V* x, const V* shift, const V* scale, int64_t B, int64_t lc, int64_t cu) {
  per_sample::for_units(B, lc, cu, [&](int64_t i, int64_t p) {
    if constexpr (kShift)
      out[i] = lanes(Modulate(), x[i], scale[p], shift[p]);
    else
      out[i] = lanes(ScaleOnly(), x[i], scale[p]);
  });
}

template <bool kShift>
void launch_modulate(const char* op, float* out, const float* x, const float* shift, const float* scale, int64_t B,
                     int64_t L, int64_t C) {
  const bool vec = C % 4 == 0 && aligned16(out) && aligned16(x) && aligned16(shift) && aligned16(scale);
  const int64_t w = vec ? 4 : 1, lc = L * C / w, cu = C / w;
  const dim3 grid = per_sample::units_grid(B, lc);
  if (vec)
    modulate_kernel<float4, kShift><<<grid, per_sample::kThreads, 0, stream()>>>(
        reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(shift),
        reinterpret_cast<const float4*>(scale), B, lc, cu);
  else
    modulate_kernel<float, kShift><<<grid, per_sample::kThreads, 0, stream()>>>(out, x, shift, scale, B, lc, cu);
  check_launch(op);
}

// column_sums' per-element step: dx = dout·(1 + scale); sums dshift += dout, dscale += dout·x.
struct ModulateBackward {
  float* dx;  // or null
  const float* dout;
  const float* x;
  const float* scale;
  bool want_dscale;
  __device__ void operator()(int64_t i, int64_t p, float* acc) const {
    const float g = dout[i];
    if (want_dscale) acc[1] += g * x[i];  // before dx is written: dx may share x's storage
    if (dx) dx[i] = g * (1.0f + scale[p]);
    acc[0] += g;
  }
};

}  // namespace

// out, x (B, L, C); shift, scale (B, C).
void modulate_forward(float* out, const float* x, const float* shift, const float* scale, int64_t B,
                      int64_t L, int64_t C) {
  if (B <= 0 || L <= 0 || C <= 0) return;
  launch_modulate<true>("modulate_forward", out, x, shift, scale, B, L, C);
}

// dx (B, L, C), dshift, dscale (B, C), each null when not wanted; dout, x (B, L, C), scale (B, C).
void modulate_backward(float* dx, float* dshift, float* dscale, const float* dout, const float* x,
                       const float* scale, int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dshift && !dscale) {
    if (dx && L > 0) launch_modulate<false>("modulate_backward", dx, dout, nullptr, scale, B, L, C);
    return;
  }
  per_sample::column_sums<2>("modulate_backward", per_sample::Sums<2>{{dshift, dscale}}, B, L, C,
                             ModulateBackward{dx, dout, x, scale, dscale != nullptr});
}

}  // namespace pit::cuda

PIT_CUDA_OP(modulate_forward)
PIT_CUDA_OP(modulate_backward)
