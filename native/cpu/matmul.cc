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
// Loop nest, run by each thread over its own rectangle of C (see choose_grid); tile sizes
// per ISA below, with the measurements that chose them:
//   jc  NC columns
//    pc  KC slice of K           pack B block  KC x NC  (in L3)
//     ic  MC rows                pack A block  MC x KC  (in L2)
//      jr  NR columns            B micro-panel KC x NR, reused across the ir loop
//       ir  MR rows              micro-kernel: MR x NR accumulators in registers
// The bias is added, and the old C loaded (when accumulating or past the first K slice),
// only in the micro-kernel's epilogue, so C is touched once per K slice and never in a
// separate pass. Forward and backward are all expressed as sgemm calls at the bottom.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "cpu/backend.h"

#if PIT_X86
#include <immintrin.h>
#endif

namespace pit::cpu {
namespace {

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

// ---- packing ------------------------------------------------------------------------------
// Packing op(A) and packing op(B) are one problem: a matrix X with X(x, k) read as
// src[x * ld + k] ("k-contiguous": A without trans_a, B with trans_b) or src[k * ld + x]
// ("x-contiguous": A with trans_a, B without trans_b) is copied, for x in [x0, x0 + width)
// and k in [k0, k0 + kc), into panels of W x-values: panel p holds
// dst[p * kc * W + k * W + w] = X(x0 + p * W + w, k0 + k), zero past `width`.
// A is packed with W = MR (x = the row i), B with W = NR (x = the column j).

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

// ---- micro-kernels ----------------------------------------------------------------------
// kernel(kc, ap, bp, c, ldc, mr, nr, bias, load_c):
//   C[r][j] (r < mr, j < nr) = (load_c ? C[r][j] : 0) + Σ_k ap[k][r] · bp[k][j] (+ bias[j])
// ap is an MR-row panel (kc x MR), bp an NR-column panel (kc x NR), bias null or offset to
// the tile's first column. Full tiles store straight from registers; edge tiles use masked
// stores (AVX-512) or go through a small buffer and store_edge_tile.

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

#if PIT_X86
// Starts fetching the C tile the epilogue will read and write: C rows are far apart and
// usually not in cache, and the loads and stores otherwise wait on memory one row at a time
// (+15% on (6304, 768, 192)). The k loop hides the latency.
inline void prefetch_c_tile(const float* c, int64_t ldc, int mr, int nr) {
  for (int r = 0; r < mr; ++r) {
    for (int j = 0; j < nr; j += 16) __builtin_prefetch(c + r * ldc + j, 1, 3);
    __builtin_prefetch(c + r * ldc + nr - 1, 1, 3);
  }
}

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
  // Columns past nr are masked off, rows past mr skipped; bias and old C folded in here.
  __mmask16 mask[NV];
  __m512 bv[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int cols = std::clamp(nr - v * 16, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << cols) - 1u);
    bv[v] = bias ? _mm512_maskz_loadu_ps(mask[v], bias + v * 16) : _mm512_setzero_ps();
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* p = c + r * ldc + v * 16;
      __m512 x = _mm512_add_ps(acc[r][v], bv[v]);
      if (load_c) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], p));
      _mm512_mask_storeu_ps(p, mask[v], x);
    }
  }
}

// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_ps(), a self-initialised
// variable that -Wmaybe-uninitialized flags once inlined (GCC bug 105593); harmless here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// In-register transpose of a 16 x 16 block: r[i] holds row i on entry, column i on return.
// Four shuffle stages (32-bit, 64-bit, then two 128-bit lane stages), 64 shuffles in all.
PIT_TARGET_AVX512 inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // r[4i + c], lane l: rows 4i..4i+3 of column 4l + c
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; ++c) {
    t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
    t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
    r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
  }
}

