// N-D transpose copy on the GPU: out's axis i is x's axis perm[i]. Same op as cpu/permute.cc.
//
// The permutation is first simplified as on the CPU: size-1 axes are dropped and runs of
// x's axes that stay adjacent and in order in out are merged, so (B, C, H, W) -> (B, H, W, C)
// becomes (B, C, HW) -> (B, HW, C) and a plain copy becomes one cudaMemcpyAsync. What is
// left (at most 8 axes) goes to the kernel by value in a small struct: out's sizes and, per
// out axis, the stride of the same axis in x.
//
// Launch shape: one thread per output element in a grid-stride loop; each decodes its out
// index axis by axis into x's offset. Writes are coalesced; reads are too when out's last
// axis is x's last (the attention head shuffles), and strided otherwise (a tiled transpose
// through shared memory would fix that; not done here). Index math is 32-bit when the
// tensor has < 2^31 floats, int64 otherwise.
#include <climits>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kMaxDims = 8;
constexpr int kThreads = 256;

// The simplified permute: out's sizes and, per out axis, the stride of that axis in x.
template <typename I>
struct Plan {
  int dims = 0;
  I size[kMaxDims] = {};
  I in_stride[kMaxDims] = {};
};

// cpu/permute.cc's simplify, for any rank; the result has `dims` axes (may exceed 8: the
// caller rejects that).
struct Axes {
  std::vector<int64_t> size, in_stride;
};

Axes simplify(const std::vector<int64_t>& shape, const std::vector<int>& perm) {
  const int nd = static_cast<int>(shape.size());
  std::vector<int64_t> stride(nd);  // x's row-major strides
  int64_t acc = 1;
  for (int i = nd - 1; i >= 0; --i) {
    stride[i] = acc;
    acc *= shape[i];
  }
  Axes p;
  for (int i = 0; i < nd; ++i) {
    int a = perm[i];
    if (shape[a] == 1) continue;
    // Merge with the previous out axis when it is x's axis right before this one.
    if (!p.size.empty() && p.in_stride.back() == stride[a] * shape[a]) {
      p.size.back() *= shape[a];
      p.in_stride.back() = stride[a];
      continue;
    }
    p.size.push_back(shape[a]);
    p.in_stride.push_back(stride[a]);
  }
  return p;
}

// out (numel) in out's row-major order = x at the offset of the same multi-index.
template <typename I>
__global__ void permute_kernel(float* __restrict__ out, const float* __restrict__ x, const Plan<I> p, I n) {
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<I>(gridDim.x) * blockDim.x) {
    I rest = i, off = 0;
    // Innermost axis first; constant indices (unrolled) keep the plan in parameter space.
#pragma unroll
    for (int d = kMaxDims - 1; d > 0; --d) {
      if (d < p.dims) {
        const I q = rest / p.size[d];
        off += (rest - q * p.size[d]) * p.in_stride[d];
        rest = q;
      }
    }
    off += rest * p.in_stride[0];  // rest < size[0] since i < n
    out[i] = x[off];
  }
}

template <typename I>
void launch(float* out, const float* x, const Axes& axes, int64_t numel) {
  Plan<I> p;
  p.dims = static_cast<int>(axes.size.size());
  for (int d = 0; d < p.dims; ++d) {
    p.size[d] = static_cast<I>(axes.size[d]);
    p.in_stride[d] = static_cast<I>(axes.in_stride[d]);
  }
  permute_kernel<I><<<grid_for(numel, kThreads), kThreads, 0, stream()>>>(out, x, p, static_cast<I>(numel));
}

}  // namespace

// out = x (shape) with out's axis i being x's axis perm[i].
void permute(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int>& perm) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (numel == 0) return;
  const Axes axes = simplify(shape, perm);
  const size_t dims = axes.size.size();
  if (dims == 0 || (dims == 1 && axes.in_stride[0] == 1)) {  // a plain copy
    PIT_CUDA_CHECK(cudaMemcpyAsync(out, x, numel * sizeof(float), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  PIT_CHECK_RANGE(dims <= static_cast<size_t>(kMaxDims), "permute: at most ", kMaxDims,
                  " axes on cuda after merging adjacent ones, got ", dims);
  if (numel <= INT32_MAX) launch<uint32_t>(out, x, axes, numel);
  else launch<int64_t>(out, x, axes, numel);
  check_launch("permute");
}

}  // namespace pit::cuda

PIT_CUDA_OP(permute)
