// Waiting for and timing a device's queued work: synchronize, deviceTimerStart/Stop.
#include "args.h"
#include "registry.h"

namespace pit::binding {
namespace {

// synchronize(device): returns once all queued work on `device` is done (a no-op on CPU, whose
// ops are synchronous).
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Args args(info, "synchronize");
  if (args.device(0, "device") == Device::CUDA) cuda_backend()->synchronize();
  return info.Env().Undefined();
}

// deviceTimerStart() / deviceTimerStop() -> ms: device events around the GPU work queued
// between them (benchmarks). CUDA only: CPU work is timed with the host clock.
const DeviceBackend& timing_backend(const char* op) {
  PIT_CHECK_TYPE(cuda_backend() != nullptr, op, ": device timers need the CUDA backend (time CPU work with the host clock)");
  return *cuda_backend();
}

Napi::Value DeviceTimerStart(const Napi::CallbackInfo& info) {
  timing_backend("deviceTimerStart").timer_start();
  return info.Env().Undefined();
}

Napi::Value DeviceTimerStop(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), timing_backend("deviceTimerStop").timer_stop_ms());
}

PIT_BINDING("synchronize", Synchronize);
PIT_BINDING("deviceTimerStart", DeviceTimerStart);
PIT_BINDING("deviceTimerStop", DeviceTimerStop);

}  // namespace
}  // namespace pit::binding
