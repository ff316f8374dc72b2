// The host emulation of a CTA that the kernel emulators share (attention_bf16_emulate.cc,
// gemm_bf16_emulate.cc): every thread of a CTA runs as one fiber on the CPU, and the
// warp-level primitives the tensor-core kernels are written with (mma.sync m16n8k16,
// ldmatrix x4 and .trans, shfl.xor, cp.async groups, barriers, shared stores, checked global
// loads) are emulated from their PTX ISA definitions. It checks what a GPU would: fragment
// layouts, ldmatrix addressing, the cp.async pipeline (copies land only at
// cp.async.wait_group, so a read before the wait sees poison; or, eager, at issue, so a copy
// into a buffer another warp still reads corrupts it), barriers (collectives check that all
// lanes arrive at the same call), and bounds and alignment of every shared access and of
// every global access that goes through a primitive.
//
// A kernel file is compiled unchanged against it: the emulator defines the CUDA keywords and
// thread indices as macros below, and brings the primitives of emu::ptx into the kernel's
// namespace (`namespace kernel_ns { using namespace ::emu::ptx; }`) before including it.
//
// What it cannot check: timing, real memory-model races beyond what the deferred copies and
// the barrier checks expose, and the exact rounding of the hardware's mma (emulated with a
// float64 dot product rounded once to fp32) and ex2.approx (std::exp2).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

// ---- the CUDA surface the kernels use ------------------------------------------------------
struct uint4 {
  uint32_t x, y, z, w;
};
struct float2 {
  float x, y;
};
struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

namespace emu {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "emulator: %s\n", what);
  std::abort();
}

// One cp.async: `bytes` (0..16) copied from src, the rest of the 16 zero-filled.
struct CopyOp {
  uint16_t* dst;
  const uint16_t* src;
  int bytes;
};

struct Fiber {
  ucontext_t context;
  std::vector<char> stack;
  Dim3 tid;
  bool done = false;
  std::vector<std::vector<CopyOp>> committed;  // oldest first
  std::vector<CopyOp> open;                    // not yet committed
};

struct Barrier {
  int count = 0, generation = 0, size = 0;
  const char* site = nullptr;  // what the first arrival called, to catch mismatched collectives
};

struct WarpExchange {
  Barrier barrier;
  uint32_t words[32][6];
  const uint16_t* addresses[32];
  float values[32];
};

// How cp.async copies land: at cp.async.wait_group (lazy: a read before the wait sees poison)
// or at issue (eager: a copy into a buffer another warp still reads corrupts it). With eager
// copies the scheduler also runs the threads in a random order and skips some of them in
// each round, so that warps drift apart between barriers as they do on a GPU.
inline bool eager = false;
inline std::mt19937 schedule_rng(7);
// The laggard schedule (the GEMM emulator's third run): copies land at issue, and one warp of
// each CTA, picked at random, runs only in rounds where no other thread could move (all wait
// at a barrier it must reach, or are done). It falls as far behind as the barriers allow, so
// a stage that a fast warp refills while a slow one may still read it is caught every time,
// not by the chance of a random drift.
inline bool laggard = false;
inline long arrivals = 0;  // barrier arrivals so far: a round without any moved nobody

// One CTA at a time.
inline ucontext_t scheduler;
inline std::vector<Fiber> fibers;
inline Fiber* current = nullptr;
inline Barrier block_barrier;
inline std::vector<WarpExchange> warps;
inline std::vector<unsigned char> shared;  // guard | smem | guard
inline size_t shared_bytes = 0;
constexpr size_t kGuard = 256;
inline Dim3 block_idx, grid_dim, block_dim;

// Global buffers the kernels may touch: [begin, end) ranges.
inline std::vector<std::pair<const void*, const void*>> global_ranges;

inline void check_global(const void* p, size_t bytes) {
  for (const auto& [b, e] : global_ranges)
    if (p >= b && static_cast<const char*>(p) + bytes <= e) return;
  fail("global access outside every buffer");
}
inline void check_shared(const void* p, size_t bytes, size_t align) {
  const unsigned char* base = shared.data() + kGuard;
  const unsigned char* q = static_cast<const unsigned char*>(p);
  if (q < base || q + bytes > base + shared_bytes) fail("shared access outside the dynamic shared memory");
  if ((q - base) % align != 0) fail("misaligned shared access");
}

inline void yield() { swapcontext(&current->context, &scheduler); }

inline void wait(Barrier& b, const char* site) {
  ++arrivals;
  if (b.count == 0) b.site = site;
  else if (std::strcmp(b.site, site) != 0) fail("threads of one barrier arrived at different collectives");
  const int generation = b.generation;
  if (++b.count == b.size) {
    b.count = 0;
    ++b.generation;
  } else {
    while (b.generation == generation) yield();
  }
}

