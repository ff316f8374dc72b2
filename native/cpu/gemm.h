// The CPU GEMM's parts shared by its two element types (internal to native/cpu/).
//
// matmul.cc runs one blocked driver (see its header comment) over packed panels of either
// f32 (its own kernels) or bf16 (gemm_bf16.cc). A Tiles<T> names the tile sizes, the packers
// and the micro-kernel of one ISA for source elements T; the driver is written once against
// it. Below, the AVX-512 pieces both element types' kernels and packers use.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "core/cpu_features.h"

#if PIT_X86
#include <immintrin.h>
#endif

namespace pit::cpu::gemm_internal {

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Packing op(A) and packing op(B) are one problem: a matrix X with X(x, k) read as
// src[x * ld + k] ("k-contiguous": A without trans_a, B with trans_b) or src[k * ld + x]
// ("x-contiguous": A with trans_a, B without trans_b) is copied, for x in [x0, x0 + width)
// and k in [k0, k0 + kc), into panels of W x-values, zero past `width` (and past kc):
//   f32  (k_pack 1): panel p holds dst[p·kc·W + k·W + w] = X(x0 + p·W + w, k0 + k)
//   bf16 (k_pack 2): k in pairs, the vdpbf16ps / tdpbf16ps operand layout: one 32-bit word
//        per x and pair, the even k in its low half; kc rounded up to even, so panel p holds
//        dst[p·kc'·W + (k/2)·2W + 2w + k%2] = X(x0 + p·W + w, k0 + k), kc' = round_up(kc, 2).
// A is packed with W = MR (x = the row i), B with W = NR (x = the column j). The AMX kernel
// (gemm_bf16.cc) pads K to 32 and packs A row-major instead: its tiles read 32 k of a row.
template <typename T>
using Packer = void (*)(T* dst, const T* src, int64_t ld, bool k_contiguous, int64_t x0,
                        int64_t width, int64_t k0, int64_t kc);

// kernel(kc, ap, bp, c, ldc, mr, nr, bias, load_c):
//   C[r][j] (r < mr, j < nr) = (load_c ? C[r][j] : 0) + Σ_k ap[k][r] · bp[k][j] (+ bias[j])
// ap is an MR-row panel, bp an NR-column panel (kc k values each, laid out as above), C and
// bias f32, bias null or offset to the tile's first column. Accumulation is f32 either way.
template <typename T>
using Kernel = void (*)(int64_t kc, const T* ap, const T* bp, float* c, int64_t ldc, int mr,
                        int nr, const float* bias, bool load_c);

// MR x NR: the register tile. KC: the K slice (in k values). MC: rows of a packed A block
// (MC x KC, in L2). NC: columns of a packed B block (KC x NC, in L3). Both blocks are per
// thread. k_pack: k values per packed group (panels hold round_up(kc, k_pack) k values).
// macs_per_cycle: the kernel's multiply-add rate on one core, for choose_grid's cost model.
// begin, end (or null): called by each thread around its rectangle of C, on that thread, for
// kernels with per-thread state to set up and release (the AMX tile configuration).
template <typename T>
struct Tiles {
  int mr, nr;
  int64_t kc, mc, nc;
  int k_pack;
  double macs_per_cycle;
  Kernel<T> kernel;
  Packer<T> pack_a, pack_b;
  void (*begin)() = nullptr;
  void (*end)() = nullptr;
};

// The largest register tile (MR·NR floats): a bf16 C is written through an f32 tile this big.
constexpr int kMaxTile = 1024;

template <typename Sizes, typename T>
Tiles<T> make_tiles(int k_pack, double macs_per_cycle, Kernel<T> kernel, Packer<T> pack_a,
                    Packer<T> pack_b, void (*begin)() = nullptr, void (*end)() = nullptr) {
  static_assert(Sizes::MC % Sizes::MR == 0 && Sizes::NC % Sizes::NR == 0,
                "blocks are whole micro-panels");
  static_assert(Sizes::NR % 16 == 0, "B panels stay 64-byte aligned for aligned vector loads");
  static_assert(Sizes::KC % 8 == 0, "equal K slices are rounded up to 8 and must stay <= KC");
  static_assert(Sizes::MR * Sizes::NR <= kMaxTile, "the register tile fits kMaxTile");
  // Panels hold round_up(kc, k_pack) k values and the pack buffers KC per panel.
  if (Sizes::KC % k_pack != 0) throw std::logic_error("make_tiles: KC must be a multiple of k_pack");
  return Tiles<T>{Sizes::MR, Sizes::NR, Sizes::KC, Sizes::MC, Sizes::NC, k_pack, macs_per_cycle,
                  kernel, pack_a, pack_b, begin, end};
}

// The kernels' plain epilogue, from an f32 tile (ld nr_full) computed in full: rows past mr
// and columns past nr dropped, bias and the old C folded in, C written once. Vector kernels
// that inline it get it vectorised for their own ISA.
inline void store_edge_tile(const float* tile, int nr_full, float* c, int64_t ldc, int mr,
                            int nr, const float* bias, bool load_c) {
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) {
      float v = tile[r * nr_full + j];
      if (bias) v += bias[j];
      c[r * ldc + j] = load_c ? c[r * ldc + j] + v : v;
    }
}

