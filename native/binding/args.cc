#include "args.h"

#include <algorithm>
#include <cmath>

#include "tensor_object.h"

namespace pit::binding {

std::string describe(Napi::Value v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return cat("a boolean (", v.As<Napi::Boolean>().Value() ? "true" : "false", ")");
  if (v.IsNumber()) return cat("a number (", v.As<Napi::Number>().DoubleValue(), ")");
  if (v.IsString()) return cat("a string (\"", v.As<Napi::String>().Utf8Value(), "\")");
  if (v.IsArray()) return cat("an array of length ", v.As<Napi::Array>().Length());
  if (v.IsTypedArray()) return "a typed array";
  if (TensorObject* t = TensorObject::Unwrap(v)) {
    if (t->disposed()) return "a disposed tensor";
    const Tensor& x = t->tensor();
    return cat("a ", dtype_name(x.dtype()), " tensor of shape ", shape_string(x.shape()), " on ",
               device_name(x.device()));
  }
  if (v.IsFunction()) return "a function";
  return "an object";
}

DType Args::dtype(size_t i, const char* name) {
  std::string s = string(i, name);
  DType t;
  PIT_CHECK_TYPE(parse_dtype(s, &t), op_, ": '", name, "' must be \"f32\", \"bf16\" or \"i32\", got \"", s, "\"");
  return t;
}

Device Args::device(size_t i, const char* name) {
  std::string s = string(i, name);
  Device d;
  PIT_CHECK_TYPE(parse_device(s, &d), op_, ": '", name, "' must be \"cpu\" or \"cuda\", got \"", s, "\"");
  PIT_CHECK_TYPE(d == Device::CPU || cuda_backend() != nullptr, op_, ": device \"cuda\" is not available ",
                 "(this is the CPU-only addon or no GPU was found)");
  return d;
}

Tensor& Args::tensor(size_t i, const char* name) {
  Napi::Value v = at(i);
  TensorObject* t = TensorObject::Unwrap(v);
  PIT_CHECK_TYPE(t != nullptr, op_, ": '", name, "' must be a tensor, got ", describe(v));
  PIT_CHECK_TYPE(!t->disposed(), op_, ": '", name, "' is a disposed tensor (it was used after dispose())");
  return t->tensor();
}

Tensor* Args::optional_tensor(size_t i, const char* name) {
  Napi::Value v = at(i);
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  return &tensor(i, name);
}

double Args::number(size_t i, const char* name) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsNumber(), op_, ": '", name, "' must be a number, got ", describe(v));
  double x = v.As<Napi::Number>().DoubleValue();
  PIT_CHECK_RANGE(std::isfinite(x), op_, ": '", name, "' must be finite, got ", x);
  return x;
}

double Args::any_number(size_t i, const char* name) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsNumber(), op_, ": '", name, "' must be a number, got ", describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t Args::integer(size_t i, const char* name, int64_t min, int64_t max) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsNumber(), op_, ": '", name, "' must be an integer, got ", describe(v));
  double x = v.As<Napi::Number>().DoubleValue();
  PIT_CHECK_TYPE(std::isfinite(x) && std::floor(x) == x && std::fabs(x) <= 9007199254740991.0, op_, ": '",
                 name, "' must be an integer, got ", x);
  PIT_CHECK_RANGE(x >= static_cast<double>(min) && x <= static_cast<double>(max), op_, ": '", name,
                  "' must be in [", min, ", ", max, "], got ", static_cast<int64_t>(x));
  return static_cast<int64_t>(x);
}

bool Args::boolean(size_t i, const char* name) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsBoolean(), op_, ": '", name, "' must be a boolean, got ", describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string Args::string(size_t i, const char* name) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsString(), op_, ": '", name, "' must be a string, got ", describe(v));
  return v.As<Napi::String>().Utf8Value();
}

Shape Args::shape(size_t i, const char* name) {
  Napi::Value v = at(i);
  PIT_CHECK_TYPE(v.IsArray(), op_, ": '", name, "' must be an array of non-negative integers, got ",
                 describe(v));
  Napi::Array a = v.As<Napi::Array>();
  PIT_CHECK_RANGE(a.Length() <= 8, op_, ": '", name, "' may have at most 8 dimensions, got ", a.Length());
  Shape shape(a.Length());
  for (uint32_t d = 0; d < a.Length(); ++d) {
    Napi::Value e = a.Get(d);
    PIT_CHECK_TYPE(e.IsNumber(), op_, ": '", name, "[", d, "]' must be a non-negative integer, got ",
                   describe(e));
    double x = e.As<Napi::Number>().DoubleValue();
    PIT_CHECK_TYPE(std::isfinite(x) && std::floor(x) == x, op_, ": '", name, "[", d,
                   "]' must be a non-negative integer, got ", x);
    PIT_CHECK_RANGE(x >= 0 && x <= 9007199254740991.0, op_, ": '", name, "[", d,
                    "]' must be a non-negative integer, got ", x);
    shape[d] = static_cast<int64_t>(x);
  }
  return shape;
}

void expect_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  PIT_CHECK_TYPE(t.dtype() == dtype, op, ": '", name, "' must be ", dtype_name(dtype), ", got ",
                 dtype_name(t.dtype()));
}

void expect_shape(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  PIT_CHECK_RANGE(t.shape() == shape, op, ": '", name, "' must have shape ", shape_string(shape), ", got ",
                  shape_string(t.shape()));
}

void expect_ndim(const char* op, const char* name, const Tensor& t, int ndim, const char* layout) {
  PIT_CHECK_RANGE(t.ndim() == ndim, op, ": '", name, "' must be ", ndim, "-D ", layout, ", got shape ",
                  shape_string(t.shape()));
}

Device common_device(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  const char* first_name = nullptr;
  Device device = Device::CPU;
  for (const auto& [name, t] : tensors) {
    if (!t) continue;
    if (!first_name) {
      first_name = name;
      device = t->device();
    } else {
      PIT_CHECK_TYPE(t->device() == device, op, ": all tensors must be on one device; '", first_name,
                     "' is on ", device_name(device), " but '", name, "' is on ", device_name(t->device()));
    }
  }
  return device;
}

void expect_f32(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> tensors) {
  for (const auto& [name, t] : tensors)
    if (t) expect_dtype(op, name, *t, DType::F32);
}

HostInts::HostInts(const Tensor& t) : data_(nullptr) {
  if (t.device() == Device::CPU) {
    data_ = t.i32();
    return;
  }
  copy_.resize(static_cast<size_t>(t.numel()));
  if (!copy_.empty()) cuda_backend()->copy_to_host(copy_.data(), t.raw(), t.nbytes());
  data_ = copy_.data();
}

int64_t leading(const Tensor& t, int keep) {
  int64_t n = 1;
  for (int i = 0; i + keep < t.ndim(); ++i) n *= t.dim(i);
  return n;
}

Shape drop_last(const Shape& s, int n) { return Shape(s.begin(), s.end() - std::min<size_t>(n, s.size())); }

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}

void unsupported_device(const char* op, Device device) {
  throw TypeError(cat(op, ": not implemented on ", device_name(device), " in this build"));
}

void expect_distinct(const char* op, const char* out_name, const Tensor& out, const char* in_name,
                     const Tensor& in) {
  PIT_CHECK_TYPE(!out.shares_storage_with(in), op, ": output '", out_name, "' must not share memory with input '",
                 in_name, "'");
}

}  // namespace pit::binding
