// The addon's entry point: tensor creation, copies, random fills, memory and build info.
// Op entry points live one file per op beside this one and register with PIT_BINDING.
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "args.h"
#include "core/cpu_features.h"
#include "core/host_pool.h"
#include "core/op_table.h"
#include "core/parallel.h"
#include "core/rng.h"
#include "cpu/ops.h"
#include "registry.h"
#include "tensor_object.h"
#ifdef PIT_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace pit::binding {

std::vector<Binding>& bindings() {
  static std::vector<Binding> all;
  return all;
}

namespace {

DType read_dtype(Args& args, size_t i) {
  std::string s = args.string(i, "dtype");
  DType t;
  PIT_CHECK_TYPE(parse_dtype(s, &t), args.op(), ": 'dtype' must be \"f32\", \"bf16\" or \"i32\", got \"", s, "\"");
  return t;
}

Device read_device(Args& args, size_t i) {
  std::string s = args.string(i, "device");
  Device d;
  PIT_CHECK_TYPE(parse_device(s, &d), args.op(), ": 'device' must be \"cpu\" or \"cuda\", got \"", s, "\"");
  PIT_CHECK_TYPE(d == Device::CPU || cuda_backend() != nullptr, args.op(),
                 ": device \"cuda\" is not available (this is the CPU-only addon or no GPU was found)");
  return d;
}

// empty(shape, dtype, device): uninitialised storage.
Napi::Value Empty(const Napi::CallbackInfo& info) {
  Args args(info, "empty");
  Shape shape = args.shape(0, "shape");
  return TensorObject::Wrap(info.Env(), Tensor::empty(shape, read_dtype(args, 1), read_device(args, 2)));
}

// Copies `bytes` host bytes into t, wherever t lives.
void upload(Tensor& t, const void* host) {
  if (t.nbytes() == 0) return;
  if (t.device() == Device::CPU) std::memcpy(t.raw(), host, t.nbytes());
  else cuda_backend()->copy_to_device(t.raw(), host, t.nbytes());
}

// fromArray(data: Float32Array | Int32Array, shape, dtype, device). f32 data may become
// f32 or bf16 (rounded to nearest even); i32 data becomes i32.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Args args(info, "fromArray");
  Napi::Value data = info[0];
  Shape shape = args.shape(1, "shape");
  DType dtype = read_dtype(args, 2);
  Device device = read_device(args, 3);
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
    cpu::cast_f32_to_bf16(host.data(), data.As<Napi::Float32Array>().Data(), static_cast<int64_t>(length));
    upload(t, host.data());
  } else if (dtype == DType::F32) {
    upload(t, data.As<Napi::Float32Array>().Data());
  } else {
    upload(t, data.As<Napi::Int32Array>().Data());
  }
  return TensorObject::Wrap(info.Env(), std::move(t));
}

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

// randomFill(t, kind: "normal" | "uniform", seed, offset): Philox stream (core/rng.h).
Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  Args args(info, "randomFill");
  Tensor& t = args.tensor(0, "tensor");
  std::string kind = args.string(1, "kind");
  PIT_CHECK_TYPE(kind == "normal" || kind == "uniform", "randomFill: 'kind' must be \"normal\" or \"uniform\", got \"",
                 kind, "\"");
  uint64_t seed = static_cast<uint64_t>(args.integer(2, "seed", 0, 9007199254740991));
  uint64_t offset = static_cast<uint64_t>(args.integer(3, "offset", 0, 9007199254740991));
  expect_dtype("randomFill", "tensor", t, DType::F32);
  const char* op = "randomFill";
  if (kind == "normal") PIT_KERNEL(t.device(), fill_normal)(t.f32(), t.numel(), seed, offset);
  else PIT_KERNEL(t.device(), fill_uniform)(t.f32(), t.numel(), seed, offset);
  return info.Env().Undefined();
}

