// cpuPeak(kind, seconds) -> { flops, seconds }: the fastest of five runs of the CPU's
// multiply-add peak loop on all threads (native/cpu/peak.cc); `pit bench kernels` reports
// the CPU GEMMs as a fraction of flops / seconds.
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
  const cpu::PeakRun run = cpu::cpu_peak(kind, seconds);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("flops", run.flops);
  out.Set("seconds", run.seconds);
  return out;
}

PIT_BINDING("cpuPeak", CpuPeak);

}  // namespace
}  // namespace pit::binding