inline int lane() { return static_cast<int>(current->tid.x % 32); }
inline WarpExchange& warp() { return warps[current->tid.x / 32]; }

inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {  // round to nearest even, as cvt.rn
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline void perform(const std::vector<CopyOp>& copies) {
  for (const CopyOp& c : copies) {
    check_shared(c.dst, 16, 16);
    if (c.bytes > 0) {
      check_global(c.src, c.bytes);
      std::memcpy(c.dst, c.src, c.bytes);
    }
    std::memset(reinterpret_cast<char*>(c.dst) + c.bytes, 0, 16 - c.bytes);
  }
}

}  // namespace emu

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define threadIdx (::emu::current->tid)
#define blockIdx (::emu::block_idx)
#define gridDim (::emu::grid_dim)
#define blockDim (::emu::block_dim)

// ---- the primitives, emulated -------------------------------------------------------------
namespace emu::ptx {

inline unsigned char* smem_base() { return shared.data() + kGuard; }
inline void block_sync() { wait(block_barrier, "block_sync"); }
inline void warp_sync() { wait(warp().barrier, "warp_sync"); }
inline float shfl_xor(float v, int mask) {
  auto& w = warp();
  w.values[lane()] = v;
  wait(w.barrier, "shfl_xor in");
  const float r = w.values[lane() ^ mask];
  wait(w.barrier, "shfl_xor out");
  return r;
}

inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  auto& w = warp();
  const int me = lane();
  for (int i = 0; i < 4; ++i) w.words[me][i] = a[i];
  w.words[me][4] = b0;
  w.words[me][5] = b1;
  wait(w.barrier, "mma in");
  // A (16×16): lane 4·(r%8) + (k%8)/2, register (r/8) + 2·(k/8), half k%2.
  auto A = [&](int r, int k) {
    const uint32_t word = w.words[4 * (r % 8) + (k % 8) / 2][(r / 8) + 2 * (k / 8)];
    return bf16_to_float(static_cast<uint16_t>(k % 2 ? word >> 16 : word & 0xffff));
  };
  // B (16×8): lane 4·n + (k%8)/2, register 4 + k/8, half k%2.
  auto B = [&](int k, int n) {
    const uint32_t word = w.words[4 * n + (k % 8) / 2][4 + k / 8];
    return bf16_to_float(static_cast<uint16_t>(k % 2 ? word >> 16 : word & 0xffff));
  };
  const int g = me / 4, t = me % 4;
  const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  float result[4];
  for (int e = 0; e < 4; ++e) {
    double acc = d[e];
    for (int k = 0; k < 16; ++k) acc += static_cast<double>(A(rows[e], k)) * B(k, cols[e]);
    result[e] = static_cast<float>(acc);
  }
  wait(w.barrier, "mma out");
  for (int e = 0; e < 4; ++e) d[e] = result[e];
}

inline void ldmatrix(uint32_t (&r)[4], const uint16_t* p, bool trans, const char* site) {
  auto& w = warp();
  const int me = lane();
  check_shared(p, 16, 16);
  w.addresses[me] = p;
  wait(w.barrier, site);
  const int g = me / 4, t = me % 4;
  for (int i = 0; i < 4; ++i) {
    uint16_t lo, hi;
    if (!trans) {
      lo = w.addresses[8 * i + g][2 * t];
      hi = w.addresses[8 * i + g][2 * t + 1];
    } else {
      lo = w.addresses[8 * i + 2 * t][g];
      hi = w.addresses[8 * i + 2 * t + 1][g];
    }
    r[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  wait(w.barrier, "ldmatrix out");
}
inline void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) { ldmatrix(r, p, false, "ldmatrix"); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* p) { ldmatrix(r, p, true, "ldmatrix.trans"); }

// cp.async.cg 16 bytes with src-size `bytes` (0..16): the rest of the 16 is zero-filled and
// nothing past src + bytes is read. The source must be 16-byte aligned (the PTX rule for a
// 16-byte copy, whatever src-size is) and, when bytes = 0, still point into a buffer.
inline void cp_async_zfill(uint16_t* dst, const uint16_t* src, int bytes) {
  check_shared(dst, 16, 16);
  if (bytes < 0 || bytes > 16) fail("cp.async src-size outside 0..16");
  check_global(src, bytes > 0 ? bytes : 1);
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) fail("misaligned cp.async source");
  if (eager || laggard) perform({{dst, src, bytes}});
  else current->open.push_back({dst, src, bytes});
}
// The attention kernels' form: all 16 bytes, or none (zero-filled) when !valid.
inline void cp_async_16(uint16_t* dst, const uint16_t* src, bool valid) {
  check_shared(dst, 16, 16);
  check_global(src, 16);
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) fail("misaligned cp.async source");
  if (eager || laggard) perform({{dst, src, valid ? 16 : 0}});
  else current->open.push_back({dst, src, valid ? 16 : 0});
}
inline void cp_async_commit() {
  current->committed.push_back(std::move(current->open));
  current->open.clear();
}
template <int N>
inline void cp_async_wait() {
  auto& groups = current->committed;
  while (groups.size() > static_cast<size_t>(N)) {
    perform(groups.front());
    groups.erase(groups.begin());
  }
}

