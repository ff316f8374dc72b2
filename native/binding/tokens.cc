// Token-axis ops on (B, L, C): gather / scatter-add by per-sample ids (MAE masking and
// restore), concat (cls token), slice, and the general permute copy.
#include <algorithm>

#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

void check_ids(const char* op, const Tensor& ids, int64_t B, int64_t L) {
  expect_dtype(op, "ids", ids, DType::I32);
  expect_ndim(op, "ids", ids, 2, "(B, K)");
  PIT_CHECK_RANGE(ids.dim(0) == B, op, ": 'ids' must have B = ", B, " rows, got shape ", shape_string(ids.shape()));
  const HostInts host_ids(ids);
  const int32_t* p = host_ids.data();
  for (int64_t i = 0; i < ids.numel(); ++i)
    PIT_CHECK_RANGE(p[i] >= 0 && p[i] < L, op, ": 'ids[", i / ids.dim(1), ", ", i % ids.dim(1),
                    "]' must be a token index in [0, ", L, "), got ", p[i]);
}

// gatherTokens(out, x, ids): out (B, K, C) = x (B, L, C)[b, ids[b, k]]
Napi::Value GatherTokens(const Napi::CallbackInfo& info) {
  const char* op = "gatherTokens";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  Tensor& ids = args.tensor(2, "ids");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}, {"ids", &ids}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  expect_ndim(op, "x", x, 3, "(B, L, C)");
  int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  check_ids(op, ids, B, L);
  int64_t K = ids.dim(1);
  expect_shape(op, "out", out, {B, K, C});
  expect_distinct(op, "out", out, "x", x);
  PIT_KERNEL(device, gather_tokens)(out.f32(), x.f32(), ids.i32(), B, L, K, C);
  return info.Env().Undefined();
}

// scatterAddTokens(out, src, ids): out (B, L, C)[b, ids[b, k]] += src (B, K, C)[b, k]
Napi::Value ScatterAddTokens(const Napi::CallbackInfo& info) {
  const char* op = "scatterAddTokens";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& src = args.tensor(1, "src");
  Tensor& ids = args.tensor(2, "ids");
  const Device device = common_device(op, {{"out", &out}, {"src", &src}, {"ids", &ids}});
  expect_f32(op, {{"out", &out}, {"src", &src}});
  expect_ndim(op, "out", out, 3, "(B, L, C)");
  int64_t B = out.dim(0), L = out.dim(1), C = out.dim(2);
  check_ids(op, ids, B, L);
  int64_t K = ids.dim(1);
  expect_shape(op, "src", src, {B, K, C});
  expect_distinct(op, "out", out, "src", src);
  PIT_KERNEL(device, scatter_add_tokens)(out.f32(), src.f32(), ids.i32(), B, L, K, C);
  return info.Env().Undefined();
}

// concatTokens(out, a, b): out (B, La + Lb, C) = [a; b]; a may be (1, La, C), shared by all.
Napi::Value ConcatTokens(const Napi::CallbackInfo& info) {
  const char* op = "concatTokens";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& a = args.tensor(1, "a");
  Tensor& b = args.tensor(2, "b");
  const Device device = common_device(op, {{"out", &out}, {"a", &a}, {"b", &b}});
  expect_f32(op, {{"out", &out}, {"a", &a}, {"b", &b}});
  expect_ndim(op, "a", a, 3, "(B, La, C)");
  expect_ndim(op, "b", b, 3, "(B, Lb, C)");
  int64_t B = b.dim(0), La = a.dim(1), Lb = b.dim(1), C = b.dim(2);
  PIT_CHECK_RANGE(a.dim(2) == C, op, ": 'a' ", shape_string(a.shape()), " and 'b' ", shape_string(b.shape()),
                  " differ in channels");
  PIT_CHECK_RANGE(a.dim(0) == B || a.dim(0) == 1, op, ": 'a' must have batch ", B, " or 1, got shape ",
                  shape_string(a.shape()));
  expect_shape(op, "out", out, {B, La + Lb, C});
  expect_distinct(op, "out", out, "a", a);
  expect_distinct(op, "out", out, "b", b);
  PIT_KERNEL(device, concat_tokens)(out.f32(), a.f32(), b.f32(), B, La, Lb, C, a.dim(0) == 1 && B != 1);
  return info.Env().Undefined();
}

