// Host memory for CPU tensors: a caching pool, the host twin of the CUDA stream-ordered pool.
//
// Why: a training step frees and re-allocates the same set of multi-megabyte activations
// every step. Straight malloc/free costs a page fault per 4 KiB on every fresh block (about
// as long as the GELU that fills it) and, with glibc's dynamic mmap threshold, let the
// resident set grow by a whole step's activations per step; blocks under its 128 KiB mmap
// threshold fare no better, as the heap's top is trimmed and faulted in again (a PiT-T step
// at batch 1 on 8×8 images took 64 ms instead of 26). Every block of at least a page is
// therefore mapped directly, kept on free in a list per size class, and handed out again for
// the next request of that class; smaller blocks use aligned_alloc.
//
// Size classes are 8 per power of two (≤ 12.5% rounding). The cache holds at most
// PIT_HOST_POOL_BYTES (default a quarter of physical memory); beyond it, freed blocks are
// unmapped at once. An allocation that fails empties the cache and tries once more.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pit {

constexpr size_t kMinPooled = size_t(1) << 12;  // one page

// 64-byte aligned, at least `bytes` long; throws RangeError when memory is exhausted.
void* host_alloc(size_t bytes);
// `bytes` as given to host_alloc.
void host_free(void* data, size_t bytes);

struct HostPoolStats {
  int64_t cached_bytes = 0;  // held for reuse, not in any tensor
  int64_t limit_bytes = 0;
};
HostPoolStats host_pool_stats();
// Returns every cached block to the system.
void host_pool_release();

}  // namespace pit
