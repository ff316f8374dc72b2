// Where a tensor's bytes live. The CPU backend is always compiled; the CUDA backend only in
// the CMake build, which registers its allocator and copy functions at load time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace pit {

enum class Device : uint8_t { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

inline bool parse_device(const std::string& s, Device* out) {
  if (s == "cpu") *out = Device::CPU;
  else if (s == "cuda") *out = Device::CUDA;
  else return false;
  return true;
}

// What a non-CPU backend provides to the core. All pointers are device pointers except
// where the name says host.
struct DeviceBackend {
  void* (*alloc)(size_t bytes);  // throws pit::RangeError on out-of-memory
  void (*free)(void* ptr);
  void (*copy_to_device)(void* dst, const void* host_src, size_t bytes);
  void (*copy_to_host)(void* host_dst, const void* src, size_t bytes);
  void (*copy_on_device)(void* dst, const void* src, size_t bytes);
  void (*synchronize)();
  // Benchmark timing with device events on the stream: timer_start records the start event,
  // timer_stop_ms records the stop event, waits for it and returns the milliseconds between.
  void (*timer_start)();
  double (*timer_stop_ms)();
};

// Null until a CUDA build registers itself; checked wherever a CUDA tensor is made.
const DeviceBackend* cuda_backend();
void register_cuda_backend(const DeviceBackend* backend);

}  // namespace pit
