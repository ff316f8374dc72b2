// matmul: out (batch, M, N) = op(A) · op(B) (+ bias), and its gradients (see ops.h).
//
// Everything goes through one packed SGEMM in the BLIS/GotoBLAS style:
//   C (M, N) = [C +] op(A) (M, K) · op(B) (K, N) [+ bias (N)]
// op(A) and op(B) are copied ("packed") into contiguous, 64-byte aligned panels: A into
// MR-row micro-panels laid out k-major (MR floats per k), B into NR-column micro-panels (NR
// floats per k). The packing routines absorb both transposes and every leading dimension,
// so a single register-blocked micro-kernel per ISA serves all four transpose combinations,
// and zero padding in the panels lets the kernel always compute a full MR x NR tile (edge
// tiles only store their valid part).
//
// Loop nest (per ISA the tile sizes are in the Tiles structs below):
//   jc  NC columns of C              B block (KS x NC) packed once, by all threads together
//    ks  KS rows of K (a multiple of KC)
//     [threads: each owns a rectangle of C's MR/NR panels -- see choose_grid]
//      pc  KC slice of K             B micro-panel kc x NR stays in L1 across the ir loop
//       ic  MC rows of the rectangle  A block MC x KC packed per thread, lives in L2
//        jr  NR columns
//         ir  MR rows                micro-kernel: MR x NR accumulators in registers
// The bias is added, and the old C loaded (when accumulating), only in the kernel epilogue,
// so C is touched once per KC slice and never in a separate pass.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/cpu_features.h"
#include "core/parallel.h"
#include "cpu/ops.h"

namespace pit::cpu {
namespace {

// ---- scratch buffers ------------------------------------------------------------------

// A 64-byte aligned buffer that only grows; one per calling thread holds the packed B block
// and one packed A block per thread of the grid. Sized before any parallel_for starts.
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }
  float* get(int64_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!data_) throw std::bad_alloc();
      capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

thread_local PackBuffer pack_buffer;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// ---- packing (plain C++, shared by every ISA) -----------------------------------------

// One MR-row micro-panel of op(A), rows [i0, i0 + rows), k in [k0, k0 + kc):
// dst[k * MR + r] = op(A)(i0 + r, k0 + k), zero for r >= rows.
// op(A)(i, k) is A[i * lda + k], or A[k * lda + i] when trans.
template <int MR>
void pack_a_panel(float* dst, const float* a, int64_t lda, bool trans, int64_t i0, int64_t rows,
                  int64_t k0, int64_t kc) {
  if (trans) {  // a column of the panel is contiguous in memory
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = a + (k0 + k) * lda + i0;
      float* d = dst + k * MR;
      if (rows == MR) {
        for (int r = 0; r < MR; ++r) d[r] = src[r];
      } else {
        for (int r = 0; r < MR; ++r) d[r] = r < rows ? src[r] : 0.0f;
      }
    }
    return;
  }
  if (rows == MR) {  // MR row streams, one element of each per k
    const float* src[MR];
    for (int r = 0; r < MR; ++r) src[r] = a + (i0 + r) * lda + k0;
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[r][k];
    return;
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[(i0 + r) * lda + k0 + k] : 0.0f;
}

// One NR-column micro-panel of op(B), columns [j0, j0 + cols), k in [k0, k0 + kc):
// dst[k * NR + c] = op(B)(k0 + k, j0 + c), zero for c >= cols.
// op(B)(k, j) is B[k * ldb + j], or B[j * ldb + k] when trans.
template <int NR>
void pack_b_panel(float* dst, const float* b, int64_t ldb, bool trans, int64_t k0, int64_t kc,
                  int64_t j0, int64_t cols) {
  if (!trans) {  // a row of the panel is contiguous in memory
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = b + (k0 + k) * ldb + j0;
      float* d = dst + k * NR;
      if (cols == NR) {
        for (int c = 0; c < NR; ++c) d[c] = src[c];
      } else {
        for (int c = 0; c < NR; ++c) d[c] = c < cols ? src[c] : 0.0f;
      }
    }
    return;
  }
  for (int64_t c = 0; c < NR; ++c) {  // NR column streams, each contiguous along k
    if (c < cols) {
      const float* src = b + (j0 + c) * ldb + k0;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = src[k];
    } else {
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + c] = 0.0f;
    }
  }
}