// pack_panels with the k-contiguous case (a transpose) done 16 x 16 at a time in registers:
// the plain loop costs ~1.3 cycles per element, 15-18% of a (6304, 192, 768) forward.
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
  if constexpr (W == 8) {
    // 8 lines: their k-slices [k, k+16) and [k+16, k+32) fill all 16 rows of one transpose,
    // whose column c is then (X(·, k+c), X(·, k+16+c)): two 8-float stores, nothing wasted.
    for (int64_t p = 0; p < panels; ++p) {
      const int lines = static_cast<int>(std::min<int64_t>(8, width - p * 8));
      const float* base = src + (x0 + p * 8) * ld + k0;
      float* d = dst + p * kc * 8;
      for (int64_t k = 0; k < kc; k += 32) {
        const int lo = static_cast<int>(std::min<int64_t>(16, kc - k));
        const int hi = static_cast<int>(std::clamp<int64_t>(kc - k - 16, 0, 16));
        const __mmask16 lo_mask = static_cast<__mmask16>((1u << lo) - 1u);
        const __mmask16 hi_mask = static_cast<__mmask16>((1u << hi) - 1u);
        __m512 r[16];
        for (int i = 0; i < 8; ++i) {
          r[i] = i < lines ? _mm512_maskz_loadu_ps(lo_mask, base + i * ld + k) : _mm512_setzero_ps();
          r[8 + i] = i < lines ? _mm512_maskz_loadu_ps(hi_mask, base + i * ld + k + 16) : _mm512_setzero_ps();
        }
        transpose16x16(r);
        for (int c = 0; c < lo; ++c) _mm256_storeu_ps(d + (k + c) * 8, _mm512_castps512_ps256(r[c]));
        for (int c = 0; c < hi; ++c) _mm256_storeu_ps(d + (k + 16 + c) * 8, _mm512_extractf32x8_ps(r[c], 1));
      }
    }
    return;
  }
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n = std::min<int64_t>(W, width - p * W);
    for (int g = 0; g < W; g += 16) {  // 16 x-lines of the panel at a time
      const int lines = static_cast<int>(std::clamp<int64_t>(n - g, 0, 16));
      const int group = std::min(16, W - g);
      const __mmask16 store_mask = static_cast<__mmask16>((1u << group) - 1u);
      const float* base = src + (x0 + p * W + g) * ld + k0;
      float* d = dst + p * kc * W + g;
      for (int64_t k = 0; k < kc; k += 16) {
        const int count = static_cast<int>(std::min<int64_t>(16, kc - k));
        const __mmask16 load_mask = static_cast<__mmask16>((1u << count) - 1u);
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < lines ? _mm512_maskz_loadu_ps(load_mask, base + i * ld + k) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int i = 0; i < count; ++i) _mm512_mask_storeu_ps(d + (k + i) * W, store_mask, r[i]);
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

// ---- tile sizes per ISA -----------------------------------------------------------------
// MR x NR: the register tile. KC: the K slice. MC: rows of a packed A block (MC x KC, in the
// 2 MiB L2). NC: columns of a packed B block (KC x NC, in L3). Both blocks are per thread.
//
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

using Kernel = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int,
                        const float*, bool);
using Packer = void (*)(float*, const float*, int64_t, bool, int64_t, int64_t, int64_t, int64_t);

// The tile sizes, micro-kernel and packers of the ISA in use, picked once.
struct Tiles {
  int mr, nr;
  int64_t kc, mc, nc;
  Kernel kernel;
  Packer pack_a, pack_b;
};

template <typename T>
Tiles make_tiles(Kernel kernel, Packer pack_a, Packer pack_b) {
  static_assert(T::MC % T::MR == 0 && T::NC % T::NR == 0, "blocks are whole micro-panels");
  static_assert(T::NR % 16 == 0, "B panels stay 64-byte aligned for aligned vector loads");
  static_assert(T::KC % 8 == 0, "equal K slices are rounded up to 8 and must stay <= KC");
  return Tiles{T::MR, T::NR, T::KC, T::MC, T::NC, kernel, pack_a, pack_b};
}

