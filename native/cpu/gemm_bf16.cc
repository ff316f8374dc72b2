// The bf16 GEMM's packers and micro-kernel (AVX512-BF16), for matmul.cc's blocked driver.
//
// vdpbf16ps multiplies the two bf16 halves of each 32-bit lane of its operands and adds both
// products to the f32 lane of the accumulator: per lane, acc += a[2p+1]·b[2p+1], then
// += a[2p]·b[2p] (Intel SDM), each product exact, each sum rounded to nearest even. So the
// panels hold k in pairs (gemm.h): an A micro-panel is, per k pair, MR 32-bit words
// (A[r][2p], A[r][2p+1]); a B micro-panel, per k pair, NR words (B[2p][j], B[2p+1][j]); an
// odd K slice ends in a pair whose high halves are zero in both. The kernel broadcasts one A
// word to all lanes and runs one vdpbf16ps per B vector: two multiply-adds per f32 lane per
// instruction where the f32 kernel's FMA does one.
//
// The instruction treats denormal bf16 inputs as zero and flushes denormal f32 results to
// zero (DAZ/FTZ, whatever MXCSR says): a GEMM here loses values below ~1.2e-38 that the
// widened f32 path keeps. The tests therefore use normal values; training never relies on
// such magnitudes (the tensor cores flush them too).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/cpu_features.h"
#include "cpu/backend.h"
#include "cpu/gemm.h"

namespace pit::cpu::gemm_internal {
namespace {

#if PIT_X86
// A bf16 source's lines for pack_words_k_contiguous: a word is a pair of k values, (k0 + 2w,
// k0 + 2w + 1), consecutive in the line whatever the line's alignment (k0 is even: the driver
// cuts K into multiples of 8). The last pair of an odd slice reads one value, zero above it.
struct Bf16PairLines {
  const uint16_t* src;
  int64_t ld, k0, kc;
  PIT_TARGET_AVX512 __m512 operator()(int64_t x, int64_t w, int n) const {
    const int64_t values = std::min<int64_t>(2 * n, kc - 2 * w);  // 1..32
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << values) - 1u);
    return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, src + x * ld + k0 + 2 * w));
  }
};

// GCC bug 105593 (see transpose16x16 in gemm.h): harmless -Wmaybe-uninitialized in the
// zero-extension and shift intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Panels of W x-values, k in pairs (layout: gemm.h). The x-contiguous case interleaves two
// k rows: each value zero-extended to 32 bits, the odd row's shifted into the high half.
template <int W>
PIT_TARGET_AVX512 void pack_pairs_avx512(uint16_t* dst, const uint16_t* src, int64_t ld,
                                         bool k_contiguous, int64_t x0, int64_t width,
                                         int64_t k0, int64_t kc) {
  const int64_t pairs = ceil_div(kc, 2);
  if (k_contiguous) {
    // 32-bit words through a float view: the intrinsics' stores may alias anything.
    pack_words_k_contiguous<W>(reinterpret_cast<float*>(dst), Bf16PairLines{src, ld, k0, kc},
                               x0, width, pairs);
    return;
  }
  const int64_t panels = ceil_div(width, W);
  // 8 pairs (16 k rows) at a time, each panel receiving one contiguous run (see pack_panels).
  for (int64_t pb = 0; pb < pairs; pb += 8) {
    const int64_t pe = std::min(pairs, pb + 8);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t valid = width - p * W;  // > 0; >= W for all but the last panel
      for (int64_t q = pb; q < pe; ++q) {
        const uint16_t* even = src + (k0 + 2 * q) * ld + x0 + p * W;
        const bool has_odd = 2 * q + 1 < kc;
        uint16_t* d = dst + p * pairs * 2 * W + q * 2 * W;
        for (int g = 0; g < W; g += 16) {
          const int group = std::min(16, W - g);
          const int n = static_cast<int>(std::clamp<int64_t>(valid - g, 0, group));
          const __mmask16 load_mask = static_cast<__mmask16>((1u << n) - 1u);
          const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load_mask, even + g));
          const __m512i hi = has_odd ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(load_mask, even + ld + g))
                                     : _mm512_setzero_si512();
          _mm512_mask_storeu_epi32(d + 2 * g, static_cast<__mmask16>((1u << group) - 1u),
                                   _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
      }
    }
  }
}
#pragma GCC diagnostic pop

