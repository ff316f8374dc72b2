// sumForward / sumBackward over one axis (mean when asked).
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

struct Split {
  int64_t outer, n, inner;
  Shape reduced;  // x's shape without the axis
};

Split split_at(const char* op, const Tensor& x, int64_t axis) {
  PIT_CHECK_RANGE(axis >= -x.ndim() && axis < x.ndim(), op, ": 'axis' must be in [", -x.ndim(), ", ", x.ndim(),
                  ") for shape ", shape_string(x.shape()), ", got ", axis);
  int a = static_cast<int>(axis < 0 ? axis + x.ndim() : axis);
  Split s{1, x.dim(a), 1, {}};
  for (int i = 0; i < x.ndim(); ++i) {
    if (i < a) s.outer *= x.dim(i);
    if (i > a) s.inner *= x.dim(i);
    if (i != a) s.reduced.push_back(x.dim(i));
  }
  return s;
}

// sumForward(out, x, axis, mean)
Napi::Value SumForward(const Napi::CallbackInfo& info) {
  const char* op = "sumForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  int64_t axis = args.integer(2, "axis", -8, 7);
  bool mean = args.boolean(3, "mean");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  Split s = split_at(op, x, axis);
  PIT_CHECK_RANGE(!mean || s.n > 0, op, ": mean over an empty axis");
  expect_shape(op, "out", out, s.reduced);
  expect_distinct(op, "out", out, "x", x);
  PIT_KERNEL(device, sum_forward)(out.f32(), x.f32(), s.outer, s.n, s.inner, mean);
  return info.Env().Undefined();
}

// sumBackward(dx, dout, axis, mean)
Napi::Value SumBackward(const Napi::CallbackInfo& info) {
  const char* op = "sumBackward";
  Args args(info, op);
  Tensor& dx = args.tensor(0, "dx");
  Tensor& dout = args.tensor(1, "dout");
  int64_t axis = args.integer(2, "axis", -8, 7);
  bool mean = args.boolean(3, "mean");
  const Device device = common_device(op, {{"dx", &dx}, {"dout", &dout}});
  expect_f32(op, {{"dx", &dx}, {"dout", &dout}});
  Split s = split_at(op, dx, axis);
  expect_shape(op, "dout", dout, s.reduced);
  expect_distinct(op, "dx", dx, "dout", dout);
  PIT_KERNEL(device, sum_backward)(dx.f32(), dout.f32(), s.outer, s.n, s.inner, mean);
  return info.Env().Undefined();
}

PIT_BINDING("sumForward", SumForward);
PIT_BINDING("sumBackward", SumBackward);

}  // namespace
}  // namespace pit::binding