// sliceTokens(out, x, start): out (B, Lo, C) = x (B, L, C)[:, start : start + Lo]
Napi::Value SliceTokens(const Napi::CallbackInfo& info) {
  const char* op = "sliceTokens";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  expect_ndim(op, "x", x, 3, "(B, L, C)");
  expect_ndim(op, "out", out, 3, "(B, Lo, C)");
  int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2), Lo = out.dim(1);
  int64_t start = args.integer(2, "start", 0, L);
  PIT_CHECK_RANGE(start + Lo <= L, op, ": tokens [", start, ", ", start + Lo, ") exceed L = ", L);
  expect_shape(op, "out", out, {B, Lo, C});
  expect_distinct(op, "out", out, "x", x);
  PIT_KERNEL(device, slice_tokens)(out.f32(), x.f32(), B, L, start, Lo, C);
  return info.Env().Undefined();
}

// sliceTokensBackward(dx, dout, start): dx (B, L, C) = dout in [start, start + Lo), 0 elsewhere.
Napi::Value SliceTokensBackward(const Napi::CallbackInfo& info) {
  const char* op = "sliceTokensBackward";
  Args args(info, op);
  Tensor& dx = args.tensor(0, "dx");
  Tensor& dout = args.tensor(1, "dout");
  const Device device = common_device(op, {{"dx", &dx}, {"dout", &dout}});
  expect_f32(op, {{"dx", &dx}, {"dout", &dout}});
  expect_ndim(op, "dx", dx, 3, "(B, L, C)");
  expect_ndim(op, "dout", dout, 3, "(B, Lo, C)");
  int64_t B = dx.dim(0), L = dx.dim(1), C = dx.dim(2), Lo = dout.dim(1);
  int64_t start = args.integer(2, "start", 0, L);
  PIT_CHECK_RANGE(start + Lo <= L, op, ": tokens [", start, ", ", start + Lo, ") exceed L = ", L);
  expect_shape(op, "dout", dout, {B, Lo, C});
  expect_distinct(op, "dx", dx, "dout", dout);
  PIT_KERNEL(device, slice_tokens_backward)(dx.f32(), dout.f32(), B, L, start, Lo, C);
  return info.Env().Undefined();
}

// permute(out, x, perm): out's axis i is x's axis perm[i].
Napi::Value Permute(const Napi::CallbackInfo& info) {
  const char* op = "permute";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& x = args.tensor(1, "x");
  Shape perm64 = args.shape(2, "perm");
  const Device device = common_device(op, {{"out", &out}, {"x", &x}});
  expect_f32(op, {{"out", &out}, {"x", &x}});
  PIT_CHECK_RANGE(static_cast<int>(perm64.size()) == x.ndim(), op, ": 'perm' must list ", x.ndim(),
                  " axes, got ", perm64.size());
  std::vector<int> perm(perm64.size());
  std::vector<bool> seen(perm64.size(), false);
  Shape out_shape;
  for (size_t i = 0; i < perm64.size(); ++i) {
    PIT_CHECK_RANGE(perm64[i] < x.ndim() && !seen[perm64[i]], op, ": 'perm' must be a permutation of 0..",
                    x.ndim() - 1, ", got ", shape_string(perm64));
    perm[i] = static_cast<int>(perm64[i]);
    seen[perm[i]] = true;
    out_shape.push_back(x.dim(perm[i]));
  }
  expect_shape(op, "out", out, out_shape);
  expect_distinct(op, "out", out, "x", x);
  PIT_KERNEL(device, permute)(out.f32(), x.f32(), x.shape(), perm);
  return info.Env().Undefined();
}

PIT_BINDING("gatherTokens", GatherTokens);
PIT_BINDING("scatterAddTokens", ScatterAddTokens);
PIT_BINDING("concatTokens", ConcatTokens);
PIT_BINDING("sliceTokens", SliceTokens);
PIT_BINDING("sliceTokensBackward", SliceTokensBackward);
PIT_BINDING("permute", Permute);

}  // namespace
}  // namespace pit::binding
