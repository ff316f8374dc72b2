// Host emulator for our bf16 tensor-core GEMM (native/cuda/gemm_bf16.cuh) and the split-K
// reduction (split_k.cuh): compiles them unchanged as C++ against dev/warp_emulate.h (every
// CTA on the CPU, one fiber per thread; mma.sync, ldmatrix, cp.async with zero fill and
// barriers emulated from the PTX ISA) and checks every output element against a float64
// reference on the same bf16 inputs, for odd shapes (M, N, K not multiples of the 128 × 128 ×
// 32 tiles, K = 1, tall and skinny), every layout (NN, NT, TN, TT), batches with a shared
// operand, accumulate, bias, the erf GELU, f32 and bf16 outputs, leading dimensions past the
// row length, operands that cannot take 16-byte copies (the guarded-load form), split-K with
// the heuristic's and with forced split counts, and grids smaller than the work. Every case
// runs three times: cp.async copies landing late (lazy), at issue with a drifting schedule
// (eager), and at issue with one warp held back as far as the barriers allow (laggard: a
// stage refilled while a slow warp may still read it is caught every time); the three results
// must agree bit for bit (no atomics: a split-K sum in another order would show). It also checks the split-K heuristic (split_k.h). Not part of any build:
//
//   g++ -std=c++17 -O2 -fno-strict-aliasing -Wno-unknown-pragmas -Inative
//       native/cuda/dev/gemm_bf16_emulate.cc -o /tmp/gemm_bf16_emulate
//   /tmp/gemm_bf16_emulate            # every case; --quick: the smaller set the test runs
//
// Tolerance per element, with S = Σ_k |a_ik·b_kj| + |C_old| + |bias| and n the fp32 additions
// on the element's path (one per 16-wide mma, one per split, the epilogue's two):
//   f32 out: |got − ref| <= (n + 2)·2^-24·S (each fp32 addition rounds by at most 2^-24 of a
//   partial sum bounded by S; the emulated mma itself is exact in float64 then rounded once);
//   GELU multiplies that by 1.2 (its slope is at most 1.13) and adds 2^-21·|ref| (erfcf);
//   bf16 out adds 2^-8·|ref| (the final rounding), and, as DESIGN.md asks, the largest error
//   must be at most twice the naive bf16 computation's (the float64 result rounded to bf16)
//   plus the f32 bound. A wrong kernel (a lost K slice, a swapped fragment, a missed bias) is
//   off by O(|a·b|), hundreds of times these bounds at these sizes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/dev/warp_emulate.h"

#define PIT_WARP_EMULATE 1
namespace pit::cuda::ptx {
using namespace ::emu::ptx;  // the primitives the kernel calls, in place of their PTX versions
}  // namespace pit::cuda::ptx

#include "cuda/gemm_bf16.cuh"

namespace gb = pit::cuda::gemm_bf16;
namespace sk = pit::cuda::split_k;
using pit::cuda::SplitK;

// ---- cases ----------------------------------------------------------------------------------

struct Case {
  bool ta, tb;
  int64_t M, N, K, batch = 1;
  bool shared_a = false, shared_b = false;  // batch stride 0
  bool accumulate = false, bias = false, gelu = false, bf16_out = false;
  int64_t pad = 0;           // extra elements per row of A, B and C (ld > row length)
  bool misalign = false;     // A and B start 2 bytes past a 16-byte boundary: the guarded-load form
  int64_t splits = 0;        // 0: the heuristic's for a 132-SM GPU; else forced
  unsigned grid_cap = 1000;  // fewer CTAs than work items exercises the CTA-stride loop
};

const char* layout(const Case& c) {
  static const char* names[] = {"NN", "NT", "TN", "TT"};
  return names[2 * c.ta + c.tb];
}

double bf16_round(double x) { return emu::bf16_to_float(emu::float_to_bf16(static_cast<float>(x))); }
double gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

// Every buffer has kPad poisoned elements on each side (and C its row gaps): a stray read
// brings NaN into the results, a stray write shows in the padding.
constexpr size_t kPad = 64;

template <typename T>
struct Buffer {
  std::vector<T> storage;
  size_t n = 0, offset = kPad;
  T poison{};
  Buffer(size_t count, T poison_value, size_t misalign_elements = 0)
      : storage(count + 2 * kPad + 8, poison_value), n(count), offset(kPad + misalign_elements), poison(poison_value) {}
  T* data() { return storage.data() + offset; }
  const T* begin() const { return storage.data() + offset; }
  const T* end() const { return storage.data() + offset + n; }
};

