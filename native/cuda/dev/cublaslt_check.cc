// Compile-time proof that cuda/cublaslt.h declares cuBLASLt's C API as the real header does:
// every enum value, every struct's size, alignment and field offsets, and every function
// prototype (through a type map from our types to theirs, so a wrong parameter type, count or
// order fails). It only compiles; there is nothing to run. CMake compiles it at configure time
// (try_compile) where it finds cublasLt.h, and a failure turns cuBLASLt off in that build,
// with the reason in `pit info`; bench/gpu-session.sh compiles it on the GPU host too:
//
//   g++ -std=c++17 -fsyntax-only -Inative -I/usr/local/cuda/include native/cuda/dev/cublaslt_check.cc
//
// A header of another major than 12 or 13 is not checked (the loader refuses those libraries).
#include <cublasLt.h>
#include <library_types.h>

#include <cstddef>
#include <type_traits>

#include "cuda/cublaslt.h"

#if !defined(CUBLAS_VER_MAJOR) || (CUBLAS_VER_MAJOR != 12 && CUBLAS_VER_MAJOR != 13)
#warning "cublaslt_check: this cublasLt.h is not of major 12 or 13; the declarations were not checked against it"
#else

namespace ours = pit::cuda::lt;

// Functions we dlsym by name must be real functions of that name, not macros that rename them
// (as cublas_api.h does with its _v2 entry points).
#if defined(cublasLtCreate) || defined(cublasLtDestroy) || defined(cublasLtGetVersion) ||                      \
    defined(cublasLtGetStatusName) || defined(cublasLtMatmulDescCreate) || defined(cublasLtMatmulDescDestroy) || \
    defined(cublasLtMatmulDescSetAttribute) || defined(cublasLtMatrixLayoutCreate) ||                          \
    defined(cublasLtMatrixLayoutDestroy) || defined(cublasLtMatrixLayoutSetAttribute) ||                       \
    defined(cublasLtMatmulPreferenceCreate) || defined(cublasLtMatmulPreferenceDestroy) ||                     \
    defined(cublasLtMatmulPreferenceSetAttribute) || defined(cublasLtMatmulAlgoGetHeuristic) ||                \
    defined(cublasLtMatmul)
#error "a cuBLASLt entry point is a macro in this header: dlsym of its plain name would miss it"
#endif

