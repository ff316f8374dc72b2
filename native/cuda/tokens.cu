// Token-axis data movement on the GPU: gather / scatter-add by per-sample ids (MAE's keep
// and restore), concat (the cls token), slice and its backward. Same ops as cpu/tokens.cc.
//
// Launch shape. The copies (gather, concat, slice, slice backward) run one thread per output
// element in a grid-stride loop, consecutive threads along C, so every warp reads and writes
// contiguous runs of a row (coalesced). The element is a float4 when C % 4 == 0 and every
// pointer is 16-byte aligned (a quarter of the index arithmetic and 16-byte transactions),
// a float otherwise. Index math is 32-bit when every tensor has < 2^31 floats (integer
// division is the per-element cost of these memory-bound kernels), int64 otherwise.
//
// Scatter-add: two ids of one sample may name the same output row, so threads cannot own
// source rows. One thread owns one (b, c) column of a sample and walks k = 0..K-1 in order,
// adding src[b, k, c] into out[b, ids[b, k], c]: every output element has exactly one
// writer and receives its additions in k order, the CPU's order, so the result is
// deterministic and bit-identical to cpu::scatter_add_tokens, with no atomics. That gives
// B·C threads (B·C/4 with float4, used only when that still fills the GPU), each doing K
// dependent read-modify-writes; ids and src are read-only and prefetched by the unrolling.
//
// Ids: the binding range-checks ids only on the host, so device ids arrive unchecked. No
// kernel here reads or writes out of bounds: gather writes a row of NaNs for an id outside
// [0, L), scatter-add skips (adds nothing for) such an id.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float add(float a, float b) { return a + b; }
__device__ __forceinline__ float4 add(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

template <typename V> __device__ __forceinline__ V splat(float f);
template <> __device__ __forceinline__ float splat<float>(float f) { return f; }
template <> __device__ __forceinline__ float4 splat<float4>(float f) { return make_float4(f, f, f, f); }

__device__ __forceinline__ float quiet_nan() { return __int_as_float(0x7fc00000); }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls launch(V{}, I{}) with V = float4 when vec4, else float, and I = uint32_t when
// narrow (every index fits), else int64_t.
template <typename F>
void dispatch(bool vec4, bool narrow, F&& launch) {
  if (vec4) {
    if (narrow) launch(float4{}, uint32_t{});
    else launch(float4{}, int64_t{});
  } else {
    if (narrow) launch(float{}, uint32_t{});
    else launch(float{}, int64_t{});
  }
}

bool fits_narrow(int64_t floats) { return floats <= INT32_MAX; }

// Grid-stride loop over [0, n) in index type I (n <= INT32_MAX for uint32_t, so i + stride
// never wraps).
#define PIT_GRID_STRIDE(I, i, n)                                                   \
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);      \
       i += static_cast<I>(gridDim.x) * blockDim.x)

// out (B, K, Cv) = x (B, L, Cv)[b, ids[b, k]]; NaN rows for ids outside [0, L).
template <typename V, typename I>
__global__ void gather_kernel(V* __restrict__ out, const V* __restrict__ x, const int32_t* __restrict__ ids,
                              I L, I K, I Cv, I n) {
  PIT_GRID_STRIDE(I, i, n) {
    const I r = i / Cv, c = i - r * Cv;  // r = b·K + k
    const int32_t id = __ldg(ids + r);
    if (id >= 0 && static_cast<I>(id) < L) out[i] = x[((r / K) * L + static_cast<I>(id)) * Cv + c];
    else out[i] = splat<V>(quiet_nan());
  }
}

// One thread per (b, c) of (B, Cv): out[b, ids[b, k], c] += src[b, k, c] for k in order.
template <typename V, typename I>
__global__ void scatter_add_kernel(V* __restrict__ out, const V* __restrict__ src,
                                   const int32_t* __restrict__ ids, I L, I K, I Cv, I n) {
  PIT_GRID_STRIDE(I, i, n) {
    const I b = i / Cv, c = i - b * Cv;
    const int32_t* row_ids = ids + b * K;
    const V* s = src + b * K * Cv + c;
    V* o = out + b * L * Cv + c;
#pragma unroll 4
    for (I k = 0; k < K; ++k) {
      const int32_t id = __ldg(row_ids + k);
      if (id >= 0 && static_cast<I>(id) < L) {
        V* dst = o + static_cast<I>(id) * Cv;
        *dst = add(*dst, s[k * Cv]);
      }
    }
  }
}

// out (B, La + Lb, Cv) = [a; b]; a is (B, La, Cv), or (1, La, Cv) when a_shared.
template <typename V, typename I>
__global__ void concat_kernel(V* __restrict__ out, const V* __restrict__ a, const V* __restrict__ b, I La,
                              I Lb, I Cv, bool a_shared, I n) {
  const I Lo = La + Lb;
  PIT_GRID_STRIDE(I, i, n) {
    const I r = i / Cv, c = i - r * Cv;
    const I s = r / Lo, l = r - s * Lo;
    out[i] = l < La ? a[((a_shared ? I(0) : s * La) + l) * Cv + c] : b[(s * Lb + (l - La)) * Cv + c];
  }
}

// out (B, Lo, Cv) = x (B, L, Cv)[:, start : start + Lo].
template <typename V, typename I>
__global__ void slice_kernel(V* __restrict__ out, const V* __restrict__ x, I L, I start, I Lo, I Cv, I n) {
  PIT_GRID_STRIDE(I, i, n) {
    const I r = i / Cv, c = i - r * Cv;
    const I s = r / Lo, l = r - s * Lo;
    out[i] = x[(s * L + start + l) * Cv + c];
  }
}