Tiles select_tiles() {
#if PIT_X86
  if (cpu_has_avx512()) {
    using T = TilesAvx512;
    return make_tiles<T>(kernel_avx512<T::MR, T::NR / 16>, pack_panels_avx512<T::MR>,
                         pack_panels_avx512<T::NR>);
  }
  if (cpu_has_avx2()) {
    using T = TilesAvx2;
    return make_tiles<T>(kernel_avx2<T::MR, T::NR / 8>, pack_panels<T::MR>, pack_panels<T::NR>);
  }
#endif
  using T = TilesScalar;
  return make_tiles<T>(kernel_scalar<T::MR, T::NR>, pack_panels<T::MR>, pack_panels<T::NR>);
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
  int threads;  // at most this many (1 inside a batch already split across the threads)
};

// One thread's share of C: rows [m0, m1), columns [n0, n1) (n0 a multiple of NR), computed
// with the thread's own packed blocks, the GotoBLAS loop nest.
void compute_rectangle(const Gemm& g, const Tiles& t, float* apack, float* bpack, int64_t m0,
                       int64_t m1, int64_t n0, int64_t n1) {
  // K slices of equal length (a multiple of 8, at most KC): K = 512 as 256 + 256, not
  // 384 + 128, whose short slice pays the C reload for a third of the work.
  const int64_t k_step = round_up(ceil_div(g.K, ceil_div(g.K, t.kc)), 8);
  for (int64_t jc = n0; jc < n1; jc += t.nc) {
    const int64_t nc = std::min(t.nc, n1 - jc);
    for (int64_t pc = 0; pc < g.K; pc += k_step) {
      const int64_t kc = std::min(k_step, g.K - pc);
      t.pack_b(bpack, g.b, g.ldb, g.trans_b, jc, nc, pc, kc);  // panel j at j·kc·NR
      const bool load_c = g.accumulate || pc > 0;
      const float* bias = pc == 0 && g.bias ? g.bias + jc : nullptr;
      for (int64_t ic = m0; ic < m1; ic += t.mc) {
        const int64_t mc = std::min(t.mc, m1 - ic);
        t.pack_a(apack, g.a, g.lda, !g.trans_a, ic, mc, pc, kc);  // panel i at i·kc·MR
        for (int64_t jr = 0; jr < nc; jr += t.nr) {
          const int nr = static_cast<int>(std::min<int64_t>(t.nr, nc - jr));
          float* c = g.c + ic * g.ldc + jc + jr;
          for (int64_t ir = 0; ir < mc; ir += t.mr) {
            const int mr = static_cast<int>(std::min<int64_t>(t.mr, mc - ir));
            t.kernel(kc, apack + ir * kc, bpack + jr * kc, c + ir * g.ldc, g.ldc, mr, nr,
                     bias ? bias + jr : nullptr, load_c);
          }
        }
      }
    }
  }
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

Grid choose_grid(const Gemm& g, const Tiles& t, int threads) {
  const int64_t m_panels = ceil_div(g.M, t.mr), n_panels = ceil_div(g.N, t.nr);
  Grid best{1, 1};
  double best_cost = 0;
  for (int um = 1; um <= threads; ++um) {
    if (threads % um) continue;
    const int un = threads / um;
    const double rows = static_cast<double>(ceil_div(m_panels, um) * t.mr);
    const double cols = static_cast<double>(ceil_div(n_panels, un) * t.nr);
    // Cycles, roughly: 24 multiply-adds per cycle in the kernel, ~1/2 cycle per packed float.
    const double k = static_cast<double>(g.K);
    const double cost = rows * cols * k / 24 +
                        0.5 * k * (cols + rows * std::ceil(cols / static_cast<double>(t.nc)));
    if (um == 1 || cost < best_cost) best_cost = cost, best = Grid{um, un};
  }
  return best;
}

// Below this many multiply-adds a GEMM stays on the calling thread: a pool thread takes
// 40-60 us to start here, about what 4M multiply-adds take on one core.
constexpr int64_t kParallelMinMacs = int64_t{1} << 22;

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
  const int threads = g.M * g.N * g.K >= kParallelMinMacs ? g.threads : 1;
  const Grid grid = choose_grid(g, t, threads);
  const int64_t m_panels = ceil_div(g.M, t.mr), n_panels = ceil_div(g.N, t.nr);
  // Per grid cell: a packed A block (MC x KC) and a packed B block (KC x NC) at most.
  const int64_t a_rows = std::min(t.mc, ceil_div(m_panels, grid.um) * t.mr);
  const int64_t b_cols = std::min(t.nc, ceil_div(n_panels, grid.un) * t.nr);
  const int64_t a_floats = round_up(a_rows * t.kc, 16), b_floats = round_up(b_cols * t.kc, 16);
  float* buffer = pack_buffer.get(grid.um * grid.un * (a_floats + b_floats));
  parallel_for(grid.um * grid.un, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t um = u / grid.un, un = u % grid.un;
      const int64_t m0 = std::min(g.M, m_panels * um / grid.um * t.mr);
      const int64_t m1 = std::min(g.M, m_panels * (um + 1) / grid.um * t.mr);
      const int64_t n0 = std::min(g.N, n_panels * un / grid.un * t.nr);
      const int64_t n1 = std::min(g.N, n_panels * (un + 1) / grid.un * t.nr);
      float* apack = buffer + u * (a_floats + b_floats);
      if (m0 < m1 && n0 < n1) compute_rectangle(g, t, apack, apack + a_floats, m0, m1, n0, n1);
    }
  });
}

