// What the f32 (attention.cc) and bf16 (attention_bf16.cc) attention kernels share: the
// packed-qkv layout, the W-lane vector types, the exp2 polynomial, the transposes through
// registers, per-thread scratch, prefetching a head's rows and the work-item loop. Internal to
// the CPU backend; everything is inline, for the kernels' PIT_TARGET_<ISA> entry functions to
// compile at their own ISA.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <vector>

#include "core/parallel.h"

namespace pit::cpu::attention_detail {

constexpr float kLog2e = 1.44269504088896341f;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Where token l, head h of a (B, L, 3, H, D) qkv or (B, L, H, D) tensor starts.
struct Layout {
  int64_t B, L, H, D;
  int64_t qkv_row(int64_t b, int64_t l, int64_t part, int64_t h) const {
    return ((b * L + l) * 3 + part) * H * D + h * D;
  }
  int64_t row(int64_t b, int64_t l, int64_t h) const { return ((b * L + l) * H + h) * D; }
};


// ---- vector lanes (GCC vector extensions) -------------------------------------------------

#define PIT_INLINE inline __attribute__((always_inline))
// Vectors passed by value between always-inline helpers of this file never cross a real call,
// so GCC's note that such calls' ABI depends on -mavx512f does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

template <int W>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));
};
template <int W>
using vf = typename Lanes<W>::F;
template <int W>
using vi = typename Lanes<W>::I;

template <int W>
PIT_INLINE vf<W> load(const float* p) {
  vf<W> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int W>
PIT_INLINE void store(float* p, const vf<W>& v) {
  std::memcpy(p, &v, sizeof v);
}
template <int W>
PIT_INLINE vf<W> splat(float s) {  // lane 0, shuffled to all lanes: one vbroadcastss
  return __builtin_shuffle(vf<W>{s}, vi<W>{});
}
// Not NaN-propagating (a NaN b gives b only when a is not greater), and it need not be: the
// running max only keeps the exponents small. A NaN score's weight 2^(NaN - m) is NaN whatever
// m is, and it carries into l and O; a +inf score makes m = +inf and its weight 2^(inf - inf)
// NaN, as in softmax.
template <int W>
PIT_INLINE vf<W> max(const vf<W>& a, const vf<W>& b) {
  return a > b ? a : b;
}

// The running max's start and the padding lanes' -lse: "minus infinity", kept finite so that
// differences with it are never -inf - -inf = NaN; exp2 of anything near it is 0 (see below).
constexpr float kMinusHuge = -1e30f;

// 2^x, lane-wise, for x <= ~1 (attention only ever asks for 2^(s - max) and 2^(s - lse)).
// x = n + f with n = round(x), |f| <= 1/2; 2^f = 1 + f·(c1 + f·(c2 + ...)), a degree-6 fit
// to 2^f on [-1/2, 1/2] (relative error 2e-9 in exact arithmetic); 2^n is added into the
// exponent bits. Measured over [-100, 1]: at most 1 ulp from the correctly rounded 2^x
// (relative 7.9e-8).
// Below -100 (-inf and kMinusHuge included) the result is exactly 0: 2^-100 is 1e-30 of the
// largest term of any sum it joins, x is clamped there so every intermediate stays a normal
// float (no denormal slow paths), and the lanes are zeroed at the end. Zero, not 2^-100, so
// that a query whose scores are all -inf gets l = 0 and out = 0/0 = NaN, as softmax does.
// NaN must stay NaN (a NaN score is a NaN weight: the row's out, lse and gradients are NaN):
// both selects are written so that a NaN lane, comparing false, keeps x.
template <int W>
PIT_INLINE vf<W> exp2_lanes(const vf<W>& x_in) {
  const vi<W> underflow = x_in < -100.0f;  // all ones where 2^x is taken as 0; false for NaN
  const vf<W> x = underflow ? splat<W>(-100.0f) : x_in;
  // Adding 1.5·2^23 rounds x to an integer held in t's low mantissa bits; the empty asm stops
  // the compiler folding (x + c) - c back to x under -ffast-math.
  vf<W> t = x + 12582912.0f;
  __asm__("" : "+v"(t));
  const vf<W> f = x - (t - 12582912.0f);
  vf<W> p = splat<W>(1.5353362e-4f);
  p = p * f + 1.3398875e-3f;
  p = p * f + 9.6184369e-3f;
  p = p * f + 5.5503324e-2f;
  p = p * f + 2.4022648e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  // t's bits are 0x4B400000 + n: shifted left by 23 only n << 23 survives.
  // (A cast between vector types of one size keeps the bits.)
  return (vf<W>)(((vi<W>)p + ((vi<W>)t << 23)) & ~underflow);
}


// Per-thread scratch that only grows; the pool's threads live as long as the process.
// Returns null when the allocation fails (the caller reports it after the parallel loop).
inline float* thread_scratch(int64_t floats) {
  struct Buffer {
    float* data = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.size < floats) {
    std::free(buffer.data);
    buffer.size = 0;
    buffer.data = static_cast<float*>(
        std::aligned_alloc(64, static_cast<size_t>(round_up(floats * 4, 64))));
    if (buffer.data) buffer.size = floats;
  }
  return buffer.data;
}


// dst[0, n) = src[0, n), inline: rows are short (D floats), and a memmove call per row cost
// 14% of the time at L = 197, D = 16.
template <int W>
PIT_INLINE void copy_row(float* dst, const float* src, int64_t n) {
  int64_t d = 0;
  for (; d + W <= n; d += W) store<W>(dst + d, load<W>(src + d));
  for (; d < n; ++d) dst[d] = src[d];
}

// x[r][c] -> x[c][r] for a W x W block in registers: log2(W) rounds of two-input shuffles,
// each swapping h x h sub-blocks between row pairs (r, r + h) (W·log2 W shuffles in all).
template <int W>
PIT_INLINE void transpose_lanes(vf<W> (&x)[W]) {
#pragma GCC unroll 8
  for (int h = W / 2; h >= 1; h /= 2) {
    vi<W> lo, hi;  // constants once unrolled
#pragma GCC unroll 16
    for (int k = 0; k < W; ++k) {
      const int p = k % (2 * h), g = k - p;
      lo[k] = p < h ? g + p : W + g + p - h;
      hi[k] = p < h ? g + h + p : W + g + p;
    }
#pragma GCC unroll 16
    for (int base = 0; base < W; base += 2 * h)
#pragma GCC unroll 16
      for (int r = base; r < base + h; ++r) {
        const vf<W> a = x[r], b = x[r + h];
        x[r] = __builtin_shuffle(a, b, lo);
        x[r + h] = __builtin_shuffle(a, b, hi);
      }
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: W x W blocks through registers,
// the ragged edges one element at a time. (The packing and unpacking transposes cost 16% of
// the forward at L = 197, D = 16 done element by element.)
template <int W>
PIT_INLINE void transpose_tile(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows,
                               int64_t cols) {
  int64_t r0 = 0;
  for (; r0 + W <= rows; r0 += W) {
    int64_t c0 = 0;
    for (; c0 + W <= cols; c0 += W) {
      vf<W> x[W];
      for (int r = 0; r < W; ++r) x[r] = load<W>(src + (r0 + r) * lds + c0);
      transpose_lanes<W>(x);
      for (int c = 0; c < W; ++c) store<W>(dst + (c0 + c) * ldd + r0, x[c]);
    }
    for (; c0 < cols; ++c0)
      for (int r = 0; r < W; ++r) dst[c0 * ldd + r0 + r] = src[(r0 + r) * lds + c0];
  }
  for (; r0 < rows; ++r0)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r0] = src[r0 * lds + c];
}


// Asks for one head's rows (D floats per token) of several tensors to be brought into L2 while
// the current item computes: the rows are scattered (one or two per 4 KiB page) and, fetched
// on demand, the copies in and out cost a third of the forward at L = 197, D = 16.
// Measured there (B = 8, H = 12), one thread: forward 37 -> 45 GFLOP/s, backward 43 -> 55;
// no change at L = 1025. (write: the rows will be stored to.)
struct HeadRows {
  const float* base;  // the tensor's head (b, h) at token 0
  int64_t stride;     // floats between tokens
  bool write;
};
PIT_INLINE void prefetch_head(std::initializer_list<HeadRows> rows, int64_t L, int64_t D) {
  for (int64_t l = 0; l < L; ++l)
    for (const HeadRows& r : rows)
      for (int64_t d = 0; d < D; d += 16) {
        if (r.write) __builtin_prefetch(r.base + l * r.stride + d, 1, 2);
        else __builtin_prefetch(r.base + l * r.stride + d, 0, 2);
      }
}


// Runs item(args, i) for i in [0, n) on all threads; throws bad_alloc if any ran out of scratch.
template <class Args>
void run_items(int64_t n, bool (*item)(const Args&, int64_t), const Args& args) {
  std::atomic<bool> failed{false};
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      if (!item(args, i)) failed.store(true);
  });
  if (failed.load()) throw std::bad_alloc();
}


