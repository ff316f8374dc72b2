// layernormForward / layernormBackward over the last dim of x (..., C). weight and bias are
// each optional: a null weight acts as ones, a null bias as zeros.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// layernormForward(out, mean, rstd, x, weight | null, bias | null, eps)
Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const char* op = "layernormForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& mean = args.tensor(1, "mean");
  Tensor& rstd = args.tensor(2, "rstd");
  Tensor& x = args.tensor(3, "x");
  Tensor* weight = args.optional_tensor(4, "weight");
  Tensor* bias = args.optional_tensor(5, "bias");
  double eps = args.number(6, "eps");
  PIT_CHECK_RANGE(eps > 0, op, ": 'eps' must be positive, got ", eps);
  const Device device = common_device(op, {{"out", &out}, {"mean", &mean}, {"rstd", &rstd}, {"x", &x}, {"weight", weight}, {"bias", bias}});
  expect_f32(op, {{"out", &out}, {"mean", &mean}, {"rstd", &rstd}, {"x", &x}, {"weight", weight}, {"bias", bias}});
  PIT_CHECK_RANGE(x.ndim() >= 1 && x.dim(-1) >= 1, op, ": 'x' must be (..., C) with C >= 1, got shape ",
                  shape_string(x.shape()));
  int64_t C = x.dim(-1), N = leading(x, 1);
  expect_shape(op, "out", out, x.shape());
  expect_shape(op, "mean", mean, drop_last(x.shape(), 1));
  expect_shape(op, "rstd", rstd, drop_last(x.shape(), 1));
  if (weight) expect_shape(op, "weight", *weight, {C});
  if (bias) expect_shape(op, "bias", *bias, {C});
  PIT_KERNEL(device, layernorm_forward)(out.f32(), mean.f32(), rstd.f32(), x.f32(), weight ? weight->f32() : nullptr,
                         bias ? bias->f32() : nullptr, N, C, static_cast<float>(eps));
  return info.Env().Undefined();
}

// layernormBackward(dx, dweight | null, dbias | null, dout, x, weight | null, mean, rstd)
Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layernormBackward";
  Args args(info, op);
  Tensor& dx = args.tensor(0, "dx");
  Tensor* dweight = args.optional_tensor(1, "dweight");
  Tensor* dbias = args.optional_tensor(2, "dbias");
  Tensor& dout = args.tensor(3, "dout");
  Tensor& x = args.tensor(4, "x");
  Tensor* weight = args.optional_tensor(5, "weight");
  Tensor& mean = args.tensor(6, "mean");
  Tensor& rstd = args.tensor(7, "rstd");
  const Device device = common_device(op, {{"dx", &dx}, {"dweight", dweight}, {"dbias", dbias}, {"dout", &dout}, {"x", &x}, {"weight", weight},
                {"mean", &mean}, {"rstd", &rstd}});
  expect_f32(op, {{"dx", &dx}, {"dweight", dweight}, {"dbias", dbias}, {"dout", &dout}, {"x", &x}, {"weight", weight},
                  {"mean", &mean}, {"rstd", &rstd}});
  PIT_CHECK_RANGE(x.ndim() >= 1 && x.dim(-1) >= 1, op, ": 'x' must be (..., C) with C >= 1, got shape ",
                  shape_string(x.shape()));
  int64_t C = x.dim(-1), N = leading(x, 1);
  PIT_CHECK_TYPE(weight || !dweight, op, ": 'dweight' needs 'weight' (null weight means the non-affine form)");
  expect_shape(op, "dx", dx, x.shape());
  expect_shape(op, "dout", dout, x.shape());
  expect_shape(op, "mean", mean, drop_last(x.shape(), 1));
  expect_shape(op, "rstd", rstd, drop_last(x.shape(), 1));
  if (weight) expect_shape(op, "weight", *weight, {C});
  if (dweight) expect_shape(op, "dweight", *dweight, {C});
  if (dbias) expect_shape(op, "dbias", *dbias, {C});
  PIT_KERNEL(device, layernorm_backward)(dx.f32(), dweight ? dweight->f32() : nullptr, dbias ? dbias->f32() : nullptr, dout.f32(),
                          x.f32(), weight ? weight->f32() : nullptr, mean.f32(), rstd.f32(), N, C);
  return info.Env().Undefined();
}

PIT_BINDING("layernormForward", LayernormForward);
PIT_BINDING("layernormBackward", LayernormBackward);

}  // namespace
}  // namespace pit::binding