// ---- values -----------------------------------------------------------------------------------
#define PIT_SAME_VALUE(ours_value, theirs) \
  static_assert(static_cast<long long>(ours_value) == static_cast<long long>(theirs), #theirs)

PIT_SAME_VALUE(ours::Status::Success, CUBLAS_STATUS_SUCCESS);
PIT_SAME_VALUE(ours::Status::NotInitialized, CUBLAS_STATUS_NOT_INITIALIZED);
PIT_SAME_VALUE(ours::Status::InvalidValue, CUBLAS_STATUS_INVALID_VALUE);
PIT_SAME_VALUE(ours::Status::ArchMismatch, CUBLAS_STATUS_ARCH_MISMATCH);
PIT_SAME_VALUE(ours::Status::NotSupported, CUBLAS_STATUS_NOT_SUPPORTED);
PIT_SAME_VALUE(ours::DataType::R32F, CUDA_R_32F);
PIT_SAME_VALUE(ours::DataType::R16BF, CUDA_R_16BF);
PIT_SAME_VALUE(ours::ComputeType::F32, CUBLAS_COMPUTE_32F);
PIT_SAME_VALUE(ours::Operation::N, CUBLAS_OP_N);
PIT_SAME_VALUE(ours::Operation::T, CUBLAS_OP_T);
PIT_SAME_VALUE(ours::DescAttribute::TransA, CUBLASLT_MATMUL_DESC_TRANSA);
PIT_SAME_VALUE(ours::DescAttribute::TransB, CUBLASLT_MATMUL_DESC_TRANSB);
PIT_SAME_VALUE(ours::DescAttribute::Epilogue, CUBLASLT_MATMUL_DESC_EPILOGUE);
PIT_SAME_VALUE(ours::DescAttribute::BiasPointer, CUBLASLT_MATMUL_DESC_BIAS_POINTER);
PIT_SAME_VALUE(ours::DescAttribute::BiasDataType, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE);
PIT_SAME_VALUE(ours::LayoutAttribute::BatchCount, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT);
PIT_SAME_VALUE(ours::LayoutAttribute::StridedBatchOffset, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET);
PIT_SAME_VALUE(ours::PreferenceAttribute::MaxWorkspaceBytes, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES);
PIT_SAME_VALUE(ours::PreferenceAttribute::MinAlignmentABytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES);
PIT_SAME_VALUE(ours::PreferenceAttribute::MinAlignmentBBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES);
PIT_SAME_VALUE(ours::PreferenceAttribute::MinAlignmentCBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES);
PIT_SAME_VALUE(ours::PreferenceAttribute::MinAlignmentDBytes, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES);
PIT_SAME_VALUE(ours::Epilogue::Default, CUBLASLT_EPILOGUE_DEFAULT);
PIT_SAME_VALUE(ours::Epilogue::Bias, CUBLASLT_EPILOGUE_BIAS);
PIT_SAME_VALUE(ours::Epilogue::GeluBias, CUBLASLT_EPILOGUE_GELU_BIAS);
PIT_SAME_VALUE(ours::Epilogue::BgradA, CUBLASLT_EPILOGUE_BGRADA);
PIT_SAME_VALUE(ours::Epilogue::BgradB, CUBLASLT_EPILOGUE_BGRADB);
// CUBLAS_VERSION is what cublasLtGetVersion() returns; the loader takes the major as version / 10000.
static_assert(CUBLAS_VERSION / 10000 == CUBLAS_VER_MAJOR, "CUBLAS_VERSION is major * 10000 + ...");

// ---- types: sizes and alignments (enums are passed as 4-byte integers either way) -------------
#define PIT_SAME_LAYOUT(ours_type, theirs)                                        \
  static_assert(sizeof(ours_type) == sizeof(theirs), "sizeof " #theirs);       \
  static_assert(alignof(ours_type) == alignof(theirs), "alignof " #theirs)

PIT_SAME_LAYOUT(ours::Status, cublasStatus_t);
PIT_SAME_LAYOUT(ours::DataType, cudaDataType_t);
PIT_SAME_LAYOUT(ours::ComputeType, cublasComputeType_t);
PIT_SAME_LAYOUT(ours::Operation, cublasOperation_t);
PIT_SAME_LAYOUT(ours::DescAttribute, cublasLtMatmulDescAttributes_t);
PIT_SAME_LAYOUT(ours::LayoutAttribute, cublasLtMatrixLayoutAttribute_t);
PIT_SAME_LAYOUT(ours::PreferenceAttribute, cublasLtMatmulPreferenceAttributes_t);
PIT_SAME_LAYOUT(ours::Epilogue, cublasLtEpilogue_t);
PIT_SAME_LAYOUT(ours::Handle, cublasLtHandle_t);
PIT_SAME_LAYOUT(ours::MatmulDesc, cublasLtMatmulDesc_t);
PIT_SAME_LAYOUT(ours::MatrixLayout, cublasLtMatrixLayout_t);
PIT_SAME_LAYOUT(ours::MatmulPreference, cublasLtMatmulPreference_t);
PIT_SAME_LAYOUT(ours::MatmulAlgo, cublasLtMatmulAlgo_t);
PIT_SAME_LAYOUT(ours::HeuristicResult, cublasLtMatmulHeuristicResult_t);
static_assert(std::is_same_v<ours::Stream, cudaStream_t>, "cudaStream_t is CUstream_st*");
static_assert(std::is_trivially_copyable_v<cublasLtMatmulAlgo_t>, "the algo is cached by value");

#define PIT_SAME_OFFSET(ours_field, theirs_field)                                                  \
  static_assert(offsetof(ours::HeuristicResult, ours_field) == offsetof(cublasLtMatmulHeuristicResult_t, theirs_field), \
                "offset of cublasLtMatmulHeuristicResult_t::" #theirs_field)
PIT_SAME_OFFSET(algo, algo);
PIT_SAME_OFFSET(workspace_size, workspaceSize);
PIT_SAME_OFFSET(state, state);
PIT_SAME_OFFSET(waves_count, wavesCount);
PIT_SAME_OFFSET(reserved, reserved);
static_assert(std::is_same_v<decltype(cublasLtMatmulHeuristicResult_t::workspaceSize), size_t>);
static_assert(std::is_same_v<decltype(cublasLtMatmulHeuristicResult_t::wavesCount), float>);

// ---- prototypes: map each of our types to theirs and compare whole function types -------------
template <typename T> struct Theirs { using type = T; };  // size_t, float, int, void*, ...: unchanged
template <typename T> using theirs_t = typename Theirs<T>::type;
template <> struct Theirs<ours::Status> { using type = cublasStatus_t; };
template <> struct Theirs<ours::Handle> { using type = cublasLtHandle_t; };
template <> struct Theirs<ours::Handle*> { using type = cublasLtHandle_t*; };
template <> struct Theirs<ours::MatmulDesc> { using type = cublasLtMatmulDesc_t; };
template <> struct Theirs<ours::MatmulDesc*> { using type = cublasLtMatmulDesc_t*; };
template <> struct Theirs<ours::MatrixLayout> { using type = cublasLtMatrixLayout_t; };
template <> struct Theirs<ours::MatrixLayout*> { using type = cublasLtMatrixLayout_t*; };
template <> struct Theirs<ours::MatmulPreference> { using type = cublasLtMatmulPreference_t; };
template <> struct Theirs<ours::MatmulPreference*> { using type = cublasLtMatmulPreference_t*; };
template <> struct Theirs<const ours::MatmulAlgo*> { using type = const cublasLtMatmulAlgo_t*; };
template <> struct Theirs<ours::HeuristicResult*> { using type = cublasLtMatmulHeuristicResult_t*; };
template <> struct Theirs<ours::DataType> { using type = cudaDataType_t; };
template <> struct Theirs<ours::ComputeType> { using type = cublasComputeType_t; };
template <> struct Theirs<ours::DescAttribute> { using type = cublasLtMatmulDescAttributes_t; };
template <> struct Theirs<ours::LayoutAttribute> { using type = cublasLtMatrixLayoutAttribute_t; };
template <> struct Theirs<ours::PreferenceAttribute> { using type = cublasLtMatmulPreferenceAttributes_t; };
template <typename R, typename... A> struct Theirs<R (*)(A...)> { using type = theirs_t<R> (*)(theirs_t<A>...); };

#define PIT_SAME_PROTOTYPE(ours_fn, theirs_fn) \
  static_assert(std::is_same_v<theirs_t<ours::ours_fn>, decltype(&theirs_fn)>, "prototype of " #theirs_fn)
PIT_SAME_PROTOTYPE(CreateFn, cublasLtCreate);
PIT_SAME_PROTOTYPE(DestroyFn, cublasLtDestroy);
PIT_SAME_PROTOTYPE(GetVersionFn, cublasLtGetVersion);
PIT_SAME_PROTOTYPE(GetStatusNameFn, cublasLtGetStatusName);
PIT_SAME_PROTOTYPE(MatmulDescCreateFn, cublasLtMatmulDescCreate);
PIT_SAME_PROTOTYPE(MatmulDescDestroyFn, cublasLtMatmulDescDestroy);
PIT_SAME_PROTOTYPE(MatmulDescSetAttributeFn, cublasLtMatmulDescSetAttribute);
PIT_SAME_PROTOTYPE(MatrixLayoutCreateFn, cublasLtMatrixLayoutCreate);
PIT_SAME_PROTOTYPE(MatrixLayoutDestroyFn, cublasLtMatrixLayoutDestroy);
PIT_SAME_PROTOTYPE(MatrixLayoutSetAttributeFn, cublasLtMatrixLayoutSetAttribute);
PIT_SAME_PROTOTYPE(MatmulPreferenceCreateFn, cublasLtMatmulPreferenceCreate);
PIT_SAME_PROTOTYPE(MatmulPreferenceDestroyFn, cublasLtMatmulPreferenceDestroy);
PIT_SAME_PROTOTYPE(MatmulPreferenceSetAttributeFn, cublasLtMatmulPreferenceSetAttribute);
PIT_SAME_PROTOTYPE(MatmulAlgoGetHeuristicFn, cublasLtMatmulAlgoGetHeuristic);
PIT_SAME_PROTOTYPE(MatmulFn, cublasLtMatmul);

#endif  // CUBLAS_VER_MAJOR 12 or 13

// An object file needs something in it.
extern const int pit_cublaslt_check_done;
const int pit_cublaslt_check_done = 1;
