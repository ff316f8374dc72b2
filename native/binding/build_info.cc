// buildInfo(): what this addon is and can do; `pit info` prints it.
#include "args.h"
#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "registry.h"
#ifdef PIT_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace pit::binding {
namespace {

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef PIT_WITH_CUDA
  out.Set("backend", "cuda");
  out.Set("cuda", cuda::build_info(env));
#else
  out.Set("backend", "cpu");
#endif
  out.Set("cpuIsa", cpu_isa());
  out.Set("cpuIsaNote", cpu_isa_note());
  out.Set("cpuBf16Gemm", cpu::bf16_gemm_path());
  // How the CPU runs bf16 attention (cpu/attention_bf16.cc picks the same way, for every
  // head dim the binding accepts).
  out.Set("cpuBf16Attention", cpu_has_avx512_bf16() ? "avx512bf16" : "f32-widened");
  out.Set("threads", num_threads());
  out.Set("compiler", __VERSION__);
#ifdef NDEBUG
  out.Set("debug", false);
#else
  out.Set("debug", true);
#endif
  return out;
}

PIT_BINDING("buildInfo", BuildInfo);

}  // namespace
}  // namespace pit::binding
