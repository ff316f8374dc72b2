#include "tensor_object.h"

#include <cstring>
#include <vector>

#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

Napi::FunctionReference* constructor = nullptr;

// Host copy of a tensor's bytes (a no-op view for CPU tensors is not possible: JS owns the copy).
void copy_to_host(void* dst, const Tensor& t) {
  if (t.device() == Device::CPU) std::memcpy(dst, t.raw(), t.nbytes());
  else cuda_backend()->copy_to_host(dst, t.raw(), t.nbytes());
}

}  // namespace

void TensorObject::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(
      env, "NativeTensor",
      {
          InstanceAccessor<&TensorObject::Shape>("shape"),
          InstanceAccessor<&TensorObject::DTypeName>("dtype"),
          InstanceAccessor<&TensorObject::DeviceName>("device"),
          InstanceAccessor<&TensorObject::Disposed>("disposed"),
          InstanceMethod<&TensorObject::Dispose>("dispose"),
          InstanceMethod<&TensorObject::ToArray>("toArray"),
          InstanceMethod<&TensorObject::Reshape>("reshape"),
      });
  constructor = new Napi::FunctionReference(Napi::Persistent(cls));
  env.SetInstanceData<Napi::FunctionReference>(constructor);
  exports.Set("NativeTensor", cls);
}

Napi::Object TensorObject::Wrap(Napi::Env env, Tensor tensor) {
  Napi::Object obj = constructor->New({});
  TensorObject* self = Napi::ObjectWrap<TensorObject>::Unwrap(obj);
  if (tensor.device() == Device::CPU) {
    self->external_bytes_ = static_cast<int64_t>(tensor.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, self->external_bytes_);
  }
  self->tensor_ = std::move(tensor);
  return obj;
}

TensorObject* TensorObject::Unwrap(Napi::Value value) {
  if (!value.IsObject() || constructor == nullptr) return nullptr;
  Napi::Object obj = value.As<Napi::Object>();
  if (!obj.InstanceOf(constructor->Value())) return nullptr;
  return Napi::ObjectWrap<TensorObject>::Unwrap(obj);
}

TensorObject::TensorObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorObject>(info) {}

TensorObject::~TensorObject() = default;  // storage goes with tensor_

// Garbage collection of a handle that was never disposed: the safety net.
void TensorObject::Finalize(Napi::Env env) {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
}

void TensorObject::Release(Napi::Env env) {
  if (external_bytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -external_bytes_);
  external_bytes_ = 0;
  tensor_.reset();
}

Tensor& TensorObject::Live(const char* what) {
  if (!tensor_) throw Napi::TypeError::New(Env(), cat(what, ": tensor has been disposed"));
  return *tensor_;
}

Napi::Value TensorObject::Shape(const Napi::CallbackInfo& info) {
  const Tensor& t = Live("shape");
  Napi::Array a = Napi::Array::New(info.Env(), t.ndim());
  for (int d = 0; d < t.ndim(); ++d) a.Set(d, Napi::Number::New(info.Env(), static_cast<double>(t.dim(d))));
  return a;
}

Napi::Value TensorObject::DTypeName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtype_name(Live("dtype").dtype()));
}

Napi::Value TensorObject::DeviceName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(Live("device").device()));
}

Napi::Value TensorObject::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

Napi::Value TensorObject::Dispose(const Napi::CallbackInfo& info) {
  Release(info.Env());
  return info.Env().Undefined();
}

// f32 and bf16 read back as a Float32Array, i32 as an Int32Array.
Napi::Value TensorObject::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& t = Live("toArray");
  size_t n = static_cast<size_t>(t.numel());
  if (t.dtype() == DType::I32) {
    Napi::Int32Array out = Napi::Int32Array::New(env, n);
    if (n) copy_to_host(out.Data(), t);
    return out;
  }
  Napi::Float32Array out = Napi::Float32Array::New(env, n);
  if (n == 0) return out;
  if (t.dtype() == DType::F32) {
    copy_to_host(out.Data(), t);
  } else {
    std::vector<uint16_t> host(n);
    copy_to_host(host.data(), t);
    op_kernel("toArray", Device::CPU, &OpTable::cast_bf16_to_f32)(out.Data(), host.data(), static_cast<int64_t>(n));
  }
  return out;
}

// A view with another shape over the same storage (free: tensors are contiguous).
Napi::Value TensorObject::Reshape(const Napi::CallbackInfo& info) {
  try {
    Args args(info, "reshape");
    pit::Shape shape = args.shape(0, "shape");
    return Wrap(info.Env(), Live("reshape").reshaped(shape));
  } catch (const pit::RangeError& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  } catch (const pit::TypeError& e) {
    throw Napi::TypeError::New(info.Env(), e.what());
  }
}

}  // namespace pit::binding