// dx (B, L, Cv) = dout (B, Lo, Cv) at tokens [start, start + Lo), zeros elsewhere.
template <typename V, typename I>
__global__ void slice_backward_kernel(V* __restrict__ dx, const V* __restrict__ dout, I L, I start, I Lo,
                                      I Cv, I n) {
  PIT_GRID_STRIDE(I, i, n) {
    const I r = i / Cv, c = i - r * Cv;
    const I s = r / L, l = r - s * L;
    dx[i] = l >= start && l - start < Lo ? dout[(s * Lo + (l - start)) * Cv + c] : splat<V>(0.0f);
  }
}

#undef PIT_GRID_STRIDE

}  // namespace

// out (B, K, C) = x (B, L, C)[b, ids[b, k], :]; NaN rows for ids outside [0, L).
void gather_tokens(float* out, const float* x, const int32_t* ids, int64_t B, int64_t L, int64_t K, int64_t C) {
  if (B * K * C == 0) return;
  const bool vec4 = C % 4 == 0 && aligned16(out) && aligned16(x);
  const bool narrow = fits_narrow(B * std::max(L, K) * C);
  dispatch(vec4, narrow, [&](auto v, auto i) {
    using V = decltype(v);
    using I = decltype(i);
    const int64_t Cv = vec4 ? C / 4 : C, n = B * K * Cv;
    gather_kernel<V, I><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        reinterpret_cast<V*>(out), reinterpret_cast<const V*>(x), ids, I(L), I(K), I(Cv), I(n));
  });
  check_launch("gather_tokens");
}

// out (B, L, C)[b, ids[b, k], :] += src (B, K, C)[b, k, :], in k order; ids outside [0, L)
// are skipped.
void scatter_add_tokens(float* out, const float* src, const int32_t* ids, int64_t B, int64_t L, int64_t K,
                        int64_t C) {
  if (B * K * C == 0 || L == 0) return;
  // float4 divides the thread count by 4: only when B·C/4 threads still fill the GPU.
  const bool vec4 = C % 4 == 0 && aligned16(out) && aligned16(src) &&
                    B * (C / 4) >= int64_t(multiprocessors()) * 1024;
  const bool narrow = fits_narrow(B * std::max(L, K) * C);
  dispatch(vec4, narrow, [&](auto v, auto i) {
    using V = decltype(v);
    using I = decltype(i);
    const int64_t Cv = vec4 ? C / 4 : C, n = B * Cv;
    scatter_add_kernel<V, I><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        reinterpret_cast<V*>(out), reinterpret_cast<const V*>(src), ids, I(L), I(K), I(Cv), I(n));
  });
  check_launch("scatter_add_tokens");
}

// out (B, La + Lb, C) = [a; b]; a is (B, La, C), or (1, La, C) shared by every sample.
void concat_tokens(float* out, const float* a, const float* b, int64_t B, int64_t La, int64_t Lb, int64_t C,
                   bool a_shared) {
  if (B * (La + Lb) * C == 0) return;
  const bool vec4 = C % 4 == 0 && aligned16(out) && aligned16(a) && aligned16(b);
  const bool narrow = fits_narrow(B * (La + Lb) * C);
  dispatch(vec4, narrow, [&](auto v, auto i) {
    using V = decltype(v);
    using I = decltype(i);
    const int64_t Cv = vec4 ? C / 4 : C, n = B * (La + Lb) * Cv;
    concat_kernel<V, I><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        reinterpret_cast<V*>(out), reinterpret_cast<const V*>(a), reinterpret_cast<const V*>(b), I(La), I(Lb),
        I(Cv), a_shared, I(n));
  });
  check_launch("concat_tokens");
}

// out (B, Lo, C) = x (B, L, C)[:, start : start + Lo, :].
void slice_tokens(float* out, const float* x, int64_t B, int64_t L, int64_t start, int64_t Lo, int64_t C) {
  if (B * Lo * C == 0) return;
  const bool vec4 = C % 4 == 0 && aligned16(out) && aligned16(x);
  const bool narrow = fits_narrow(B * L * C);
  dispatch(vec4, narrow, [&](auto v, auto i) {
    using V = decltype(v);
    using I = decltype(i);
    const int64_t Cv = vec4 ? C / 4 : C, n = B * Lo * Cv;
    slice_kernel<V, I><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        reinterpret_cast<V*>(out), reinterpret_cast<const V*>(x), I(L), I(start), I(Lo), I(Cv), I(n));
  });
  check_launch("slice_tokens");
}

// dx (B, L, C) = dout (B, Lo, C) placed at tokens [start, start + Lo), zeros elsewhere.
void slice_tokens_backward(float* dx, const float* dout, int64_t B, int64_t L, int64_t start, int64_t Lo,
                           int64_t C) {
  if (B * L * C == 0) return;
  const bool vec4 = C % 4 == 0 && aligned16(dx) && (Lo == 0 || aligned16(dout));
  const bool narrow = fits_narrow(B * L * C);
  dispatch(vec4, narrow, [&](auto v, auto i) {
    using V = decltype(v);
    using I = decltype(i);
    const int64_t Cv = vec4 ? C / 4 : C, n = B * L * Cv;
    slice_backward_kernel<V, I><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(
        reinterpret_cast<V*>(dx), reinterpret_cast<const V*>(dout), I(L), I(start), I(Lo), I(Cv), I(n));
  });
  check_launch("slice_tokens_backward");
}

}  // namespace pit::cuda

PIT_CUDA_OP(gather_tokens)
PIT_CUDA_OP(scatter_add_tokens)
PIT_CUDA_OP(concat_tokens)
PIT_CUDA_OP(slice_tokens)
PIT_CUDA_OP(slice_tokens_backward)
