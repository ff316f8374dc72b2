// matmul: out (batch, M, N) = op(A) · op(B) (+ bias), and its gradients (see ops.h).
//
// Everything goes through one packed GEMM in the BLIS/GotoBLAS style, f32 accumulation:
//   C (M, N) = [C +] op(A) (M, K) · op(B) (K, N) [+ bias (N)]
// op(A) and op(B) are copied ("packed") into contiguous, 64-byte aligned panels: A into
// MR-row micro-panels laid out k-major (MR values per k), B into NR-column micro-panels (NR
// values per k; bf16 takes k in pairs, see gemm.h). The driver below serves f32 sources
// (this file's kernels) and bf16 sources (gemm_bf16.cc's). The packing routines absorb both
// transposes and every leading dimension, so a single register-blocked micro-kernel per ISA
// serves all four transpose combinations, and zero padding in the panels lets the kernel
// always compute a full MR x NR tile (edge tiles only store their valid part).
//
// Loop nest, run by each thread over its own rectangle of C (see choose_grid); tile sizes
// per ISA below, with the measurements that chose them:
//   jc  NC columns
//    pc  KC slice of K           pack B block  KC x NC  (in L3)
//     ic  MC rows                pack A block  MC x KC  (in L2)
//      jr  NR columns            B micro-panel KC x NR, reused across the ir loop
//       ir  MR rows              micro-kernel: MR x NR accumulators in registers
// The bias is added, and the old C loaded (when accumulating or past the first K slice),
// only in the micro-kernel's epilogue, so C is touched once per K slice and never in a
// separate pass. Forward and backward are all expressed as gemm calls at the bottom.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "cpu/backend.h"
#include "cpu/gemm.h"

