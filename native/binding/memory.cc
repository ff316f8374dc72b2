// memory() and resetPeakMemory(): live tensors and bytes per device, the host pool, the GPU.
#include "args.h"
#include "core/host_pool.h"
#include "registry.h"
#ifdef PIT_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace pit::binding {
namespace {

Napi::Object stats_object(Napi::Env env, Device d) {
  MemoryStats s = memory_stats(d);
  Napi::Object o = Napi::Object::New(env);
  o.Set("tensors", static_cast<double>(s.tensors));
  o.Set("bytes", static_cast<double>(s.bytes));
  o.Set("peakBytes", static_cast<double>(s.peak_bytes));
  return o;
}

// memory(): live tensors and bytes per device, the host pool's cached bytes (+ the GPU's
// free/total when present).
Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Object cpu = stats_object(env, Device::CPU);
  HostPoolStats pool = host_pool_stats();
  cpu.Set("poolCached", static_cast<double>(pool.cached_bytes));
  cpu.Set("poolLimit", static_cast<double>(pool.limit_bytes));
  out.Set("cpu", cpu);
  if (cuda_backend()) {
    Napi::Object cuda = stats_object(env, Device::CUDA);
#ifdef PIT_WITH_CUDA
    cuda::MemInfo m = cuda::mem_info();
    cuda.Set("free", static_cast<double>(m.free));
    cuda.Set("total", static_cast<double>(m.total));
    cuda.Set("poolReserved", static_cast<double>(m.pool_reserved));
#endif
    out.Set("cuda", cuda);
  }
  return out;
}

// resetPeakMemory(): memory().<device>.peakBytes restarts from the bytes live now, on every device.
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  reset_peak_memory(Device::CPU);
  reset_peak_memory(Device::CUDA);
  return info.Env().Undefined();
}

// setMemoryCap(device, bytes): allocations past `bytes` live on the device throw "out of <device>
// memory" (0 removes the cap).
Napi::Value SetMemoryCap(const Napi::CallbackInfo& info) {
  Args args(info, "setMemoryCap");
  const Device device = args.device(0, "device");
  set_memory_cap(device, args.integer(1, "bytes", 0, int64_t{1} << 53));
  return info.Env().Undefined();
}

PIT_BINDING("memory", Memory);
PIT_BINDING("resetPeakMemory", ResetPeakMemory);
PIT_BINDING("setMemoryCap", SetMemoryCap);

}  // namespace
}  // namespace pit::binding
