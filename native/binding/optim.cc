// adamw (one in-place step over a parameter tensor) and the global gradient norm.
#include <cmath>

#include "args.h"
#include "core/op_table.h"
#include "registry.h"
#include "tensor_object.h"

namespace pit::binding {
namespace {

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step)
Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* op = "adamw";
  Args args(info, op);
  Tensor& param = args.tensor(0, "param");
  Tensor& grad = args.tensor(1, "grad");
  Tensor& m = args.tensor(2, "m");
  Tensor& v = args.tensor(3, "v");
  double lr = args.number(4, "lr");
  double beta1 = args.number(5, "beta1"), beta2 = args.number(6, "beta2");
  double eps = args.number(7, "eps"), weight_decay = args.number(8, "weightDecay");
  int64_t step = args.integer(9, "step", 1, int64_t(1) << 50);
  PIT_CHECK_RANGE(lr >= 0, op, ": 'lr' must be >= 0, got ", lr);
  PIT_CHECK_RANGE(beta1 >= 0 && beta1 < 1, op, ": 'beta1' must be in [0, 1), got ", beta1);
  PIT_CHECK_RANGE(beta2 >= 0 && beta2 < 1, op, ": 'beta2' must be in [0, 1), got ", beta2);
  PIT_CHECK_RANGE(eps > 0, op, ": 'eps' must be positive, got ", eps);
  PIT_CHECK_RANGE(weight_decay >= 0, op, ": 'weightDecay' must be >= 0, got ", weight_decay);
  const Device device = common_device(op, {{"param", &param}, {"grad", &grad}, {"m", &m}, {"v", &v}});
  expect_f32(op, {{"param", &param}, {"grad", &grad}, {"m", &m}, {"v", &v}});
  expect_shape(op, "grad", grad, param.shape());
  expect_shape(op, "m", m, param.shape());
  expect_shape(op, "v", v, param.shape());
  PIT_KERNEL(device, adamw)(param.f32(), grad.f32(), m.f32(), v.f32(), param.numel(), static_cast<float>(lr),
             static_cast<float>(beta1), static_cast<float>(beta2), static_cast<float>(eps),
             static_cast<float>(weight_decay), step);
  return info.Env().Undefined();
}

// gradNorm(tensors: Tensor[]) -> number: sqrt(Σ over all tensors of Σ x²), in float64.
Napi::Value GradNorm(const Napi::CallbackInfo& info) {
  const char* op = "gradNorm";
  Args args(info, op);
  PIT_CHECK_TYPE(info.Length() >= 1 && info[0].IsArray(), op, ": 'tensors' must be an array of tensors, got ",
                 describe(info.Length() ? info[0] : info.Env().Undefined()));
  Napi::Array list = info[0].As<Napi::Array>();
  double total = 0;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value v = list.Get(i);
    TensorObject* t = TensorObject::Unwrap(v);
    PIT_CHECK_TYPE(t != nullptr, op, ": 'tensors[", i, "]' must be a tensor, got ", describe(v));
    PIT_CHECK_TYPE(!t->disposed(), op, ": 'tensors[", i, "]' is a disposed tensor");
    const Tensor& x = t->tensor();
    expect_dtype(op, cat("tensors[", i, "]").c_str(), x, DType::F32);
    total += PIT_KERNEL(x.device(), sum_of_squares)(x.f32(), x.numel());
  }
  return Napi::Number::New(info.Env(), std::sqrt(total));
}

PIT_BINDING("adamw", Adamw);
PIT_BINDING("gradNorm", GradNorm);

}  // namespace
}  // namespace pit::binding
