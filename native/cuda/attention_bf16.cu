// attention_forward_bf16 / attention_backward_bf16: head dim -> the tensor-core instantiation
// (attention_bf16.cuh, compiled in attention_bf16_d{16,32,64,128}.cu). Other head dims are a
// TypeError naming the op and the supported dims; the binding has checked shapes and dtypes.
#include <cstdint>
#include <type_traits>

#include "cuda/attention_bf16.cuh"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace attention_bf16 {
// Instantiated in the per-head-dim files, not here.
#define PIT_ATTENTION_BF16_EXTERN(D)                                                                          \
  extern template void forward<D>(uint16_t*, float*, const uint16_t*, int64_t, int64_t, int64_t);             \
  extern template void backward<D>(uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const float*, \
                                   int64_t, int64_t, int64_t);
PIT_ATTENTION_BF16_EXTERN(16)
PIT_ATTENTION_BF16_EXTERN(32)
PIT_ATTENTION_BF16_EXTERN(64)
PIT_ATTENTION_BF16_EXTERN(128)
#undef PIT_ATTENTION_BF16_EXTERN
}  // namespace attention_bf16

namespace {

// Runs launch(std::integral_constant<int, D>{}) for a supported head dim D.
template <typename Launch>
void with_head_dim(const char* op, int64_t D, Launch launch) {
  switch (D) {
    case 16: return launch(std::integral_constant<int, 16>{});
    case 32: return launch(std::integral_constant<int, 32>{});
    case 64: return launch(std::integral_constant<int, 64>{});
    case 128: return launch(std::integral_constant<int, 128>{});
    default:
      throw TypeError(cat(op, ": head dim D = ", D, " has no bf16 tensor-core kernel (supported: 16, 32, 64, 128)"));
  }
}

// cp.async and the 16-byte stores need 16-byte aligned bases (the pool's are 256-aligned).
void expect_aligned(const char* op, const char* name, const void* p) {
  PIT_CHECK_TYPE(reinterpret_cast<uintptr_t>(p) % 16 == 0, op, ": '", name, "' must be 16-byte aligned");
}

}  // namespace

void attention_forward_bf16(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H,
                            int64_t D) {
  const char* op = "attention_forward_bf16";
  if (B <= 0 || L <= 0 || H <= 0 || D <= 0) return;
  expect_aligned(op, "out", out);
  expect_aligned(op, "qkv", qkv);
  with_head_dim(op, D, [&](auto d) { attention_bf16::forward<decltype(d)::value>(out, lse, qkv, B, L, H); });
}

void attention_backward_bf16(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                             const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) {
  const char* op = "attention_backward_bf16";
  if (B <= 0 || L <= 0 || H <= 0 || D <= 0) return;
  expect_aligned(op, "dqkv", dqkv);
  expect_aligned(op, "dout", dout);
  expect_aligned(op, "qkv", qkv);
  expect_aligned(op, "out", out);
  with_head_dim(op, D, [&](auto d) {
    attention_bf16::backward<decltype(d)::value>(dqkv, dout, qkv, out, lse, B, L, H);
  });
}

}  // namespace pit::cuda

PIT_CUDA_OP(attention_forward_bf16)
PIT_CUDA_OP(attention_backward_bf16)