// A 16-byte shared-memory store, and a global bf16 load, both bounds-checked.
inline void store_shared_16(void* dst, const uint4& v) {
  check_shared(dst, 16, 16);
  std::memcpy(dst, &v, 16);
}
inline uint16_t load_global_u16(const uint16_t* p) {
  check_global(p, 2);
  return *p;
}

inline float exp2_approx(float x) { return std::exp2(x); }
inline float bf16_low(uint32_t w) { return bf16_to_float(static_cast<uint16_t>(w & 0xffff)); }
inline float bf16_high(uint32_t w) { return bf16_to_float(static_cast<uint16_t>(w >> 16)); }
inline uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(float_to_bf16(lo)) | (static_cast<uint32_t>(float_to_bf16(hi)) << 16);
}
inline float bf16_bits_to_float(uint16_t h) { return bf16_to_float(h); }
inline uint16_t float_to_bf16_bits(float f) { return float_to_bf16(f); }

}  // namespace emu::ptx

// ---- launching ------------------------------------------------------------------------------
namespace emu {

inline std::function<void()> kernel_body;

inline void trampoline() {
  kernel_body();
  current->done = true;
  swapcontext(&current->context, &scheduler);
}

// Runs body on every thread of every CTA of the grid, CTA after CTA.
inline void launch(unsigned grid, unsigned threads, size_t smem, std::function<void()> body) {
  kernel_body = std::move(body);
  grid_dim = {grid, 1, 1};
  block_dim = {threads, 1, 1};
  for (unsigned b = 0; b < grid; ++b) {
    block_idx = {b, 0, 0};
    shared_bytes = smem;
    shared.assign(smem + 2 * kGuard, 0xa5);
    // Poison: every bf16 of shared memory reads as NaN until something writes it.
    for (size_t i = kGuard; i + 1 < kGuard + smem; i += 2) {
      shared[i] = 0xc1;
      shared[i + 1] = 0x7f;
    }
    block_barrier = Barrier{0, 0, static_cast<int>(threads), nullptr};
    warps.assign(threads / 32, WarpExchange{});
    for (auto& w : warps) w.barrier = Barrier{0, 0, 32, nullptr};
    fibers.assign(threads, Fiber{});
    for (unsigned t = 0; t < threads; ++t) {
      Fiber& f = fibers[t];
      f.tid = {t, 0, 0};
      f.stack.resize(1 << 18);
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack.data();
      f.context.uc_stack.ss_size = f.stack.size();
      f.context.uc_link = nullptr;
      makecontext(&f.context, trampoline, 0);
    }
    std::vector<int> order(threads);
    for (unsigned t = 0; t < threads; ++t) order[t] = static_cast<int>(t);
    const int lagging_warp = laggard ? static_cast<int>(schedule_rng() % std::max(1u, threads / 32)) : -1;
    bool laggards_turn = false;
    for (bool running = true; running;) {
      running = false;
      const long arrivals_before = arrivals;
      if (eager) std::shuffle(order.begin(), order.end(), schedule_rng);
      for (int t : order) {
        Fiber& f = fibers[t];
        if (f.done) continue;
        running = true;
        if (eager && schedule_rng() % 4 == 0) continue;  // this thread falls behind a round
        if (t / 32 == lagging_warp && !laggards_turn) continue;
        current = &f;
        swapcontext(&scheduler, &f.context);
      }
      laggards_turn = arrivals == arrivals_before;  // nobody else could move
    }
    for (const Fiber& f : fibers)
      if (!f.committed.empty() || !f.open.empty()) fail("cp.async copies left in flight at kernel exit");
    for (size_t i = 0; i < kGuard; ++i)
      if (shared[i] != 0xa5 || shared[kGuard + smem + i] != 0xa5) fail("shared memory guard overwritten");
  }
}

}  // namespace emu
