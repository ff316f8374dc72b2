// cpuPeak(kind, seconds): the CPU's measured multiply-add peak in GFLOP/s, on all threads
// (native/cpu/peak.cc); `pit bench kernels` reports the CPU GEMMs as a fraction of it.
#include "args.h"
#include "cpu/backend.h"
#include "registry.h"

namespace pit::binding {
namespace {

Napi::Value CpuPeak(const Napi::CallbackInfo& info) {
  Args args(info, "cpuPeak");
  const std::string kind = args.string(0, "kind");
  const double seconds = args.number(1, "seconds");
  PIT_CHECK_RANGE(seconds > 0 && seconds <= 60, "cpuPeak: seconds must be in (0, 60], got ", seconds);
  return Napi::Number::New(info.Env(), cpu::cpu_peak_gflops(kind, seconds));
}

PIT_BINDING("cpuPeak", CpuPeak);

}  // namespace
}  // namespace pit::binding