// ---- micro-kernels ----------------------------------------------------------------------
// kernel(kc, ap, bp, c, ldc, mr, nr, bias, load_c):
//   C[r][j] (r < mr, j < nr) = (load_c ? C[r][j] : 0) + Σ_k ap[k][r] · bp[k][j] (+ bias[j])
// ap is an MR-row panel (kc x MR), bp an NR-column panel (kc x NR), bias null or offset to
// the tile's first column. Full tiles store straight from registers; edge tiles go through
// a small buffer and store_edge_tile.

void store_edge_tile(const float* tile, int nr_full, float* c, int64_t ldc, int mr, int nr,
                     const float* bias, bool load_c) {
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) {
      float v = tile[r * nr_full + j];
      if (bias) v += bias[j];
      c[r * ldc + j] = load_c ? c[r * ldc + j] + v : v;
    }
}

// The plain path: the reference the vector kernels are read against, and the fallback
// (non-x86, PIT_CPU_ISA=scalar). The compiler vectorises it for baseline SSE2.
template <int MR, int NR>
void kernel_scalar(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int mr,
                   int nr, const float* bias, bool load_c) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR)
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] += ap[r] * bp[j];
  store_edge_tile(&acc[0][0], NR, c, ldc, mr, nr, bias, load_c);
}

#ifndef MM_MR
#define MM_MR 14
#define MM_NV 2
#endif
#if PIT_X86
// AVX2 + FMA: 6 x 16 = 12 ymm accumulators, 2 for B, 1 broadcast (of 16 registers).
template <int MR, int NV>
PIT_TARGET_AVX2 void kernel_avx2(int64_t kc, const float* ap, const float* bp, float* c,
                                 int64_t ldc, int mr, int nr, const float* bias, bool load_c) {
  constexpr int NR = NV * 8;
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
    __m256 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm256_load_ps(bp + v * 8);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(ap + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  if (mr == MR && nr == NR) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = bias ? _mm256_loadu_ps(bias + v * 8) : _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* p = c + r * ldc + v * 8;
        __m256 x = _mm256_add_ps(acc[r][v], bv[v]);
        if (load_c) x = _mm256_add_ps(x, _mm256_loadu_ps(p));
        _mm256_storeu_ps(p, x);
      }
    return;
  }
  alignas(64) float tile[MR * NR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm256_store_ps(tile + r * NR + v * 8, acc[r][v]);
  store_edge_tile(tile, NR, c, ldc, mr, nr, bias, load_c);
}

// AVX-512: MR x (16·NV) accumulators in zmm registers (32 of them).
template <int MR, int NV>
PIT_TARGET_AVX512 void kernel_avx512(int64_t kc, const float* ap, const float* bp, float* c,
                                     int64_t ldc, int mr, int nr, const float* bias,
                                     bool load_c) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(bp + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  // Columns past nr are masked off, rows past mr skipped; bias and old C folded in here.
  __mmask16 mask[NV];
  __m512 bv[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const int cols = std::clamp(nr - v * 16, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << cols) - 1u);
    bv[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + v * 16) : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = c + r * ldc + v * 16;
      __m512 x = _mm512_add_ps(acc[r][v], bv[v]);
      if (load_c) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], p));
      _mm512_mask_storeu_ps(p, mask[v], x);
    }
  }
}
#endif

// ---- tile sizes per ISA -----------------------------------------------------------------
// MR x NR: the register tile. KC: the K slice; a B micro-panel (KC x NR) must stay in the
// 48 KiB L1d next to the streaming A panel. MC: rows per packed A block (MC x KC in the
// 2 MiB L2). NC, KS: the shared packed B block (KS x NC floats, KS a multiple of KC).

using Kernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int,
                        const float*, bool);

struct Tiles {
  int mr, nr;
  int64_t kc, mc, nc, b_block_floats;
  Kernel kernel;
  void (*pack_a)(float*, const float*, int64_t, bool, int64_t, int64_t, int64_t, int64_t);
  void (*pack_b)(float*, const float*, int64_t, bool, int64_t, int64_t, int64_t, int64_t);
};