// C (M, N) = [C +] op(A) · op(B) [+ bias] with op(A) (M, K) read from a (ld lda) and op(B)
// (K, N) from b (ld ldb), on up to `threads` threads.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* a,
           int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
           const float* bias, int threads) {
  sgemm(Gemm{trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc, accumulate, bias, threads});
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

// dbias (N) = Σ over rows of dout (rows, N). Each thread streams a contiguous band of rows
// into its own float64 sums (a column-strip split read 3 KiB-strided rows: 2x slower).
void column_sums(float* out, const float* x, int64_t rows, int64_t N) {
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

}  // namespace

void matmul_forward(float* out, const float* a, const float* b, const float* bias, int64_t batch,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                    bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
  if (b_shared && !trans_a) {  // the batch is just more rows of A: (batch·M, K)
    sgemm(false, trans_b, batch * M, N, K, a, lda, b, ldb, out, N, accumulate, bias, num_threads());
    return;
  }
  const int64_t b_stride = b_shared ? 0 : K * N;
  for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
    sgemm(trans_a, trans_b, M, N, K, a + i * M * K, lda, b + i * b_stride, ldb, out + i * M * N,
          N, accumulate, bias, threads);
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
        sgemm(false, !trans_b, batch * M, K, N, dout, N, b, ldb, da, K, false, nullptr,
              num_threads());
      } else {
        for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
          sgemm(false, !trans_b, M, K, N, dout + i * M * N, N, b + i * b_stride, ldb,
                da + i * M * K, K, false, nullptr, threads);
        });
      }
    } else {
      // da stored (K, M) = op(B) (K, N) · doutᵀ (N, M).
      for_each_batch(batch, M * N * K, [&](int64_t i, int threads) {
        sgemm(trans_b, true, K, M, N, b + i * b_stride, ldb, dout + i * M * N, N, da + i * M * K,
              M, false, nullptr, threads);
      });
    }
  }

  if (db && K > 0 && N > 0) {
    // One batch item's db: op(A)ᵀ (K, M) · dout (M, N) in B's stored layout, i.e. when
    // trans_b db (N, K) = doutᵀ (N, M) · op(A) (M, K). op(A)ᵀ is A as stored when trans_a.
    auto db_item = [&](int64_t rows, const float* ai, const float* douti, float* dbi,
                       bool accumulate, int threads) {
      if (!trans_b)
        sgemm(!trans_a, false, K, N, rows, ai, lda, douti, N, dbi, N, accumulate, nullptr, threads);
      else
        sgemm(true, trans_a, N, K, rows, douti, N, ai, lda, dbi, K, accumulate, nullptr, threads);
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

// ---- bf16 operands -------------------------------------------------------------------------
// The CPU runs a bf16 GEMM by widening its operands to f32, which is exact, and running the f32
// GEMM: every product is then exactly the tensor cores' (a bf16 × bf16 product fits an f32),
// the accumulation is fp32, and only the order of the sums differs from a GPU's. Outputs that
// are bf16 are rounded to nearest even once, at the end. This is the reference the GPU's bf16
// paths and mixed precision are tested against, not a fast path.
namespace {

// bf16 values as f32 (cast.cc's conversion).
std::vector<float> widen(const uint16_t* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(n, 0)));
  cast_bf16_to_f32(out.data(), x, n);
  return out;
}

// An output of `dtype` seen as f32: itself, or a widened copy that narrow() writes back.
struct F32View {
  void* target;
  DType dtype;
  int64_t n;
  std::vector<float> copy;
  float* data() { return dtype == DType::F32 ? static_cast<float*>(target) : copy.data(); }
  F32View(void* t, DType d, int64_t count, bool keep) : target(t), dtype(d), n(count) {
    if (t && d == DType::BF16) copy = keep ? widen(static_cast<const uint16_t*>(t), count) : std::vector<float>(static_cast<size_t>(count));
  }
  void narrow() {
    if (target && dtype == DType::BF16) cast_f32_to_bf16(static_cast<uint16_t*>(target), copy.data(), n);
  }
};

}  // namespace