namespace pit::cpu {
namespace {

using namespace gemm_internal;

// ---- scratch buffers ------------------------------------------------------------------

// A 64-byte aligned buffer that only grows; one per calling thread holds the packed A and B
// blocks of every cell of the thread grid. Sized before parallel_for starts, so a failed
// allocation throws on the calling thread.
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { std::free(data_); }
  void* get(int64_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      data_ = nullptr;
      capacity_ = 0;
      data_ = std::aligned_alloc(64, static_cast<size_t>(round_up(bytes, 64)));
      if (!data_) throw std::bad_alloc();
      capacity_ = bytes;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  int64_t capacity_ = 0;
};

thread_local PackBuffer pack_buffer;

// ---- f32 packing (layout: gemm.h) -------------------------------------------------------

template <int W>
void pack_panels(float* dst, const float* src, int64_t ld, bool k_contiguous, int64_t x0,
                 int64_t width, int64_t k0, int64_t kc) {
  const int64_t panels = ceil_div(width, W);
  if (!k_contiguous) {
    // 16 rows of k at a time, so that each panel receives one contiguous run: panels lie
    // kc·W·4 bytes apart, often a multiple of 4 KiB, and a row-by-row sweep across all of
    // them thrashes a single L1 set.
    for (int64_t kb = 0; kb < kc; kb += 16) {
      const int64_t ke = std::min(kc, kb + 16);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t n = std::min<int64_t>(W, width - p * W);
        for (int64_t k = kb; k < ke; ++k) {
          const float* row = src + (k0 + k) * ld + x0 + p * W;
          float* d = dst + p * kc * W + k * W;
          if (n == W) {
            for (int w = 0; w < W; ++w) d[w] = row[w];
          } else {
            for (int w = 0; w < W; ++w) d[w] = w < n ? row[w] : 0.0f;
          }
        }
      }
    }
    return;
  }
  for (int64_t p = 0; p < panels; ++p) {  // W streams along k, one element of each per k
    const int64_t n = std::min<int64_t>(W, width - p * W);
    float* d = dst + p * kc * W;
    for (int w = 0; w < W; ++w) {
      const float* line = src + (x0 + p * W + w) * ld + k0;
      if (w < n) {
        for (int64_t k = 0; k < kc; ++k) d[k * W + w] = line[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) d[k * W + w] = 0.0f;
      }
    }
  }
}

// ---- f32 micro-kernels (contract: gemm.h) -----------------------------------------------
// Full tiles store straight from registers; edge tiles use masked stores (AVX-512) or go
// through a small buffer and store_edge_tile (gemm.h).

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

#if PIT_X86
// AVX2 + FMA: 6 x 16 = 12 ymm accumulators, 2 for B, 1 broadcast (of 16 registers).
template <int MR, int NV>
PIT_TARGET_AVX2 void kernel_avx2(int64_t kc, const float* ap, const float* bp, float* c,
                                 int64_t ldc, int mr, int nr, const float* bias, bool load_c) {
  constexpr int NR = NV * 8;
  prefetch_c_tile(c, ldc, mr, NR);
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
    __m256 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = _mm256_load_ps(bp + v * 8);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(ap + r);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  if (mr == MR && nr == NR) {
    __m256 bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = bias ? _mm256_loadu_ps(bias + v * 8) : _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
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
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm256_store_ps(tile + r * NR + v * 8, acc[r][v]);
  store_edge_tile(tile, NR, c, ldc, mr, nr, bias, load_c);
}

// AVX-512: MR x (16·NV) accumulators in zmm registers (32 of them).
template <int MR, int NV>
PIT_TARGET_AVX512 void kernel_avx512(int64_t kc, const float* ap, const float* bp, float* c,
                                     int64_t ldc, int mr, int nr, const float* bias,
                                     bool load_c) {
  constexpr int NR = NV * 16;
  prefetch_c_tile(c, ldc, mr, NR);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k, ap += MR, bp += NR) {
    __m512 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(bp + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(ap[r]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  store_tile_avx512<MR, NV>(acc, c, ldc, mr, nr, bias, load_c);
}

// An f32 source's lines for pack_words_k_contiguous: a word is one k value.
struct F32Lines {
  const float* src;
  int64_t ld, k0;
  PIT_TARGET_AVX512 __m512 operator()(int64_t x, int64_t w, int n) const {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), src + x * ld + k0 + w);
  }
};

// pack_panels with the k-contiguous case (a transpose) done 16 x 16 at a time in registers.
template <int W>
PIT_TARGET_AVX512 void pack_panels_avx512(float* dst, const float* src, int64_t ld,
                                          bool k_contiguous, int64_t x0, int64_t width,
                                          int64_t k0, int64_t kc) {
  const int64_t panels = ceil_div(width, W);
  if (!k_contiguous) {  // as pack_panels, with masked vector copies (GCC keeps its loop scalar)
    for (int64_t kb = 0; kb < kc; kb += 16) {
      const int64_t ke = std::min(kc, kb + 16);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t valid = width - p * W;  // > 0; >= W for all but the last panel
        for (int64_t k = kb; k < ke; ++k) {
          const float* row = src + (k0 + k) * ld + x0 + p * W;
          float* d = dst + p * kc * W + k * W;
          for (int g = 0; g < W; g += 16) {
            const int group = std::min(16, W - g);
            const int n = static_cast<int>(std::clamp<int64_t>(valid - g, 0, group));
            const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), row + g);
            _mm512_mask_storeu_ps(d + g, static_cast<__mmask16>((1u << group) - 1u), v);
          }
        }
      }
    }
    return;
  }
  pack_words_k_contiguous<W>(dst, F32Lines{src, ld, k0}, x0, width, kc);
}
#endif

