// randomFill: a tensor from the Philox stream (core/rng.h), the same numbers on every device.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// randomFill(t, kind: "normal" | "uniform", seed, offset)
Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  Args args(info, "randomFill");
  Tensor& t = args.tensor(0, "tensor");
  std::string kind = args.string(1, "kind");
  PIT_CHECK_TYPE(kind == "normal" || kind == "uniform", "randomFill: 'kind' must be \"normal\" or \"uniform\", got \"",
                 kind, "\"");
  uint64_t seed = static_cast<uint64_t>(args.integer(2, "seed", 0, 9007199254740991));
  uint64_t offset = static_cast<uint64_t>(args.integer(3, "offset", 0, 9007199254740991));
  expect_dtype("randomFill", "tensor", t, DType::F32);
  const char* op = "randomFill";
  if (kind == "normal") PIT_KERNEL(t.device(), fill_normal)(t.f32(), t.numel(), seed, offset);
  else PIT_KERNEL(t.device(), fill_uniform)(t.f32(), t.numel(), seed, offset);
  return info.Env().Undefined();
}

PIT_BINDING("randomFill", RandomFill);

}  // namespace
}  // namespace pit::binding
