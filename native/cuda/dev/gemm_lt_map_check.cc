// The GPU matmul's two pure pieces, run on the CPU: cuda/matmul_plan.h (matmul_forward /
// matmul_backward as GEMMs, zero fills and column sums) and cuda/gemm_lt_map.h (one GEMM as the
// column-major cuBLASLt problem that computes it). Each GEMM of a plan is executed by one of
// three engines, emulated here:
//   lt        cuBLASLt as its documentation defines it [cuBLAS docs §3.3.2, §3.4.17]: column-
//             major A, B, C, D with their rows, columns, leading dimensions and batch strides;
//             D = α·op(A)·op(B) + β·C (+ bias over D's rows); BGRADA: Σ_k op(A)(i, k) per row i
//             of D; BGRADB: Σ_k op(B)(k, j) per column j. Every layout must be one cuBLASLt
//             accepts (op(A) m × k, op(B) k × n, C m × n, ld ≥ rows), else the case fails.
//   lt-plain  the same, but with no algorithm for the bias-gradient epilogues (the engine then
//             runs the GEMM without it, as matmul.cu does): the plan's column-sum step must
//             write dbias;
//   simt      our kernel's definition: cuda/gemm.h's row-major Gemm, never fusing.
// Each op's results are compared with its definition (core/ops.h) computed directly. Inputs
// are small integers, so every sum is exact in double whatever its order, and results, rounded
// once to f32 or bf16, must match to the bit; outputs start as NaN, so an element no step
// writes fails. Dimensions 0, 1, 2, 3, 5 and 6 (each equally likely), every transpose, batched and shared B, bias, accumulate, f32
// and bf16 operands, outputs and gradients. Not part of any build (test/gemm-lt-map.test.ts
// runs it):
//
//   g++ -std=c++17 -O1 -Inative native/cuda/dev/gemm_lt_map_check.cc -o /tmp/gemm_lt_map_check
//   /tmp/gemm_lt_map_check            # ends with "0 of N cases failed"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/gemm_lt_map.h"
#include "cuda/matmul_plan.h"

using namespace pit;
using namespace pit::cuda;