void matmul_forward_bf16(void* out, DType out_dtype, const uint16_t* a, const uint16_t* b, const void* bias,
                         int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                         bool accumulate) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const std::vector<float> a32 = widen(a, batch * M * K), b32 = widen(b, (b_shared ? 1 : batch) * K * N);
  std::vector<float> bias32;
  if (bias && out_dtype == DType::BF16) bias32 = widen(static_cast<const uint16_t*>(bias), N);
  const float* bias_f = !bias ? nullptr : out_dtype == DType::F32 ? static_cast<const float*>(bias) : bias32.data();
  F32View o(out, out_dtype, batch * M * N, accumulate);
  matmul_forward(o.data(), a32.data(), b32.data(), bias_f, batch, M, N, K, trans_a, trans_b, b_shared, accumulate);
  o.narrow();
}

void matmul_backward_bf16(uint16_t* da, void* db, DType db_dtype, void* dbias, DType dbias_dtype, const uint16_t* dout,
                          const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M, int64_t N, int64_t K,
                          bool trans_a, bool trans_b, bool b_shared) {
  batch = std::max<int64_t>(batch, 0);
  const int64_t b_count = (b_shared ? 1 : batch) * K * N;
  const std::vector<float> dout32 = widen(dout, batch * M * N), a32 = widen(a, batch * M * K), b32 = widen(b, b_count);
  F32View dav(da, DType::BF16, batch * M * K, false), dbv(db, db_dtype, b_count, false), dbiasv(dbias, dbias_dtype, N, false);
  matmul_backward(da ? dav.data() : nullptr, db ? dbv.data() : nullptr, dbias ? dbiasv.data() : nullptr, dout32.data(),
                  a32.data(), b32.data(), batch, M, N, K, trans_a, trans_b, b_shared);
  dav.narrow();
  dbv.narrow();
  dbiasv.narrow();
}

}  // namespace pit::cpu
