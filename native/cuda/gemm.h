// One GEMM as matmul.cu describes it to the three engines that can run it: cuBLASLt
// (gemm_lt.cu, when the library is loaded), our own bf16 tensor-core kernel (gemm_bf16.cu, for
// bf16 operands) and our own SIMT kernel (matmul.cu, always there).
// Row-major throughout; gemm_lt.cu maps it to cuBLASLt's column-major world in one place.
#pragma once
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace pit::cuda {

// A strided-batched GEMM (element counts, not bytes):
//   C[z] (M, N, ld ldc) = [C[z] +] op(A[z]) (M, K) · op(B[z]) (K, N) [+ bias (N)]
// op(A)(i, k) = a[i·lda + k], or a[k·lda + i] when trans_a; op(B)(k, j) = b[k·ldb + j], or
// b[j·ldb + k] when trans_b. A stride of 0 shares that operand across the batch. A and B have
// one dtype (in), C another (out); the bias has C's dtype (cuBLASLt's type table allows
// nothing else for bf16 and f32).
struct Gemm {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0, batch = 1;
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  DType in = DType::F32, out = DType::F32;
  bool accumulate = false;
  const void* bias = nullptr;  // (N), out's dtype, or null
  // Also the bias gradient, fused (cuBLASLt's BGRADA/BGRADB epilogues), when the engine can:
  // RowSumsOfOpA writes grad (M) = Σ_k op(A)(i, k); ColumnSumsOfOpB writes grad (N) =
  // Σ_k op(B)(k, j); grad has out's dtype. An engine that cannot fuse it says so by returning
  // false from gemm_cublaslt, and the caller computes it apart.
  enum class BiasGrad { None, RowSumsOfOpA, ColumnSumsOfOpB } bias_grad = BiasGrad::None;
  void* grad = nullptr;
};

// Which engine the GEMMs may take, from PIT_MATMUL (read at each GEMM, so a test or benchmark
// can switch it through process.env): "auto" (or unset) = cuBLASLt when it is loaded and has
// an algorithm, else our tensor-core kernel for bf16 operands, else SIMT; "simt" = always our
// SIMT kernel; "mma" = our bf16 tensor-core kernel or an error (f32 operands are one: they
// keep f32 arithmetic); "cublaslt" = cuBLASLt or an error.
enum class MatmulMode { Auto, Simt, Mma, Cublaslt };
MatmulMode matmul_mode();  // throws TypeError for any other value

// Runs g through cuBLASLt, fused bias gradient included, and returns true; or returns false
// with *why (nothing was written) when cuBLASLt cannot: not loaded, PIT_MATMUL=simt, a shape
// it does not take (an empty dimension, sizes past int32), no algorithm for these types,
// layouts and alignments. Throws for real failures (a CUDA error inside cuBLASLt).
bool gemm_cublaslt(const Gemm& g, MatmulMode mode, std::string* why);

// Runs g on our bf16 tensor-core kernel (gemm_bf16.cu; split-K when its tiles would not fill
// the GPU) and returns true, or returns false with *why (nothing was written) when it cannot:
// f32 operands, a fused bias gradient asked for, an empty dimension. Counts the path ("mma" or
// "mma/split-K"). Throws for CUDA errors; `op` names the op in them.
bool gemm_mma(const Gemm& g, const char* op, std::string* why);

// Counts one GEMM (or bias-gradient pass) on `path` ("cublasLt", "cublasLt/BIAS", "mma",
// "mma/split-K", "simt", "simt/split-K", "colsum", ...), and a fallback's reason;
// matmulInfo() reports both.
void count_path(const std::string& path);
void count_fallback(const std::string& why);

}  // namespace pit::cuda
