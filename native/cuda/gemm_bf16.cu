// The launcher of our bf16 tensor-core GEMM (gemm_bf16.cuh) for cuda/gemm.h's Gemm: picks the
// instantiation (layouts, 16-byte copies or guarded loads, f32 or bf16 C), the split-K count
// (split_k.h), the workspace, and runs the kernel and, when split, the fixed-order reduction.
#include <climits>
#include <cstdint>
#include <string>

#include "cuda/context.h"
#include "cuda/gemm.h"
#include "cuda/gemm_bf16.cuh"

namespace pit::cuda {
namespace {

using gemm_bf16::Params;

// Runs one instantiation; its dynamic shared-memory limit is raised past 48 KiB once.
template <bool TA, bool TB, bool Aligned, typename Out>
void launch_kernel(const Params<Out>& p, unsigned grid) {
  constexpr int smem = gemm_bf16::smem_bytes<TA, TB>();
  static const cudaError_t raised = cudaFuncSetAttribute(gemm_bf16::gemm_kernel<TA, TB, Aligned, Out>,
                                                         cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  check(raised, "cudaFuncSetAttribute (gemm_bf16 shared memory)");
  gemm_bf16::gemm_kernel<TA, TB, Aligned, Out><<<grid, gemm_bf16::kThreads, smem, stream()>>>(p);
}

template <bool Aligned, typename Out>
void launch_layout(const Params<Out>& p, bool ta, bool tb, unsigned grid) {
  if (!ta && !tb) launch_kernel<false, false, Aligned, Out>(p, grid);
  else if (!ta && tb) launch_kernel<false, true, Aligned, Out>(p, grid);
  else if (ta && !tb) launch_kernel<true, false, Aligned, Out>(p, grid);
  else launch_kernel<true, true, Aligned, Out>(p, grid);
}

template <typename Out>
void run(const Gemm& g, const char* op) {
  const bool aligned = gemm_bf16::copyable(g.a, g.lda, g.stride_a, g.batch) &&
                       gemm_bf16::copyable(g.b, g.ldb, g.stride_b, g.batch);
  const SplitK split = gemm_bf16::split_for(g.M, g.N, g.K, g.batch, multiprocessors());
  Scratch workspace(split.splits > 1 ? size_t(split.splits * g.batch * g.M * g.N) * sizeof(float) : 0);
  Params<Out> p;
  p.a = static_cast<const uint16_t*>(g.a);
  p.b = static_cast<const uint16_t*>(g.b);
  p.c = static_cast<Out*>(g.c);
  p.bias = static_cast<const Out*>(g.bias);
  p.partial = workspace.get<float>();
  p.M = g.M, p.N = g.N, p.K = g.K, p.batch = g.batch;
  p.lda = g.lda, p.ldb = g.ldb, p.ldc = g.ldc;
  p.stride_a = g.stride_a, p.stride_b = g.stride_b, p.stride_c = g.stride_c;
  p.splits = split.splits, p.k_per_split = split.k_per_split;
  p.accumulate = g.accumulate;
  p.gelu = false;  // no op asks for the fused erf GELU yet (the kernel and reduction have it)
  p.pair_stores = reinterpret_cast<uintptr_t>(g.c) % (2 * sizeof(Out)) == 0 && g.ldc % 2 == 0 &&
                  (g.batch == 1 || g.stride_c % 2 == 0);
  const int64_t items = gemm_bf16::work_items(g.M, g.N, g.batch, split.splits);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(items, INT_MAX));
  if (aligned) launch_layout<true>(p, g.trans_a, g.trans_b, grid);
  else launch_layout<false>(p, g.trans_a, g.trans_b, grid);
  check_launch(op);
  if (split.splits > 1) {
    const split_k::ReduceArgs<Out> r{p.c, p.partial, p.bias, g.M, g.N, g.batch, split.splits,
                                     g.ldc, g.stride_c, g.accumulate, p.gelu};
    split_k::reduce_kernel<Out><<<grid_for(g.batch * g.M * g.N, split_k::kReduceThreads), split_k::kReduceThreads, 0,
                                  stream()>>>(r);
    check_launch(op);
  }
  workspace.release();
  count_path(split.splits > 1 ? "mma/split-K" : "mma");
}

}  // namespace

bool gemm_mma(const Gemm& g, const char* op, std::string* why) {
  if (g.in != DType::BF16) {
    *why = cat(dtype_name(g.in), " operands (the bf16 tensor-core GEMM takes bf16; f32 GEMMs keep f32 arithmetic)");
    return false;
  }
  if (g.bias_grad != Gemm::BiasGrad::None) {
    *why = "a fused bias gradient (the bf16 tensor-core GEMM leaves it to the column-sum pass)";
    return false;
  }
  if (g.batch <= 0 || g.M <= 0 || g.N <= 0 || g.K <= 0) {
    *why = cat("an empty dimension (M = ", g.M, ", N = ", g.N, ", K = ", g.K, ", batch = ", g.batch, ")");
    return false;
  }
  if (g.out == DType::F32) run<float>(g, op);
  else if (g.out == DType::BF16) run<uint16_t>(g, op);
  else {
    *why = cat(dtype_name(g.out), " output");
    return false;
  }
  return true;
}

}  // namespace pit::cuda
