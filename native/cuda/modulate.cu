// adaLN modulation (DiT) on the GPU, as native/cpu/modulate.cc: out = x·(1 + scale[b]) +
// shift[b] for x (B, L, C), one shift and scale row (C) per sample. The forward and a dx-only
// backward are elementwise (per_sample::launch_map: grid.y over samples, a grid-stride loop
// over each sample's L·C, float4s when C % 4 == 0 and the pointers are aligned). dshift = Σ_L dout
// and dscale = Σ_L dout·x go through per_sample::column_sums, which writes dx in the same pass
// and sums deterministically (fixed order, no atomics; the split depends only on B, L, C).
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"
#include "cuda/per_sample.cuh"

namespace pit::cuda {
namespace {

// per_sample::launch_map's functions: elementwise x or dout first, then the per-sample rows.
struct Modulate {  // x·(1 + scale) + shift
  __device__ float operator()(float x, float scale, float shift) const { return x * (1.0f + scale) + shift; }
};
struct ScaleOnly {  // dout·(1 + scale)
  __device__ float operator()(float g, float scale) const { return g * (1.0f + scale); }
};

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
  per_sample::launch_map<1>("modulate_forward", Modulate(), out, B, L, C, x, scale, shift);
}

// dx (B, L, C), dshift, dscale (B, C), each null when not wanted; dout, x (B, L, C), scale (B, C).
void modulate_backward(float* dx, float* dshift, float* dscale, const float* dout, const float* x,
                       const float* scale, int64_t B, int64_t L, int64_t C) {
  if (B <= 0 || C <= 0) return;
  if (!dshift && !dscale) {
    if (dx && L > 0) per_sample::launch_map<1>("modulate_backward", ScaleOnly(), dx, B, L, C, dout, scale);
    return;
  }
  per_sample::column_sums<2>("modulate_backward", per_sample::Sums<2>{{dshift, dscale}}, B, L, C,
                             ModulateBackward{dx, dout, x, scale, dscale != nullptr});
}

}  // namespace pit::cuda

PIT_CUDA_OP(modulate_forward)
PIT_CUDA_OP(modulate_backward)