// ---- f32 tile sizes per ISA (their meaning: gemm.h) ------------------------------------
// AVX-512, chosen on this 2-core Sapphire Rapids VM. Peak: 266 GFLOP/s on both cores (a
// loop of 12 independent zmm FMA chains; 134 on one). GFLOP/s below = 2·M·N·K / median time
// on both cores, samples kept only while no other process ran (the VM is shared; repeat
// runs still vary by ~±8%). Shapes: (6304,768,192) (6304,192,768) (1024,1024,1024).
//   register tile, with KC 256, MC 256 (an earlier driver that shared one packed B):
//     14 x 32: 158 127 151    12 x 32: 162 132 143    8 x 48: 172 142 167
//      6 x 64: 172 143 153     5 x 80: 165 120 167
//   8 x 48 keeps 24 accumulators and needs the fewest loads per FMA (3 B vectors + 8
//   broadcasts per 24); 6 x 64 ties it. With the final driver (KC 384, MC 256 unless said):
//     8 x 48: 174 169 174   KC 256: 189 164 188   KC 512: 181 172 181
//     MC 128: 178 164 169   MC 512: 176 169 189   6 x 64: 185 167 178   14 x 32: 166 167 175
//   i.e. flat within the noise; KC 384 (not 256) won the runs of the earlier driver on the
//   K = 768 and 1024 shapes (184 vs 134 best on 1024³). A B micro-panel (384 x 48 floats,
//   72 KiB) exceeds L1; streaming it from L2 costs less than more K slices of C traffic.
struct TilesAvx512 {
  static constexpr int MR = 8, NR = 48;
  static constexpr int64_t KC = 384, MC = 256, NC = 4080;
};
// AVX2 (16 ymm): 6 x 16 leaves 12 accumulators, 2 B vectors and a broadcast. Here: 92-106,
// 84-115, 96-131 GFLOP/s on the three shapes above over two sessions (ymm FMA peak 121-154
// on both cores; the host's clock varies). Its packers are the plain loops.
struct TilesAvx2 {
  static constexpr int MR = 6, NR = 16;
  static constexpr int64_t KC = 256, MC = 144, NC = 4096;
};
struct TilesScalar {
  static constexpr int MR = 4, NR = 16;
  static constexpr int64_t KC = 256, MC = 128, NC = 4096;
};

// The f32 tiles of the ISA in use, picked once. All cost 24 multiply-adds a cycle to
// choose_grid (the AVX-512 kernel's measured rate; the grid only weighs it against packing).
Tiles<float> select_f32_tiles() {
#if PIT_X86
  if (cpu_has_avx512()) {
    using T = TilesAvx512;
    return make_tiles<T, float>(1, 24, kernel_avx512<T::MR, T::NR / 16>,
                                pack_panels_avx512<T::MR>, pack_panels_avx512<T::NR>);
  }
  if (cpu_has_avx2()) {
    using T = TilesAvx2;
    return make_tiles<T, float>(1, 24, kernel_avx2<T::MR, T::NR / 8>, pack_panels<T::MR>,
                                pack_panels<T::NR>);
  }
#endif
  using T = TilesScalar;
  return make_tiles<T, float>(1, 24, kernel_scalar<T::MR, T::NR>, pack_panels<T::MR>,
                              pack_panels<T::NR>);
}

const Tiles<float>& f32_tiles() {
  static const Tiles<float> cached = select_f32_tiles();
  return cached;
}

// ---- the blocked driver (f32 and bf16 sources alike) --------------------------------------

// Where C goes: f32, or bf16. A bf16 C is written a tile at a time through an f32 tile in L1,
// rounded to nearest even once, so it needs the whole sum in one K slice (0 < K <= KC);
// otherwise the caller stages the GEMM in f32 (F32View below). Saves the f32 round trip
// through memory: the (8200, 1152, 384) bf16 linear forward went from 130-185 to 233-282
// GFLOP/s (Zen 4 VM, both vCPUs, noisy; f32 outputs of the same GEMM: ~300).
struct COut {
  float* f32;
  uint16_t* bf16 = nullptr;
  COut(float* c) : f32(c) {}  // NOLINT: f32 is the common case
  COut(float* c, uint16_t* c16) : f32(c), bf16(c16) {}
  COut operator+(int64_t offset) const {
    return {f32 ? f32 + offset : nullptr, bf16 ? bf16 + offset : nullptr};
  }
  explicit operator bool() const { return f32 || bf16; }
};

