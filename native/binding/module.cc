// The addon's entry point: registers every export. The entries themselves live one file per
// job beside this one (create, copy, random, memory, device_sync, build_info, op_table, and
// one per op) and add themselves to bindings() with PIT_BINDING.
#include <napi.h>

#include <vector>

#include "registry.h"
#include "tensor_object.h"
#ifdef PIT_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace pit::binding {

std::vector<Binding>& bindings() {
  static std::vector<Binding> all;
  return all;
}

}  // namespace pit::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace pit::binding;
#ifdef PIT_WITH_CUDA
  pit::cuda::initialize();  // registers the CUDA backend when a GPU is visible
#endif
  TensorObject::Init(env, exports);
  for (const Binding& b : bindings()) exports.Set(b.name, Napi::Function::New(env, b.fn, b.name));
  return exports;
}

NODE_API_MODULE(pit, InitAddon)