// MR x (16·NV) f32 accumulators in zmm registers; per k pair NV B vectors and MR broadcast A
// words. Same contract and epilogue as the f32 kernel_avx512 (gemm.h).
template <int MR, int NV>
PIT_TARGET_AVX512BF16 void kernel_avx512bf16(int64_t kc, const uint16_t* ap, const uint16_t* bp,
                                             float* c, int64_t ldc, int mr, int nr,
                                             const float* bias, bool load_c) {
  constexpr int NR = NV * 16;
  prefetch_c_tile(c, ldc, mr, NR);
  __m512 acc[MR][NV] = {};
  const int64_t pairs = ceil_div(kc, 2);
  for (int64_t q = 0; q < pairs; ++q, ap += 2 * MR, bp += 2 * NR) {
    __m512bh b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_load_si512(bp + v * 32);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      uint32_t word;
      std::memcpy(&word, ap + 2 * r, sizeof word);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(word));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  store_tile_avx512<MR, NV>(acc, c, ldc, mr, nr, bias, load_c);
}

// Tile sizes, chosen on a 2-vCPU AMD EPYC (Zen 4) VM shared with other work. Peaks (cpuPeak):
// f32 117 / bf16 232 GFLOP/s on one thread, 181-185 / 333-379 on both (the vCPUs behave like
// SMT siblings). GFLOP/s below: linear forward and backward at M = 8200 with f32 outputs
// (PiT-T/S: (n, k) = (576,192) (768,192) (192,768) (1152,384) (1536,384) (384,1536)), both
// threads, best of 3 alternating rounds of 5; single runs swing by up to 2x with the load.
//   8x48 KC 768 MC 256  fwd 346 405 389 352 344 320   bwd 324 270 315 322 317 202
//   8x48 KC 384 MC 256  fwd 407 416 363 314 318 317   bwd 275 270 190 312 281 198
//   8x48 KC 512 MC 256  fwd 203 345 371 324 340 332   bwd 226 283 220 291 324 202
//   8x48 KC 512 MC 128  fwd 207 423 215 335 385 322   bwd 263 276 202 276 294 199
//   (1152,384), KC 384: 6x64 fwd 329 bwd 301, 12x32 373 307, 14x32 388 277: ties within noise.
// So the f32 kernel's register tile (24 accumulators, fewest loads per instruction) with a
// K slice twice as long in k, the same 72 KiB B micro-panel in bytes: it won the backward,
// whose (192 or 384, ·, 8200) weight gradient cuts K into the most slices. On one thread the
// (1152,384) forward runs at 217 GFLOP/s, 93% of the bf16 peak (the f32 kernel: 111, 95%).
struct TilesAvx512Bf16 {
  static constexpr int MR = 8, NR = 48;
  static constexpr int64_t KC = 768, MC = 256, NC = 4080;
};
#endif

const Tiles<uint16_t>* select_bf16_tiles() {
#if PIT_X86
  if (cpu_has_avx512_bf16()) {
    using T = TilesAvx512Bf16;
    static const Tiles<uint16_t> tiles = make_tiles<T, uint16_t>(
        2, 48, kernel_avx512bf16<T::MR, T::NR / 16>, pack_pairs_avx512<T::MR>,
        pack_pairs_avx512<T::NR>);
    return &tiles;
  }
#endif
  return nullptr;
}

}  // namespace

const Tiles<uint16_t>* bf16_tiles() {
  static const Tiles<uint16_t>* const cached = select_bf16_tiles();
  return cached;
}

}  // namespace pit::cpu::gemm_internal

namespace pit::cpu {

const char* bf16_gemm_path() { return gemm_internal::bf16_tiles() ? "avx512bf16" : "f32-widened"; }

}  // namespace pit::cpu