// C (rows, cols) as bf16 (ld ldc), from an f32 tile (ld ld) [+ C as it is], rounded once.
PIT_MULTIVERSION void store_bf16_tile(uint16_t* c, int64_t ldc, const float* tile, int64_t ld,
                                      int rows, int cols, bool add_c) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      float v = tile[r * ld + j];
      if (add_c) v += bf16_to_f32(c[r * ldc + j]);
      c[r * ldc + j] = f32_to_bf16(v);
    }
}

template <typename T>
struct Gemm {
  const Tiles<T>& t;
  bool trans_a, trans_b;
  int64_t M, N, K;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  COut c;
  int64_t ldc;
  bool accumulate;
  const float* bias;
  int threads;  // at most this many (1 inside a batch already split across the threads)
};

// One thread's share of C: rows [m0, m1), columns [n0, n1) (n0 a multiple of NR), computed
// with the thread's own packed blocks, the GotoBLAS loop nest.
template <typename T>
void compute_rectangle(const Gemm<T>& g, T* apack, T* bpack, int64_t m0, int64_t m1,
                       int64_t n0, int64_t n1) {
  const Tiles<T>& t = g.t;
  // K slices of equal length (a multiple of 8, at most KC): K = 512 as 256 + 256, not
  // 384 + 128, whose short slice pays the C reload for a third of the work.
  const int64_t k_step = round_up(ceil_div(g.K, ceil_div(g.K, t.kc)), 8);
  if (t.begin) t.begin();
  for (int64_t jc = n0; jc < n1; jc += t.nc) {
    const int64_t nc = std::min(t.nc, n1 - jc);
    for (int64_t pc = 0; pc < g.K; pc += k_step) {
      const int64_t kc = std::min(k_step, g.K - pc);
      const int64_t stride = round_up(kc, t.k_pack);  // k values per packed panel
      t.pack_b(bpack, g.b, g.ldb, g.trans_b, jc, nc, pc, kc);  // panel j at j·stride·NR
      const bool load_c = g.accumulate || pc > 0;
      const float* bias = pc == 0 && g.bias ? g.bias + jc : nullptr;
      for (int64_t ic = m0; ic < m1; ic += t.mc) {
        const int64_t mc = std::min(t.mc, m1 - ic);
        t.pack_a(apack, g.a, g.lda, !g.trans_a, ic, mc, pc, kc);  // panel i at i·stride·MR
        for (int64_t jr = 0; jr < nc; jr += t.nr) {
          const int nr = static_cast<int>(std::min<int64_t>(t.nr, nc - jr));
          const COut c = g.c + (ic * g.ldc + jc + jr);
          for (int64_t ir = 0; ir < mc; ir += t.mr) {
            const int mr = static_cast<int>(std::min<int64_t>(t.mr, mc - ir));
            const T* ap = apack + ir * stride;
            const T* bp = bpack + jr * stride;
            const float* bias_j = bias ? bias + jr : nullptr;
            if (c.bf16) {
              alignas(64) float tile[kMaxTile];
              t.kernel(kc, ap, bp, tile, t.nr, mr, nr, bias_j, false);
              store_bf16_tile(c.bf16 + ir * g.ldc, g.ldc, tile, t.nr, mr, nr, g.accumulate);
            } else {
              t.kernel(kc, ap, bp, c.f32 + ir * g.ldc, g.ldc, mr, nr, bias_j, load_c);
            }
          }
        }
      }
    }
  }
  if (t.end) t.end();
}

