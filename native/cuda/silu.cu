// SiLU (swish) on the GPU, elementwise over n floats (as native/cpu/silu.cc): out = x·σ(x),
// derivative σ(x)·(1 + x·(1 − σ(x))). The sigmoid is the CPU's: e = e^{-min(|x|, 87)},
// σ(|x|) = 1/(1 + e), σ(-|x|) = e/(1 + e), so both tails keep full relative accuracy and the
// cap makes ±inf and NaN come out as they do there.
// Launch: map.cuh's grid-stride float4 map (memory-bound).
#include <cstdint>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

// σ(x) and 1 − σ(x).
struct Sigmoid {
  float s, one_minus_s;
};
__device__ __forceinline__ Sigmoid sigmoid(float x) {
  const float e = expf(-fminf(fabsf(x), 87.0f));
  const float r = 1.0f / (1.0f + e), er = e * r;
  return x < 0.0f ? Sigmoid{er, r} : Sigmoid{r, er};
}

struct SiluForward {
  __device__ float operator()(float x) const { return x * sigmoid(x).s; }
};
struct SiluBackward {
  __device__ float operator()(float g, float x) const {
    const Sigmoid sg = sigmoid(x);
    return g * (sg.s + x * sg.s * sg.one_minus_s);
  }
};

}  // namespace

// out, x (n)
void silu_forward(float* out, const float* x, int64_t n) { launch_map("silu_forward", SiluForward{}, n, out, x); }

// dx, dout, x (n)
void silu_backward(float* dx, const float* dout, const float* x, int64_t n) {
  launch_map("silu_backward", SiluBackward{}, n, dx, dout, x);
}

}  // namespace pit::cuda

PIT_CUDA_OP(silu_forward)
PIT_CUDA_OP(silu_backward)
