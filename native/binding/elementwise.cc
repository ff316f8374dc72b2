// add, mul (b broadcast over a's leading dims, or a one-element scalar), scale, axpy, fill.
// These may work in place: out may be a.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// b's shape must be a suffix of a's shape (e.g. bias (C) on (N, C)) or hold one element.
int64_t broadcast_length(const char* op, const Tensor& a, const Tensor& b) {
  if (b.numel() == 1 && a.numel() >= 1) return 1;
  bool suffix = b.ndim() <= a.ndim();
  for (int i = 1; suffix && i <= b.ndim(); ++i) suffix = b.dim(-i) == a.dim(-i);
  PIT_CHECK_RANGE(suffix, op, ": 'b' of shape ", shape_string(b.shape()), " must match the trailing dims of 'a' ",
                  shape_string(a.shape()), " or hold one element");
  return b.numel();
}

using BinaryKernel = ops::add_forward*;

Napi::Value Binary(const Napi::CallbackInfo& info, const char* op, BinaryKernel OpTable::*entry) {
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& a = args.tensor(1, "a");
  Tensor& b = args.tensor(2, "b");
  const Device device = common_device(op, {{"out", &out}, {"a", &a}, {"b", &b}});
  expect_f32(op, {{"out", &out}, {"a", &a}, {"b", &b}});
  expect_shape(op, "out", out, a.shape());
  int64_t nb = broadcast_length(op, a, b);
  if (a.numel() == 0) return info.Env().Undefined();
  PIT_CHECK_TYPE(!out.shares_storage_with(b) || nb == a.numel(), op,
                 ": output 'out' must not share memory with the broadcast operand 'b'");
  op_kernel(op, device, entry)(out.f32(), a.f32(), b.f32(), a.numel(), nb);
  return info.Env().Undefined();
}

// add(out, a, b), mul(out, a, b)
Napi::Value Add(const Napi::CallbackInfo& info) { return Binary(info, "add", &OpTable::add_forward); }
Napi::Value Mul(const Napi::CallbackInfo& info) { return Binary(info, "mul", &OpTable::mul_forward); }

// scale(out, x, alpha)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  double alpha = args.number(2, "alpha");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  expect_shape(op, "out", out, x.shape());
  PIT_KERNEL(device, scale_forward)(out.f32(), x.f32(), static_cast<float>(alpha), x.numel());
  return info.Env().Undefined();
}

// axpy(y, x, alpha): y += alpha · x
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* op = "axpy";
  Args args(info, op);
  Tensor& y = args.tensor(0, "y");
  Tensor& x = args.tensor(1, "x");
  double alpha = args.number(2, "alpha");
  const Device device = common_device(op, {{"y", &y}, {"x", &x}});
  expect_f32(op, {{"y", &y}, {"x", &x}});
  expect_shape(op, "x", x, y.shape());
  PIT_KERNEL(device, axpy)(y.f32(), x.f32(), static_cast<float>(alpha), y.numel());
  return info.Env().Undefined();
}

// fill(out, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  const char* op = "fill";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  double value = args.any_number(1, "value");  // NaN is how tests poison outputs
  const Device device = common_device(op, {{"out", &out}});
  expect_f32(op, {{"out", &out}});
  PIT_KERNEL(device, fill)(out.f32(), static_cast<float>(value), out.numel());
  return info.Env().Undefined();
}

PIT_BINDING("add", Add);
PIT_BINDING("mul", Mul);
PIT_BINDING("scale", Scale);
PIT_BINDING("axpy", Axpy);
PIT_BINDING("fill", Fill);

}  // namespace
}  // namespace pit::binding
