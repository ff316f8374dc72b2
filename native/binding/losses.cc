// softmaxCrossEntropy (loss and dlogits in one pass) and the (masked) mean squared error.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// softmaxCrossEntropy(losses, dlogits | null, logits, targets, smoothing, gradScale)
// logits (N, K) f32, targets (N) i32 in [0, K), losses (N).
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  const char* op = "softmaxCrossEntropy";
  Args args(info, op);
  Tensor& losses = args.tensor(0, "losses");
  Tensor* dlogits = args.optional_tensor(1, "dlogits");
  Tensor& logits = args.tensor(2, "logits");
  Tensor& targets = args.tensor(3, "targets");
  double smoothing = args.number(4, "smoothing");
  double grad_scale = args.number(5, "gradScale");
  PIT_CHECK_RANGE(smoothing >= 0 && smoothing < 1, op, ": 'smoothing' must be in [0, 1), got ", smoothing);
  const Device device = common_device(op, {{"losses", &losses}, {"dlogits", dlogits}, {"logits", &logits}, {"targets", &targets}});
  expect_f32(op, {{"losses", &losses}, {"dlogits", dlogits}, {"logits", &logits}});
  expect_dtype(op, "targets", targets, DType::I32);
  expect_ndim(op, "logits", logits, 2, "(N, K)");
  int64_t N = logits.dim(0), K = logits.dim(1);
  PIT_CHECK_RANGE(K >= 1, op, ": 'logits' needs at least one class, got shape ", shape_string(logits.shape()));
  expect_shape(op, "targets", targets, {N});
  expect_shape(op, "losses", losses, {N});
  if (dlogits) expect_shape(op, "dlogits", *dlogits, logits.shape());
  const HostInts host_targets(targets);
  const int32_t* t = host_targets.data();
  for (int64_t i = 0; i < N; ++i)
    PIT_CHECK_RANGE(t[i] >= 0 && t[i] < K, op, ": 'targets[", i, "]' must be a class in [0, ", K, "), got ", t[i]);
  PIT_KERNEL(device, softmax_cross_entropy)(losses.f32(), dlogits ? dlogits->f32() : nullptr, logits.f32(), targets.i32(), N, K,
                             static_cast<float>(smoothing), static_cast<float>(grad_scale));
  return info.Env().Undefined();
}

struct MseDims {
  int64_t B, L, P;
};

MseDims mse_dims(const char* op, const Tensor& pred, const Tensor& target, const Tensor* mask) {
  expect_ndim(op, "pred", pred, 3, "(B, L, P)");
  expect_shape(op, "target", target, pred.shape());
  MseDims d{pred.dim(0), pred.dim(1), pred.dim(2)};
  if (mask) expect_shape(op, "mask", *mask, {d.B, d.L});
  return d;
}

// mseForward(loss, pred, target, mask | null): loss has one element.
Napi::Value MseForward(const Napi::CallbackInfo& info) {
  const char* op = "mseForward";
  Args args(info, op);
  Tensor& loss = args.tensor(0, "loss");
  Tensor& pred = args.tensor(1, "pred");
  Tensor& target = args.tensor(2, "target");
  Tensor* mask = args.optional_tensor(3, "mask");
  const Device device = common_device(op, {{"loss", &loss}, {"pred", &pred}, {"target", &target}, {"mask", mask}});
  expect_f32(op, {{"loss", &loss}, {"pred", &pred}, {"target", &target}, {"mask", mask}});
  MseDims d = mse_dims(op, pred, target, mask);
  PIT_CHECK_RANGE(loss.numel() == 1, op, ": 'loss' must hold one element, got shape ", shape_string(loss.shape()));
  PIT_KERNEL(device, mse_forward)(loss.f32(), pred.f32(), target.f32(), mask ? mask->f32() : nullptr, d.B, d.L, d.P);
  return info.Env().Undefined();
}

// mseBackward(dpred, dloss, pred, target, mask | null)
Napi::Value MseBackward(const Napi::CallbackInfo& info) {
  const char* op = "mseBackward";
  Args args(info, op);
  Tensor& dpred = args.tensor(0, "dpred");
  Tensor& dloss = args.tensor(1, "dloss");
  Tensor& pred = args.tensor(2, "pred");
  Tensor& target = args.tensor(3, "target");
  Tensor* mask = args.optional_tensor(4, "mask");
  const Device device = common_device(op, {{"dpred", &dpred}, {"dloss", &dloss}, {"pred", &pred}, {"target", &target}, {"mask", mask}});
  expect_f32(op, {{"dpred", &dpred}, {"dloss", &dloss}, {"pred", &pred}, {"target", &target}, {"mask", mask}});
  MseDims d = mse_dims(op, pred, target, mask);
  PIT_CHECK_RANGE(dloss.numel() == 1, op, ": 'dloss' must hold one element, got shape ", shape_string(dloss.shape()));
  expect_shape(op, "dpred", dpred, pred.shape());
  PIT_KERNEL(device, mse_backward)(dpred.f32(), dloss.f32(), pred.f32(), target.f32(), mask ? mask->f32() : nullptr, d.B, d.L, d.P);
  return info.Env().Undefined();
}

PIT_BINDING("softmaxCrossEntropy", SoftmaxCrossEntropy);
PIT_BINDING("mseForward", MseForward);
PIT_BINDING("mseBackward", MseBackward);

}  // namespace
}  // namespace pit::binding