template <int MR, int NR>
Tiles make_tiles(Kernel kernel, int64_t kc, int64_t mc, int64_t nc) {
  return Tiles{MR, NR, kc, mc, nc, int64_t{1} << 20, kernel, pack_a_panel<MR>, pack_b_panel<NR>};
}

Tiles select_tiles() {
  Tiles t = make_tiles<4, 16>(kernel_scalar<4, 16>, 256, 128, 4096);
#if PIT_X86
  if (cpu_has_avx512()) {
    t = make_tiles<MM_MR, MM_NV * 16>(kernel_avx512<MM_MR, MM_NV>, 256, 256, 4096);
  } else if (cpu_has_avx2()) {
    t = make_tiles<6, 16>(kernel_avx2<6, 2>, 256, 144, 4096);
  }
#endif
  if (const char* e = std::getenv("MM_KC")) t.kc = std::atoi(e);
  if (const char* e = std::getenv("MM_MC")) t.mc = std::atoi(e);
  if (const char* e = std::getenv("MM_NC")) t.nc = std::atoi(e);
  t.mc = std::max<int64_t>(t.mr, t.mc / t.mr * t.mr);
  t.nc = std::max<int64_t>(t.nr, t.nc / t.nr * t.nr);
  return t;
}

const Tiles& tiles() {
  static const Tiles cached = select_tiles();
  return cached;
}

// ---- the blocked driver -------------------------------------------------------------------

struct Gemm {
  bool trans_a, trans_b;
  int64_t M, N, K;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  bool accumulate;
  const float* bias;
};

// The threads split C's MR x NR panels into an um x un grid, one rectangle each, with no
// synchronisation inside. Splitting M shares the packed B block; splitting N makes every
// thread pack the same A rows, so prefer M unless its panels are too few to balance.
struct Grid {
  int um, un;
};

Grid choose_grid(int64_t m_panels, int64_t n_panels, int threads) {
  Grid best{1, 1};
  int64_t best_cost = INT64_MAX;
  for (int um = threads; um >= 1; --um) {
    if (threads % um) continue;
    const int un = threads / um;
    const int64_t cost = ceil_div(m_panels, um) * ceil_div(n_panels, un);
    if (cost < best_cost) best_cost = cost, best = Grid{um, un};
  }
  return best;
}

// One thread's rectangle: rows [m0, m1) of C, columns [n0, n1) of the current B block
// (jc + n0 ... in C), K slices of [ks, ks + ksize) whose packed B starts at bpack.
void compute_rectangle(const Gemm& g, const Tiles& t, float* apack, const float* bpack,
                       int64_t ncpad, int64_t jc, int64_t ks, int64_t ksize, int64_t m0,
                       int64_t m1, int64_t n0, int64_t n1) {
  const int64_t nc = std::min(t.nc, g.N - jc);
  for (int64_t pc = 0; pc < ksize; pc += t.kc) {
    const int64_t kc = std::min(t.kc, ksize - pc);
    const int64_t k_global = ks + pc;
    const bool load_c = g.accumulate || k_global > 0;
    const float* bias = k_global == 0 ? g.bias : nullptr;
    const float* bblock = bpack + pc * ncpad;
    for (int64_t ic = m0; ic < m1; ic += t.mc) {
      const int64_t mc = std::min(t.mc, m1 - ic);
      for (int64_t i = 0; i < mc; i += t.mr)
        t.pack_a(apack + i * kc, g.a, g.lda, g.trans_a, ic + i, std::min<int64_t>(t.mr, mc - i),
                 k_global, kc);
      for (int64_t jr = n0; jr < n1; jr += t.nr) {
        const int nr = static_cast<int>(std::min<int64_t>(t.nr, std::min(n1, nc) - jr));
        const float* bp = bblock + jr * kc;  // panel jr / nr, kc x NR floats
        float* cj = g.c + jc + jr;
        const float* bias_j = bias ? bias + jc + jr : nullptr;
        for (int64_t ir = 0; ir < mc; ir += t.mr) {
          const int mr = static_cast<int>(std::min<int64_t>(t.mr, mc - ir));
          t.kernel(kc, apack + ir * kc, bp, cj + (ic + ir) * g.ldc, g.ldc, mr, nr, bias_j, load_c);
        }
      }
    }
  }
}

