// out (B, n) = a[b]·x + c[b]·y with one coefficient pair per sample (diffusion's q_sample and
// posterior mean at per-sample timesteps): a memory-bound loop, compiled per ISA and split
// across cores in chunks of whole or partial sample rows.
#include <algorithm>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per chunk: ~128 KiB per operand

PIT_MULTIVERSION void axpby_row(float* out, const float* x, const float* y, float a, float c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a * x[i] + c * y[i];
}
PIT_MULTIVERSION void scale_row(float* out, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a * x[i];
}

}  // namespace

void per_sample_axpby(float* out, const float* x, const float* y, const float* a, const float* c, int64_t B,
                      int64_t n) {
  if (n <= 0) return;
  parallel_for(B * n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end;) {  // the part of one sample's row inside [begin, end)
      const int64_t b = i / n, stop = std::min(end, (b + 1) * n);
      if (y)
        axpby_row(out + i, x + i, y + i, a[b], c[b], stop - i);
      else
        scale_row(out + i, x + i, a[b], stop - i);
      i = stop;
    }
  });
}

}  // namespace pit::cpu
