// What every CUDA op file needs: the backend's one stream, launch checking, grid sizing.
// Ops are asynchronous on that stream (host reads synchronise through copy_to_host), take
// device pointers with the same signatures as native/core/ops.h, and live in pit::cuda.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "check.h"

namespace pit::cuda {

// The non-blocking stream all kernels, copies and pool allocations are ordered on.
cudaStream_t stream();
// Multiprocessors of device 0 (grid sizing for grid-stride loops).
int multiprocessors();

// Throws (naming the op) if the last launch failed to start.
inline void check_launch(const char* op) { check(cudaGetLastError(), op); }

// Blocks for a grid-stride loop over n items with `threads` per block: enough to fill the
// GPU a few times over, never more than the work needs.
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t needed = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(needed, int64_t(multiprocessors()) * 8)));
}

// Stream-ordered scratch memory from the pool (none for 0 bytes). release() frees it on the
// normal path, checked; the destructor frees it if an exception (a failed launch) skipped
// release(). Freed on the stream, so kernels queued before still read it safely.
class Scratch {
 public:
  explicit Scratch(size_t bytes) {
    if (bytes > 0) check(cudaMallocAsync(&ptr_, bytes, stream()), "cudaMallocAsync (scratch)");
  }
  ~Scratch() {
    if (ptr_ && cudaFreeAsync(ptr_, stream()) != cudaSuccess) cudaGetLastError();  // must not throw
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }
  void release() {
    void* p = ptr_;
    ptr_ = nullptr;
    if (p) check(cudaFreeAsync(p, stream()), "cudaFreeAsync (scratch)");
  }

 private:
  void* ptr_ = nullptr;
};

}  // namespace pit::cuda
