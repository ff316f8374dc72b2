// cuBLASLt, loaded at run time (dlopen), never linked: the toolkit that builds this addon may
// have no cuBLAS at all, while every machine that runs PyTorch or a full CUDA toolkit has
// libcublasLt.so.13 or .so.12. This header declares, by hand, the dozen C functions, enums and
// structs of cuBLASLt's C API that the matmul path uses (cuda/gemm_lt.cu), and the loader that
// finds the library (cublaslt.cc). It includes no CUDA header, so the loader is plain C++.
//
// Where each value comes from (all of it public NVIDIA documentation or headers):
//   [lt]   cuBLAS documentation, chapter 3 "Using the cuBLASLt API" (docs.nvidia.com/cuda/cublas):
//          §3.3.2 cublasLtEpilogue_t (the epilogue values, written there as numbers),
//          §3.3.9 cublasLtMatmulDescAttributes_t, §3.3.10 cublasLtMatmulHeuristicResult_t,
//          §3.3.13 cublasLtMatmulPreferenceAttributes_t, §3.4.17 cublasLtMatmul (the type table)
//   [nvm]  nvmath-python's generated cuBLASLt bindings, which list each enum's numbers
//          (docs.nvidia.com/cuda/nvmath-python/latest/bindings/generated/nvmath.bindings.
//          cublasLt.{MatmulDescAttribute,MatrixLayoutAttribute,MatmulPreferenceAttribute,
//          Epilogue}.html and nvmath.bindings.cublas.ComputeType.html)
//   [hdr]  the headers themselves: cublasLt.h (function prototypes, the semi-opaque structs),
//          cublas_api.h (cublasStatus_t, cublasOperation_t, CUBLAS_VERSION = major·10000 +
//          minor·100 + patch), library_types.h (cudaDataType_t; it ships with every CUDA
//          toolkit, so cublaslt.cc checks those two values against it at compile time)
// dev/cublaslt_check.cc static_asserts every value, size, offset and prototype below against
// the real cublasLt.h wherever one is found (CMake compiles it at configure time, and a
// mismatch turns cuBLASLt off in that build; bench/gpu-session.sh compiles it on the GPU host).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct CUstream_st;  // cudaStream_t is CUstream_st* (driver_types.h)

namespace pit::cuda::lt {

// ---- the C API, as declared by cuBLASLt ------------------------------------------------------

enum class Status : int32_t {  // cublasStatus_t [hdr]
  Success = 0,
  NotInitialized = 1,
  InvalidValue = 7,
  ArchMismatch = 8,
  NotSupported = 15,
};

struct Context;                   // struct cublasLtContext [hdr]
using Handle = Context*;          // cublasLtHandle_t
struct MatmulDescOpaque;          // cublasLtMatmulDescOpaque_t: only ever reached through a pointer
using MatmulDesc = MatmulDescOpaque*;
struct MatrixLayoutOpaque;
using MatrixLayout = MatrixLayoutOpaque*;
struct MatmulPreferenceOpaque;
using MatmulPreference = MatmulPreferenceOpaque*;
using Stream = CUstream_st*;      // cudaStream_t

struct MatmulAlgo {  // cublasLtMatmulAlgo_t [hdr]: 64 bytes, trivially copyable
  uint64_t data[8];
};

struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t [lt §3.3.10, hdr]
  MatmulAlgo algo;
  size_t workspace_size;  // workspaceSize
  Status state;
  float waves_count;  // wavesCount
  int reserved[4];
};

enum class DataType : int32_t {  // cudaDataType_t [hdr library_types.h]
  R32F = 0,                      // CUDA_R_32F
  R16BF = 14,                    // CUDA_R_16BF
};

enum class ComputeType : int32_t {  // cublasComputeType_t [nvm ComputeType]
  F32 = 68,                         // CUBLAS_COMPUTE_32F: fp32 products and sums, no TF32
};

enum class Operation : int32_t {  // cublasOperation_t [hdr cublas_api.h]
  N = 0,                          // CUBLAS_OP_N
  T = 1,                          // CUBLAS_OP_T
};

enum class DescAttribute : int32_t {  // cublasLtMatmulDescAttributes_t [nvm MatmulDescAttribute, lt §3.3.9]
  TransA = 3,                         // int32_t (Operation)
  TransB = 4,                         // int32_t (Operation)
  Epilogue = 7,                       // uint32_t (Epilogue)
  BiasPointer = 8,                    // const void* (bias) or void* (bias gradient)
  // int32_t (DataType); default -1: the bias has D's type. Left at that default here: for
  // bf16 and f32 the type table [lt §3.4.17] allows only bias type == C/D type anyway.
  // Declared (and checked) for completeness, never set.
  BiasDataType = 26,
};

enum class LayoutAttribute : int32_t {  // cublasLtMatrixLayoutAttribute_t [nvm MatrixLayoutAttribute]
  BatchCount = 5,                       // int32_t
  StridedBatchOffset = 6,               // int64_t, in elements
};

enum class PreferenceAttribute : int32_t {  // cublasLtMatmulPreferenceAttributes_t [nvm, lt §3.3.13]
  MaxWorkspaceBytes = 1,                    // uint64_t
  MinAlignmentABytes = 5,                   // uint32_t, each: default 256
  MinAlignmentBBytes = 6,
  MinAlignmentCBytes = 7,
  MinAlignmentDBytes = 8,
};

