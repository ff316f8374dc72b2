// A tensor is a contiguous, row-major block of one dtype on one device, with an N-D shape.
// Storage is shared between a tensor and its reshaped views and freed when the last one
// lets go, which the JS side does deterministically through dispose().
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "dtype.h"
#include "error.h"

namespace pit {

using Shape = std::vector<int64_t>;

// Refuses allocations beyond this, so an absurd shape is a RangeError, not an abort.
constexpr int64_t kMaxTensorBytes = int64_t(1) << 40;

struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t bytes = 0;
  Device device;
};

// Live storages and their bytes, per device, and the most bytes live at once since the last
// reset_peak_memory (or the start); what memory() reports. Benchmarks read the peak of a
// training step from it (tensor bytes, as torch.cuda.max_memory_allocated counts them).
struct MemoryStats {
  int64_t tensors = 0;
  int64_t bytes = 0;
  int64_t peak_bytes = 0;
};
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);
// A cap on the bytes live on `device` (0: none): an allocation that would pass it throws the
// RangeError "out of <device> memory" before it allocates, as a full GPU does. A CPU cannot
// report running out before it swaps; the cap lets a search for the largest step that fits in
// a budget (`--find-max --memory-limit`) stop a probe at its first allocation past it.
void set_memory_cap(Device device, int64_t bytes);

int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

class Tensor {
 public:
  // Allocates uninitialised storage. Throws RangeError for negative or oversized shapes.
  static Tensor empty(const Shape& shape, DType dtype, Device device);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  void* raw() const { return storage_->data; }
  float* f32() const { return static_cast<float*>(storage_->data); }
  uint16_t* bf16() const { return static_cast<uint16_t*>(storage_->data); }
  int32_t* i32() const { return static_cast<int32_t*>(storage_->data); }

  // A view of the same storage with another shape of the same element count.
  Tensor reshaped(const Shape& shape) const;
  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
};

}  // namespace pit
