// Deterministic split-K for both GPU GEMM kernels (gemm_bf16.cuh's tensor-core kernel and
// matmul.cu's SIMT kernel). Pure C++: the GEMM emulator (dev/gemm_bf16_emulate.cc) checks it.
//
// Why: a weight gradient is a GEMM with a small output (M·N = d × 3d … 4d × d) and a long
// reduction (K = batch·tokens, 4k–260k): its output tiles alone fill 9–36 blocks of a 132-SM
// GPU. Splitting K over `splits` blocks per tile fills the rest. Each split writes its fp32
// partial tile to a workspace (splits, batch, M, N); a second pass (split_k.cuh) adds the
// partials of each element in split order, 0, 1, 2, …, and applies the epilogue. No atomics:
// the same call gives the same bits every run, whatever order the blocks ran in. (The split
// count depends on the GPU's SM count, so two GPU models may round differently.)
#pragma once
#include <algorithm>
#include <cstdint>

namespace pit::cuda {

struct SplitK {
  int64_t splits = 1;       // >= 1; every split has at least one K element
  int64_t k_per_split = 0;  // a multiple of the kernel's K tile (except when splits = 1: K)
};

// The occupancy heuristic. `tiles` output tiles (M tiles × N tiles × batch) fill `sms`
// multiprocessors with one resident block each; when they are fewer, split K into the most
// pieces that still fit one wave (tiles · splits <= sms), each at least min_k_per_split long
// (so the pipeline's prologue and the workspace's extra write and read, 8 bytes per output
// element and split against 2·(tile_m + tile_n) bytes per K element, stay small) and at most
// max_splits. A GEMM whose tiles already fill the GPU is never split.
inline SplitK choose_split_k(int64_t tiles, int64_t K, int64_t tile_k, int64_t min_k_per_split, int64_t sms,
                             int64_t max_splits) {
  SplitK none{1, K};
  if (tiles <= 0 || K <= 0 || tile_k <= 0 || tiles >= sms) return none;
  const int64_t want = std::min({sms / tiles, K / std::max<int64_t>(min_k_per_split, 1), max_splits});
  if (want <= 1) return none;
  const int64_t k_tiles = (K + tile_k - 1) / tile_k;
  const int64_t k_per_split = (k_tiles + want - 1) / want * tile_k;
  const int64_t splits = (K + k_per_split - 1) / k_per_split;  // <= want, none empty
  return splits > 1 ? SplitK{splits, k_per_split} : none;
}

}  // namespace pit::cuda
