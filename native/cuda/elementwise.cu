// add, mul, scale, axpy, fill on the GPU: memory-bound maps (map.cuh: float4 where aligned,
// int64 grid-stride loops). b broadcasts over leading dims: element i meets b[i % nb].
// Same-shape b (nb = n) and scalar b (nb = 1, read on the device: it is a device pointer)
// go through launch_map; any other nb walks b with an index kept incrementally beside i, so
// the loop never divides, and in float4s when nb % 4 == 0 (a float4 of a then never straddles
// two repeats of b).
#include <cstdint>
#include <type_traits>

#include "cuda/context.h"
#include "cuda/map.cuh"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
// a op b[0], b a device scalar (an L1 hit after the first read).
template <typename Op>
struct WithScalar {
  const float* b;
  __device__ float operator()(float a) const { return Op()(a, __ldg(b)); }
};
struct Scale {
  float alpha;
  __device__ float operator()(float x) const { return x * alpha; }
};
struct Axpy {
  float alpha;
  __device__ float operator()(float y, float x) const { return y + alpha * x; }
};
struct Constant {
  float value;
  __device__ float operator()() const { return value; }
};

// out, a (n) op b (nb), in units V (float, or float4 with n, nb counted in float4s);
// b_step = stride % nb, so j = i % nb follows i without a division.
template <typename V, typename Op>
__global__ void __launch_bounds__(kMapThreads)
    broadcast_kernel(V* out, const V* a, const V* b, int64_t n, int64_t nb, int64_t b_step) {
  const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (start >= n) return;
  int64_t j = start % nb;
  for (int64_t i = start; i < n; i += stride) {
    if constexpr (std::is_same_v<V, float4>)
      out[i] = zip(Op(), a[i], b[j]);
    else
      out[i] = Op()(a[i], b[j]);
    j += b_step;
    if (j >= nb) j -= nb;
  }
}

template <typename Op>
void broadcast_binary(const char* op, float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  if (n <= 0 || nb <= 0) return;  // nb divides n: never 0 when n is not
  if (nb == n) return launch_map(op, Op(), n, out, a, b);
  if (nb == 1) return launch_map(op, WithScalar<Op>{b}, n, out, a);
  const bool vec = nb % 4 == 0 && aligned16(out) && aligned16(a) && aligned16(b);
  const int64_t w = vec ? 4 : 1, units = n / w, b_units = nb / w;
  const unsigned blocks = grid_for(units, kMapThreads);
  const int64_t b_step = (int64_t(blocks) * kMapThreads) % b_units;
  if (vec)
    broadcast_kernel<float4, Op><<<blocks, kMapThreads, 0, stream()>>>(
        reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(a), reinterpret_cast<const float4*>(b),
        units, b_units, b_step);
  else
    broadcast_kernel<float, Op><<<blocks, kMapThreads, 0, stream()>>>(out, a, b, units, b_units, b_step);
  check_launch(op);
}

}  // namespace

// out, a (n); b (nb), nb divides n.
void add_forward(float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary<Add>("add_forward", out, a, b, n, nb);
}

void mul_forward(float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary<Mul>("mul_forward", out, a, b, n, nb);
}

// out, x (n)
void scale_forward(float* out, const float* x, float alpha, int64_t n) {
  launch_map("scale_forward", Scale{alpha}, n, out, x);
}

// y, x (n): y += alpha · x
void axpy(float* y, const float* x, float alpha, int64_t n) {
  launch_map("axpy", Axpy{alpha}, n, y, static_cast<const float*>(y), x);
}

// out (n)
void fill(float* out, float value, int64_t n) { launch_map("fill", Constant{value}, n, out); }

}  // namespace pit::cuda

PIT_CUDA_OP(add_forward)
PIT_CUDA_OP(mul_forward)
PIT_CUDA_OP(scale_forward)
PIT_CUDA_OP(axpy)
PIT_CUDA_OP(fill)