namespace {

// ---- typed elements on raw bytes ------------------------------------------------------------

double load(const void* base, DType t, int64_t i) {
  if (t == DType::BF16) return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  return static_cast<const float*>(base)[i];
}

void store(void* base, DType t, int64_t i, double v) {
  if (t == DType::BF16)
    static_cast<uint16_t*>(base)[i] = f32_to_bf16(static_cast<float>(v));
  else
    static_cast<float*>(base)[i] = static_cast<float>(v);
}

struct Buffer {
  DType type = DType::F32;
  int64_t n = 0;
  std::vector<uint8_t> bytes;
  Buffer(DType t, int64_t count) : type(t), n(std::max<int64_t>(count, 0)), bytes(size_t(n) * dtype_size(t) + 8) {}
  void* data() { return bytes.data(); }
  double at(int64_t i) const { return load(bytes.data(), type, i); }
};

std::mt19937 rng(12345);

// Integers in [-2, 2]: every product and sum of these cases is exact, in bf16 too (|sums| < 256).
void fill(Buffer& b) {
  std::uniform_int_distribution<int> d(-2, 2);
  for (int64_t i = 0; i < b.n; ++i) store(b.data(), b.type, i, d(rng));
}

void poison(Buffer& b) {
  for (int64_t i = 0; i < b.n; ++i) store(b.data(), b.type, i, NAN);
}

std::string failure;  // the first problem of the current case
void fail(const std::string& what) {
  if (failure.empty()) failure = what;
}

// ---- the engines ------------------------------------------------------------------------------

enum class Engine { Lt, LtPlain, Simt };
const char* engine_name(Engine e) { return e == Engine::Lt ? "lt" : e == Engine::LtPlain ? "lt-plain" : "simt"; }

// Element (r, c) of batch entry z of a column-major cuBLASLt operand.
double lt_at(const LtMatrix& x, int64_t z, int64_t r, int64_t c) {
  return load(x.data, x.type, z * x.stride + r + c * x.ld);
}

// cuBLASLt by its documented definition. Returns whether the bias gradient was written.
bool run_lt(const LtProblem& q, bool with_grad_epilogues) {
  const bool ta = q.trans_a == lt::Operation::T, tb = q.trans_b == lt::Operation::T;
  if ((ta ? q.a.cols : q.a.rows) != q.m || (ta ? q.a.rows : q.a.cols) != q.k) fail("A_lt's layout is not op(A) m x k");
  if ((tb ? q.b.cols : q.b.rows) != q.k || (tb ? q.b.rows : q.b.cols) != q.n) fail("B_lt's layout is not op(B) k x n");
  if (q.c.rows != q.m || q.c.cols != q.n) fail("C's layout is not m x n");
  for (const LtMatrix* x : {&q.a, &q.b, &q.c})
    if (x->ld < x->rows) fail("a leading dimension below its row count");
  if (q.epilogue != lt::Epilogue::Default && !q.epilogue_pointer) fail("an epilogue without its pointer");
  if (!failure.empty()) return false;
  const bool grad = q.epilogue == lt::Epilogue::BgradA || q.epilogue == lt::Epilogue::BgradB;
  const bool write_grad = grad && with_grad_epilogues;
  auto opA = [&](int64_t z, int64_t i, int64_t k) { return ta ? lt_at(q.a, z, k, i) : lt_at(q.a, z, i, k); };
  auto opB = [&](int64_t z, int64_t k, int64_t j) { return tb ? lt_at(q.b, z, j, k) : lt_at(q.b, z, k, j); };
  const int64_t batch = std::max<int64_t>(q.batch, 1);
  if (q.batch > 1 && grad) fail("a bias-gradient epilogue on a batched GEMM (cuBLASLt would give one per entry)");
  std::vector<double> d(size_t(q.m * q.n));
  for (int64_t z = 0; z < batch; ++z) {
    for (int64_t j = 0; j < q.n; ++j)
      for (int64_t i = 0; i < q.m; ++i) {
        double s = 0;
        for (int64_t k = 0; k < q.k; ++k) s += opA(z, i, k) * opB(z, k, j);
        if (q.accumulate) s += lt_at(q.c, z, i, j);
        if (q.epilogue == lt::Epilogue::Bias) s += load(q.epilogue_pointer, q.c.type, i);  // bias: D's type, per row
        d[size_t(i + j * q.m)] = s;
      }
    for (int64_t j = 0; j < q.n; ++j)  // D written after C is read (in place)
      for (int64_t i = 0; i < q.m; ++i)
        store(const_cast<void*>(q.c.data), q.c.type, z * q.c.stride + i + j * q.c.ld, d[size_t(i + j * q.m)]);
  }
  if (write_grad) {
    void* out = const_cast<void*>(q.epilogue_pointer);
    if (q.epilogue == lt::Epilogue::BgradA)
      for (int64_t i = 0; i < q.m; ++i) {
        double s = 0;
        for (int64_t k = 0; k < q.k; ++k) s += opA(0, i, k);
        store(out, q.c.type, i, s);
      }
    else
      for (int64_t j = 0; j < q.n; ++j) {
        double s = 0;
        for (int64_t k = 0; k < q.k; ++k) s += opB(0, k, j);
        store(out, q.c.type, j, s);
      }
  }
  return write_grad;
}

// Our SIMT kernel's definition: cuda/gemm.h's row-major Gemm (K <= 0: C = [C +] bias or zeros).
void run_simt(const Gemm& g) {
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0) return;
  for (int64_t z = 0; z < g.batch; ++z)
    for (int64_t i = 0; i < g.M; ++i)
      for (int64_t j = 0; j < g.N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < g.K; ++k) {
          const double a = load(g.a, g.in, z * g.stride_a + (g.trans_a ? k * g.lda + i : i * g.lda + k));
          const double b = load(g.b, g.in, z * g.stride_b + (g.trans_b ? j * g.ldb + k : k * g.ldb + j));
          s += a * b;
        }
        const int64_t c = z * g.stride_c + i * g.ldc + j;
        if (g.accumulate) s += load(g.c, g.out, c);
        if (g.bias) s += load(g.bias, g.out, j);
        store(g.c, g.out, c, s);
      }
}

// Runs a plan as matmul.cu does, each GEMM on `engine` (cuBLASLt where lt_problem takes it).
void run_plan(const std::vector<MatmulStep>& steps, Engine engine) {
  bool grad_written = false;
  for (const MatmulStep& s : steps) {
    if (s.kind == MatmulStep::Kind::Zero) {
      std::memset(s.ptr, 0, s.bytes);
    } else if (s.kind == MatmulStep::Kind::ColumnSums) {
      if (grad_written) continue;
      for (int64_t j = 0; j < s.N; ++j) {
        double sum = 0;
        for (int64_t r = 0; r < s.rows; ++r) sum += load(s.x, s.x_dtype, r * s.N + j);
        store(s.ptr, s.out_dtype, j, sum);
      }
    } else {
      LtProblem q;
      std::string why;
      if (engine != Engine::Simt && lt_problem(s.gemm, &q, &why))
        grad_written |= run_lt(q, engine == Engine::Lt);
      else
        run_simt(s.gemm);
    }
  }
}

// ---- one case: an op, its definition, the comparison --------------------------------------------

struct Case {
  int64_t batch, M, N, K;
  bool trans_a, trans_b, b_shared, bias, accumulate;
  DType in, out, db, dbias;
  Engine engine;
};

