// geluForward / geluBackward (erf or tanh form) and siluForward / siluBackward, elementwise.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

GeluForm gelu_form(Args& args, size_t i) {
  std::string s = args.string(i, "approximate");
  PIT_CHECK_TYPE(s == "none" || s == "tanh", args.op(), ": 'approximate' must be \"none\" (erf) or \"tanh\", got \"",
                 s, "\"");
  return s == "tanh" ? GeluForm::Tanh : GeluForm::Erf;
}

// geluForward(out, x, approximate)
Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const char* op = "geluForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  GeluForm form = gelu_form(args, 2);
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  expect_shape(op, "out", out, x.shape());
  PIT_KERNEL(device, gelu_forward)(out.f32(), x.f32(), x.numel(), form);
  return info.Env().Undefined();
}

// geluBackward(dx, dout, x, approximate)
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "geluBackward";
  Args args(info, op);
  Tensor& dx = args.tensor(0, "dx");
  Tensor& dout = args.tensor(1, "dout");
  Tensor& x = args.tensor(2, "x");
  GeluForm form = gelu_form(args, 3);
  const Device device = common_device(op, {{"dx", &dx}, {"dout", &dout}, {"x", &x}});
  expect_f32(op, {{"dx", &dx}, {"dout", &dout}, {"x", &x}});
  expect_shape(op, "dx", dx, x.shape());
  expect_shape(op, "dout", dout, x.shape());
  PIT_KERNEL(device, gelu_backward)(dx.f32(), dout.f32(), x.f32(), x.numel(), form);
  return info.Env().Undefined();
}

// siluForward(out, x)
Napi::Value SiluForward(const Napi::CallbackInfo& info) {
  const char* op = "siluForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  expect_shape(op, "out", out, x.shape());
  PIT_KERNEL(device, silu_forward)(out.f32(), x.f32(), x.numel());
  return info.Env().Undefined();
}

// siluBackward(dx, dout, x)
Napi::Value SiluBackward(const Napi::CallbackInfo& info) {
  const char* op = "siluBackward";
  Args args(info, op);
  Tensor& dx = args.tensor(0, "dx");
  Tensor& dout = args.tensor(1, "dout");
  Tensor& x = args.tensor(2, "x");
  const Device device = common_device(op, {{"dx", &dx}, {"dout", &dout}, {"x", &x}});
  expect_f32(op, {{"dx", &dx}, {"dout", &dout}, {"x", &x}});
  expect_shape(op, "dx", dx, x.shape());
  expect_shape(op, "dout", dout, x.shape());
  PIT_KERNEL(device, silu_backward)(dx.f32(), dout.f32(), x.f32(), x.numel());
  return info.Env().Undefined();
}

PIT_BINDING("geluForward", GeluForward);
PIT_BINDING("geluBackward", GeluBackward);
PIT_BINDING("siluForward", SiluForward);
PIT_BINDING("siluBackward", SiluBackward);

}  // namespace
}  // namespace pit::binding
