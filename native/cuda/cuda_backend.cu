// The CUDA backend's plumbing: finds the GPU, owns the one non-blocking stream every CUDA op
// runs on, allocates from the device's stream-ordered memory pool (cudaMallocAsync), and
// registers alloc/free/copies with the core. When no GPU is usable it records why and the
// addon stays CPU-only; nothing here aborts the process.
#include <napi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/cuda_backend.h"
#include "cuda/op_table.h"

#ifndef PIT_CUDA_ARCHITECTURES  // CMake passes CMAKE_CUDA_ARCHITECTURES, ';' written as ','
#define PIT_CUDA_ARCHITECTURES "unknown"
#endif

namespace pit::cuda {
namespace {

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;
  size_t memory_bytes = 0;
  int multiprocessors = 0;
};

struct State {
  std::once_flag initialized;
  bool ready = false;
  std::string reason;  // why the backend is unavailable; empty when ready
  int runtime_version = 0, driver_version = 0;
  std::vector<DeviceInfo> devices;
  cudaStream_t stream = nullptr;
  cudaMemPool_t pool = nullptr;
};

// Never destroyed: tensors may still be freed by finalizers while the process exits, and
// they need the stream; the driver reclaims everything at exit anyway.
State& state() {
  static State* s = new State();
  return *s;
}

std::string version_string(int v) { return cat(v / 1000, ".", v % 1000 / 10); }  // 13000 -> "13.0"

std::string gib(size_t bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return s;
}

void* device_alloc(size_t bytes) {
  State& s = state();
  void* ptr = nullptr;
  cudaError_t status = cudaMallocAsync(&ptr, bytes, s.stream);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the process goes on
    size_t free_bytes = 0, total_bytes = 0;
    uint64_t pooled = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess ||
        cudaMemPoolGetAttribute(s.pool, cudaMemPoolAttrReservedMemCurrent, &pooled) != cudaSuccess)
      cudaGetLastError();  // the numbers below are then zero; the error itself stays the OOM
    throw RangeError(cat("out of GPU memory: could not allocate ", bytes, " bytes (", gib(bytes), ") on ",
                         s.devices[0].name, "; ", free_bytes, " bytes (", gib(free_bytes), ") free of ",
                         gib(total_bytes), ", and this process's memory pool holds ", gib(pooled)));
  }
  PIT_CUDA_CHECK(status);
  return ptr;
}

// Runs in tensor destructors, so it must not throw. It fails only when the context is already
// lost (the next checked call reports that) or the runtime is unloading at exit.
void device_free(void* ptr) noexcept {
  if (cudaFreeAsync(ptr, state().stream) != cudaSuccess) cudaGetLastError();
}

// host_src is pageable memory (all the binding passes): cudaMemcpyAsync returns once it has
// been staged, so the caller may free it at once, and the upload overlaps queued GPU work.
void copy_to_device(void* dst, const void* host_src, size_t bytes) {
  PIT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, state().stream));
}

void copy_to_host(void* host_dst, const void* src, size_t bytes) {
  cudaStream_t stream = state().stream;
  PIT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  PIT_CUDA_CHECK(cudaStreamSynchronize(stream));  // the caller reads host_dst next
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  PIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, state().stream));
}

void synchronize() { PIT_CUDA_CHECK(cudaStreamSynchronize(state().stream)); }

// One pair of events, created on first use: benchmarks time one region at a time.
cudaEvent_t timer_events[2] = {nullptr, nullptr};

void timer_start() {
  if (!timer_events[0]) {
    PIT_CUDA_CHECK(cudaEventCreate(&timer_events[0]));
    PIT_CUDA_CHECK(cudaEventCreate(&timer_events[1]));
  }
  PIT_CUDA_CHECK(cudaEventRecord(timer_events[0], state().stream));
}

double timer_stop_ms() {
  PIT_CHECK_TYPE(timer_events[0] != nullptr, "deviceTimerStop: no deviceTimerStart before it");
  PIT_CUDA_CHECK(cudaEventRecord(timer_events[1], state().stream));
  PIT_CUDA_CHECK(cudaEventSynchronize(timer_events[1]));
  float ms = 0;
  PIT_CUDA_CHECK(cudaEventElapsedTime(&ms, timer_events[0], timer_events[1]));
  return ms;
}

const DeviceBackend kBackend = {device_alloc, device_free, copy_to_device, copy_to_host, copy_on_device,
                                synchronize, timer_start, timer_stop_ms};

// Asking for its attributes fails when no compiled architecture (SASS or PTX) runs on the GPU.
__global__ void probe_kernel() {}

