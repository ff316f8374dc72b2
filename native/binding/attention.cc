// attentionForward / attentionBackward on packed qkv (B, L, 3, H, D), scale D^-0.5.
#include "args.h"
#include "core/op_table.h"
#include "cpu/ops.h"
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

// attentionForward(out, lse, qkv): out (B, L, H, D), lse (B, H, L).
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* op = "attentionForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& lse = args.tensor(1, "lse");
  Tensor& qkv = args.tensor(2, "qkv");
  const Device device = common_device(op, {{"out", &out}, {"lse", &lse}, {"qkv", &qkv}});
  expect_f32(op, {{"out", &out}, {"lse", &lse}, {"qkv", &qkv}});
  AttentionDims d = attention_dims(op, qkv);
  expect_shape(op, "out", out, {d.B, d.L, d.H, d.D});
  expect_shape(op, "lse", lse, {d.B, d.H, d.L});
  expect_distinct(op, "out", out, "qkv", qkv);
  PIT_KERNEL(device, attention_forward)(out.f32(), lse.f32(), qkv.f32(), d.B, d.L, d.H, d.D);
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
  expect_f32(op, {{"dqkv", &dqkv}, {"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}});
  AttentionDims d = attention_dims(op, qkv);
  expect_shape(op, "dqkv", dqkv, qkv.shape());
  expect_shape(op, "dout", dout, {d.B, d.L, d.H, d.D});
  expect_shape(op, "out", out, {d.B, d.L, d.H, d.D});
  expect_shape(op, "lse", lse, {d.B, d.H, d.L});
  expect_distinct(op, "dqkv", dqkv, "qkv", qkv);
  expect_distinct(op, "dqkv", dqkv, "dout", dout);
  PIT_KERNEL(device, attention_backward)(dqkv.f32(), dout.f32(), qkv.f32(), out.f32(), lse.f32(), d.B, d.L, d.H, d.D);
  return info.Env().Undefined();
}

PIT_BINDING("attentionForward", AttentionForward);
PIT_BINDING("attentionBackward", AttentionBackward);

}  // namespace
}  // namespace pit::binding
