// Σ x² of one tensor in float64: the global gradient norm adds these over all parameters.
// Chunks have fixed boundaries (not one per thread) and their sums are added in order, so
// clipping decisions are bit-identical whatever PIT_NUM_THREADS is.
#include <algorithm>
#include <vector>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per deterministic chunk (64 KiB)

PIT_MULTIVERSION double chunk_sum_of_squares(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    double d = x[i];
    s += d * d;
  }
  return s;
}

}  // namespace

double sum_of_squares(const float* x, int64_t n) {
  if (n <= kChunk) return n > 0 ? chunk_sum_of_squares(x, n) : 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t i0 = c * kChunk;
      partial[c] = chunk_sum_of_squares(x + i0, std::min(n, i0 + kChunk) - i0);
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace pit::cpu