// Below this many multiply-adds a call stays on one thread (waking the pool costs more).
constexpr int64_t kParallelMinMacs = int64_t{1} << 19;

void sgemm(const Gemm& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {  // op(A)·op(B) is all zeros: C = [C +] bias
    for (int64_t i = 0; i < g.M; ++i) {
      float* row = g.c + i * g.ldc;
      if (!g.accumulate) std::fill(row, row + g.N, 0.0f);
      if (g.bias)
        for (int64_t j = 0; j < g.N; ++j) row[j] += g.bias[j];
    }
    return;
  }
  const Tiles& t = tiles();
  const bool parallel = g.M * g.N * g.K >= kParallelMinMacs;
  const int threads = parallel ? num_threads() : 1;
  const int64_t nc_max = std::min(t.nc, g.N);
  const int64_t ncpad_max = round_up(nc_max, t.nr);
  // K rows per packed B block: whole KC slices, about b_block_floats in all.
  const int64_t ks_max =
      std::min(round_up(g.K, t.kc), std::max<int64_t>(1, t.b_block_floats / (ncpad_max * t.kc)) * t.kc);
  const int64_t m_panels = ceil_div(g.M, t.mr);
  const Grid grid = choose_grid(m_panels, ceil_div(ncpad_max, t.nr), threads);
  const int units = grid.um * grid.un;
  const int64_t a_floats = round_up(round_up(std::min(t.mc, g.M), t.mr) * t.kc, 16);
  float* buffer = pack_buffer.get(ks_max * ncpad_max + units * a_floats);
  float* bpack = buffer;
  float* apacks = buffer + ks_max * ncpad_max;

  for (int64_t jc = 0; jc < g.N; jc += t.nc) {
    const int64_t nc = std::min(t.nc, g.N - jc);
    const int64_t n_panels = ceil_div(nc, t.nr);
    const int64_t ncpad = n_panels * t.nr;
    for (int64_t ks = 0; ks < g.K; ks += ks_max) {
      const int64_t ksize = std::min(ks_max, g.K - ks);
      // Pack op(B)[ks : ks + ksize, jc : jc + nc]: KC slice p, panel j at p·ncpad + j·kc·NR.
      const int64_t panel_floats = ksize * t.nr;
      parallel_for(n_panels, parallel ? std::max<int64_t>(1, 16384 / panel_floats) : n_panels,
                   [&](int64_t j0, int64_t j1) {
                     for (int64_t j = j0; j < j1; ++j)
                       for (int64_t pc = 0; pc < ksize; pc += t.kc) {
                         const int64_t kc = std::min(t.kc, ksize - pc);
                         t.pack_b(bpack + pc * ncpad + j * kc * t.nr, g.b, g.ldb, g.trans_b,
                                  ks + pc, kc, jc + j * t.nr, std::min<int64_t>(t.nr, nc - j * t.nr));
                       }
                   });
      parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t um = u / grid.un, un = u % grid.un;
          const int64_t m0 = std::min(g.M, m_panels * um / grid.um * t.mr);
          const int64_t m1 = std::min(g.M, m_panels * (um + 1) / grid.um * t.mr);
          const int64_t n0 = n_panels * un / grid.un * t.nr;
          const int64_t n1 = std::min(nc, n_panels * (un + 1) / grid.un * t.nr);
          if (m0 < m1 && n0 < n1)
            compute_rectangle(g, t, apacks + u * a_floats, bpack, ncpad, jc, ks, ksize, m0, m1,
                              n0, n1);
        }
      });
    }
  }
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a,
           int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
           const float* bias) {
  sgemm(Gemm{trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc, accumulate, bias});
}

// Runs fn(i) for every batch element: across the threads (each GEMM then runs serially) when
// the batch splits evenly or the GEMMs are too small to split well; otherwise one GEMM at a
// time, each using all threads.
template <typename Fn>
void for_each_batch(int64_t batch, int64_t macs_per_item, const Fn& fn) {
  const int threads = num_threads();
  const bool across = batch >= threads && threads > 1 &&
                      (batch % threads == 0 || batch >= 4 * threads ||
                       macs_per_item < (int64_t{1} << 22));
  if (across) {
    parallel_for(batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) fn(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) fn(i);
  }
}

