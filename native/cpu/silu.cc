// SiLU (swish), elementwise over n floats: out = x·σ(x), σ(x) = 1/(1 + e^{-x}), and its
// derivative σ(x)·(1 + x·(1 − σ(x))).
//
// The loops are plain C++ compiled once per ISA (PIT_MULTIVERSION) and split across cores.
// They vectorise because exp below is branch-free float arithmetic (libm's expf is a call
// that may set errno). exp_neg and sigmoid come from vmath.h.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/vmath.h"

namespace pit::cpu {
namespace {

using namespace vmath;

constexpr int64_t kGrain = 1 << 15;  // elements per chunk: ~128 KiB per operand


PIT_MULTIVERSION void silu_forward_span(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * sigmoid(x[i]).s;
}

PIT_MULTIVERSION void silu_backward_span(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const Sigmoid sg = sigmoid(x[i]);
    dx[i] = dout[i] * (sg.s + x[i] * sg.s * sg.one_minus_s);
  }
}

}  // namespace

// out, x (n)
void silu_forward(float* out, const float* x, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { silu_forward_span(out + begin, x + begin, end - begin); });
}

// dx, dout, x (n)
void silu_backward(float* dx, const float* dout, const float* x, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    silu_backward_span(dx + begin, dout + begin, x + begin, end - begin);
  });
}

}  // namespace pit::cpu