// The threads split C's MR x NR panels into an um x un grid and each computes its rectangle
// alone, packing the A rows and B columns it needs itself: one parallel region per GEMM and
// no waiting inside it (waking a pool thread costs 40-60 us on this VM, much more when the
// other core is busy, so a packed B shared through a second region cost up to 10% on the
// (192, 768, 6304) weight gradient). Splitting M repacks B in every thread, splitting N
// repacks A; the grid minimises the largest share of multiply-adds plus packing.
struct Grid {
  int um, un;
};

template <typename T>
Grid choose_grid(const Gemm<T>& g, int threads) {
  const Tiles<T>& t = g.t;
  const int64_t m_panels = ceil_div(g.M, t.mr), n_panels = ceil_div(g.N, t.nr);
  Grid best{1, 1};
  double best_cost = 0;
  for (int um = 1; um <= threads; ++um) {
    if (threads % um) continue;
    const int un = threads / um;
    const double rows = static_cast<double>(ceil_div(m_panels, um) * t.mr);
    const double cols = static_cast<double>(ceil_div(n_panels, un) * t.nr);
    // Cycles, roughly: the kernel's multiply-adds per cycle, ~1/2 cycle per packed element.
    const double k = static_cast<double>(g.K);
    const double cost = rows * cols * k / t.macs_per_cycle +
                        0.5 * k * (cols + rows * std::ceil(cols / static_cast<double>(t.nc)));
    if (um == 1 || cost < best_cost) best_cost = cost, best = Grid{um, un};
  }
  return best;
}

// Below this many multiply-adds a GEMM stays on the calling thread: a pool thread takes
// 40-60 us to start here, about what 4M multiply-adds take on one core.
constexpr int64_t kParallelMinMacs = int64_t{1} << 22;

// C (M, N) = [C +] op(A) · op(B) [+ bias] with op(A) (M, K) read from a (ld lda) and op(B)
// (K, N) from b (ld ldb), on up to g.threads threads.
template <typename T>
void gemm(const Gemm<T>& g) {
  if (g.M <= 0 || g.N <= 0) return;
  const Tiles<T>& t = g.t;
  if (g.c.bf16 && (g.K <= 0 || g.K > t.kc))
    throw std::logic_error("gemm: a bf16 C needs 0 < K <= KC (one K slice); stage it in f32");
  if (g.K <= 0) {  // op(A)·op(B) is all zeros: C = [C +] bias
    for (int64_t i = 0; i < g.M; ++i) {
      float* row = g.c.f32 + i * g.ldc;
      if (!g.accumulate) std::fill(row, row + g.N, 0.0f);
      if (g.bias)
        for (int64_t j = 0; j < g.N; ++j) row[j] += g.bias[j];
    }
    return;
  }
  const int threads = g.M * g.N * g.K >= kParallelMinMacs ? g.threads : 1;
  const Grid grid = choose_grid(g, threads);
  const int64_t m_panels = ceil_div(g.M, t.mr), n_panels = ceil_div(g.N, t.nr);
  // Per grid cell: a packed A block (MC x KC) and a packed B block (KC x NC) at most, each
  // rounded to 64 bytes.
  constexpr int64_t line = 64 / sizeof(T);
  const int64_t a_rows = std::min(t.mc, ceil_div(m_panels, grid.um) * t.mr);
  const int64_t b_cols = std::min(t.nc, ceil_div(n_panels, grid.un) * t.nr);
  const int64_t a_elems = round_up(a_rows * t.kc, line), b_elems = round_up(b_cols * t.kc, line);
  T* buffer = static_cast<T*>(
      pack_buffer.get(grid.um * grid.un * (a_elems + b_elems) * static_cast<int64_t>(sizeof(T))));
  parallel_for(grid.um * grid.un, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t um = u / grid.un, un = u % grid.un;
      const int64_t m0 = std::min(g.M, m_panels * um / grid.um * t.mr);
      const int64_t m1 = std::min(g.M, m_panels * (um + 1) / grid.um * t.mr);
      const int64_t n0 = std::min(g.N, n_panels * un / grid.un * t.nr);
      const int64_t n1 = std::min(g.N, n_panels * (un + 1) / grid.un * t.nr);
      T* apack = buffer + u * (a_elems + b_elems);
      if (m0 < m1 && n0 < n1) compute_rectangle(g, apack, apack + a_elems, m0, m1, n0, n1);
    }
  });
}