// dbias (N) = Σ over rows of dout (rows, N), in float64 per column block.
PIT_MULTIVERSION void column_sums_block(float* out, const float* x, int64_t rows, int64_t N,
                                        int64_t j0, int64_t j1) {
  constexpr int64_t kBlock = 256;
  double acc[kBlock];
  for (int64_t jb = j0; jb < j1; jb += kBlock) {
    const int64_t w = std::min(kBlock, j1 - jb);
    for (int64_t j = 0; j < w; ++j) acc[j] = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x + r * N + jb;
      for (int64_t j = 0; j < w; ++j) acc[j] += row[j];
    }
    for (int64_t j = 0; j < w; ++j) out[jb + j] = static_cast<float>(acc[j]);
  }
}

void column_sums(float* out, const float* x, int64_t rows, int64_t N) {
  const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 16) / std::max<int64_t>(rows, 1));
  parallel_for(N, grain, [&](int64_t j0, int64_t j1) { column_sums_block(out, x, rows, N, j0, j1); });
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                    bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (b_shared && !trans_a) {  // the batch is just more rows of A: (batch·M, K)
    sgemm(false, trans_b, batch * M, N, K, a, lda, b, ldb, out, N, accumulate, bias);
    return;
  }
  const int64_t b_stride = b_shared ? 0 : K * N;
  for_each_batch(batch, M * N * K, [&](int64_t i) {
    sgemm(trans_a, trans_b, M, N, K, a + i * M * K, lda, b + i * b_stride, ldb, out + i * M * N,
          N, accumulate, bias);
  });
}

void matmul_backward(float* da, float* db, float* dbias, const float* dout, const float* a,
                     const float* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                     bool trans_b, bool b_shared) {
  batch = std::max<int64_t>(batch, 0);
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  const int64_t b_stride = b_shared ? 0 : K * N;
  if (dbias && N > 0) column_sums(dbias, dout, batch * M, N);

  if (da && M > 0 && K > 0) {
    if (!trans_a) {
      // da (M, K) = dout (M, N) · op(B)ᵀ (N, K); op(B)ᵀ is B read as stored when trans_b.
      if (b_shared) {
        sgemm(false, !trans_b, batch * M, K, N, dout, N, b, ldb, da, K, false, nullptr);
      } else {
        for_each_batch(batch, M * N * K, [&](int64_t i) {
          sgemm(false, !trans_b, M, K, N, dout + i * M * N, N, b + i * b_stride, ldb,
                da + i * M * K, K, false, nullptr);
        });
      }
    } else {
      // da stored (K, M) = op(B) (K, N) · doutᵀ (N, M).
      for_each_batch(batch, M * N * K, [&](int64_t i) {
        sgemm(trans_b, true, K, M, N, b + i * b_stride, ldb, dout + i * M * N, N, da + i * M * K,
              M, false, nullptr);
      });
    }
  }

  if (db && K > 0 && N > 0) {
    // One batch item's db: op(A)ᵀ (K, M) · dout (M, N) in B's stored layout, i.e. when
    // trans_b db (N, K) = doutᵀ (N, M) · op(A) (M, K). op(A)ᵀ is A as stored when trans_a.
    auto db_item = [&](int64_t rows, const float* ai, const float* douti, float* dbi,
                       bool accumulate) {
      if (!trans_b)
        sgemm(!trans_a, false, K, N, rows, ai, lda, douti, N, dbi, N, accumulate, nullptr);
      else
        sgemm(true, trans_a, N, K, rows, douti, N, ai, lda, dbi, K, accumulate, nullptr);
    };
    if (!b_shared) {
      for_each_batch(batch, M * N * K, [&](int64_t i) {
        db_item(M, a + i * M * K, dout + i * M * N, db + i * K * N, false);
      });
    } else if (!trans_a) {  // Σ over the batch = one GEMM over batch·M rows
      db_item(batch * M, a, dout, db, false);
    } else if (batch == 0) {
      std::fill(db, db + K * N, 0.0f);
    } else {
      for (int64_t i = 0; i < batch; ++i)
        db_item(M, a + i * M * K, dout + i * M * N, db, i > 0);
    }
  }
}

}  // namespace pit::cpu
