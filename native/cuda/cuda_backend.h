// The CUDA backend's surface to the binding (CMake build only, PIT_WITH_CUDA).
#pragma once
#include <napi.h>

#include <cstddef>
#include <string>

namespace pit::cuda {

// Finds a GPU; when one is visible, creates the stream and memory pool and registers the
// backend with the core (pit::register_cuda_backend). Never throws: when no GPU is usable it
// records why, and the addon stays CPU-only.
void initialize();
bool available();
std::string unavailable_reason();  // empty when available

struct MemInfo {
  size_t free = 0, total = 0, pool_reserved = 0;
};
MemInfo mem_info();

// { available, runtimeVersion "13.0", driverVersion (null without a driver), architectures,
//   devices: [{ name, capability "9.0", memoryBytes, multiprocessors }], reason? }
Napi::Object build_info(Napi::Env env);

// The GEMM engines (gemm_lt.cu): { mode (PIT_MATMUL), cublasLt: { loaded, path, version,
// source, handle | reason, tried }, calls: { path: count }, fallbacks: { reason: count } }.
// Loads cuBLASLt on first use (no GPU needed for that); buildInfo() never does.
Napi::Object matmul_info(Napi::Env env);

}  // namespace pit::cuda