// ---- the forward's split ----------------------------------------------------------------------
// Items per head (runs of query tiles of br queries): whole heads when there are enough of them
// (K and V are packed once per item), else a few items per thread. Rows do not depend on it.
inline int64_t forward_query_groups(int64_t B, int64_t H, int64_t L, int64_t br) {
  return std::min(ceil_div(L, br), ceil_div(4 * num_threads(), B * H));
}

// ---- the backward's split ---------------------------------------------------------------------
// Both backwards split a head into key groups, each item (b, h, key group) owning its keys' dK
// and dV outright and summing its own partial dQ (D, Lp) over its keys, in one pass over the
// scores; sum_dq_partials then adds the partials in group order.

// Key groups per head: at least 8 items, an even number, so that two threads (and more,
// unless B·H is tiny) share the work evenly; not more, as every item packs its head's Q
// and dO. Fixed by the shape alone, so that the dQ sums do not depend on the threads.
inline int64_t backward_key_groups(int64_t B, int64_t H, int64_t L, int64_t key_tile) {
  int64_t groups = ceil_div(8, B * H);
  if (B * H * groups % 2) ++groups;
  return std::min(groups, ceil_div(L, key_tile));
}

// dq = scale · Σ_g partial[g], in g order, 64 tokens per chunk: partial (B·H, groups, D, Lp)
// transposed; write(b, i, h, dq) receives each token's D sums.
template <class Write>
void sum_dq_partials(const float* partial, const Layout& t, int64_t groups, int64_t Lp, const Write& write) {
  const int64_t D = t.D, L = t.L, blocks = ceil_div(L, 64);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  parallel_for(t.B * t.H * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> sum(D * 64), row(D);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t bh = chunk / blocks, i0 = chunk % blocks * 64;
      const int64_t n = std::min<int64_t>(64, L - i0);
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int64_t g = 0; g < groups; ++g) {
        const float* p = partial + (bh * groups + g) * D * Lp + i0;
        for (int64_t d = 0; d < D; ++d)
          for (int64_t i = 0; i < n; ++i) sum[d * 64 + i] += p[d * Lp + i];
      }
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t d = 0; d < D; ++d) row[d] = sum[d * 64 + i] * scale;
        write(bh / t.H, i0 + i, bh % t.H, row.data());
      }
    }
  });
}

}  // namespace pit::cpu::attention_detail
