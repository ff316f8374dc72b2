// add, mul, scale, axpy, fill: memory-bound loops, compiled per ISA (PIT_MULTIVERSION) and
// split across cores. b broadcasts over leading dims: element i meets b[i % nb].
#include <algorithm>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per chunk: ~128 KiB per operand

PIT_MULTIVERSION void add_rows(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
PIT_MULTIVERSION void mul_rows(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
PIT_MULTIVERSION void add_scalar(float* out, const float* a, float b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b;
}
PIT_MULTIVERSION void mul_scalar(float* out, const float* a, float b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b;
}
PIT_MULTIVERSION void axpy_rows(float* y, const float* x, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
PIT_MULTIVERSION void fill_rows(float* out, float value, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = value;
}

// Applies a row kernel to a (n / nb, nb) view, or the scalar kernel when nb == 1.
template <typename RowFn, typename ScalarFn>
void broadcast_binary(float* out, const float* a, const float* b, int64_t n, int64_t nb, RowFn row,
                      ScalarFn scalar) {
  if (nb == 1) {
    float s = b[0];
    parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { scalar(out + begin, a + begin, s, end - begin); });
    return;
  }
  // Chunks are whole repeats of b when b is short, slices of b's span when it is long.
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end;) {
      int64_t j = i % nb, len = std::min(end - i, nb - j);
      row(out + i, a + i, b + j, len);
      i += len;
    }
  });
}

}  // namespace

void add_forward(float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary(out, a, b, n, nb, add_rows, add_scalar);
}

void mul_forward(float* out, const float* a, const float* b, int64_t n, int64_t nb) {
  broadcast_binary(out, a, b, n, nb, mul_rows, mul_scalar);
}

void scale_forward(float* out, const float* x, float alpha, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { mul_scalar(out + begin, x + begin, alpha, end - begin); });
}

void axpy(float* y, const float* x, float alpha, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { axpy_rows(y + begin, x + begin, alpha, end - begin); });
}

void fill(float* out, float value, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { fill_rows(out + begin, value, end - begin); });
}

}  // namespace pit::cpu