template <typename T>
void gemm(const Tiles<T>& t, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          const T* a, int64_t lda, const T* b, int64_t ldb, COut c, int64_t ldc,
          bool accumulate, const float* bias, int threads) {
  gemm(Gemm<T>{t, trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc, accumulate, bias, threads});
}

// Runs fn(i, threads) for every batch entry: split across the threads, each GEMM on one
// (threads = 1), when the batch splits evenly or the GEMMs are too small to split well;
// otherwise one GEMM after another, each on all threads.
template <typename Fn>
void for_each_batch(int64_t batch, int64_t macs_per_item, const Fn& fn) {
  const int threads = num_threads();
  const bool across = batch >= threads && threads > 1 &&
                      (batch % threads == 0 || batch >= 4 * threads ||
                       macs_per_item < kParallelMinMacs);
  if (across) {
    parallel_for(batch, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) fn(i, 1);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) fn(i, threads);
  }
}

// acc[j] += Σ_r x[r][j] for rows [r0, r1) of x (rows, N), in float64.
PIT_MULTIVERSION void add_column_sums(double* acc, const float* x, int64_t N, int64_t r0,
                                      int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * N;
    for (int64_t j = 0; j < N; ++j) acc[j] += row[j];
  }
}

// The same for bf16 rows, each widened (exactly) first.
void add_column_sums(double* acc, const uint16_t* x, int64_t N, int64_t r0, int64_t r1) {
  std::vector<float> row(static_cast<size_t>(N));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t j = 0; j < N; ++j) row[static_cast<size_t>(j)] = bf16_to_f32(x[r * N + j]);
    add_column_sums(acc, row.data(), N, 0, 1);
  }
}

// dbias (N) = Σ over rows of dout (rows, N). Each thread streams a contiguous band of rows
// into its own float64 sums (a column-strip split read 3 KiB-strided rows: 2x slower).
template <typename T>
void column_sums(float* out, const T* x, int64_t rows, int64_t N) {
  const int64_t bands = rows * N >= (int64_t{1} << 16) ? std::min<int64_t>(num_threads(), rows) : 1;
  std::vector<double> acc(static_cast<size_t>(std::max<int64_t>(bands, 1) * N), 0.0);
  parallel_for(bands, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      add_column_sums(acc.data() + b * N, x, N, rows * b / bands, rows * (b + 1) / bands);
  });
  for (int64_t j = 0; j < N; ++j) {
    double sum = 0.0;
    for (int64_t b = 0; b < bands; ++b) sum += acc[static_cast<size_t>(b * N + j)];
    out[j] = static_cast<float>(sum);
  }
}

// matmul_forward over sources of either element type (f32 bias; out f32, or bf16 when K <= KC).
template <typename T>
void forward(const Tiles<T>& t, COut out, const T* a, const T* b, const float* bias,
             int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
             bool b_shared, bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (b_shared && !trans_a) {  // the batch is just more rows of A: (batch·M, K)
    gemm(t, false, trans_b, batch * M, N, K, a, lda, b, ldb, out, N, accumulate, bias, num_threads());
    return;
  }
  const int64_t b_stride = b_shared ? 0 : K * N;
  for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
    gemm(t, trans_a, trans_b, M, N, K, a + i * M * K, lda, b + i * b_stride, ldb, out + i * M * N,
         N, accumulate, bias, threads);
  });
}