template <typename Out>
struct Run {
  std::vector<Out> c;  // the whole C buffer (with padding), as written
  int64_t splits = 1;
  bool padding_intact = true;
};

float out_to_float(float v) { return v; }
float out_to_float(uint16_t v) { return emu::bf16_to_float(v); }
template <typename Out>
Out float_to_out(float v) {
  if constexpr (sizeof(Out) == 4) return v;
  else return emu::float_to_bf16(v);
}

// The launcher of gemm_bf16.cu, with emu::launch for <<<>>> and a forced split count when asked.
template <typename Out>
Run<Out> launch(const Case& cs, const uint16_t* a, int64_t lda, int64_t stride_a, const uint16_t* b, int64_t ldb,
                int64_t stride_b, Buffer<Out>& c, int64_t ldc, int64_t stride_c, const Out* bias,
                const std::vector<std::pair<const void*, const void*>>& inputs) {
  const bool aligned = gb::copyable(a, lda, stride_a, cs.batch) && gb::copyable(b, ldb, stride_b, cs.batch);
  SplitK split = gb::split_for(cs.M, cs.N, cs.K, cs.batch, 132);
  if (cs.splits > 0) {
    const int64_t k_per = gb::ceil_div(gb::ceil_div(cs.K, cs.splits), gb::kTileK) * gb::kTileK;
    split = {gb::ceil_div(cs.K, k_per), k_per};
  }
  std::vector<float> partial(split.splits > 1 ? size_t(split.splits * cs.batch * cs.M * cs.N) : 0, NAN);
  gb::Params<Out> p;
  p.a = a, p.b = b, p.c = c.data(), p.bias = bias, p.partial = partial.empty() ? nullptr : partial.data();
  p.M = cs.M, p.N = cs.N, p.K = cs.K, p.batch = cs.batch;
  p.lda = lda, p.ldb = ldb, p.ldc = ldc;
  p.stride_a = stride_a, p.stride_b = stride_b, p.stride_c = stride_c;
  p.splits = split.splits, p.k_per_split = split.k_per_split;
  p.accumulate = cs.accumulate, p.gelu = cs.gelu;
  p.pair_stores = reinterpret_cast<uintptr_t>(c.data()) % (2 * sizeof(Out)) == 0 && ldc % 2 == 0 &&
                  (cs.batch == 1 || stride_c % 2 == 0);
  emu::global_ranges = inputs;
  emu::global_ranges.push_back({c.begin(), c.end()});
  if (!partial.empty()) emu::global_ranges.push_back({partial.data(), partial.data() + partial.size()});
  const int64_t items = gb::work_items(cs.M, cs.N, cs.batch, split.splits);
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(items, cs.grid_cap));
  auto go = [&](auto ta, auto tb, auto al) {
    constexpr bool TA = decltype(ta)::value, TB = decltype(tb)::value, AL = decltype(al)::value;
    emu::launch(grid, gb::kThreads, gb::smem_bytes<TA, TB>(), [&] { gb::gemm_kernel<TA, TB, AL, Out>(p); });
  };
  using T = std::true_type;
  using F = std::false_type;
  auto with_aligned = [&](auto ta, auto tb) { aligned ? go(ta, tb, T{}) : go(ta, tb, F{}); };
  if (!cs.ta && !cs.tb) with_aligned(F{}, F{});
  else if (!cs.ta && cs.tb) with_aligned(F{}, T{});
  else if (cs.ta && !cs.tb) with_aligned(T{}, F{});
  else with_aligned(T{}, T{});
  if (split.splits > 1) {
    const sk::ReduceArgs<Out> r{p.c, p.partial, p.bias, cs.M, cs.N, cs.batch, split.splits, ldc, stride_c,
                                cs.accumulate, cs.gelu};
    emu::launch(3, sk::kReduceThreads, 0, [&] { sk::reduce_kernel<Out>(r); });
  }
  Run<Out> run;
  run.c = c.storage;
  run.splits = split.splits;
  return run;
}

const char* kSchedules[] = {"lazy   ", "eager  ", "laggard"};

