// modulate (adaLN: x·(1 + scale) + shift) and the gated residual (x + gate·y), per sample:
// x, y (B, L, C); shift, scale, gate (B, C).
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

struct BLC {
  int64_t B, L, C;
};

BLC blc(const char* op, const char* name, const Tensor& x) {
  expect_ndim(op, name, x, 3, "(B, L, C)");
  return {x.dim(0), x.dim(1), x.dim(2)};
}

// modulateForward(out, x, shift, scale)
Napi::Value ModulateForward(const Napi::CallbackInfo& info) {
  const char* op = "modulateForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  Tensor& shift = args.tensor(2, "shift");
  Tensor& scale = args.tensor(3, "scale");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}, {"shift", &shift}, {"scale", &scale}});
  expect_f32(op, {{"out", &out}, {"x", &x}, {"shift", &shift}, {"scale", &scale}});
  BLC d = blc(op, "x", x);
  expect_shape(op, "out", out, x.shape());
  expect_shape(op, "shift", shift, {d.B, d.C});
  expect_shape(op, "scale", scale, {d.B, d.C});
  PIT_KERNEL(device, modulate_forward)(out.f32(), x.f32(), shift.f32(), scale.f32(), d.B, d.L, d.C);
  return info.Env().Undefined();
}

// modulateBackward(dx | null, dshift | null, dscale | null, dout, x, scale)
Napi::Value ModulateBackward(const Napi::CallbackInfo& info) {
  const char* op = "modulateBackward";
  Args args(info, op);
  Tensor* dx = args.optional_tensor(0, "dx");
  Tensor* dshift = args.optional_tensor(1, "dshift");
  Tensor* dscale = args.optional_tensor(2, "dscale");
  Tensor& dout = args.tensor(3, "dout");
  Tensor& x = args.tensor(4, "x");
  Tensor& scale = args.tensor(5, "scale");
  const Device device = common_device(op, {{"dx", dx}, {"dshift", dshift}, {"dscale", dscale}, {"dout", &dout}, {"x", &x}, {"scale", &scale}});
  expect_f32(op, {{"dx", dx}, {"dshift", dshift}, {"dscale", dscale}, {"dout", &dout}, {"x", &x}, {"scale", &scale}});
  BLC d = blc(op, "x", x);
  expect_shape(op, "dout", dout, x.shape());
  expect_shape(op, "scale", scale, {d.B, d.C});
  if (dx) expect_shape(op, "dx", *dx, x.shape());
  if (dshift) expect_shape(op, "dshift", *dshift, {d.B, d.C});
  if (dscale) expect_shape(op, "dscale", *dscale, {d.B, d.C});
  PIT_KERNEL(device, modulate_backward)(dx ? dx->f32() : nullptr, dshift ? dshift->f32() : nullptr, dscale ? dscale->f32() : nullptr,
                         dout.f32(), x.f32(), scale.f32(), d.B, d.L, d.C);
  return info.Env().Undefined();
}

// gatedResidualForward(out, x, y, gate)
Napi::Value GatedResidualForward(const Napi::CallbackInfo& info) {
  const char* op = "gatedResidualForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  Tensor& y = args.tensor(2, "y");
  Tensor& gate = args.tensor(3, "gate");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}, {"y", &y}, {"gate", &gate}});
  expect_f32(op, {{"out", &out}, {"x", &x}, {"y", &y}, {"gate", &gate}});
  BLC d = blc(op, "x", x);
  expect_shape(op, "out", out, x.shape());
  expect_shape(op, "y", y, x.shape());
  expect_shape(op, "gate", gate, {d.B, d.C});
  PIT_KERNEL(device, gated_residual_forward)(out.f32(), x.f32(), y.f32(), gate.f32(), d.B, d.L, d.C);
  return info.Env().Undefined();
}

// gatedResidualBackward(dy | null, dgate | null, dout, y, gate)
Napi::Value GatedResidualBackward(const Napi::CallbackInfo& info) {
  const char* op = "gatedResidualBackward";
  Args args(info, op);
  Tensor* dy = args.optional_tensor(0, "dy");
  Tensor* dgate = args.optional_tensor(1, "dgate");
  Tensor& dout = args.tensor(2, "dout");
  Tensor& y = args.tensor(3, "y");
  Tensor& gate = args.tensor(4, "gate");
  const Device device = common_device(op, {{"dy", dy}, {"dgate", dgate}, {"dout", &dout}, {"y", &y}, {"gate", &gate}});
  expect_f32(op, {{"dy", dy}, {"dgate", dgate}, {"dout", &dout}, {"y", &y}, {"gate", &gate}});
  BLC d = blc(op, "y", y);
  expect_shape(op, "dout", dout, y.shape());
  expect_shape(op, "gate", gate, {d.B, d.C});
  if (dy) expect_shape(op, "dy", *dy, y.shape());
  if (dgate) expect_shape(op, "dgate", *dgate, {d.B, d.C});
  PIT_KERNEL(device, gated_residual_backward)(dy ? dy->f32() : nullptr, dgate ? dgate->f32() : nullptr, dout.f32(), y.f32(),
                               gate.f32(), d.B, d.L, d.C);
  return info.Env().Undefined();
}

PIT_BINDING("modulateForward", ModulateForward);
PIT_BINDING("modulateBackward", ModulateBackward);
PIT_BINDING("gatedResidualForward", GatedResidualForward);
PIT_BINDING("gatedResidualBackward", GatedResidualBackward);

}  // namespace
}  // namespace pit::binding