Napi::Object stats_object(Napi::Env env, Device d) {
  MemoryStats s = memory_stats(d);
  Napi::Object o = Napi::Object::New(env);
  o.Set("tensors", static_cast<double>(s.tensors));
  o.Set("bytes", static_cast<double>(s.bytes));
  o.Set("peakBytes", static_cast<double>(s.peak_bytes));
  return o;
}

// memory(): live tensors and bytes per device, the host pool's cached bytes (+ the GPU's
// free/total when present).
Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Napi::Object cpu = stats_object(env, Device::CPU);
  HostPoolStats pool = host_pool_stats();
  cpu.Set("poolCached", static_cast<double>(pool.cached_bytes));
  cpu.Set("poolLimit", static_cast<double>(pool.limit_bytes));
  out.Set("cpu", cpu);
  if (cuda_backend()) {
    Napi::Object cuda = stats_object(env, Device::CUDA);
#ifdef PIT_WITH_CUDA
    cuda::MemInfo m = cuda::mem_info();
    cuda.Set("free", static_cast<double>(m.free));
    cuda.Set("total", static_cast<double>(m.total));
    cuda.Set("poolReserved", static_cast<double>(m.pool_reserved));
#endif
    out.Set("cuda", cuda);
  }
  return out;
}

// resetPeakMemory(): memory().<device>.peakBytes restarts from the bytes live now, on every device.
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  reset_peak_memory(Device::CPU);
  reset_peak_memory(Device::CUDA);
  return info.Env().Undefined();
}

// synchronize(device): returns once all queued work on `device` is done (a no-op on CPU, whose
// ops are synchronous).
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Args args(info, "synchronize");
  if (read_device(args, 0) == Device::CUDA) cuda_backend()->synchronize();
  return info.Env().Undefined();
}

// deviceTimerStart() / deviceTimerStop() -> ms: device events around the GPU work queued
// between them (benchmarks). CUDA only: CPU work is timed with the host clock.
const DeviceBackend& timing_backend(const char* op) {
  PIT_CHECK_TYPE(cuda_backend() != nullptr, op, ": device timers need the CUDA backend (time CPU work with the host clock)");
  return *cuda_backend();
}

Napi::Value DeviceTimerStart(const Napi::CallbackInfo& info) {
  timing_backend("deviceTimerStart").timer_start();
  return info.Env().Undefined();
}

Napi::Value DeviceTimerStop(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), timing_backend("deviceTimerStop").timer_stop_ms());
}

// buildInfo(): what this addon is and can do; `pit info` prints it.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
#ifdef PIT_WITH_CUDA
  out.Set("backend", "cuda");
  out.Set("cuda", cuda::build_info(env));
#else
  out.Set("backend", "cpu");
#endif
  out.Set("cpuIsa", cpu_isa());
  out.Set("threads", num_threads());
  out.Set("compiler", __VERSION__);
#ifdef NDEBUG
  out.Set("debug", false);
#else
  out.Set("debug", true);
#endif
  return out;
}

PIT_BINDING("empty", Empty);
PIT_BINDING("fromArray", FromArray);
PIT_BINDING("copy", Copy);
PIT_BINDING("randomFill", RandomFill);
PIT_BINDING("memory", Memory);
PIT_BINDING("buildInfo", BuildInfo);
PIT_BINDING("resetPeakMemory", ResetPeakMemory);
PIT_BINDING("synchronize", Synchronize);
PIT_BINDING("deviceTimerStart", DeviceTimerStart);
PIT_BINDING("deviceTimerStop", DeviceTimerStop);

}  // namespace
}  // namespace pit::binding

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  using namespace pit::binding;
#ifdef PIT_WITH_CUDA
  pit::cuda::initialize();  // registers the CUDA backend when a GPU is visible
#endif
  TensorObject::Init(env, exports);
  for (const Binding& b : bindings()) exports.Set(b.name, Napi::Function::New(env, b.fn, b.name));
  return exports;
}

NODE_API_MODULE(pit, InitAddon)