template <typename Out>
bool run_case(const Case& cs, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t B = cs.batch, M = cs.M, N = cs.N, K = cs.K;
  // Stored shapes: A (M, K) or (K, M) when ta; B (K, N) or (N, K) when tb; C (M, N).
  const int64_t a_rows = cs.ta ? K : M, a_cols = cs.ta ? M : K, b_rows = cs.tb ? N : K, b_cols = cs.tb ? K : N;
  const int64_t lda = a_cols + cs.pad, ldb = b_cols + cs.pad, ldc = N + cs.pad;
  const int64_t stride_a = cs.shared_a ? 0 : a_rows * lda, stride_b = cs.shared_b ? 0 : b_rows * ldb;
  const int64_t stride_c = M * ldc;
  const int64_t na = (cs.shared_a ? 1 : B) * a_rows * lda, nb = (cs.shared_b ? 1 : B) * b_rows * ldb, nc = B * M * ldc;
  const uint16_t kNaN16 = 0x7fc1;
  Buffer<uint16_t> a(na, kNaN16, cs.misalign), b(nb, kNaN16, cs.misalign);
  std::vector<double> ad(na, NAN), bd(nb, NAN);
  auto fill = [&](Buffer<uint16_t>& buf, std::vector<double>& d, int64_t rows, int64_t cols, int64_t ld, int64_t count) {
    for (int64_t z = 0; z < count; ++z)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k) {  // the row gaps (ld > cols) stay NaN: never read
          const size_t i = size_t((z * rows + r) * ld + k);
          d[i] = emu::bf16_to_float(buf.data()[i] = emu::float_to_bf16(normal(gen)));
        }
  };
  fill(a, ad, a_rows, a_cols, lda, cs.shared_a ? 1 : B);
  fill(b, bd, b_rows, b_cols, ldb, cs.shared_b ? 1 : B);
  const Out out_poison = float_to_out<Out>(NAN);
  Buffer<Out> c(nc, out_poison);
  std::vector<double> c_old(nc, 0), bias_d(N, 0);
  if (cs.accumulate)
    for (int64_t z = 0; z < B; ++z)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          const size_t e = size_t(z * stride_c + i * ldc + j);
          c.data()[e] = float_to_out<Out>(normal(gen));
          c_old[e] = out_to_float(c.data()[e]);
        }
  Buffer<Out> bias(N, out_poison);
  if (cs.bias)
    for (int64_t j = 0; j < N; ++j) bias_d[j] = out_to_float(bias.data()[j] = float_to_out<Out>(normal(gen)));

  // float64 reference and the per-element scale S.
  std::vector<double> ref(nc, 0), scale(nc, 0);
  for (int64_t z = 0; z < B; ++z) {
    const double* A = ad.data() + z * stride_a;
    const double* Bm = bd.data() + z * stride_b;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0, abs_sum = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double x = cs.ta ? A[k * lda + i] : A[i * lda + k];
          const double y = cs.tb ? Bm[j * ldb + k] : Bm[k * ldb + j];
          s += x * y;
          abs_sum += std::fabs(x * y);
        }
        const size_t e = size_t(z * stride_c + i * ldc + j);
        const double v = c_old[e] + s + bias_d[j];
        ref[e] = cs.gelu ? gelu(v) : v;
        scale[e] = abs_sum + std::fabs(c_old[e]) + std::fabs(bias_d[j]);
      }
  }

  const Buffer<Out> c_initial = c;
  const std::vector<std::pair<const void*, const void*>> inputs = {
      {a.begin(), a.end()}, {b.begin(), b.end()}, {bias.begin(), bias.end()}};
  std::vector<Run<Out>> runs;
  for (int schedule = 0; schedule < 3; ++schedule) {  // lazy, eager, laggard
    emu::eager = schedule == 1;
    emu::laggard = schedule == 2;
    Buffer<Out> cc = c_initial;
    runs.push_back(launch<Out>(cs, a.data(), lda, stride_a, b.data(), ldb, stride_b, cc, ldc, stride_c,
                               cs.bias ? bias.data() : nullptr, inputs));
  }
  emu::eager = emu::laggard = false;

  bool ok = true;
  const bool bf16 = sizeof(Out) == 2;
  for (size_t r = 0; r < runs.size(); ++r) {
    const std::vector<Out>& got_buf = runs[r].c;
    const Out* got = got_buf.data() + kPad;
    double worst = 0, max_err = 0, naive = 0, f32_bound_max = 0;
    bool untouched = true;
    // Everything outside the (M, N) elements, row gaps and padding included, is as it was.
    for (size_t i = 0; i < got_buf.size(); ++i) {
      const int64_t e = int64_t(i) - int64_t(kPad);
      const bool inside = e >= 0 && e < nc && (e % ldc) < N;
      if (!inside && std::memcmp(&got_buf[i], &c_initial.storage[i], sizeof(Out)) != 0) untouched = false;
    }
    for (int64_t z = 0; z < B; ++z)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          const size_t e = size_t(z * stride_c + i * ldc + j);
          const double g = out_to_float(got[e]), want = ref[e];
          const double adds = double(gb::ceil_div(K, 16) + runs[r].splits + 2);
          double f32 = (adds + 2) * std::ldexp(scale[e], -24);
          if (cs.gelu) f32 = 1.2 * f32 + std::ldexp(std::fabs(want), -21);
          const double tol = f32 + (bf16 ? std::ldexp(std::fabs(want), -8) : 0.0);
          const double err = std::fabs(g - want);
          if (!(err <= tol)) worst = std::max(worst, std::isnan(err) ? INFINITY : err / tol);
          max_err = std::isnan(err) ? INFINITY : std::max(max_err, err);
          naive = std::max(naive, std::fabs(bf16_round(want) - want));
          f32_bound_max = std::max(f32_bound_max, f32);
        }
    const bool naive_ok = !bf16 || max_err <= 2 * naive + f32_bound_max;
    const bool same_bits = r == 0 || std::memcmp(runs[r].c.data(), runs[0].c.data(), runs[0].c.size() * sizeof(Out)) == 0;
    const bool pass = worst == 0 && untouched && naive_ok && same_bits;
    ok = ok && pass;
    std::printf("%s %s M=%4lld N=%4lld K=%4lld batch=%lld%s%s%s%s%s%s%s out %s splits=%lld %s: max err %.2e%s%s%s%s\n",
                pass ? "ok  " : "FAIL", layout(cs), (long long)M, (long long)N, (long long)K, (long long)B,
                cs.shared_a ? " shared A" : "", cs.shared_b ? " shared B" : "", cs.accumulate ? " accumulate" : "",
                cs.bias ? " bias" : "", cs.gelu ? " gelu" : "", cs.pad ? " ld+pad" : "", cs.misalign ? " unaligned" : "",
                bf16 ? "bf16" : "f32 ", (long long)runs[r].splits, kSchedules[r], max_err,
                worst > 0 ? " OVER THE BOUND" : "", untouched ? "" : " WROTE OUTSIDE C", naive_ok ? "" : " OVER 2x NAIVE",
                r == 0 ? "" : same_bits ? ", bits = lazy run's" : ", BITS DIFFER FROM THE LAZY RUN");
  }
  return ok;
}

