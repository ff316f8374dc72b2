// matmulForward / matmulBackward: out (..., M, N) = op(a) · op(b) (+ bias).
// a is (..., M, K), or (..., K, M) with transA; b is (K, N) or (N, K) with transB, either
// shared by every batch entry (2-D) or batched like a. f32 operands on every device; bf16
// operands (fp32 accumulation) on the GPU, which of cuBLASLt or our kernel runs them being the
// backend's business (native/cuda/matmul.cu; matmulInfo() reports it).
#include "args.h"
#include "core/op_table.h"
#include "registry.h"

namespace pit::binding {
namespace {

struct MatmulDims {
  int64_t batch, M, N, K;
  bool b_shared;
  Shape out_shape;
};

MatmulDims matmul_dims(const char* op, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  PIT_CHECK_RANGE(a.ndim() >= 2, op, ": 'a' must have at least 2 dims (..., M, K), got shape ", shape_string(a.shape()));
  PIT_CHECK_RANGE(b.ndim() == 2 || b.ndim() == a.ndim(), op, ": 'b' must be 2-D (shared) or have the rank of 'a' (",
                  a.ndim(), "), got shape ", shape_string(b.shape()));
  MatmulDims d;
  d.M = trans_a ? a.dim(-1) : a.dim(-2);
  d.K = trans_a ? a.dim(-2) : a.dim(-1);
  int64_t bk = trans_b ? b.dim(-1) : b.dim(-2);
  d.N = trans_b ? b.dim(-2) : b.dim(-1);
  PIT_CHECK_RANGE(bk == d.K, op, ": inner sizes differ: op(a) is ", d.M, "x", d.K, " (a ", shape_string(a.shape()),
                  trans_a ? ", transposed" : "", ") but op(b) is ", bk, "x", d.N, " (b ", shape_string(b.shape()),
                  trans_b ? ", transposed" : "", ")");
  d.b_shared = b.ndim() == 2 && a.ndim() > 2;
  if (b.ndim() == a.ndim())
    PIT_CHECK_RANGE(drop_last(a.shape(), 2) == drop_last(b.shape(), 2), op, ": batch dims of 'a' ",
                    shape_string(a.shape()), " and 'b' ", shape_string(b.shape()), " differ");
  d.batch = leading(a, 2);
  d.out_shape = drop_last(a.shape(), 2);
  d.out_shape.push_back(d.M);
  d.out_shape.push_back(d.N);
  return d;
}

// The operand dtype picks the kernel: f32 (every tensor f32; CPU and GPU) or bf16 (a, b and,
// backward, dout and da bf16; out, db, dbias f32 or bf16 each, bias of out's dtype; fp32
// accumulation; the GPU only). True for bf16.
bool is_bf16_operands(const char* op, const Tensor& a) {
  PIT_CHECK_TYPE(a.dtype() == DType::F32 || a.dtype() == DType::BF16, op, ": 'a' must be f32 or bf16, got ",
                 dtype_name(a.dtype()));
  return a.dtype() == DType::BF16;
}

void expect_f32_or_bf16(const char* op, const char* name, const Tensor* t) {
  if (t)
    PIT_CHECK_TYPE(t->dtype() == DType::F32 || t->dtype() == DType::BF16, op, ": '", name,
                   "' must be f32 or bf16 (bf16 operands), got ", dtype_name(t->dtype()));
}

// matmulForward(out, a, b, bias | null, transA, transB, accumulate)
Napi::Value MatmulForward(const Napi::CallbackInfo& info) {
  const char* op = "matmulForward";
  Args args(info, op);
  Tensor& out = args.tensor(0, "out");
  Tensor& a = args.tensor(1, "a");
  Tensor& b = args.tensor(2, "b");
  Tensor* bias = args.optional_tensor(3, "bias");
  bool trans_a = args.boolean(4, "transA"), trans_b = args.boolean(5, "transB");
  bool accumulate = args.boolean(6, "accumulate");
  const Device device = common_device(op, {{"out", &out}, {"a", &a}, {"b", &b}, {"bias", bias}});
  const bool bf16 = is_bf16_operands(op, a);
  if (bf16) {
    expect_dtype(op, "b", b, DType::BF16);
    expect_f32_or_bf16(op, "out", &out);
    if (bias) PIT_CHECK_TYPE(bias->dtype() == out.dtype(), op, ": 'bias' must have the dtype of 'out' (",
                             dtype_name(out.dtype()), "), got ", dtype_name(bias->dtype()));
  } else {
    expect_f32(op, {{"out", &out}, {"a", &a}, {"b", &b}, {"bias", bias}});
  }
  auto kernel_bf16 = bf16 ? op_kernel(op, device, &OpTable::matmul_forward_bf16, "bf16") : nullptr;
  MatmulDims d = matmul_dims(op, a, b, trans_a, trans_b);
  expect_shape(op, "out", out, d.out_shape);
  if (bias) expect_shape(op, "bias", *bias, {d.N});
  expect_distinct(op, "out", out, "a", a);
  expect_distinct(op, "out", out, "b", b);
  if (bf16)
    kernel_bf16(out.raw(), out.dtype(), a.bf16(), b.bf16(), bias ? bias->raw() : nullptr, d.batch, d.M, d.N, d.K,
                trans_a, trans_b, d.b_shared, accumulate);
  else
    PIT_KERNEL(device, matmul_forward)(out.f32(), a.f32(), b.f32(), bias ? bias->f32() : nullptr, d.batch, d.M, d.N,
                                       d.K, trans_a, trans_b, d.b_shared, accumulate);
  return info.Env().Undefined();
}

// matmulBackward(da | null, db | null, dbias | null, dout, a, b, transA, transB)
Napi::Value MatmulBackward(const Napi::CallbackInfo& info) {
  const char* op = "matmulBackward";
  Args args(info, op);
  Tensor* da = args.optional_tensor(0, "da");
  Tensor* db = args.optional_tensor(1, "db");
  Tensor* dbias = args.optional_tensor(2, "dbias");
  Tensor& dout = args.tensor(3, "dout");
  Tensor& a = args.tensor(4, "a");
  Tensor& b = args.tensor(5, "b");
  bool trans_a = args.boolean(6, "transA"), trans_b = args.boolean(7, "transB");
  const Device device = common_device(op, {{"da", da}, {"db", db}, {"dbias", dbias}, {"dout", &dout}, {"a", &a}, {"b", &b}});
  const bool bf16 = is_bf16_operands(op, a);
  if (bf16) {
    expect_dtype(op, "b", b, DType::BF16);
    expect_dtype(op, "dout", dout, DType::BF16);
    if (da) expect_dtype(op, "da", *da, DType::BF16);
    expect_f32_or_bf16(op, "db", db);
    expect_f32_or_bf16(op, "dbias", dbias);
  } else {
    expect_f32(op, {{"da", da}, {"db", db}, {"dbias", dbias}, {"dout", &dout}, {"a", &a}, {"b", &b}});
  }
  auto kernel_bf16 = bf16 ? op_kernel(op, device, &OpTable::matmul_backward_bf16, "bf16") : nullptr;
  MatmulDims d = matmul_dims(op, a, b, trans_a, trans_b);
  expect_shape(op, "dout", dout, d.out_shape);
  if (da) expect_shape(op, "da", *da, a.shape());
  if (db) expect_shape(op, "db", *db, b.shape());
  if (dbias) expect_shape(op, "dbias", *dbias, {d.N});
  if (bf16)
    kernel_bf16(da ? da->bf16() : nullptr, db ? db->raw() : nullptr, db ? db->dtype() : DType::F32,
                dbias ? dbias->raw() : nullptr, dbias ? dbias->dtype() : DType::F32, dout.bf16(), a.bf16(), b.bf16(),
                d.batch, d.M, d.N, d.K, trans_a, trans_b, d.b_shared);
  else
    PIT_KERNEL(device, matmul_backward)(da ? da->f32() : nullptr, db ? db->f32() : nullptr,
                                        dbias ? dbias->f32() : nullptr, dout.f32(), a.f32(), b.f32(), d.batch, d.M,
                                        d.N, d.K, trans_a, trans_b, d.b_shared);
  return info.Env().Undefined();
}

PIT_BINDING("matmulForward", MatmulForward);
PIT_BINDING("matmulBackward", MatmulBackward);

}  // namespace
}  // namespace pit::binding
