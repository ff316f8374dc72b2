// Gaussian diffusion's device ops: perSampleAxpby (q_sample, posterior means), the hybrid
// loss (diffusionLossForward / diffusionLossBackward) and one sampling step (diffusionStep).
// Images are (B, C, ...) with any trailing dims (H, W), flattened to N = their product.
#include <cmath>

#include "args.h"
#include "core/diffusion.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// perSampleAxpby(out, x, y | null, a, c | null): out = a[b]·x + c[b]·y; x, y, out (B, ...),
// a, c (B). out may be x or y.
Napi::Value PerSampleAxpby(const Napi::CallbackInfo& info) {
  const char* op = "perSampleAxpby";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  Tensor* y = args.optional_tensor(2, "y");
  Tensor& a = args.tensor(3, "a");
  Tensor* c = args.optional_tensor(4, "c");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}, {"y", y}, {"a", &a}, {"c", c}});
  expect_f32(op, {{"out", &out}, {"x", &x}, {"y", y}, {"a", &a}, {"c", c}});
  PIT_CHECK_TYPE((y == nullptr) == (c == nullptr), op, ": 'y' and 'c' must be given together (or both null), got ",
                 y ? "'y' without 'c'" : "'c' without 'y'");
  PIT_CHECK_RANGE(x.ndim() >= 1, op, ": 'x' must be (B, ...), got a scalar");
  const int64_t B = x.dim(0), n = B == 0 ? 0 : x.numel() / B;
  expect_shape(op, "out", out, x.shape());
  if (y) expect_shape(op, "y", *y, x.shape());
  expect_shape(op, "a", a, {B});
  if (c) expect_shape(op, "c", *c, {B});
  PIT_KERNEL(device, per_sample_axpby)(out.f32(), x.f32(), y ? y->f32() : nullptr, a.f32(), c ? c->f32() : nullptr, B, n);
  return info.Env().Undefined();
}

struct Dims {
  int64_t B, C, N;
};

