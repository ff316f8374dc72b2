// Argument readers and checks for binding entry points. Every reader names the op and the
// parameter in its error, says what it expected and what it got.
#pragma once
#include <vector>
#include <napi.h>

#include <initializer_list>
#include <string>

#include "core/tensor.h"

namespace pit::binding {

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  const char* op() const { return op_; }
  Napi::Env env() const { return info_.Env(); }

  Tensor& tensor(size_t i, const char* name);
  // null or undefined -> nullptr
  Tensor* optional_tensor(size_t i, const char* name);
  double number(size_t i, const char* name);  // finite
  double any_number(size_t i, const char* name);  // NaN and ±Infinity allowed
  // A safe integer within [min, max].
  int64_t integer(size_t i, const char* name, int64_t min, int64_t max);
  bool boolean(size_t i, const char* name);
  std::string string(size_t i, const char* name);
  Shape shape(size_t i, const char* name);
  DType dtype(size_t i, const char* name);  // "f32" | "bf16" | "i32"
  // "cpu" | "cuda"; cuda only when the CUDA backend is registered (a GPU was found).
  Device device(size_t i, const char* name);

 private:
  Napi::Value at(size_t i) const { return i < info_.Length() ? info_[i] : info_.Env().Undefined(); }
  const Napi::CallbackInfo& info_;
  const char* op_;
};

std::string describe(Napi::Value value);  // "a number (3)", "undefined", "a disposed tensor"…

// Shape, dtype and device checks used by every op binding.
void expect_dtype(const char* op, const char* name, const Tensor& t, DType dtype);
void expect_shape(const char* op, const char* name, const Tensor& t, const Shape& shape);
void expect_ndim(const char* op, const char* name, const Tensor& t, int ndim, const char* layout);
// All tensors on one device; returns it. Null entries are skipped.
Device common_device(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors);
// Every non-null tensor is f32 (the CPU backend computes in f32 throughout).
void expect_f32(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors);
// An i32 tensor's values readable on the host, for validation: the data itself on the CPU; a
// copy on the GPU (which synchronises; index tensors are small).
class HostInts {
 public:
  explicit HostInts(const Tensor& t);
  const int32_t* data() const { return data_; }

 private:
  std::vector<int32_t> copy_;
  const int32_t* data_;
};
// Leading dims of t (all but the last `keep`), multiplied.
int64_t leading(const Tensor& t, int keep);
Shape drop_last(const Shape& s, int n);
Shape with_last(Shape s, int64_t last);

// The op has no kernel on `device` yet: a clear TypeError instead of a silent fallback.
[[noreturn]] void unsupported_device(const char* op, Device device);
// Outputs must not share storage with inputs unless the op says so.
void expect_distinct(const char* op, const char* out_name, const Tensor& out, const char* in_name,
                     const Tensor& in);

}  // namespace pit::binding