enum class Epilogue : uint32_t {  // cublasLtEpilogue_t [lt §3.3.2, nvm Epilogue]
  Default = 1,
  Bias = 4,        // + bias (length = rows of D), broadcast over D's columns
  // Bias then GELU, where cuBLASLt's GELU is the tanh approximation [lt §3.3.2 note 5]: only
  // for DiT's tanh-GELU MLP (a fused linear + GELU op, a later part of issue 15), never for
  // ViT/PiT's exact erf GELU. Declared and checked, not used yet.
  GeluBias = 36,   // GELU | BIAS
  BgradA = 256,    // bias gradient = sums of op(A) over k (length = rows of D)
  BgradB = 512,    // bias gradient = sums of op(B) over k (length = columns of D)
};

// The function types, exactly the prototypes of cublasLt.h [hdr] (checked by dev/cublaslt_check.cc).
using CreateFn = Status (*)(Handle*);
using DestroyFn = Status (*)(Handle);
using GetVersionFn = size_t (*)();
using GetStatusNameFn = const char* (*)(Status);
using MatmulDescCreateFn = Status (*)(MatmulDesc*, ComputeType, DataType);
using MatmulDescDestroyFn = Status (*)(MatmulDesc);
using MatmulDescSetAttributeFn = Status (*)(MatmulDesc, DescAttribute, const void*, size_t);
using MatrixLayoutCreateFn = Status (*)(MatrixLayout*, DataType, uint64_t rows, uint64_t cols, int64_t ld);
using MatrixLayoutDestroyFn = Status (*)(MatrixLayout);
using MatrixLayoutSetAttributeFn = Status (*)(MatrixLayout, LayoutAttribute, const void*, size_t);
using MatmulPreferenceCreateFn = Status (*)(MatmulPreference*);
using MatmulPreferenceDestroyFn = Status (*)(MatmulPreference);
using MatmulPreferenceSetAttributeFn = Status (*)(MatmulPreference, PreferenceAttribute, const void*, size_t);
using MatmulAlgoGetHeuristicFn = Status (*)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c,
                                            MatrixLayout d, MatmulPreference, int requested, HeuristicResult* results,
                                            int* returned);
using MatmulFn = Status (*)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b,
                            MatrixLayout, const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout,
                            const MatmulAlgo*, void* workspace, size_t workspace_bytes, Stream);

// Every entry is resolved when the library loads (a missing one is a reason, not a crash),
// except get_status_name, which is optional (messages fall back to the number).
struct Api {
  CreateFn create;
  DestroyFn destroy;
  GetVersionFn get_version;
  GetStatusNameFn get_status_name;  // may be null
  MatmulDescCreateFn matmul_desc_create;
  MatmulDescDestroyFn matmul_desc_destroy;
  MatmulDescSetAttributeFn matmul_desc_set_attribute;
  MatrixLayoutCreateFn matrix_layout_create;
  MatrixLayoutDestroyFn matrix_layout_destroy;
  MatrixLayoutSetAttributeFn matrix_layout_set_attribute;
  MatmulPreferenceCreateFn matmul_preference_create;
  MatmulPreferenceDestroyFn matmul_preference_destroy;
  MatmulPreferenceSetAttributeFn matmul_preference_set_attribute;
  MatmulAlgoGetHeuristicFn matmul_algo_get_heuristic;
  MatmulFn matmul;
};

// ---- the loader ----------------------------------------------------------------------------

// What the search found. Search order: the path in PIT_CUBLASLT when it is set (then the only
// candidate: an explicit path that fails is reported, never silently replaced by another
// library); else the sonames libcublasLt.so.13, then .so.12 (the dynamic linker's search:
// LD_LIBRARY_PATH, ldconfig's cache); else the nvidia/*/lib folders (PyTorch's CUDA wheels)
// under the sys.path of the `python3` on PATH, asked once with a 5 s limit. A library is
// accepted when every symbol of Api resolves, its cublasLtGetVersion major is 12 or 13, and
// that major is the one its file name says (libcublasLt.so.13* must report 13).
struct Library {
  bool loaded = false;
  std::string path;     // the file the dynamic linker mapped, symlinks resolved
  std::string source;   // "PIT_CUBLASLT", "soname" or "python3"
  size_t version = 0;   // cublasLtGetVersion(): major·10000 + minor·100 + patch
  std::string reason;   // why none was loaded (empty when loaded)
  std::vector<std::string> tried;  // every candidate and what became of it, in order
  // Whether the declarations above were checked against a real cublasLt.h where this addon
  // was built (dev/cublaslt_check.cc at CMake's configure): "checked against <header>", or
  // "not checked: ..." (no header there). A failed check refuses every library.
  std::string declarations;
};

// Loads on the first call (thread-safe, once per process); never throws, never aborts.
const Library& library();
// The resolved API, or null when no library loaded (library().reason says why).
const Api* api();
// "13.1.0" from 130100.
std::string version_string(size_t version);
// "CUBLAS_STATUS_NOT_SUPPORTED (15)", through cublasLtGetStatusName when the library has it.
std::string status_text(Status status);

}  // namespace pit::cuda::lt