std::string describe(const Case& c) {
  char s[256];
  std::snprintf(s, sizeof s, "%s batch=%lld M=%lld N=%lld K=%lld tA=%d tB=%d%s%s%s in=%s out=%s db=%s dbias=%s",
                engine_name(c.engine), (long long)c.batch, (long long)c.M, (long long)c.N, (long long)c.K, c.trans_a,
                c.trans_b, c.b_shared ? " sharedB" : "", c.bias ? " bias" : "", c.accumulate ? " accumulate" : "",
                dtype_name(c.in), dtype_name(c.out), dtype_name(c.db), dtype_name(c.dbias));
  return s;
}

// got[i] == the definition's value, rounded once to got's dtype (NaN fails: never written).
void expect(const char* what, const Buffer& got, const std::vector<double>& want) {
  for (int64_t i = 0; i < got.n; ++i) {
    Buffer one(got.type, 1);
    store(one.data(), got.type, 0, want[size_t(i)]);
    const double w = one.at(0), g = got.at(i);
    if (!(g == w)) {
      char s[160];
      std::snprintf(s, sizeof s, "%s[%lld] = %g, the definition gives %g", what, (long long)i, g, w);
      fail(s);
      return;
    }
  }
}

bool run_case(const Case& c) {
  failure.clear();
  const int64_t batch = c.batch, M = c.M, N = c.N, K = c.K;
  // Operands as the binding passes them: a (batch, M, K) or (batch, K, M); b (K, N) / (N, K),
  // times batch unless shared; out, dout (batch, M, N).
  Buffer a(c.in, batch * M * K), b(c.in, (c.b_shared ? 1 : batch) * K * N), bias(c.out, N), dout(c.in, batch * M * N);
  Buffer out(c.out, batch * M * N);
  fill(a), fill(b), fill(bias), fill(dout);
  if (c.accumulate) fill(out);
  else poison(out);
  const Buffer prior = out;
  auto A = [&](int64_t z, int64_t i, int64_t k) { return a.at(z * M * K + (c.trans_a ? k * M + i : i * K + k)); };
  auto B = [&](int64_t z, int64_t k, int64_t j) {
    const int64_t base = c.b_shared ? 0 : z * K * N;
    return b.at(base + (c.trans_b ? j * K + k : k * N + j));
  };

  // forward: out = op(A)·op(B) [+ bias] [+ out]
  std::vector<double> want(size_t(std::max<int64_t>(batch * M * N, 0)));
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += A(z, i, k) * B(z, k, j);
        if (c.bias) s += bias.at(j);
        if (c.accumulate) s += prior.at((z * M + i) * N + j);
        want[size_t((z * M + i) * N + j)] = s;
      }
  run_plan(matmul_forward_plan(out.data(), c.out, a.data(), b.data(), c.in, c.bias ? bias.data() : nullptr, batch, M,
                               N, K, c.trans_a, c.trans_b, c.b_shared, c.accumulate),
           c.engine);
  expect("out", out, want);

  // backward: da (A's layout, in's dtype), db (B's layout, summed over the batch when shared), dbias
  Buffer da(c.in, a.n), db(c.db, b.n), dbias(c.dbias, N);
  poison(da), poison(db), poison(dbias);
  std::vector<double> want_da(size_t(a.n)), want_db(size_t(b.n), 0.0), want_dbias(size_t(N), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) {
        double s = 0;
        for (int64_t j = 0; j < N; ++j) s += dout.at((z * M + i) * N + j) * B(z, k, j);
        want_da[size_t(z * M * K + (c.trans_a ? k * M + i : i * K + k))] = s;
      }
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t i = 0; i < M; ++i) s += A(z, i, k) * dout.at((z * M + i) * N + j);
        want_db[size_t((c.b_shared ? 0 : z * K * N) + (c.trans_b ? j * K + k : k * N + j))] += s;
      }
  for (int64_t r = 0; r < batch * M; ++r)
    for (int64_t j = 0; j < N; ++j) want_dbias[size_t(j)] += dout.at(r * N + j);
  run_plan(matmul_backward_plan(da.data(), db.data(), c.db, dbias.data(), c.dbias, dout.data(), a.data(), b.data(),
                                c.in, batch, M, N, K, c.trans_a, c.trans_b, c.b_shared),
           c.engine);
  expect("da", da, want_da);
  expect("db", db, want_db);
  expect("dbias", dbias, want_dbias);
  return failure.empty();
}

// ---- lt_alignment and the epilogue choice, on values chosen by hand ----------------------------

