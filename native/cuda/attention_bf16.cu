// attention_forward_bf16 / attention_backward_bf16: head dim and variant -> the tensor-core instantiation
// (attention_bf16.cuh, compiled in attention_bf16_d{16,32,64,128}.cu). Other head dims are a
// TypeError naming the op and the supported dims; the binding has checked shapes and dtypes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "cuda/attention_bf16.cuh"
#include "cuda/context.h"
#include "cuda/op_table.h"

namespace pit::cuda {
namespace attention_bf16 {
// Instantiated in the per-head-dim files, not here.
#define PIT_ATTENTION_BF16_EXTERN(D, V)                                                                          \
  extern template void forward<D, V>(uint16_t*, float*, const uint16_t*, int64_t, int64_t, int64_t);             \
  extern template void backward<D, V>(uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, const float*, \
                                      int64_t, int64_t, int64_t);
PIT_ATTENTION_BF16_EXTERN(16, 1)
PIT_ATTENTION_BF16_EXTERN(32, 1)
PIT_ATTENTION_BF16_EXTERN(64, 1)
PIT_ATTENTION_BF16_EXTERN(128, 1)
PIT_ATTENTION_BF16_EXTERN(16, 2)
PIT_ATTENTION_BF16_EXTERN(32, 2)
PIT_ATTENTION_BF16_EXTERN(64, 2)
PIT_ATTENTION_BF16_EXTERN(128, 2)
PIT_ATTENTION_BF16_EXTERN(16, 3)
PIT_ATTENTION_BF16_EXTERN(32, 3)
#undef PIT_ATTENTION_BF16_EXTERN
}  // namespace attention_bf16

namespace {

// The kernel variant (attention_bf16.cuh, Config): PIT_ATTENTION_VARIANT "v1" (the default,
// the kernels validated on an H200), "v2" (issue 15's FlashAttention-2-level tiles, staged row
// statistics and polynomial exp2; emulator-checked, not yet timed on a GPU) or "v3" (v2
// without the polynomial). Read on every call, so one process can time them all (gpu-smoke
// does). Anything else is an error.
int variant() {
  const char* env = std::getenv("PIT_ATTENTION_VARIANT");
  if (!env || !*env || std::strcmp(env, "v1") == 0) return 1;
  if (std::strcmp(env, "v2") == 0) return 2;
  if (std::strcmp(env, "v3") == 0) return 3;
  throw TypeError(cat("PIT_ATTENTION_VARIANT must be \"v1\", \"v2\" or \"v3\", got \"", env, "\""));
}

// Runs launch(std::integral_constant<int, D>{}, std::integral_constant<int, V>{}) for a
// supported head dim D and the variant V (v3 is v2 at D >= 64, and compiled only below).
template <typename Launch>
void with_head_dim(const char* op, int64_t D, Launch launch) {
  const int v = variant();
  auto run = [&](auto d) {
    if constexpr (decltype(d)::value <= 32) {
      if (v == 3) return launch(d, std::integral_constant<int, 3>{});
    }
    if (v >= 2) return launch(d, std::integral_constant<int, 2>{});
    return launch(d, std::integral_constant<int, 1>{});
  };
  switch (D) {
    case 16: return run(std::integral_constant<int, 16>{});
    case 32: return run(std::integral_constant<int, 32>{});
    case 64: return run(std::integral_constant<int, 64>{});
    case 128: return run(std::integral_constant<int, 128>{});
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
  with_head_dim(op, D, [&](auto d, auto v) {
    attention_bf16::forward<decltype(d)::value, decltype(v)::value>(out, lse, qkv, B, L, H);
  });
}

void attention_backward_bf16(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                             const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) {
  const char* op = "attention_backward_bf16";
  if (B <= 0 || L <= 0 || H <= 0 || D <= 0) return;
  expect_aligned(op, "dqkv", dqkv);
  expect_aligned(op, "dout", dout);
  expect_aligned(op, "qkv", qkv);
  expect_aligned(op, "out", out);
  with_head_dim(op, D, [&](auto d, auto v) {
    attention_bf16::backward<decltype(d)::value, decltype(v)::value>(dqkv, dout, qkv, out, lse, B, L, H);
  });
}

}  // namespace pit::cuda

PIT_CUDA_OP(attention_forward_bf16)
PIT_CUDA_OP(attention_backward_bf16)