// The bf16 GEMM of this CPU (gemm_bf16.cc): its tiles (AMX, else AVX512-BF16; the emulated
// AMX kernel under PIT_CPU_ISA=amx-emulated), or null where no bf16 instruction may be used
// (matmul.cc then widens to f32). Its name: bf16_gemm_path() in backend.h.
const Tiles<uint16_t>* bf16_tiles();

// Throws, on the calling thread, what the AMX emulator recorded as a fault of the hardware
// (amx_emulator.h) during the GEMMs since the last call; nothing on the other paths.
void throw_if_bf16_gemm_faulted();

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

// The AVX-512 kernels' epilogue: columns past nr masked off, rows past mr skipped, bias and
// the old C folded in, C written once.
template <int MR, int NV>
PIT_TARGET_AVX512 inline void store_tile_avx512(const __m512 (&acc)[MR][NV], float* c,
                                                int64_t ldc, int mr, int nr, const float* bias,
                                                bool load_c) {
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
// In-register transpose of a 16 x 16 block of 32-bit words: r[i] holds row i on entry,
// column i on return. Four shuffle stages (32-bit, 64-bit, then two 128-bit lane stages).
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

// The k-contiguous packing of both element types, as a transpose of 32-bit words: a word is
// one f32 k value, or one pair of bf16 k values. `lines` reads the source:
//   lines(x, w, n) = words [w, w + n) of line x (the x-th row of X, from k0), zero past n.
// `words` is the K slice's length in words; panel p of W words per k (pair) lands at
// dst + p·words·W. The plain loop costs ~1.3 cycles per element, 15-18% of a
// (6304, 192, 768) f32 forward; this does 16 x 16 words per transpose16x16.
template <int W, typename Lines>
PIT_TARGET_AVX512 void pack_words_k_contiguous(float* dst, const Lines& lines, int64_t x0,
                                               int64_t width, int64_t words) {
  const int64_t panels = ceil_div(width, W);
  if constexpr (W == 8) {
    // 8 lines: their words [w, w+16) and [w+16, w+32) fill all 16 rows of one transpose,
    // whose column c is then (X(·, w+c), X(·, w+16+c)): two 8-word stores, nothing wasted.
    for (int64_t p = 0; p < panels; ++p) {
      const int count = static_cast<int>(std::min<int64_t>(8, width - p * 8));
      float* d = dst + p * words * 8;
      for (int64_t w = 0; w < words; w += 32) {
        const int lo = static_cast<int>(std::min<int64_t>(16, words - w));
        const int hi = static_cast<int>(std::clamp<int64_t>(words - w - 16, 0, 16));
        __m512 r[16];
        for (int i = 0; i < 8; ++i) {
          const int64_t x = x0 + p * 8 + i;
          r[i] = i < count ? lines(x, w, lo) : _mm512_setzero_ps();
          r[8 + i] = i < count && hi > 0 ? lines(x, w + 16, hi) : _mm512_setzero_ps();
        }
        transpose16x16(r);
        for (int c = 0; c < lo; ++c) _mm256_storeu_ps(d + (w + c) * 8, _mm512_castps512_ps256(r[c]));
        for (int c = 0; c < hi; ++c) _mm256_storeu_ps(d + (w + 16 + c) * 8, _mm512_extractf32x8_ps(r[c], 1));
      }
    }
    return;
  }
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t n = std::min<int64_t>(W, width - p * W);
    for (int g = 0; g < W; g += 16) {  // 16 x-lines of the panel at a time
      const int count = static_cast<int>(std::clamp<int64_t>(n - g, 0, 16));
      const int group = std::min(16, W - g);
      const __mmask16 store_mask = static_cast<__mmask16>((1u << group) - 1u);
      float* d = dst + p * words * W + g;
      for (int64_t w = 0; w < words; w += 16) {
        const int span = static_cast<int>(std::min<int64_t>(16, words - w));
        __m512 r[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < count ? lines(x0 + p * W + g + i, w, span) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int i = 0; i < span; ++i) _mm512_mask_storeu_ps(d + (w + i) * W, store_mask, r[i]);
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace pit::cpu::gemm_internal
