// A small persistent thread pool: every CPU op splits its outermost loop with
// parallel_for, so all cores are used without a per-call thread start.
#pragma once
#include <cstdint>
#include <functional>

namespace pit {

// Threads the pool uses: PIT_NUM_THREADS if set, else the hardware concurrency.
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n), each at least `grain` long
// (except the last), on all threads; returns when every chunk is done. A call made from
// inside a chunk runs serially on the calling thread. fn must not throw.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace pit