// x0 (B, C, ...) fixes the sizes; model_out must be (B, out_factor·C, ...) (or 2B rows when
// `rows` is 2: guidance).
Dims image_dims(const char* op, const char* name, const Tensor& x) {
  PIT_CHECK_RANGE(x.ndim() >= 2, op, ": '", name, "' must be (B, C, ...), got shape ", shape_string(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(1);
  return {B, C, B * C == 0 ? 0 : x.numel() / (B * C)};
}

Shape model_out_shape(const Tensor& x, int64_t rows, int64_t channels) {
  Shape s = x.shape();
  s[0] = rows;
  s[1] = channels;
  return s;
}

Dims loss_dims(const char* op, const Tensor& model_out, const Tensor& x0, const Tensor& xt, const Tensor& noise,
               const Tensor& coefs) {
  const Dims d = image_dims(op, "x0", x0);
  expect_shape(op, "modelOut", model_out, model_out_shape(x0, d.B, 2 * d.C));
  expect_shape(op, "xt", xt, x0.shape());
  expect_shape(op, "noise", noise, x0.shape());
  expect_shape(op, "coefs", coefs, {d.B, diffusion::kLossCoefs});
  return d;
}

// diffusionLossForward(loss, terms | null, vb | null, modelOut, x0, xt, noise, coefs)
// loss (1), terms (2) = [mse, vb]; vb like x0; modelOut (B, 2C, ...); coefs (B, 7).
Napi::Value DiffusionLossForward(const Napi::CallbackInfo& info) {
  const char* op = "diffusionLossForward";
  Args args(info, op);
  Tensor& loss = args.tensor(0, "loss");
  Tensor* terms = args.optional_tensor(1, "terms");
  Tensor* vb = args.optional_tensor(2, "vb");
  Tensor& model_out = args.tensor(3, "modelOut");
  Tensor& x0 = args.tensor(4, "x0");
  Tensor& xt = args.tensor(5, "xt");
  Tensor& noise = args.tensor(6, "noise");
  Tensor& coefs = args.tensor(7, "coefs");
  const Device device = common_device(op, {{"loss", &loss}, {"terms", terms}, {"vb", vb}, {"modelOut", &model_out},
                                           {"x0", &x0}, {"xt", &xt}, {"noise", &noise}, {"coefs", &coefs}});
  expect_f32(op, {{"loss", &loss}, {"terms", terms}, {"vb", vb}, {"modelOut", &model_out}, {"x0", &x0}, {"xt", &xt},
                  {"noise", &noise}, {"coefs", &coefs}});
  const Dims d = loss_dims(op, model_out, x0, xt, noise, coefs);
  PIT_CHECK_RANGE(loss.numel() == 1, op, ": 'loss' must hold one element, got shape ", shape_string(loss.shape()));
  if (terms) PIT_CHECK_RANGE(terms->numel() == 2, op, ": 'terms' must hold two elements, got shape ", shape_string(terms->shape()));
  if (vb) expect_shape(op, "vb", *vb, x0.shape());
  PIT_KERNEL(device, diffusion_loss_forward)(loss.f32(), terms ? terms->f32() : nullptr, vb ? vb->f32() : nullptr,
                                             model_out.f32(), x0.f32(), xt.f32(), noise.f32(), coefs.f32(), d.B, d.C, d.N);
  return info.Env().Undefined();
}

// diffusionLossBackward(dout, dloss, modelOut, x0, xt, noise, coefs): dout like modelOut.
Napi::Value DiffusionLossBackward(const Napi::CallbackInfo& info) {
  const char* op = "diffusionLossBackward";
  Args args(info, op);
  Tensor& dout = args.tensor(0, "dout");
  Tensor& dloss = args.tensor(1, "dloss");
  Tensor& model_out = args.tensor(2, "modelOut");
  Tensor& x0 = args.tensor(3, "x0");
  Tensor& xt = args.tensor(4, "xt");
  Tensor& noise = args.tensor(5, "noise");
  Tensor& coefs = args.tensor(6, "coefs");
  const Device device = common_device(op, {{"dout", &dout}, {"dloss", &dloss}, {"modelOut", &model_out}, {"x0", &x0},
                                           {"xt", &xt}, {"noise", &noise}, {"coefs", &coefs}});
  expect_f32(op, {{"dout", &dout}, {"dloss", &dloss}, {"modelOut", &model_out}, {"x0", &x0}, {"xt", &xt},
                  {"noise", &noise}, {"coefs", &coefs}});
  const Dims d = loss_dims(op, model_out, x0, xt, noise, coefs);
  PIT_CHECK_RANGE(dloss.numel() == 1, op, ": 'dloss' must hold one element, got shape ", shape_string(dloss.shape()));
  expect_shape(op, "dout", dout, model_out.shape());
  expect_distinct(op, "dout", dout, "modelOut", model_out);
  PIT_KERNEL(device, diffusion_loss_backward)(dout.f32(), dloss.f32(), model_out.f32(), x0.f32(), xt.f32(),
                                              noise.f32(), coefs.f32(), d.B, d.C, d.N);
  return info.Env().Undefined();
}

// A field of the step object: a finite number.
double step_number(const char* op, const Napi::Object& step, const char* name) {
  Napi::Value v = step.Get(name);
  PIT_CHECK_TYPE(v.IsNumber(), op, ": 'step.", name, "' must be a number, got ", describe(v));
  double x = v.As<Napi::Number>().DoubleValue();
  PIT_CHECK_RANGE(std::isfinite(x), op, ": 'step.", name, "' must be finite, got ", x);
  return x;
}

bool step_boolean(const char* op, const Napi::Object& step, const char* name) {
  Napi::Value v = step.Get(name);
  PIT_CHECK_TYPE(v.IsBoolean(), op, ": 'step.", name, "' must be a boolean, got ", describe(v));
  return v.As<Napi::Boolean>().Value();
}

// diffusionStep(xNext, modelOut, xt, noise | null, step): x_next, xt, noise (B, C, ...);
// modelOut (B or 2B (guided), C or 2C (learned σ), ...); step: the scalars of
// core/diffusion.h's Step, by their camelCase names. xNext may be xt.
Napi::Value DiffusionStep(const Napi::CallbackInfo& info) {
  const char* op = "diffusionStep";
  Args args(info, op);
  Tensor& x_next = args.tensor(0, "xNext");
  Tensor& model_out = args.tensor(1, "modelOut");
  Tensor& xt = args.tensor(2, "xt");
  Tensor* noise = args.optional_tensor(3, "noise");
  Napi::Value step_value = info.Length() > 4 ? info[4] : info.Env().Undefined();
  PIT_CHECK_TYPE(step_value.IsObject() && !step_value.IsArray(), op, ": 'step' must be an object, got ", describe(step_value));
  const Napi::Object s = step_value.As<Napi::Object>();
  const Device device = common_device(op, {{"xNext", &x_next}, {"modelOut", &model_out}, {"xt", &xt}, {"noise", noise}});
  expect_f32(op, {{"xNext", &x_next}, {"modelOut", &model_out}, {"xt", &xt}, {"noise", noise}});
  const Dims d = image_dims(op, "xt", xt);
  expect_shape(op, "xNext", x_next, xt.shape());
  if (noise) expect_shape(op, "noise", *noise, xt.shape());
  PIT_CHECK_RANGE(model_out.ndim() == xt.ndim() && model_out.ndim() >= 2, op, ": 'modelOut' must be (B or 2B, C or 2C, ...) like 'xt' ",
                  shape_string(xt.shape()), ", got shape ", shape_string(model_out.shape()));
  const bool guided = model_out.dim(0) == 2 * d.B && d.B > 0;
  const int64_t Cout = model_out.dim(1);
  PIT_CHECK_RANGE((Cout == d.C || Cout == 2 * d.C), op, ": 'modelOut' must have C = ", d.C, " or 2C = ", 2 * d.C,
                  " channels, got shape ", shape_string(model_out.shape()));
  expect_shape(op, "modelOut", model_out, model_out_shape(xt, guided ? 2 * d.B : d.B, Cout));
  expect_distinct(op, "xNext", x_next, "modelOut", model_out);
  if (noise) expect_distinct(op, "xNext", x_next, "noise", *noise);
  diffusion::Step step{};
  step.recip_sqrt_ab = static_cast<float>(step_number(op, s, "recipSqrtAlphaBar"));
  step.recip_m1_sqrt_ab = static_cast<float>(step_number(op, s, "recipM1SqrtAlphaBar"));
  step.mean_x0 = static_cast<float>(step_number(op, s, "meanX0"));
  step.mean_xt = static_cast<float>(step_number(op, s, "meanXt"));
  step.log_var_max = static_cast<float>(step_number(op, s, "logVarMax"));
  step.log_var_min = static_cast<float>(step_number(op, s, "logVarMin"));
  step.sqrt_ab_prev = static_cast<float>(step_number(op, s, "sqrtAlphaBarPrev"));
  step.sqrt_one_minus_ab_prev = static_cast<float>(step_number(op, s, "sqrtOneMinusAlphaBarPrev"));
  step.guidance_scale = static_cast<float>(step_number(op, s, "guidanceScale"));
  const double g = step_number(op, s, "guidedChannels");
  PIT_CHECK_RANGE(std::floor(g) == g && g >= 0 && g <= static_cast<double>(Cout), op,
                  ": 'step.guidedChannels' must be an integer in [0, ", Cout, "], got ", g);
  step.guided_channels = static_cast<int32_t>(g);
  step.clip = step_boolean(op, s, "clip");
  step.ddim = step_boolean(op, s, "ddim");
  PIT_CHECK_RANGE(!step.ddim || step.recip_m1_sqrt_ab > 0, op,
                  ": 'step.recipM1SqrtAlphaBar' must be positive for a DDIM step (it divides), got ", step.recip_m1_sqrt_ab);
  PIT_KERNEL(device, diffusion_step)(x_next.f32(), model_out.f32(), xt.f32(), noise ? noise->f32() : nullptr, step,
                                     guided, d.B, d.C, Cout, d.N);
  return info.Env().Undefined();
}

PIT_BINDING("perSampleAxpby", PerSampleAxpby);
PIT_BINDING("diffusionLossForward", DiffusionLossForward);
PIT_BINDING("diffusionLossBackward", DiffusionLossBackward);
PIT_BINDING("diffusionStep", DiffusionStep);

}  // namespace
}  // namespace pit::binding
