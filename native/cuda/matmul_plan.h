// matmul_forward / matmul_backward (core/ops.h) as a list of steps: strided-batched GEMMs
// (cuda/gemm.h), zero fills and column sums. matmul.cu runs the steps on the GPU; the list
// itself is pure C++, so dev/gemm_lt_map_check.cc runs it on the CPU against the ops'
// definition. The backward is exactly the CPU's decomposition (cpu/matmul.cc, matmul_backward).
//
// The bias gradient, dbias (N) = column sums of dout viewed as (batch·M, N), is requested from
// the weight-gradient GEMM when one GEMM covers every row of dout (its reduction dimension is
// then those rows, so the sums are its BGRAD epilogue: cuda/gemm_lt_map.h) and dbias has db's
// dtype (cuBLASLt writes it in D's); the ColumnSums step after it runs only when no GEMM wrote
// it (our SIMT kernel never does, cuBLASLt may lack an algorithm for it).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda/gemm.h"

namespace pit::cuda {

struct MatmulStep {
  enum class Kind { Gemm, Zero, ColumnSums } kind = Kind::Gemm;
  Gemm gemm;  // Kind::Gemm
  // Kind::Zero: bytes at ptr. Kind::ColumnSums: out (N) = Σ over rows of x (rows, N), in fp32,
  // stored as out_dtype; skipped when an earlier GEMM of the list wrote its bias_grad.
  void* ptr = nullptr;
  size_t bytes = 0;
  DType out_dtype = DType::F32;
  const void* x = nullptr;
  DType x_dtype = DType::F32;
  int64_t rows = 0, N = 0;
};

// out (batch, M, N) = op(a) · op(b) [+ bias] [+ out]; a, b of dtype `in`, out and bias of out_dtype.
inline std::vector<MatmulStep> matmul_forward_plan(void* out, DType out_dtype, const void* a, const void* b, DType in,
                                                   const void* bias, int64_t batch, int64_t M, int64_t N, int64_t K,
                                                   bool trans_a, bool trans_b, bool b_shared, bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return {};
  MatmulStep s;
  Gemm& g = s.gemm;
  g.in = in;
  g.out = out_dtype;
  g.a = a;
  g.b = b;
  g.c = out;
  g.bias = bias;
  g.accumulate = accumulate;
  g.trans_b = trans_b;
  g.N = N;
  g.K = K;
  g.lda = trans_a ? M : K;
  g.ldb = trans_b ? K : N;
  g.ldc = N;
  if (b_shared && !trans_a) {  // the batch is just more rows of A: (batch·M, K)
    g.M = batch * M;
  } else {
    g.trans_a = trans_a;
    g.M = M;
    g.batch = batch;
    g.stride_a = M * K;
    g.stride_b = b_shared ? 0 : K * N;
    g.stride_c = M * N;
  }
  return {s};
}

// da (in's dtype; A's layout), db (db_dtype; B's layout, summed over the batch when b_shared),
// dbias (dbias_dtype) from dout, a, b of dtype `in`. Any of da, db, dbias may be null.
inline std::vector<MatmulStep> matmul_backward_plan(void* da, void* db, DType db_dtype, void* dbias, DType dbias_dtype,
                                                    const void* dout, const void* a, const void* b, DType in,
                                                    int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                                                    bool trans_b, bool b_shared) {
  std::vector<MatmulStep> steps;
  batch = std::max<int64_t>(batch, 0);
  M = std::max<int64_t>(M, 0);
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  const int64_t b_stride = b_shared ? 0 : K * N;
  const size_t in_size = dtype_size(in);

  if (da && M > 0 && K > 0) {
    MatmulStep s;
    Gemm& g = s.gemm;
    g.in = g.out = in;
    g.c = da;
    g.batch = batch;
    if (!trans_a) {
      // da (M, K) = dout (M, N) · op(B)ᵀ (N, K); op(B)ᵀ is B read as stored when trans_b.
      g.a = dout, g.b = b, g.trans_b = !trans_b;
      g.N = K, g.K = N, g.lda = N, g.ldb = ldb, g.ldc = K;
      if (b_shared) {
        g.M = batch * M, g.batch = 1;
      } else {
        g.M = M, g.stride_a = M * N, g.stride_b = b_stride, g.stride_c = M * K;
      }
    } else {
      // da stored (K, M) = op(B) (K, N) · doutᵀ (N, M).
      g.a = b, g.b = dout, g.trans_a = trans_b, g.trans_b = true;
      g.M = K, g.N = M, g.K = N, g.lda = ldb, g.ldb = N, g.ldc = M;
      g.stride_a = b_stride, g.stride_b = M * N, g.stride_c = M * K;
    }
    steps.push_back(s);
  }

  if (db && K > 0 && N > 0) {
    // db for `count` batch entries (strides sa, sd, sdb) over `rows` rows each: op(A)ᵀ (K, rows)
    // · dout (rows, N) in B's stored layout, i.e. when trans_b db (N, K) = doutᵀ (N, rows) ·
    // op(A) (rows, K). op(A)ᵀ is A as stored when trans_a. With `fuse`, the one GEMM over every
    // row of dout also writes dbias: the sums over its reduction dimension of dout, which is
    // op(B) (ColumnSumsOfOpB) without trans_b and op(A) = doutᵀ (RowSumsOfOpA) with it.
    auto db_gemm = [&](int64_t rows, const void* ai, int64_t sa, const void* douti, int64_t sd, int64_t sdb,
                       int64_t count, bool accumulate, bool fuse) {
      MatmulStep s;
      Gemm& g = s.gemm;
      g.in = in;
      g.out = db_dtype;
      g.c = db;
      g.batch = count;
      g.accumulate = accumulate;
      g.K = rows;
      if (!trans_b) {
        g.a = ai, g.b = douti, g.trans_a = !trans_a;
        g.M = K, g.N = N, g.lda = lda, g.ldb = N, g.ldc = N;
        g.stride_a = sa, g.stride_b = sd, g.stride_c = sdb;
        if (fuse) g.bias_grad = Gemm::BiasGrad::ColumnSumsOfOpB;
      } else {
        g.a = douti, g.b = ai, g.trans_a = true, g.trans_b = trans_a;
        g.M = N, g.N = K, g.lda = N, g.ldb = lda, g.ldc = K;
        g.stride_a = sd, g.stride_b = sa, g.stride_c = sdb;
        if (fuse) g.bias_grad = Gemm::BiasGrad::RowSumsOfOpA;
      }
      if (fuse) g.grad = dbias;
      steps.push_back(s);
    };
    const bool fusable = dbias && dbias_dtype == db_dtype;
    if (!b_shared) {  // batch 0: db is empty, the GEMM does nothing; M = 0: a K = 0 GEMM writes zeros
      db_gemm(M, a, M * K, dout, M * N, K * N, batch, false, fusable && batch == 1);
    } else if (batch == 0 || M == 0) {  // one db, summed over no rows
      MatmulStep z;
      z.kind = MatmulStep::Kind::Zero;
      z.ptr = db;
      z.bytes = size_t(K * N) * dtype_size(db_dtype);
      steps.push_back(z);
    } else if (!trans_a) {  // Σ over the batch = one GEMM over batch·M rows
      db_gemm(M * batch, a, 0, dout, 0, 0, 1, false, fusable);
    } else {  // the batch entries all add into one db: one after another, in batch order
      for (int64_t i = 0; i < batch; ++i)
        db_gemm(M, static_cast<const char*>(a) + size_t(i * M * K) * in_size, 0,
                static_cast<const char*>(dout) + size_t(i * M * N) * in_size, 0, 0, 1, i > 0, false);
    }
  }

  if (dbias && N > 0) {
    MatmulStep s;
    s.kind = MatmulStep::Kind::ColumnSums;
    s.ptr = dbias;
    s.out_dtype = dbias_dtype;
    s.x = dout;
    s.x_dtype = in;
    s.rows = M * batch;
    s.N = N;
    steps.push_back(s);
  }
  return steps;
}

}  // namespace pit::cuda
