// copy(dst, src): between devices, and f32 <-> bf16 through the cast ops.
#include <algorithm>
#include <cstring>

#include "args.h"
#include "core/op_table.h"
#include "core/parallel.h"
#include "registry.h"

namespace pit::binding {
namespace {

// memcpy on every thread for large blocks: one core cannot draw the machine's bandwidth.
void host_copy(void* dst, const void* src, size_t bytes) {
  constexpr int64_t kChunk = 256 << 10;
  if (bytes < 2 * static_cast<size_t>(kChunk)) return static_cast<void>(std::memcpy(dst, src, bytes));
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  const int64_t chunks = (static_cast<int64_t>(bytes) + kChunk - 1) / kChunk;
  parallel_for(chunks, 1, [&](int64_t begin, int64_t end) {
    const size_t from = begin * kChunk, to = std::min(bytes, static_cast<size_t>(end) * kChunk);
    std::memcpy(d + from, s + from, to - from);
  });
}

// copy(dst, src): same element count; converts f32 <-> bf16 and moves between devices.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Args args(info, "copy");
  Tensor& dst = args.tensor(0, "dst");
  Tensor& src = args.tensor(1, "src");
  PIT_CHECK_RANGE(dst.numel() == src.numel(), "copy: 'dst' has ", dst.numel(), " elements (shape ",
                  shape_string(dst.shape()), ") but 'src' has ", src.numel(), " (shape ", shape_string(src.shape()), ")");
  bool same_dtype = dst.dtype() == src.dtype();
  PIT_CHECK_TYPE(same_dtype || (dst.dtype() != DType::I32 && src.dtype() != DType::I32),
                 "copy: cannot convert ", dtype_name(src.dtype()), " to ", dtype_name(dst.dtype()));
  if (dst.numel() == 0 || dst.shares_storage_with(src)) return info.Env().Undefined();
  Device dd = dst.device(), sd = src.device();
  if (same_dtype) {
    if (dd == Device::CPU && sd == Device::CPU) host_copy(dst.raw(), src.raw(), dst.nbytes());
    else if (dd == Device::CPU) cuda_backend()->copy_to_host(dst.raw(), src.raw(), dst.nbytes());
    else if (sd == Device::CPU) cuda_backend()->copy_to_device(dst.raw(), src.raw(), dst.nbytes());
    else cuda_backend()->copy_on_device(dst.raw(), src.raw(), dst.nbytes());
    return info.Env().Undefined();
  }
  // dtype conversion on the device both tensors are on (cast first, then move, otherwise).
  PIT_CHECK_TYPE(dd == sd, "copy: converting ", dtype_name(src.dtype()), " to ", dtype_name(dst.dtype()),
                 " needs both tensors on one device; got ", device_name(sd), " -> ", device_name(dd));
  const char* op = "copy";
  if (dst.dtype() == DType::BF16) PIT_KERNEL(dd, cast_f32_to_bf16)(dst.bf16(), src.f32(), src.numel());
  else PIT_KERNEL(dd, cast_bf16_to_f32)(dst.f32(), src.bf16(), src.numel());
  return info.Env().Undefined();
}

PIT_BINDING("copy", Copy);

}  // namespace
}  // namespace pit::binding
