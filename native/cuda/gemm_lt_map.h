// Row-major to column-major, done once: cuda/gemm.h's Gemm as the cuBLASLt problem that
// computes it. Pure C++ (no CUDA header, no library call), so that dev/gemm_lt_map_check.cc can
// run the mapping against cuBLASLt's documented semantics on the CPU.
//
// A row-major matrix X (r, c, ld) is, read as column-major, Xᵀ (c, r, ld). So our
//   C (M, N) = op(A) · op(B)   is cuBLASLt's   D_lt (N, M) = op(B)ᵀ · op(A)ᵀ,
// i.e. A_lt = our B, B_lt = our A, m = N, n = M, k = K, each operand keeping its transpose flag
// (A_lt is our stored B read column-major: (N, K) when B is (K, N), so op N; (K, N) when B is
// stored (N, K), so op T), every leading dimension and batch stride unchanged. The epilogues
// follow: our bias (N) is a bias over D_lt's rows (BIAS); Σ_k op(B)(k, j) (N values) is BGRADA
// (sums of op(A_lt) over k, one per row of D_lt); Σ_k op(A)(i, k) (M values) is BGRADB (sums of
// op(B_lt) over k, one per column of D_lt) [cuBLAS documentation §3.3.2].
#pragma once
#include <climits>
#include <cstdint>
#include <string>

#include "cuda/cublaslt.h"
#include "cuda/gemm.h"

namespace pit::cuda {

// One column-major operand as cuBLASLt's layout describes it.
struct LtMatrix {
  DType type = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
  int64_t stride = 0;  // per batch entry, in elements (used when batch > 1)
  const void* data = nullptr;
  uint32_t alignment = 256;  // of every matrix of the batch, in bytes, at most 256
};

struct LtProblem {
  lt::Operation trans_a = lt::Operation::N, trans_b = lt::Operation::N;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  LtMatrix a, b, c;  // c describes both C and D (in place: beta = 1 reads what D overwrites)
  lt::Epilogue epilogue = lt::Epilogue::Default;
  const void* epilogue_pointer = nullptr;  // the bias, or where the bias gradient goes
  uint32_t epilogue_alignment = 256;
  bool accumulate = false;  // beta = 1 (else 0)
};

// The largest power of two (at most 256) dividing the address of every matrix of an operand:
// its base, its leading dimension and, in a batch, its stride, in bytes. cuBLASLt's heuristic
// assumes 256 unless told less (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES).
inline uint32_t lt_alignment(const void* p, int64_t ld, int64_t stride, int64_t batch, size_t element) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | uint64_t(ld) * element | 256u;
  if (batch > 1) bits |= uint64_t(stride) * element;
  return static_cast<uint32_t>(bits & (~bits + 1));
}

// g as a cuBLASLt problem; false and *why when cuBLASLt cannot take it (an empty dimension,
// sizes past int32, a bias and a bias gradient at once).
inline bool lt_problem(const Gemm& g, LtProblem* p, std::string* why) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0 || g.batch <= 0) {
    *why = "an empty dimension";
    return false;
  }
  // Rows, columns and the batch count are int32 for cuBLASLt in practice.
  for (int64_t v : {g.M, g.N, g.K, g.batch, g.lda, g.ldb, g.ldc})
    if (v > INT_MAX) {
      *why = "a size past int32";
      return false;
    }
  if (g.bias && g.bias_grad != Gemm::BiasGrad::None) {
    *why = "a bias and a bias gradient in one GEMM";
    return false;
  }
  const size_t in = dtype_size(g.in), out = dtype_size(g.out);
  LtProblem q;
  q.trans_a = g.trans_b ? lt::Operation::T : lt::Operation::N;
  q.trans_b = g.trans_a ? lt::Operation::T : lt::Operation::N;
  q.m = g.N;
  q.n = g.M;
  q.k = g.K;
  q.batch = g.batch;
  // A_lt: our B stored row-major (K, N) or, transposed, (N, K); read column-major.
  q.a = {g.in, g.trans_b ? g.K : g.N, g.trans_b ? g.N : g.K, g.ldb, g.stride_b, g.b,
         lt_alignment(g.b, g.ldb, g.stride_b, g.batch, in)};
  // B_lt: our A stored (M, K) or, transposed, (K, M); read column-major.
  q.b = {g.in, g.trans_a ? g.M : g.K, g.trans_a ? g.K : g.M, g.lda, g.stride_a, g.a,
         lt_alignment(g.a, g.lda, g.stride_a, g.batch, in)};
  // C = D: our C (M, N, ldc) read column-major: (N, M).
  q.c = {g.out, g.N, g.M, g.ldc, g.stride_c, g.c, lt_alignment(g.c, g.ldc, g.stride_c, g.batch, out)};
  q.accumulate = g.accumulate;
  if (g.bias) {
    q.epilogue = lt::Epilogue::Bias;  // one per row of D_lt = per column of our C
    q.epilogue_pointer = g.bias;
  } else if (g.bias_grad == Gemm::BiasGrad::ColumnSumsOfOpB) {
    q.epilogue = lt::Epilogue::BgradA;  // Σ_k op(A_lt)(i, k), i < m = N
    q.epilogue_pointer = g.grad;
  } else if (g.bias_grad == Gemm::BiasGrad::RowSumsOfOpA) {
    q.epilogue = lt::Epilogue::BgradB;  // Σ_k op(B_lt)(k, j), j < n = M
    q.epilogue_pointer = g.grad;
  }
  if (q.epilogue_pointer) q.epilogue_alignment = lt_alignment(q.epilogue_pointer, 0, 0, 1, out);
  *p = q;
  return true;
}

}  // namespace pit::cuda
