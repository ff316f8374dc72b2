// The cuBLASLt engine for cuda/gemm.h's Gemm: one cached plan (descriptors, layouts, the
// heuristic's algorithm) per call shape, workspace from the stream-ordered pool, and the path
// counters and mode behind matmulInfo(). The row-major to column-major mapping is
// cuda/gemm_lt_map.h's (pure C++, checked on the CPU by dev/gemm_lt_map_check.cc).
//
// Repeatability: a plan is made once per key (transposes, sizes, leading dimensions, batch
// and strides, element types, epilogue, accumulate, and each pointer's alignment, which the
// heuristic takes into account) and keeps the algorithm the heuristic ranked first; the same
// call then always runs the same algorithm with the same workspace size. A key without an
// algorithm is cached too (the GEMM falls back every time, without asking again).
#include <cuda_runtime.h>
#include <library_types.h>
#include <napi.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cuda/context.h"
#include "cuda/cublaslt.h"
#include "cuda/cuda_backend.h"
#include "cuda/gemm.h"
#include "cuda/gemm_lt_map.h"

// The two cudaDataType_t values and the stream type, checked here against the toolkit's own
// headers (every CUDA toolkit has library_types.h); dev/cublaslt_check.cc checks the rest
// against cublasLt.h where one exists.
static_assert(static_cast<int>(pit::cuda::lt::DataType::R32F) == CUDA_R_32F, "CUDA_R_32F");
static_assert(static_cast<int>(pit::cuda::lt::DataType::R16BF) == CUDA_R_16BF, "CUDA_R_16BF");
static_assert(sizeof(pit::cuda::lt::DataType) == sizeof(cudaDataType_t), "cudaDataType_t is 4 bytes");
static_assert(std::is_same_v<pit::cuda::lt::Stream, cudaStream_t>, "cudaStream_t is CUstream_st*");

