// opTable(): the op table's entries (core/op_table.h) with the export that reaches each and
// the devices whose registered table has it. test/native-surface.test.ts checks it against
// the addon's exports and lib/native.ts's NativeAddon.
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

// opTable() -> [{ name: "matmul_forward", export: "matmulForward", gpuOnly, devices: ["cpu", "cuda"] }]
Napi::Value OpTableListing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<OpListing> ops = list_ops();
  Napi::Array out = Napi::Array::New(env, ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", ops[i].name);
    o.Set("export", ops[i].js_export);
    o.Set("gpuOnly", ops[i].gpu_only);
    Napi::Array devices = Napi::Array::New(env, ops[i].devices.size());
    for (size_t k = 0; k < ops[i].devices.size(); ++k) devices.Set(static_cast<uint32_t>(k), device_name(ops[i].devices[k]));
    o.Set("devices", devices);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

PIT_BINDING("opTable", OpTableListing);

}  // namespace
}  // namespace pit::binding
