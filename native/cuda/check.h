// PIT_CUDA_CHECK(call): every CUDA runtime call in native/cuda/ goes through it. A failure
// becomes the pit::TypeError / pit::RangeError that the binding hands to JavaScript, naming
// the call and CUDA's own words for the error, so a CUDA failure never aborts the process.
#pragma once
#include <cuda_runtime.h>

#include "core/error.h"

namespace pit::cuda {

// After these the CUDA context is lost: every later call in this process fails the same way.
inline bool is_sticky(cudaError_t status) {
  switch (status) {
    case cudaErrorIllegalAddress:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call) {
  // Clears the error from the runtime's last-error slot (sticky errors cannot be cleared),
  // so a later cudaGetLastError() after a kernel launch does not report this one again.
  cudaGetLastError();
  std::string message = cat(call, " failed: ", cudaGetErrorString(status), " (", cudaGetErrorName(status), ")");
  if (is_sticky(status)) message += "; the GPU context is lost, restart the process";
  switch (status) {
    case cudaErrorInvalidDevicePointer:   // a host pointer where a device pointer belongs
    case cudaErrorInvalidResourceHandle:  // a stream or event that is not one
    case cudaErrorInvalidDeviceFunction:
    case cudaErrorNoKernelImageForDevice:  // the GPU is not among the compiled architectures
      throw TypeError(message);
    default:
      throw RangeError(message);  // sizes, out of memory, launch configuration, the rest
  }
}

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw_cuda_error(status, call);
}

}  // namespace pit::cuda

#define PIT_CUDA_CHECK(call) ::pit::cuda::check((call), #call)
