// The op table: one entry per op of native/cpu/ops.h, with the same name and signature, plus
// a few GPU-only entries (bf16 attention) that the CPU table leaves null. The CPU backend
// fills every ops.h entry; the CUDA backend registers a table with the ops it has kernels
// for. The binding looks an op up on the device of its tensors, and an op a backend lacks is
// a clear TypeError ("layernorm_forward: not implemented on cuda"), never a silent fallback
// to another device.
#pragma once
#include "cpu/ops.h"
#include "device.h"
#include "error.h"
#include "rng.h"

namespace pit {

// Every op of the table, in ops.h order.
#define PIT_OPS(X)                                                                           \
  X(matmul_forward) X(matmul_backward) X(attention_forward) X(attention_backward)            \
  X(layernorm_forward) X(layernorm_backward) X(gelu_forward) X(gelu_backward)                \
  X(silu_forward) X(silu_backward) X(modulate_forward) X(modulate_backward)                  \
  X(gated_residual_forward) X(gated_residual_backward) X(add_forward) X(mul_forward)         \
  X(scale_forward) X(axpy) X(fill) X(softmax_cross_entropy) X(mse_forward) X(mse_backward)   \
  X(sum_forward) X(sum_backward) X(gather_tokens) X(scatter_add_tokens) X(concat_tokens)     \
  X(slice_tokens) X(slice_tokens_backward) X(permute) X(adamw) X(sum_of_squares)            \
  X(cast_f32_to_bf16) X(cast_bf16_to_f32)

struct OpTable {
#define PIT_OP_ENTRY(name) decltype(&cpu::name) name = nullptr;
  PIT_OPS(PIT_OP_ENTRY)
#undef PIT_OP_ENTRY
  // The Philox fills of core/rng.h (randomFill).
  decltype(&pit::fill_uniform) fill_uniform = nullptr;
  decltype(&pit::fill_normal) fill_normal = nullptr;
  // GPU-only ops, with no CPU counterpart (the CPU table leaves them null): attention on bf16
  // qkv / out / dout / dqkv (uint16_t bf16 bits), fp32 lse; otherwise as attention_forward /
  // attention_backward of cpu/ops.h.
  void (*attention_forward_bf16)(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H,
                                 int64_t D) = nullptr;
  void (*attention_backward_bf16)(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                                  const float* lse, int64_t B, int64_t L, int64_t H, int64_t D) = nullptr;
};

// The CPU table (complete), and the CUDA table a CUDA build registers (null otherwise).
const OpTable& cpu_op_table();
const OpTable* cuda_op_table();
void register_cuda_op_table(const OpTable* table);

// The kernel `entry` of the table for `device`; throws TypeError naming `op` (and the
// `variant`, e.g. "bf16", when given) when the device has no backend or the backend has no
// such kernel: "attentionForward: bf16 is not implemented on cpu".
template <typename Fn>
Fn op_kernel(const char* op, Device device, Fn OpTable::*entry, const char* variant = nullptr) {
  const OpTable* table = device == Device::CPU ? &cpu_op_table() : cuda_op_table();
  Fn fn = table ? table->*entry : nullptr;
  if (!fn) {
    if (variant) throw TypeError(cat(op, ": ", variant, " is not implemented on ", device_name(device)));
    throw TypeError(cat(op, ": not implemented on ", device_name(device), " in this build"));
  }
  return fn;
}

}  // namespace pit

// In a binding: PIT_KERNEL(device, layernorm_forward)(out, ...), with `op` the JS-facing name.
#define PIT_KERNEL(device, name) ::pit::op_kernel(op, (device), &::pit::OpTable::name)