namespace pit::cuda {
namespace {

// cuBLAS's advice for Hopper is a 32 MiB workspace (cublasSetWorkspace); the plan takes only
// what its algorithm needs, from the pool, per call.
constexpr uint64_t kMaxWorkspaceBytes = 32ull << 20;
constexpr size_t kMaxPlans = 4096;  // beyond this, plans are made per call and not kept
constexpr size_t kMaxFallbackReasons = 64;

lt::DataType lt_type(DType t) { return t == DType::BF16 ? lt::DataType::R16BF : lt::DataType::R32F; }

// ---- mode, counters -------------------------------------------------------------------------

struct Counters {
  std::mutex mutex;
  std::map<std::string, double> paths, fallbacks;
};

Counters& counters() {
  static Counters* c = new Counters();
  return *c;
}

// ---- the handle: created on the first GEMM (it needs the GPU's context) -----------------------

struct HandleState {
  std::once_flag once;
  lt::Handle handle = nullptr;
  std::string error;
};

HandleState& handle_state() {
  static HandleState* h = new HandleState();  // never destroyed, like the stream
  return *h;
}

lt::Handle handle(const lt::Api& api, std::string* why) {
  HandleState& h = handle_state();
  std::call_once(h.once, [&] {
    const lt::Status s = api.create(&h.handle);
    if (s != lt::Status::Success) {
      h.handle = nullptr;
      h.error = "cublasLtCreate failed: " + lt::status_text(s);
    }
  });
  if (!h.handle) *why = h.error;
  return h.handle;
}

// ---- plans -------------------------------------------------------------------------------------

using Key = std::vector<int64_t>;

struct Plan {
  bool usable = false;
  std::string why;  // when not usable
  lt::Epilogue epilogue = lt::Epilogue::Default;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulAlgo algo{};
  size_t workspace = 0;
};

struct Plans {
  std::mutex mutex;  // held for a whole GEMM: plans are shared, their bias pointer is per call
  std::map<Key, Plan> by_key;
};

Plans& plans() {
  static Plans* p = new Plans();  // never destroyed: descriptors live as long as the process
  return *p;
}

void destroy(const lt::Api& api, Plan& p) {
  if (p.desc) api.matmul_desc_destroy(p.desc);
  for (lt::MatrixLayout l : {p.a, p.b, p.c})
    if (l) api.matrix_layout_destroy(l);
  p.desc = nullptr;
  p.a = p.b = p.c = nullptr;
}

const char* epilogue_name(lt::Epilogue e) {
  switch (e) {
    case lt::Epilogue::Bias: return "BIAS";
    case lt::Epilogue::BgradA: return "BGRADA";
    case lt::Epilogue::BgradB: return "BGRADB";
    case lt::Epilogue::GeluBias: return "GELU_BIAS";
    default: return "DEFAULT";
  }
}

std::string describe(const Gemm& g, lt::Epilogue e) {
  return cat(dtype_name(g.in), "->", dtype_name(g.out), " ", g.trans_a ? "T" : "N", g.trans_b ? "T" : "N", " M=", g.M,
             " N=", g.N, " K=", g.K, g.batch > 1 ? cat(" batch=", g.batch) : std::string(), " epilogue ",
             epilogue_name(e));
}

// Sets an attribute; false (and *why) when cuBLASLt refuses it.
template <typename SetFn, typename Obj, typename Attr, typename T>
bool set(SetFn fn, Obj obj, Attr attr, const T& value, const char* what, std::string* why) {
  const lt::Status s = fn(obj, attr, &value, sizeof(T));
  if (s == lt::Status::Success) return true;
  *why = cat("setting ", what, " failed: ", lt::status_text(s));
  return false;
}

// Makes the plan for problem q (of g, for the messages): descriptors, layouts, and the
// heuristic's first algorithm.
Plan make_plan(const lt::Api& api, lt::Handle h, const LtProblem& q, const Gemm& g) {
  Plan p;
  p.epilogue = q.epilogue;
  std::string why;
  auto fail = [&](const std::string& reason) {
    destroy(api, p);
    p.usable = false;
    p.why = cat(reason, " (", describe(g, q.epilogue), ")");
    return p;
  };
  lt::Status s = api.matmul_desc_create(&p.desc, lt::ComputeType::F32, lt::DataType::R32F);
  if (s != lt::Status::Success) return fail("cublasLtMatmulDescCreate: " + lt::status_text(s));
  if (!set(api.matmul_desc_set_attribute, p.desc, lt::DescAttribute::TransA, q.trans_a, "TRANSA", &why) ||
      !set(api.matmul_desc_set_attribute, p.desc, lt::DescAttribute::TransB, q.trans_b, "TRANSB", &why))
    return fail(why);
  // BIAS_DATA_TYPE stays at its default, D's type: the only one the type table allows here.
  if (q.epilogue != lt::Epilogue::Default &&
      (!set(api.matmul_desc_set_attribute, p.desc, lt::DescAttribute::Epilogue, q.epilogue, "EPILOGUE", &why) ||
       !set(api.matmul_desc_set_attribute, p.desc, lt::DescAttribute::BiasPointer, q.epilogue_pointer, "BIAS_POINTER",
            &why)))
    return fail(why);
  const std::pair<lt::MatrixLayout*, const LtMatrix*> layouts[] = {{&p.a, &q.a}, {&p.b, &q.b}, {&p.c, &q.c}};
  for (const auto& [layout, m] : layouts) {
    s = api.matrix_layout_create(layout, lt_type(m->type), uint64_t(m->rows), uint64_t(m->cols), m->ld);
    if (s != lt::Status::Success) return fail("cublasLtMatrixLayoutCreate: " + lt::status_text(s));
    if (q.batch > 1) {
      const int32_t count = static_cast<int32_t>(q.batch);
      const int64_t stride = m->stride;
      if (!set(api.matrix_layout_set_attribute, *layout, lt::LayoutAttribute::BatchCount, count, "BATCH_COUNT", &why) ||
          !set(api.matrix_layout_set_attribute, *layout, lt::LayoutAttribute::StridedBatchOffset, stride,
               "STRIDED_BATCH_OFFSET", &why))
        return fail(why);
    }
  }

  lt::MatmulPreference pref = nullptr;
  s = api.matmul_preference_create(&pref);
  if (s != lt::Status::Success) return fail("cublasLtMatmulPreferenceCreate: " + lt::status_text(s));
  const uint64_t max_workspace = kMaxWorkspaceBytes;
  const bool prefs_set =
      set(api.matmul_preference_set_attribute, pref, lt::PreferenceAttribute::MaxWorkspaceBytes, max_workspace,
          "MAX_WORKSPACE_BYTES", &why) &&
      set(api.matmul_preference_set_attribute, pref, lt::PreferenceAttribute::MinAlignmentABytes, q.a.alignment,
          "MIN_ALIGNMENT_A_BYTES", &why) &&
      set(api.matmul_preference_set_attribute, pref, lt::PreferenceAttribute::MinAlignmentBBytes, q.b.alignment,
          "MIN_ALIGNMENT_B_BYTES", &why) &&
      set(api.matmul_preference_set_attribute, pref, lt::PreferenceAttribute::MinAlignmentCBytes, q.c.alignment,
          "MIN_ALIGNMENT_C_BYTES", &why) &&
      set(api.matmul_preference_set_attribute, pref, lt::PreferenceAttribute::MinAlignmentDBytes, q.c.alignment,
          "MIN_ALIGNMENT_D_BYTES", &why);
  lt::HeuristicResult result{};
  int returned = 0;
  if (prefs_set) s = api.matmul_algo_get_heuristic(h, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &returned);
  api.matmul_preference_destroy(pref);
  if (!prefs_set) return fail(why);
  if (s != lt::Status::Success) return fail("no cuBLASLt algorithm: cublasLtMatmulAlgoGetHeuristic " + lt::status_text(s));
  if (returned < 1 || result.state != lt::Status::Success)
    return fail("no cuBLASLt algorithm for these types, layouts and alignments" +
                (returned < 1 ? std::string() : " (" + lt::status_text(result.state) + ")"));
  p.algo = result.algo;
  p.workspace = result.workspace_size;
  p.usable = true;
  return p;
}

}  // namespace

MatmulMode matmul_mode() {
  const char* env = std::getenv("PIT_MATMUL");
  if (!env || !*env || std::strcmp(env, "auto") == 0) return MatmulMode::Auto;
  if (std::strcmp(env, "simt") == 0) return MatmulMode::Simt;
  if (std::strcmp(env, "mma") == 0) return MatmulMode::Mma;
  if (std::strcmp(env, "cublaslt") == 0) return MatmulMode::Cublaslt;
  throw TypeError(cat("PIT_MATMUL must be \"auto\", \"simt\", \"mma\" or \"cublaslt\", got \"", env, "\""));
}

void count_path(const std::string& path) {
  Counters& c = counters();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.paths[path] += 1;
}

void count_fallback(const std::string& why) {
  Counters& c = counters();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.fallbacks.find(why);
  if (it != c.fallbacks.end()) it->second += 1;
  else if (c.fallbacks.size() < kMaxFallbackReasons) c.fallbacks[why] = 1;
}

bool gemm_cublaslt(const Gemm& g, MatmulMode mode, std::string* why) {
  if (mode == MatmulMode::Simt || mode == MatmulMode::Mma) {
    *why = mode == MatmulMode::Simt ? "PIT_MATMUL=simt" : "PIT_MATMUL=mma";
    return false;
  }
  const lt::Api* api = lt::api();
  if (!api) {
    *why = "cuBLASLt not loaded";
    return false;
  }
  LtProblem q;
  if (!lt_problem(g, &q, why)) return false;
  std::string create_error;
  const lt::Handle h = handle(*api, &create_error);
  if (!h) {
    *why = create_error;
    return false;
  }
  const Key key = {g.trans_a, g.trans_b, g.M, g.N, g.K, g.batch, g.lda, g.ldb, g.ldc,
                   g.batch > 1 ? g.stride_a : 0, g.batch > 1 ? g.stride_b : 0, g.batch > 1 ? g.stride_c : 0,
                   int64_t(g.in), int64_t(g.out), int64_t(q.epilogue), g.accumulate, q.a.alignment, q.b.alignment,
                   q.c.alignment, q.epilogue_alignment};

  Plans& all = plans();
  std::lock_guard<std::mutex> lock(all.mutex);
  Plan temporary;
  Plan* plan;
  auto found = all.by_key.find(key);
  if (found != all.by_key.end()) {
    plan = &found->second;
  } else if (all.by_key.size() < kMaxPlans) {
    plan = &all.by_key.emplace(key, make_plan(*api, h, q, g)).first->second;
  } else {
    temporary = make_plan(*api, h, q, g);
    plan = &temporary;
  }
  struct DestroyTemporary {  // a plan that is not kept is destroyed on every way out
    const lt::Api& api;
    Plan& p;
    ~DestroyTemporary() { destroy(api, p); }
  } destroy_temporary{*api, temporary};
  if (!plan->usable) {
    *why = plan->why;
    return false;
  }
  // The pointer may differ from the one the plan was made with (same alignment: it is in the key).
  if (q.epilogue != lt::Epilogue::Default &&
      !set(api->matmul_desc_set_attribute, plan->desc, lt::DescAttribute::BiasPointer, q.epilogue_pointer,
           "BIAS_POINTER", why))
    return false;

  const float alpha = 1.0f, beta = q.accumulate ? 1.0f : 0.0f;  // scale type f32, host pointers
  Scratch workspace(plan->workspace);
  if (reinterpret_cast<uintptr_t>(workspace.get()) % 256 != 0) {  // cublasLtMatmul requires 256-byte alignment
    *why = "the pool returned a workspace not aligned to 256 bytes";
    return false;
  }
  void* d = const_cast<void*>(q.c.data);
  const lt::Status s = api->matmul(h, plan->desc, &alpha, q.a.data, plan->a, q.b.data, plan->b, &beta, q.c.data, plan->c,
                                   d, plan->c, &plan->algo, workspace.get(), plan->workspace, stream());
  if (s == lt::Status::InvalidValue || s == lt::Status::NotSupported || s == lt::Status::ArchMismatch) {
    // A configuration cuBLASLt refuses at launch: nothing ran. Remember it for this key.
    plan->usable = false;
    plan->why = cat("cublasLtMatmul refused it: ", lt::status_text(s), " (", describe(g, q.epilogue), ")");
    *why = plan->why;
    return false;
  }
  if (s != lt::Status::Success)
    throw RangeError(cat("cublasLtMatmul failed: ", lt::status_text(s), " (", describe(g, q.epilogue), ")"));
  check_launch("cublasLtMatmul");
  workspace.release();
  count_path(q.epilogue == lt::Epilogue::Default ? std::string("cublasLt") : cat("cublasLt/", epilogue_name(q.epilogue)));
  return true;
}

// { mode, cublasLt: { loaded, path, version, source, handle | reason, declarations, tried }, calls, fallbacks }
Napi::Object matmul_info(Napi::Env env) {
  Napi::Object info = Napi::Object::New(env);
  const char* mode_env = std::getenv("PIT_MATMUL");
  info.Set("mode", mode_env && *mode_env ? std::string(mode_env) : std::string("auto"));
  const lt::Library& lib = lt::library();
  Napi::Object l = Napi::Object::New(env);
  l.Set("loaded", lib.loaded);
  if (lib.loaded) {
    l.Set("path", lib.path);
    l.Set("version", lt::version_string(lib.version));
    l.Set("source", lib.source);
    HandleState& h = handle_state();
    // The handle is made by the first GEMM; until then "not created yet".
    l.Set("handle", h.handle ? std::string("created") : h.error.empty() ? std::string("not created yet") : h.error);
  } else {
    l.Set("reason", lib.reason);
  }
  l.Set("declarations", lib.declarations);
  Napi::Array tried = Napi::Array::New(env, lib.tried.size());
  for (size_t i = 0; i < lib.tried.size(); ++i) tried.Set(static_cast<uint32_t>(i), lib.tried[i]);
  l.Set("tried", tried);
  info.Set("cublasLt", l);
  Counters& c = counters();
  std::lock_guard<std::mutex> lock(c.mutex);
  Napi::Object calls = Napi::Object::New(env), fallbacks = Napi::Object::New(env);
  for (const auto& [path, n] : c.paths) calls.Set(path, n);
  for (const auto& [why, n] : c.fallbacks) fallbacks.Set(why, n);
  info.Set("calls", calls);
  info.Set("fallbacks", fallbacks);
  return info;
}

}  // namespace pit::cuda
