// Fused softmax cross-entropy with label smoothing on the GPU: loss and dlogits for a row in
// one visit, the same arithmetic as native/cpu/softmax_cross_entropy.cc. For a row x (K) with
// label y, smoothing s and smoothed target t = (1-s)·onehot(y) + s/K:
//   loss   = log Σ_k e^(x_k - m) - Σ_k t_k (x_k - m),  m = max x
//   dlogit = grad_scale · (softmax(x) - t)
//
// Targets are NOT validated for CUDA tensors: the binding cannot read device memory without
// a synchronising copy. A row whose target is outside [0, K) is not clamped or skipped
// silently: its loss is NaN, and so is its whole dlogits row, so the mistake shows up in the
// loss (and poisons the step) instead of training on a wrong label.
//
// Launch shape: a row group of T threads owns one row at a time and strides over rows. For
// K <= 1024 (CIFAR's 10, ImageNet's 1000 classes) the group is one warp with 8 rows per
// block, reduced with shuffles only; larger K gets a block of 256 (or 1024 beyond 8192)
// threads per row. The row is read three times (max; exp-sum; gradient), the last two from
// L1/L2; e^(x - m) is recomputed in the gradient pass rather than stored and re-read.
#include <cmath>

#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

// Combines v over the T threads (threadIdx.x) of a row group with op; every thread gets the
// same result (the xor butterfly computes op(a, b) and op(b, a) in partner lanes, which are
// equal for + and max). T > 32 means one row group per block: scratch holds T/32 floats.
template <int T, typename Op>
__device__ float group_reduce(float v, float* scratch, Op op) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if constexpr (T > 32) {
    __syncthreads();  // the previous call's readers are done with scratch
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = scratch[0];
#pragma unroll
    for (int w = 1; w < T / 32; ++w) v = op(v, scratch[w]);  // the same order in every thread
  }
  return v;
}

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// losses (N), dlogits (N, K) or null, from logits (N, K) and targets (N).
// blockDim = (T, G): G row groups of T threads; threadIdx.y picks the group.
template <int T, int G>
__global__ void softmax_cross_entropy_kernel(float* __restrict__ losses, float* __restrict__ dlogits,
                                             const float* __restrict__ logits,
                                             const int32_t* __restrict__ targets, int64_t N, int64_t K,
                                             float smoothing, float grad_scale) {
  __shared__ float scratch[T > 32 ? T / 32 : 1];
  const float on_label = 1.0f - smoothing, uniform = smoothing / static_cast<float>(K);
  for (int64_t i = int64_t(blockIdx.x) * G + threadIdx.y; i < N; i += int64_t(gridDim.x) * G) {
    const float* x = logits + i * K;
    float* d = dlogits ? dlogits + i * K : nullptr;
    const int32_t y = targets[i];
    if (y < 0 || y >= K) {  // the same branch for the whole row group (and block when T > 32)
      const float nan = __int_as_float(0x7fc00000);
      if (threadIdx.x == 0) losses[i] = nan;
      if (d)
        for (int64_t k = threadIdx.x; k < K; k += T) d[k] = nan;
      continue;
    }
    float m = -INFINITY;
    for (int64_t k = threadIdx.x; k < K; k += T) m = fmaxf(m, x[k]);
    m = group_reduce<T>(m, scratch, Max{});
    float sum = 0.0f, shifted = 0.0f;  // Σ e^(x - m), and Σ (x - m) when smoothing
    for (int64_t k = threadIdx.x; k < K; k += T) {
      sum += expf(x[k] - m);
      shifted += x[k] - m;
    }
    sum = group_reduce<T>(sum, scratch, Add{});
    float target_dot = on_label * (x[y] - m);
    if (smoothing != 0.0f) target_dot += uniform * group_reduce<T>(shifted, scratch, Add{});
    if (threadIdx.x == 0) losses[i] = logf(sum) - target_dot;
    if (d) {
      const float a = grad_scale / sum, b = grad_scale * uniform;
      for (int64_t k = threadIdx.x; k < K; k += T) {
        const float v = a * expf(x[k] - m) - b;
        d[k] = k == y ? v - grad_scale * on_label : v;
      }
    }
  }
}

}  // namespace

// losses (N), dlogits (N, K) or null, logits (N, K), targets (N): NaN rows where a target
// is outside [0, K) (see the file header).
void softmax_cross_entropy(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                           int64_t N, int64_t K, float smoothing, float grad_scale) {
  if (N <= 0) return;
  if (K <= 1024) {
    softmax_cross_entropy_kernel<32, 8><<<grid_for(N, 8), dim3(32, 8), 0, stream()>>>(
        losses, dlogits, logits, targets, N, K, smoothing, grad_scale);
  } else if (K <= 8192) {
    softmax_cross_entropy_kernel<256, 1><<<grid_for(N, 1), dim3(256, 1), 0, stream()>>>(
        losses, dlogits, logits, targets, N, K, smoothing, grad_scale);
  } else {
    softmax_cross_entropy_kernel<1024, 1><<<grid_for(N, 1), dim3(1024, 1), 0, stream()>>>(
        losses, dlogits, logits, targets, N, K, smoothing, grad_scale);
  }
  check_launch("softmax_cross_entropy");
}

}  // namespace pit::cuda

PIT_CUDA_OP(softmax_cross_entropy)