// matmul_backward over sources of either element type (f32 db and dbias; da f32, or bf16
// when N <= KC).
template <typename T>
void backward(const Tiles<T>& t, COut da, float* db, float* dbias, const T* dout, const T* a,
              const T* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
              bool trans_b, bool b_shared) {
  batch = std::max<int64_t>(batch, 0);
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  const int64_t b_stride = b_shared ? 0 : K * N;
  if (dbias && N > 0) column_sums(dbias, dout, batch * M, N);

  if (da && M > 0 && K > 0) {
    if (!trans_a) {
      // da (M, K) = dout (M, N) · op(B)ᵀ (N, K); op(B)ᵀ is B read as stored when trans_b.
      if (b_shared) {
        gemm(t, false, !trans_b, batch * M, K, N, dout, N, b, ldb, da, K, false, nullptr,
             num_threads());
      } else {
        for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
          gemm(t, false, !trans_b, M, K, N, dout + i * M * N, N, b + i * b_stride, ldb,
               da + i * M * K, K, false, nullptr, threads);
        });
      }
    } else {
      // da stored (K, M) = op(B) (K, N) · doutᵀ (N, M).
      for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
        gemm(t, trans_b, true, K, M, N, b + i * b_stride, ldb, dout + i * M * N, N, da + i * M * K,
             M, false, nullptr, threads);
      });
    }
  }

  if (db && K > 0 && N > 0) {
    // One batch item's db: op(A)ᵀ (K, M) · dout (M, N) in B's stored layout, i.e. when
    // trans_b db (N, K) = doutᵀ (N, M) · op(A) (M, K). op(A)ᵀ is A as stored when trans_a.
    auto db_item = [&](int64_t rows, const T* ai, const T* douti, float* dbi, bool accumulate,
                       int threads) {
      if (!trans_b)
        gemm(t, !trans_a, false, K, N, rows, ai, lda, douti, N, dbi, N, accumulate, nullptr, threads);
      else
        gemm(t, true, trans_a, N, K, rows, douti, N, ai, lda, dbi, K, accumulate, nullptr, threads);
    };
    if (!b_shared) {
      for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
        db_item(M, a + i * M * K, dout + i * M * N, db + i * K * N, false, threads);
      });
    } else if (!trans_a) {  // Σ over the batch = one GEMM over batch·M rows
      db_item(batch * M, a, dout, db, false, num_threads());
    } else if (batch == 0) {
      std::fill(db, db + K * N, 0.0f);
    } else {  // the batch entries all add into one db: one after another
      for (int64_t i = 0; i < batch; ++i)
        db_item(M, a + i * M * K, dout + i * M * N, db, i > 0, num_threads());
    }
  }
}

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                    bool accumulate) {
  forward(f32_tiles(), out, a, b, bias, batch, M, N, K, trans_a, trans_b, b_shared, accumulate);
}

void matmul_backward(float* da, float* db, float* dbias, const float* dout, const float* a,
                     const float* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                     bool trans_b, bool b_shared) {
  backward(f32_tiles(), da, db, dbias, dout, a, b, batch, M, N, K, trans_a, trans_b, b_shared);
}

// ---- bf16 operands -------------------------------------------------------------------------
// Where the CPU has bf16 dot-product instructions (gemm.h's bf16_tiles(): AMX-BF16 tiles, else
// AVX512-BF16), the GEMM runs on packed bf16 panels with fp32 accumulation, at least twice the
// f32 kernel's rate. Those instructions treat denormal inputs as zero and flush denormal
// results (DAZ/FTZ), which the tensor cores do too; otherwise the products are exact and only
// the order of the sums differs. Elsewhere (or under PIT_CPU_ISA=avx512 and below) the operands are widened to f32,
// which is exact, and the f32 GEMM runs: every product is then exactly the tensor cores', and
// denormals are kept. That path is the reference the others are tested against. Outputs that
// are bf16 are rounded to nearest even once, at the end, either way.
namespace {

// bf16 values as f32 (cast.cc's conversion).
std::vector<float> widen(const uint16_t* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(n, 0)));
  cast_bf16_to_f32(out.data(), x, n);
  return out;
}