bool check_alignments() {
  failure.clear();
  const auto p = reinterpret_cast<const void*>(uintptr_t(0x7f0000001000));
  if (lt_alignment(p, 64, 0, 1, 2) != 128) fail("ld 64 bf16 at a 4 KiB-aligned base: 128");
  if (lt_alignment(p, 97, 0, 1, 2) != 2) fail("ld 97 bf16: 2");
  if (lt_alignment(p, 1024, 0, 1, 4) != 256) fail("at most 256");
  if (lt_alignment(p, 1024, 96, 2, 2) != 64) fail("a batch stride of 96 bf16 (192 bytes): 64");
  if (lt_alignment(p, 1024, 96, 1, 2) != 256) fail("the stride does not count without a batch");
  if (lt_alignment(reinterpret_cast<const void*>(uintptr_t(0x7f0000001008)), 1024, 0, 1, 4) != 8) fail("base + 8: 8");
  // The epilogue for each kind of bias term, and refusals.
  Gemm g;
  g.M = 3, g.N = 5, g.K = 7, g.lda = 7, g.ldb = 5, g.ldc = 5;
  float dummy[64] = {};
  g.a = g.b = dummy, g.c = dummy;
  LtProblem q;
  std::string why;
  g.bias = dummy;
  if (!lt_problem(g, &q, &why) || q.epilogue != lt::Epilogue::Bias || q.m != 5 || q.n != 3) fail("bias: BIAS over D_lt's m = N rows");
  g.bias = nullptr, g.bias_grad = Gemm::BiasGrad::ColumnSumsOfOpB, g.grad = dummy;
  if (!lt_problem(g, &q, &why) || q.epilogue != lt::Epilogue::BgradA) fail("column sums of op(B): BGRADA");
  g.bias_grad = Gemm::BiasGrad::RowSumsOfOpA;
  if (!lt_problem(g, &q, &why) || q.epilogue != lt::Epilogue::BgradB) fail("row sums of op(A): BGRADB");
  g.bias = dummy;
  if (lt_problem(g, &q, &why) || why.find("bias and a bias gradient") == std::string::npos) fail("bias and grad refused");
  g.bias = nullptr, g.bias_grad = Gemm::BiasGrad::None, g.K = 0;
  if (lt_problem(g, &q, &why) || why != "an empty dimension") fail("K = 0 refused");
  g.K = 7, g.M = int64_t(INT_MAX) + 1;
  if (lt_problem(g, &q, &why) || why != "a size past int32") fail("M past int32 refused");
  if (!failure.empty()) std::printf("FAIL alignments and epilogues: %s\n", failure.c_str());
  else std::printf("ok alignments and epilogues\n");
  return failure.empty();
}

}  // namespace

int main() {
  int cases = 0, failed = 0;
  if (!check_alignments()) ++failed;
  ++cases;
  const int64_t dims[] = {0, 1, 2, 3, 5, 6};
  std::uniform_int_distribution<int> dim(0, 5), batch_dim(0, 3), coin(0, 1), engine(0, 2);
  // A fixed sweep of the layouts, then random cases over everything.
  std::vector<Case> all;
  for (int e = 0; e < 3; ++e)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (int shared = 0; shared < 2; ++shared)
          for (int64_t batch : {1, 3})
            for (DType in : {DType::F32, DType::BF16}) {
              const DType out = in == DType::F32 ? DType::F32 : DType::BF16;
              all.push_back({batch, 5, 6, 3, bool(ta), bool(tb), bool(shared), true, false, in, out, out, out, Engine(e)});
              all.push_back({batch, 2, 3, 6, bool(ta), bool(tb), bool(shared), false, true, in, DType::F32, DType::F32,
                             in == DType::BF16 ? DType::BF16 : DType::F32, Engine(e)});
            }
  for (int i = 0; i < 3000; ++i) {
    Case c;
    c.batch = dims[batch_dim(rng)];  // 0 … 3
    c.M = dims[dim(rng)], c.N = dims[dim(rng)], c.K = dims[dim(rng)];
    c.trans_a = coin(rng), c.trans_b = coin(rng), c.b_shared = coin(rng), c.bias = coin(rng), c.accumulate = coin(rng);
    c.in = coin(rng) ? DType::BF16 : DType::F32;
    c.out = c.in == DType::F32 ? DType::F32 : (coin(rng) ? DType::BF16 : DType::F32);
    c.db = c.in == DType::F32 ? DType::F32 : (coin(rng) ? DType::BF16 : DType::F32);
    c.dbias = c.in == DType::F32 ? DType::F32 : (coin(rng) ? DType::BF16 : DType::F32);
    c.engine = Engine(engine(rng));
    all.push_back(c);
  }
  for (const Case& c : all) {
    ++cases;
    if (run_case(c)) continue;
    if (++failed <= 10) std::printf("FAIL %s: %s\n", describe(c).c_str(), failure.c_str());
  }
  std::printf("%d of %d cases failed\n", failed, cases);
  return failed ? 1 : 0;
}
