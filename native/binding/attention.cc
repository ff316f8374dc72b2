// attentionForward / attentionBackward on packed qkv (B, L, 3, H, D), scale D^-0.5. qkv's
// dtype picks the kernel: f32 (every tensor f32; CPU and GPU) or bf16 (qkv, out, dout, dqkv
// bf16, lse f32; head dims 16, 32, 64, 128: the GPU's tensor-core kernels, the CPU's
// AVX512-BF16 ones or its f32 kernels on widened copies).
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

constexpr int64_t kMinHeadDim = 8, kMaxHeadDim = 128;

struct AttentionDims {
  int64_t B, L, H, D;
};

AttentionDims attention_dims(const char* op, const Tensor& qkv) {
  expect_ndim(op, "qkv", qkv, 5, "(B, L, 3, H, D)");
  PIT_CHECK_RANGE(qkv.dim(2) == 3, op, ": 'qkv' must be (B, L, 3, H, D) with 3 in dim 2, got shape ",
                  shape_string(qkv.shape()));
  AttentionDims d{qkv.dim(0), qkv.dim(1), qkv.dim(3), qkv.dim(4)};
  PIT_CHECK_RANGE(d.L >= 1, op, ": sequence length L must be at least 1, got ", d.L);
  PIT_CHECK_RANGE(d.D >= kMinHeadDim && d.D <= kMaxHeadDim, op, ": head dim D must be in [", kMinHeadDim, ", ",
                  kMaxHeadDim, "], got ", d.D);
  return d;
}

// qkv is f32 or bf16; true for bf16.
bool is_bf16_qkv(const char* op, const Tensor& qkv) {
  PIT_CHECK_TYPE(qkv.dtype() == DType::F32 || qkv.dtype() == DType::BF16, op, ": 'qkv' must be f32 or bf16, got ",
                 dtype_name(qkv.dtype()));
  return qkv.dtype() == DType::BF16;
}

// The bf16 kernels exist for these head dims only (the same set on every device).
void expect_bf16_head_dim(const char* op, int64_t D) {
  PIT_CHECK_TYPE(D == 16 || D == 32 || D == 64 || D == 128, op,
                 ": bf16 attention supports head dims 16, 32, 64 and 128, got D = ", D);
}

// attentionForward(out, lse, qkv): out (B, L, H, D), lse (B, H, L).
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "attentionForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& lse = args.tensor(1, "lse");
  Tensor& qkv = args.tensor(2, "qkv");
  const Device device = common_device(op, {{"out", &out}, {"lse", &lse}, {"qkv", &qkv}});
  const bool bf16 = is_bf16_qkv(op, qkv);
  if (bf16) {
    expect_dtype(op, "out", out, DType::BF16);
    expect_dtype(op, "lse", lse, DType::F32);
  } else {
    expect_f32(op, {{"out", &out}, {"lse", &lse}, {"qkv", &qkv}});
  }
  AttentionDims d = attention_dims(op, qkv);
  expect_shape(op, "out", out, {d.B, d.L, d.H, d.D});
  expect_shape(op, "lse", lse, {d.B, d.H, d.L});
  expect_distinct(op, "out", out, "qkv", qkv);
  if (bf16) {
    auto kernel = op_kernel(op, device, &OpTable::attention_forward_bf16, "bf16");
    expect_bf16_head_dim(op, d.D);
    kernel(out.bf16(), lse.f32(), qkv.bf16(), d.B, d.L, d.H, d.D);
  } else {
    PIT_KERNEL(device, attention_forward)(out.f32(), lse.f32(), qkv.f32(), d.B, d.L, d.H, d.D);
  }
  return info.Env().Undefined();
}

// attentionBackward(dqkv, dout, qkv, out, lse)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attentionBackward";
  Args args(info, op);
  Tensor& dqkv = args.tensor(0, "dqkv");
  Tensor& dout = args.tensor(1, "dout");
  Tensor& qkv = args.tensor(2, "qkv");
  Tensor& out = args.tensor(3, "out");
  Tensor& lse = args.tensor(4, "lse");
  const Device device = common_device(op, {{"dqkv", &dqkv}, {"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}});
  const bool bf16 = is_bf16_qkv(op, qkv);
  if (bf16) {
    expect_dtype(op, "dqkv", dqkv, DType::BF16);
    expect_dtype(op, "dout", dout, DType::BF16);
    expect_dtype(op, "out", out, DType::BF16);
    expect_dtype(op, "lse", lse, DType::F32);
  } else {
    expect_f32(op, {{"dqkv", &dqkv}, {"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}});
  }
  AttentionDims d = attention_dims(op, qkv);
  expect_shape(op, "dqkv", dqkv, qkv.shape());
  expect_shape(op, "dout", dout, {d.B, d.L, d.H, d.D});
  expect_shape(op, "out", out, {d.B, d.L, d.H, d.D});
  expect_shape(op, "lse", lse, {d.B, d.H, d.L});
  expect_distinct(op, "dqkv", dqkv, "qkv", qkv);
  expect_distinct(op, "dqkv", dqkv, "dout", dout);
  if (bf16) {
    auto kernel = op_kernel(op, device, &OpTable::attention_backward_bf16, "bf16");
    expect_bf16_head_dim(op, d.D);
    kernel(dqkv.bf16(), dout.bf16(), qkv.bf16(), out.bf16(), lse.f32(), d.B, d.L, d.H, d.D);
  } else {
    PIT_KERNEL(device, attention_backward)(dqkv.f32(), dout.f32(), qkv.f32(), out.f32(), lse.f32(), d.B, d.L, d.H,
                                           d.D);
  }
  return info.Env().Undefined();
}

PIT_BINDING("attentionForward", AttentionForward);
PIT_BINDING("attentionBackward", AttentionBackward);

}  // namespace
}  // namespace pit::binding
