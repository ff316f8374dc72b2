// out (B, n) = a[b]·x + c[b]·y with one coefficient pair per sample (diffusion's q_sample and
// posterior mean at per-sample timesteps): a memory-bound loop, compiled per ISA and split
// across cores in chunks of whole or partial sample rows.
#include "core/cpu_features.h"
#include "cpu/backend.h"
#include "cpu/per_sample.h"

namespace pit::cpu {
namespace {

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
  // Each sample's row as n rows of one element: for_rows splits them at sample boundaries.
  per_sample::for_rows(B, n, 1, [&](int64_t i, int64_t len, int64_t b) {
    if (y)
      axpby_row(out + i, x + i, y + i, a[b], c[b], len);
    else
      scale_row(out + i, x + i, a[b], len);
  });
}

}  // namespace pit::cpu
