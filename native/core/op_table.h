// The op table: one kernel pointer per op of the contract (core/ops.h), with the same name
// and type, and the registry of each device's table. A backend registers its table once at
// load: the CPU table is complete (cpu/op_table.cc fills it from PIT_OPS), the CUDA table
// holds the ops it has kernels for (each cuda/<op>.cu adds its own with PIT_CUDA_OP). The
// binding looks an op up on the device of its tensors, and an op a backend lacks is a clear
// TypeError ("layernorm_forward: not implemented on cuda"), never a silent fallback to
// another device.
#pragma once
#include <string>
#include <vector>

#include "device.h"
#include "error.h"
#include "ops.h"

namespace pit {

// Every op of the contract as X(name, "binding export"): the export is the addon function
// (lib/native.ts's NativeAddon member) that dispatches to the op, so the agreement test
// (test/native-surface.test.ts) can check op table, exports and TS surface against each
// other. PIT_OPS: every backend implements these, the CPU one completely. In ops.h order.
#define PIT_OPS(X)                                                                            \
  X(matmul_forward, "matmulForward") X(matmul_backward, "matmulBackward")                     \
  X(matmul_forward_bf16, "matmulForward") X(matmul_backward_bf16, "matmulBackward")           \
  X(attention_forward, "attentionForward") X(attention_backward, "attentionBackward")         \
  X(attention_forward_bf16, "attentionForward")                                               \
  X(attention_backward_bf16, "attentionBackward")                                             \
  X(layernorm_forward, "layernormForward") X(layernorm_backward, "layernormBackward")         \
  X(gelu_forward, "geluForward") X(gelu_backward, "geluBackward")                             \
  X(silu_forward, "siluForward") X(silu_backward, "siluBackward")                             \
  X(modulate_forward, "modulateForward") X(modulate_backward, "modulateBackward")             \
  X(gated_residual_forward, "gatedResidualForward")                                           \
  X(gated_residual_backward, "gatedResidualBackward")                                         \
  X(add_forward, "add") X(mul_forward, "mul") X(scale_forward, "scale") X(axpy, "axpy")       \
  X(fill, "fill") X(softmax_cross_entropy, "softmaxCrossEntropy")                             \
  X(mse_forward, "mseForward") X(mse_backward, "mseBackward")                                 \
  X(per_sample_axpby, "perSampleAxpby") X(diffusion_loss_forward, "diffusionLossForward")     \
  X(diffusion_loss_backward, "diffusionLossBackward") X(diffusion_step, "diffusionStep")      \
  X(sum_forward, "sumForward") X(sum_backward, "sumBackward")                                 \
  X(gather_tokens, "gatherTokens") X(scatter_add_tokens, "scatterAddTokens")                  \
  X(concat_tokens, "concatTokens") X(slice_tokens, "sliceTokens")                             \
  X(slice_tokens_backward, "sliceTokensBackward") X(permute, "permute") X(adamw, "adamw")    \
  X(sum_of_squares, "gradNorm") X(cast_f32_to_bf16, "copy") X(cast_bf16_to_f32, "copy")       \
  X(fill_uniform, "randomFill") X(fill_normal, "randomFill")
// GPU-only ops: no CPU counterpart (the CPU table leaves them null). None at present; the
// list stays for the next op that starts on the GPU.
#define PIT_GPU_OPS(X)

struct OpTable {
#define PIT_OP_ENTRY(name, js_export) ops::name* name = nullptr;
  PIT_OPS(PIT_OP_ENTRY)
  PIT_GPU_OPS(PIT_OP_ENTRY)
#undef PIT_OP_ENTRY
};

// Each backend registers its table once, at load (a static initialiser). The table must
// outlive the process. Until a device has registered one, its ops are "not implemented".
void register_op_table(Device device, const OpTable* table);
const OpTable* op_table(Device device);  // null when none registered

// The kernel `entry` of the table for `device`; throws TypeError naming `op` (and the
// `variant`, e.g. "bf16", when given) when the device has no backend or the backend has no
// such kernel: "attentionForward: bf16 is not implemented on cpu".
template <typename Fn>
Fn op_kernel(const char* op, Device device, Fn OpTable::*entry, const char* variant = nullptr) {
  const OpTable* table = op_table(device);
  Fn fn = table ? table->*entry : nullptr;
  if (!fn) {
    if (variant) throw TypeError(cat(op, ": ", variant, " is not implemented on ", device_name(device)));
    throw TypeError(cat(op, ": not implemented on ", device_name(device), " in this build"));
  }
  return fn;
}

// One op of the table as the addon lists it (opTable()): its name, the binding export that
// reaches it, whether it is GPU-only, and the devices whose registered table has it.
struct OpListing {
  std::string name;
  std::string js_export;
  bool gpu_only = false;
  std::vector<Device> devices;
};
std::vector<OpListing> list_ops();

}  // namespace pit

// In a binding: PIT_KERNEL(device, layernorm_forward)(out, ...), with `op` the JS-facing name.
#define PIT_KERNEL(device, name) ::pit::op_kernel(op, (device), &::pit::OpTable::name)