// An output of `dtype` seen as f32: itself, or an f32 copy (uninitialised unless `keep`: the
// GEMM writes all of it) that narrow() rounds back into it.
struct F32View {
  void* target;
  DType dtype;
  int64_t n;
  std::unique_ptr<float[]> copy;
  float* data() { return !target ? nullptr : dtype == DType::F32 ? static_cast<float*>(target) : copy.get(); }
  F32View(void* t, DType d, int64_t count, bool keep) : target(t), dtype(d), n(count) {
    if (!t || d != DType::BF16) return;
    copy.reset(new float[static_cast<size_t>(std::max<int64_t>(count, 1))]);
    if (keep) cast_bf16_to_f32(copy.get(), static_cast<const uint16_t*>(t), count);
  }
  void narrow() {
    if (target && dtype == DType::BF16) cast_f32_to_bf16(static_cast<uint16_t*>(target), copy.get(), n);
  }
};

}  // namespace

void matmul_forward_bf16(void* out, DType out_dtype, const uint16_t* a, const uint16_t* b, const void* bias,
                         int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                         bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  std::vector<float> bias32;
  if (bias && out_dtype == DType::BF16) bias32 = widen(static_cast<const uint16_t*>(bias), N);
  const float* bias_f = !bias ? nullptr : out_dtype == DType::F32 ? static_cast<const float*>(bias) : bias32.data();
  const Tiles<uint16_t>* t = bf16_tiles();
  if (t && out_dtype == DType::BF16 && K > 0 && K <= t->kc) {  // bf16 straight from the kernel's tiles
    forward(*t, COut(nullptr, static_cast<uint16_t*>(out)), a, b, bias_f, batch, M, N, K, trans_a, trans_b,
            b_shared, accumulate);
    throw_if_bf16_gemm_faulted();
    return;
  }
  F32View o(out, out_dtype, batch * M * N, accumulate);
  if (t) {
    forward(*t, o.data(), a, b, bias_f, batch, M, N, K, trans_a, trans_b, b_shared, accumulate);
  } else {
    const std::vector<float> a32 = widen(a, batch * M * K), b32 = widen(b, (b_shared ? 1 : batch) * K * N);
    matmul_forward(o.data(), a32.data(), b32.data(), bias_f, batch, M, N, K, trans_a, trans_b, b_shared, accumulate);
  }
  throw_if_bf16_gemm_faulted();
  o.narrow();
}

void matmul_backward_bf16(uint16_t* da, void* db, DType db_dtype, void* dbias, DType dbias_dtype, const uint16_t* dout,
                          const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                          bool trans_a, bool trans_b, bool b_shared) {
  batch = std::max<int64_t>(batch, 0);
  const int64_t b_count = (b_shared ? 1 : batch) * K * N;
  const Tiles<uint16_t>* t = bf16_tiles();
  const bool da_direct = t && da && N > 0 && N <= t->kc;  // da's GEMM sums over N: one K slice
  F32View dav(da_direct ? nullptr : da, DType::BF16, batch * M * K, false), dbv(db, db_dtype, b_count, false),
      dbiasv(dbias, dbias_dtype, N, false);
  if (t) {
    const COut da_out = da_direct ? COut(nullptr, da) : COut(dav.data());
    backward(*t, da_out, dbv.data(), dbiasv.data(), dout, a, b, batch, M, N, K, trans_a, trans_b, b_shared);
  } else {
    const std::vector<float> dout32 = widen(dout, batch * M * N), a32 = widen(a, batch * M * K), b32 = widen(b, b_count);
    matmul_backward(dav.data(), dbv.data(), dbiasv.data(), dout32.data(), a32.data(), b32.data(), batch, M, N, K,
                    trans_a, trans_b, b_shared);
  }
  throw_if_bf16_gemm_faulted();
  dav.narrow();
  dbv.narrow();
  dbiasv.narrow();
}

}  // namespace pit::cpu
