// The CPU's measured multiply-add peak, the ceiling `pit bench kernels` reports GEMMs against:
// a register-only loop of independent accumulator chains on every thread of the pool, no
// memory traffic. Measured natively (not in a program compiled at bench time) so that it
// runs on every install, with the same compiler, ISA dispatch and thread pool as the kernels.
//   f32:  vfmadd231ps chains (zmm), 2 FLOP per lane per instruction
//   bf16: vdpbf16ps chains (zmm), two bf16 multiply-adds, 4 FLOP, per f32 lane per instruction
// Both need AVX-512 (the levels this bench compares); below it cpuPeak says so.
// Enough chains to cover latency x issue rate (Zen 4: FMA 4 cycles x 2 ymm pipes; vdpbf16ps
// about 6 x 1 zmm), so the loop is bound by issue alone.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/parallel.h"
#include "cpu/backend.h"

#if PIT_X86
#include <immintrin.h>
#endif

namespace pit::cpu {
namespace {

#if PIT_X86
constexpr int kChains = 16;

// Each returns a value derived from every chain, so that none can be dropped.
PIT_TARGET_AVX512 float first_lane(__m512 x) { return _mm512_cvtss_f32(x); }

PIT_TARGET_AVX512 float fma_chains_avx512(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
  for (int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  for (int i = 1; i < kChains; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return first_lane(acc[0]);
}

PIT_TARGET_AVX512BF16 float dpbf16_chains(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh y = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(-1e-4f));
  for (int64_t n = 0; n < iters; ++n)
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
  for (int i = 1; i < kChains; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return first_lane(acc[0]);
}
#endif

struct Loop {
  float (*run)(int64_t iters);
  double flops_per_iter;  // per thread
};

Loop loop_for(const std::string& kind) {
#if PIT_X86
  if (kind == "f32" && cpu_has_avx512()) return {fma_chains_avx512, kChains * 16 * 2.0};
  if (kind == "bf16" && cpu_has_avx512_bf16()) return {dpbf16_chains, kChains * 16 * 4.0};
#endif
  PIT_CHECK_TYPE(kind == "f32" || kind == "bf16", "cpuPeak: kind must be \"f32\" or \"bf16\", got \"", kind, "\"");
  throw TypeError(cat("cpuPeak: ", kind, " not implemented at the ", cpu_isa(), " level: its loop needs ",
                      kind == "f32" ? "AVX-512" : "AVX512-BF16"));
}

}  // namespace

PeakRun cpu_peak(const std::string& kind, double seconds) {
  const Loop loop = loop_for(kind);
  std::atomic<float> sink{0.0f};
  // Calibrate on one thread, then run every thread for about `seconds` in all, best of five.
  constexpr int kRepeats = 5;
  using Clock = std::chrono::steady_clock;
  int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = Clock::now();
    sink = sink + loop.run(iters);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s > 0.01 || iters > (int64_t{1} << 40)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(iters * seconds / kRepeats / s));
      break;
    }
    iters *= 4;
  }
  const int threads = num_threads();
  PeakRun best{0, 0};
  for (int rep = 0; rep < kRepeats; ++rep) {
    const auto t0 = Clock::now();
    parallel_for(threads, 1, [&](int64_t t0_, int64_t t1_) {
      for (int64_t t = t0_; t < t1_; ++t) sink = sink + loop.run(iters);
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double flops = loop.flops_per_iter * static_cast<double>(iters) * threads;
    if (best.seconds == 0 || flops / s > best.flops / best.seconds) best = PeakRun{flops, s};
  }
  if (sink == 12345.0f) best.flops += 0;  // never true; keeps `sink` observable
  return best;
}

}  // namespace pit::cpu