// ---- the split-K heuristic (split_k.h) ----------------------------------------------------------

int heuristic_checks(int* failures) {
  int count = 0;
  auto expect = [&](bool ok, const char* what) {
    ++count;
    if (!ok) ++*failures;
    std::printf("%s split-K heuristic: %s\n", ok ? "ok  " : "FAIL", what);
  };
  // Invariants over a sweep: splits >= 1; one wave (tiles·splits <= sms) when split; each
  // split non-empty and a whole number of K tiles long; never split a GEMM that fills the GPU.
  bool invariants = true;
  std::mt19937 gen(99);
  for (int i = 0; i < 20000; ++i) {
    const int64_t tiles = 1 + gen() % 300, K = 1 + gen() % 200000, sms = 1 + gen() % 200;
    const int64_t tile_k = (gen() % 2) ? 32 : 16, min_k = tile_k * (1 + gen() % 16), max_s = 1 + gen() % 64;
    const SplitK s = pit::cuda::choose_split_k(tiles, K, tile_k, min_k, sms, max_s);
    if (s.splits == 1) {
      invariants &= s.k_per_split == K;
    } else {
      invariants &= s.splits >= 2 && s.splits <= max_s && tiles * s.splits <= sms && tiles < sms;
      invariants &= s.k_per_split % tile_k == 0 && (s.splits - 1) * s.k_per_split < K && s.splits * s.k_per_split >= K;
      invariants &= s.k_per_split >= std::min<int64_t>(min_k, K);
    }
  }
  expect(invariants, "20000 random shapes: one wave, no empty split, whole K tiles, capped");
  // The weight gradients of PiT-T/S/B (d = 192, 384, 768; M·N = (3d, d), (4d, d), (d, 4d)) at
  // K = 65,536 tokens split to fill most of a 132-SM GPU; their forwards (M = 65,536) are not split.
  bool weight_grads = true, forwards = true;
  for (int64_t d : {192, 384, 768})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{3 * d, d}, {4 * d, d}, {d, 4 * d}}) {
      const SplitK s = gb::split_for(k, n, 65536, 1, 132);  // dW (k, n) over 65,536 rows
      const int64_t tiles = gb::ceil_div(k, gb::kTileM) * gb::ceil_div(n, gb::kTileN);
      weight_grads &= tiles * s.splits > 132 / 2 && tiles * s.splits <= std::max<int64_t>(tiles, 132);
      forwards &= gb::split_for(65536, n, k, 1, 132).splits == 1;
    }
  expect(weight_grads, "PiT-T/S/B weight gradients at K = 65536: split to fill more than half of 132 SMs");
  expect(forwards, "PiT-T/S/B forwards at M = 65536: not split");
  const SplitK qkv = gb::split_for(192, 576, 65536, 1, 132);
  expect(qkv.splits == 13 && qkv.k_per_split == 5056, "192 x 576 x 65536 (PiT-T qkv dW): 13 splits of 5056");
  expect(gb::split_for(40, 40, 255, 1, 132).splits == 1, "K = 255 < 2 x 256: not split");
  expect(gb::split_for(40, 40, 100000, 1, 132).splits == gb::kMaxSplits, "one tile, K = 100000: the 32-split cap");
  return count;
}

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  // Odd sizes everywhere: 1 and tile tails on every side, tall and skinny both ways.
  std::vector<Case> cases = {
      // M, N, K not multiples of the tiles, every layout, f32 and bf16 out.
      {false, false, 130, 136, 70},
      {false, true, 129, 9, 45, 1, false, false, false, true},
      {true, false, 17, 200, 33, 1, false, false, false, false, false, true},
      {true, true, 70, 130, 96, 1, false, false, false, true, false, true},
      // K = 1; M = N = 1.
      {false, true, 33, 20, 1, 1, false, false, false, true},
      {true, false, 1, 1, 40},
      // Tall and skinny, both ways (the classifier head; a single-token row).
      {false, true, 300, 5, 40, 1, false, false, false, true, false, true},
      {true, false, 3, 260, 24},
      // Batches: a shared B (the models' linear layers over a batch), a shared A, both strided.
      {false, true, 40, 24, 48, 3, false, true, true, true},
      {true, false, 24, 40, 40, 2, true, false},
      {false, false, 33, 17, 24, 2, false, false, true, false, false, true},
      // Accumulate, bias and the erf GELU together; f32 and bf16.
      {false, true, 64, 72, 80, 1, false, false, true, true, true},
      {false, false, 50, 40, 56, 1, false, false, false, true, true, true},
      // Leading dimensions past the row (aligned, pad 8) and not multiples of 8 (pad 3: the
      // guarded-load form), and operands 2 bytes off a 16-byte boundary.
      {false, true, 40, 33, 48, 1, false, false, false, true, false, false, 8},
      {true, true, 37, 29, 51, 2, false, false, true, false, false, true, 3},
      {false, false, 21, 40, 35, 1, false, false, false, true, false, false, 0, true},
      // Split-K: the heuristic's count (one tile, long K), forced 2, 3 and 5 splits with K
      // tails, split with batch, accumulate, bias, GELU and bf16 out, and unaligned split.
      {true, false, 40, 48, 1000, 1, false, false, false, true},
      {false, false, 40, 30, 300, 1, false, false, true, true, false, false, 0, false, 2},
      {true, true, 33, 70, 200, 2, false, true, false, true, true, true, 0, false, 3},
      {false, true, 20, 20, 150, 1, false, false, false, false, false, true, 3, false, 5},
      // Grids smaller than the work: the CTA-stride loop over tiles and splits.
      {false, true, 260, 140, 40, 1, false, false, false, true, false, false, 0, false, 0, 2},
      {false, false, 60, 40, 400, 2, false, false, true, false, false, true, 0, false, 3, 2},
  };
  if (!quick) {
    std::vector<Case> more = {
        {false, false, 257, 255, 129, 1, false, false, true, true, false, true},
        {true, true, 129, 257, 200, 1, false, false, false, true, true, false, 8},
        {false, true, 500, 130, 64, 1, false, false, false, true, false, true},
        {true, false, 130, 300, 1, 2, false, true, true, true},
        {false, true, 128, 128, 4096, 1, false, false, false, true, false, true},  // heuristic: 16 splits
        {true, false, 200, 100, 2000, 1, false, false, true, true, true, false, 0, false, 7},
        {true, true, 50, 60, 999, 3, true, false, false, true, false, true, 5, true, 4},
    };
    cases.insert(cases.end(), more.begin(), more.end());
  }
  int failures = 0, runs = 0;
  uint32_t seed = 1234;
  for (const Case& c : cases) {
    const bool ok = c.bf16_out ? run_case<uint16_t>(c, seed++) : run_case<float>(c, seed++);
    failures += ok ? 0 : 3;  // the three schedules' runs are judged together: all count
    runs += 3;
  }
  int heuristic_failures = 0;
  const int checks = heuristic_checks(&heuristic_failures);
  std::printf("%d of %d runs failed; %d of %d split-K heuristic checks failed\n", failures, runs, heuristic_failures,
              checks);
  return failures || heuristic_failures ? 1 : 0;
}
