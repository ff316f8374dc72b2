// The JS-visible handle of a native tensor. It owns one reference to the storage; dispose()
// drops it at once, and garbage collection drops it later if dispose() was never called.
#pragma once
#include <napi.h>

#include <optional>

#include "core/tensor.h"

namespace pit::binding {

class TensorObject : public Napi::ObjectWrap<TensorObject> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  // Wraps a tensor into a new JS object.
  static Napi::Object Wrap(Napi::Env env, Tensor tensor);
  // The TensorObject behind a JS value, or null when it is not one.
  static TensorObject* Unwrap(Napi::Value value);

  explicit TensorObject(const Napi::CallbackInfo& info);
  ~TensorObject() override;
  void Finalize(Napi::Env env) override;

  bool disposed() const { return !tensor_.has_value(); }
  Tensor& tensor() { return *tensor_; }

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DTypeName(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  void Release(Napi::Env env);
  Tensor& Live(const char* what);

  std::optional<Tensor> tensor_;
  int64_t external_bytes_ = 0;  // reported to V8 so large CPU tensors prompt collection
};

}  // namespace pit::binding
