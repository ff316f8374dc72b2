// Tensor creation: empty (uninitialised storage) and fromArray (a typed array's values).
#include <cstring>
#include <vector>

#include "args.h"
#include "core/op_table.h"
#include "registry.h"
#include "tensor_object.h"

namespace pit::binding {
namespace {

// empty(shape, dtype, device): uninitialised storage.
Napi::Value Empty(const Napi::CallbackInfo& info) {
  Args args(info, "empty");
  Shape shape = args.shape(0, "shape");
  return TensorObject::Wrap(info.Env(), Tensor::empty(shape, args.dtype(1, "dtype"), args.device(2, "device")));
}

// Copies t.nbytes() host bytes into t, wherever t lives.
void upload(Tensor& t, const void* host) {
  if (t.nbytes() == 0) return;
  if (t.device() == Device::CPU) std::memcpy(t.raw(), host, t.nbytes());
  else cuda_backend()->copy_to_device(t.raw(), host, t.nbytes());
}

// fromArray(data: Float32Array | Int32Array, shape, dtype, device). f32 data may become
// f32 or bf16 (rounded to nearest even, on the host by the CPU cast); i32 data becomes i32.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Args args(info, "fromArray");
  Napi::Value data = info[0];
  Shape shape = args.shape(1, "shape");
  DType dtype = args.dtype(2, "dtype");
  Device device = args.device(3, "device");
  bool is_f32 = data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
  bool is_i32 = data.IsTypedArray() && data.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  if (dtype == DType::I32)
    PIT_CHECK_TYPE(is_i32, "fromArray: 'data' must be an Int32Array for dtype i32, got ", describe(data));
  else
    PIT_CHECK_TYPE(is_f32, "fromArray: 'data' must be a Float32Array for dtype ", dtype_name(dtype), ", got ",
                   describe(data));
  size_t length = data.As<Napi::TypedArray>().ElementLength();
  Tensor t = Tensor::empty(shape, dtype, device);
  PIT_CHECK_RANGE(static_cast<int64_t>(length) == t.numel(), "fromArray: 'data' has ", length,
                  " elements but shape ", shape_string(shape), " needs ", t.numel());
  if (dtype == DType::BF16) {
    std::vector<uint16_t> host(length);
    op_kernel("fromArray", Device::CPU, &OpTable::cast_f32_to_bf16)(
        host.data(), data.As<Napi::Float32Array>().Data(), static_cast<int64_t>(length));
    upload(t, host.data());
  } else if (dtype == DType::F32) {
    upload(t, data.As<Napi::Float32Array>().Data());
  } else {
    upload(t, data.As<Napi::Int32Array>().Data());
  }
  return TensorObject::Wrap(info.Env(), std::move(t));
}

PIT_BINDING("empty", Empty);
PIT_BINDING("fromArray", FromArray);

}  // namespace
}  // namespace pit::binding
