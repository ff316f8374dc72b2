#include "tensor.h"

#include "host_pool.h"

namespace pit {
namespace {

std::atomic<int64_t> live_tensors[2];
std::atomic<int64_t> live_bytes[2];
std::atomic<int64_t> peak_bytes[2];
std::atomic<int64_t> cap_bytes[2];
const DeviceBackend* registered_cuda = nullptr;

// 64-byte alignment: one AVX-512 vector, one cache line.
constexpr size_t kAlign = 64;

// What a storage of n bytes asks the allocator for: whole 64-byte lines, at least one.
size_t padded(size_t n) { return n == 0 ? kAlign : (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

const DeviceBackend* cuda_backend() { return registered_cuda; }
void register_cuda_backend(const DeviceBackend* backend) { registered_cuda = backend; }

Storage::Storage(size_t n, Device dev) : bytes(n), device(dev) {
  const int64_t cap = cap_bytes[static_cast<int>(dev)].load();
  PIT_CHECK_RANGE(cap <= 0 || live_bytes[static_cast<int>(dev)].load() + static_cast<int64_t>(n) <= cap,
                  "out of ", dev == Device::CPU ? "cpu" : "cuda", " memory: ", n, " more bytes would pass the cap of ", cap,
                  " bytes (setMemoryCap) with ", live_bytes[static_cast<int>(dev)].load(), " live");
  const size_t request = padded(n);
  if (device == Device::CPU) {
    data = host_alloc(request);
  } else {
    const DeviceBackend* cuda = cuda_backend();
    PIT_CHECK_TYPE(cuda != nullptr, "device 'cuda' is not available in this build (CPU-only addon)");
    data = cuda->alloc(request);
  }
  int d = static_cast<int>(device);
  live_tensors[d] += 1;
  const int64_t live = live_bytes[d] += static_cast<int64_t>(n);
  int64_t peak = peak_bytes[d].load();
  while (live > peak && !peak_bytes[d].compare_exchange_weak(peak, live)) {
  }
}

Storage::~Storage() {
  if (device == Device::CPU) host_free(data, padded(bytes));
  else cuda_backend()->free(data);
  int d = static_cast<int>(device);
  live_tensors[d] -= 1;
  live_bytes[d] -= static_cast<int64_t>(bytes);
}

MemoryStats memory_stats(Device device) {
  int d = static_cast<int>(device);
  return {live_tensors[d].load(), live_bytes[d].load(), peak_bytes[d].load()};
}

void reset_peak_memory(Device device) {
  int d = static_cast<int>(device);
  peak_bytes[d] = live_bytes[d].load();
}

void set_memory_cap(Device device, int64_t bytes) { cap_bytes[static_cast<int>(device)] = bytes; }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  int64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    PIT_CHECK_RANGE(shape[i] >= 0, "shape[", i, "] must be a non-negative integer, got ", shape[i]);
    // Checked before multiplying so the product itself cannot overflow.
    PIT_CHECK_RANGE(shape[i] == 0 || numel <= kMaxTensorBytes / shape[i],
                    "shape ", shape_string(shape), " is too large (limit ", kMaxTensorBytes, " bytes)");
    numel *= shape[i];
  }
  PIT_CHECK_RANGE(numel <= kMaxTensorBytes / static_cast<int64_t>(dtype_size(dtype)), "shape ",
                  shape_string(shape), " of ", dtype_name(dtype), " is too large (limit ", kMaxTensorBytes,
                  " bytes)");
  Tensor t;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(numel) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.numel_ = numel;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::reshaped(const Shape& shape) const {
  int64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    PIT_CHECK_RANGE(shape[i] >= 0, "shape[", i, "] must be a non-negative integer, got ", shape[i]);
    numel = (shape[i] != 0 && numel > numel_ / shape[i]) ? -1 : numel * shape[i];  // -1: too many
    if (numel < 0) break;
  }
  PIT_CHECK_RANGE(numel == numel_, "cannot reshape ", shape_string(shape_), " (", numel_, " elements) to ",
                  shape_string(shape), " (", numel, " elements)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

}  // namespace pit
