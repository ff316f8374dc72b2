// matmulInfo(): which engines the GPU GEMMs may take and took (the cuBLASLt library found, or
// why none was; GEMMs counted per path; why any fell back). Loads cuBLASLt on first call, so
// `pit info` can report it on a machine without a GPU; buildInfo() never loads it.
#include "args.h"
#include "registry.h"
#ifdef PIT_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace pit::binding {
namespace {

Napi::Value MatmulInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef PIT_WITH_CUDA
  return cuda::matmul_info(env);
#else
  Napi::Object out = Napi::Object::New(env);
  out.Set("mode", "auto");
  Napi::Object lt = Napi::Object::New(env);
  lt.Set("loaded", false);
  lt.Set("reason", "the CPU-only addon has no CUDA backend (cuBLASLt is for the CUDA addon's GEMMs)");
  lt.Set("tried", Napi::Array::New(env));
  out.Set("cublasLt", lt);
  out.Set("calls", Napi::Object::New(env));
  out.Set("fallbacks", Napi::Object::New(env));
  return out;
#endif
}

PIT_BINDING("matmulInfo", MatmulInfo);

}  // namespace
}  // namespace pit::binding