void set_up_device_0(State& s) {
  const DeviceInfo& d = s.devices[0];
  PIT_CUDA_CHECK(cudaSetDevice(0));  // also the default on every other host thread
  cudaFuncAttributes attributes;
  cudaError_t status = cudaFuncGetAttributes(&attributes, probe_kernel);
  if (status == cudaErrorNoKernelImageForDevice || status == cudaErrorUnsupportedPtxVersion) {
    cudaGetLastError();
    throw TypeError(cat(d.name, " (compute capability ", d.major, ".", d.minor,
                        ") cannot run this addon's kernels, built for ", PIT_CUDA_ARCHITECTURES, ": ",
                        cudaGetErrorString(status), "; rebuild with CUDAARCHS=", d.major, d.minor));
  }
  PIT_CUDA_CHECK(status);
  int pools_supported = 0;
  PIT_CUDA_CHECK(cudaDeviceGetAttribute(&pools_supported, cudaDevAttrMemoryPoolsSupported, 0));
  PIT_CHECK_TYPE(pools_supported, d.name, " does not support stream-ordered memory pools (cudaMallocAsync)");
  PIT_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  PIT_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&s.pool, 0));
  // Keep freed memory in the pool for the next allocation instead of returning it to the
  // driver at every synchronization: training allocates the same sizes every step.
  uint64_t keep_everything = UINT64_MAX;
  PIT_CUDA_CHECK(cudaMemPoolSetAttribute(s.pool, cudaMemPoolAttrReleaseThreshold, &keep_everything));
}

void initialize_once(State& s) {
  if (cudaRuntimeGetVersion(&s.runtime_version) != cudaSuccess) cudaGetLastError();
  if (cudaDriverGetVersion(&s.driver_version) != cudaSuccess) cudaGetLastError();  // 0: no driver
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();
    std::string cause = cat(cudaGetErrorString(status), " (", cudaGetErrorName(status), ")");
    if (status == cudaErrorInsufficientDriver && s.driver_version == 0)
      s.reason = cat("no usable GPU: no NVIDIA driver is installed (cudaGetDeviceCount: ", cause, ")");
    else if (status == cudaErrorInsufficientDriver)
      s.reason = cat("no usable GPU: the NVIDIA driver supports CUDA ", version_string(s.driver_version),
                     ", this addon was built with CUDA ", version_string(s.runtime_version), " (", cause, ")");
    else
      s.reason = cat("no usable GPU: cudaGetDeviceCount failed: ", cause);
    return;
  }
  if (count == 0) {
    s.reason = "no usable GPU: no CUDA device is visible (check CUDA_VISIBLE_DEVICES)";
    return;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      s.devices.push_back({cat("device ", i, " (properties unavailable)")});
      continue;
    }
    s.devices.push_back({p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount});
  }
  try {
    set_up_device_0(s);
  } catch (const std::exception& e) {
    s.reason = cat("GPU 0 is not usable: ", e.what());
    return;
  }
  s.ready = true;
  register_cuda_backend(&kBackend);
}

}  // namespace

OpTable& op_table_entries() {
  // Filled by PIT_CUDA_OP in each op file at load time; never destroyed (see state()).
  static OpTable* table = [] {
    auto* t = new OpTable();
    register_op_table(Device::CUDA, t);
    return t;
  }();
  return *table;
}

cudaStream_t stream() { return state().stream; }
int multiprocessors() { return state().devices.empty() ? 1 : std::max(1, state().devices[0].multiprocessors); }

void initialize() {
  State& s = state();
  std::call_once(s.initialized, [&s] { initialize_once(s); });  // once per process, not per env
}

bool available() {
  initialize();
  return state().ready;
}

std::string unavailable_reason() {
  initialize();
  return state().reason;
}

MemInfo mem_info() {
  MemInfo m;
  if (!available()) return m;
  PIT_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
  uint64_t reserved = 0;
  PIT_CUDA_CHECK(cudaMemPoolGetAttribute(state().pool, cudaMemPoolAttrReservedMemCurrent, &reserved));
  m.pool_reserved = static_cast<size_t>(reserved);
  return m;
}

Napi::Object build_info(Napi::Env env) {
  initialize();
  const State& s = state();
  Napi::Object info = Napi::Object::New(env);
  info.Set("available", s.ready);
  info.Set("runtimeVersion", version_string(s.runtime_version));
  info.Set("driverVersion", s.driver_version > 0 ? Napi::Value(Napi::String::New(env, version_string(s.driver_version)))
                                                 : env.Null());
  info.Set("architectures", PIT_CUDA_ARCHITECTURES);
  Napi::Array devices = Napi::Array::New(env, s.devices.size());
  for (size_t i = 0; i < s.devices.size(); ++i) {
    const DeviceInfo& d = s.devices[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("capability", cat(d.major, ".", d.minor));
    o.Set("memoryBytes", static_cast<double>(d.memory_bytes));
    o.Set("multiprocessors", d.multiprocessors);
    devices.Set(static_cast<uint32_t>(i), o);
  }
  info.Set("devices", devices);
  if (!s.ready) info.Set("reason", s.reason);
  return info;
}

}  // namespace pit::cuda
