// The bf16 GEMM's packers and micro-kernels (AMX-BF16, AVX512-BF16), for matmul.cc's
// blocked driver.
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
// AMX (tdpbf16ps) multiplies whole tiles: 16 rows of A (32 bf16 each, row-major) by 16 k pairs
// of B in the same pair layout, into 16 x 16 f32. Its B panels are the same pair panels, with
// K padded to a multiple of 32; its A panels are row-major instead (pack_a_amx). The kernel
// (gemm_amx_kernel.inc) is compiled twice: on the real tiles, and on a scalar emulator of
// them (amx_emulator.h) that tests it on every machine (PIT_CPU_ISA=amx-emulated).
//
// Both instructions treat denormal bf16 inputs as zero and flush denormal f32 results to
// zero (DAZ/FTZ, whatever MXCSR says): a GEMM here loses values below ~1.2e-38 that the
// widened f32 path keeps. The tests therefore use normal values; training never relies on
// such magnitudes (the tensor cores flush them too).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/cpu_features.h"
#include "cpu/amx_emulator.h"
#include "cpu/backend.h"
#include "cpu/gemm.h"

namespace pit::cpu::gemm_internal {
namespace {

// The plain pair packer (layout: gemm.h): the reference pack_pairs_avx512 is read against, and
// the emulated AMX path's B packer on CPUs without AVX-512.
template <int W>
void pack_pairs(uint16_t* dst, const uint16_t* src, int64_t ld, bool k_contiguous, int64_t x0,
                int64_t width, int64_t k0, int64_t kc) {
  const int64_t kp = round_up(kc, 2), panels = ceil_div(width, W);
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* d = dst + p * kp * W;
    for (int64_t k = 0; k < kp; ++k)
      for (int w = 0; w < W; ++w) {
        const int64_t x = x0 + p * W + w;
        const bool inside = x < x0 + width && k < kc;
        d[(k / 2) * 2 * W + 2 * w + k % 2] =
            inside ? src[k_contiguous ? x * ld + k0 + k : (k0 + k) * ld + x] : uint16_t{0};
      }
  }
}

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

// ---- AMX-BF16 ------------------------------------------------------------------------------
constexpr int kAmxTile = 16;  // rows of every tile, columns of a C tile
constexpr int kAmxK = 32;     // bf16 k values in an A tile's row (64 bytes): K is padded to it

// Palette 1's 64-byte TILECFG (Intel SDM, LDTILECFG): bytes 16 + 2t colsb and 48 + t rows of
// tile t; 8 tiles, the rest reserved and zero. The kernel's tiles are all 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "TILECFG is 64 bytes");
constexpr TileConfig make_amx_config() {
  TileConfig c{};
  c.palette_id = 1;
  for (int t = 0; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = kAmxTile;
  return c;
}
constexpr TileConfig kAmxConfig = make_amx_config();

// A for the AMX kernel (MR = 32): each panel's rows row-major, row r's k values at
// dst[p·kp·32 + r·kp + k], kp = round_up(kc, 32); zero past kc and past `width`. Rows of A
// are copies (A without trans_a, every forward); columns (Aᵀ) a gather, 32 rows per k line.
void pack_a_amx(uint16_t* dst, const uint16_t* src, int64_t ld, bool k_contiguous, int64_t x0,
                int64_t width, int64_t k0, int64_t kc) {
  constexpr int MR = 2 * kAmxTile;
  const int64_t kp = round_up(kc, kAmxK), panels = ceil_div(width, MR);
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* d = dst + p * kp * MR;
    const int rows = static_cast<int>(std::min<int64_t>(MR, width - p * MR));
    if (k_contiguous) {
      for (int r = 0; r < rows; ++r)
        std::memcpy(d + r * kp, src + (x0 + p * MR + r) * ld + k0, static_cast<size_t>(kc) * 2);
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const uint16_t* line = src + (k0 + k) * ld + x0 + p * MR;
        for (int r = 0; r < rows; ++r) d[r * kp + k] = line[r];
      }
    }
    for (int r = 0; r < rows; ++r) std::fill(d + r * kp + kc, d + (r + 1) * kp, uint16_t{0});
    std::fill(d + rows * kp, d + MR * kp, uint16_t{0});
  }
}

// B for the AMX kernel (NR = 32): `pairs`'s panels (the vdpbf16ps layout), each padded with
// zero pairs to kp = round_up(kc, 32) k values.
template <Packer<uint16_t> pairs>
void pack_b_amx(uint16_t* dst, const uint16_t* src, int64_t ld, bool k_contiguous, int64_t x0,
                int64_t width, int64_t k0, int64_t kc) {
  constexpr int NR = 2 * kAmxTile;
  const int64_t kp = round_up(kc, kAmxK), filled = round_up(kc, 2), panels = ceil_div(width, NR);
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* d = dst + p * kp * NR;
    pairs(d, src, ld, k_contiguous, x0 + p * NR, std::min<int64_t>(NR, width - p * NR), k0, kc);
    std::fill(d + filled * NR, d + kp * NR, uint16_t{0});
  }
}

#if PIT_X86
// GCC bug 105593 (see transpose16x16 in gemm.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// pack_a_amx with Aᵀ (x-contiguous) done 16 x 16 words at a time: per 16 x-values and 16 k
// pairs, the pair words built as pack_pairs_avx512 builds them (one x per lane), then
// transposed, so that each vector holds one x's 32 k values: one 64-byte row of the panel.
// Rows past `width` and k past kc come out zero from the masked loads.
PIT_TARGET_AVX512 void pack_a_amx_avx512(uint16_t* dst, const uint16_t* src, int64_t ld,
                                         bool k_contiguous, int64_t x0, int64_t width,
                                         int64_t k0, int64_t kc) {
  if (k_contiguous) return pack_a_amx(dst, src, ld, true, x0, width, k0, kc);  // row copies
  constexpr int MR = 2 * kAmxTile;
  const int64_t kp = round_up(kc, kAmxK), panels = ceil_div(width, MR);
  for (int64_t p = 0; p < panels; ++p) {
    uint16_t* d = dst + p * kp * MR;
    for (int g = 0; g < MR; g += 16) {
      const int n = static_cast<int>(std::clamp<int64_t>(width - p * MR - g, 0, 16));
      const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
      const uint16_t* column = src + x0 + p * MR + g;  // X(x, k) at column[k·ld]
      for (int64_t k = 0; k < kp; k += kAmxK) {
        __m512 r[16];
        for (int q = 0; q < 16; ++q) {
          __m512i word[2];  // the 16 x-values of k rows k + 2q (low half) and k + 2q + 1 (high)
          for (int h = 0; h < 2; ++h) {
            const int64_t row = k + 2 * q + h;
            word[h] = row < kc && n > 0 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, column + (k0 + row) * ld))
                                        : _mm512_setzero_si512();
          }
          r[q] = _mm512_castsi512_ps(_mm512_or_si512(word[0], _mm512_slli_epi32(word[1], 16)));
        }
        transpose16x16(r);
        for (int i = 0; i < 16; ++i) _mm512_storeu_ps(reinterpret_cast<float*>(d + (g + i) * kp + k), r[i]);
      }
    }
  }
}
#pragma GCC diagnostic pop
#endif

// The kernel on the emulator (every machine; chosen only by PIT_CPU_ISA=amx-emulated).
#define PIT_AMX_FN
#define PIT_AMX_NAME(name) name##_emulated
#define PIT_TILE_LOADCONFIG(cfg) amx_emulator::ldtilecfg(cfg)
#define PIT_TILE_RELEASE() amx_emulator::tilerelease()
#define PIT_TILE_ZERO(t) amx_emulator::tilezero(t)
#define PIT_TILE_LOADD(t, p, s) amx_emulator::tileloadd(t, p, s)
#define PIT_TILE_STORED(t, p, s) amx_emulator::tilestored(t, p, s)
#define PIT_TILE_DPBF16PS(c, a, b) amx_emulator::tdpbf16ps(c, a, b)
#include "cpu/gemm_amx_kernel.inc"  // undefines the macros above

#if PIT_X86 && defined(__linux__)
// The kernel on the tiles (Linux only: the one OS whose tile-state grant cpu_features asks for).
#define PIT_AMX_FN PIT_TARGET_AMX
#define PIT_AMX_NAME(name) name##_hardware
#define PIT_TILE_LOADCONFIG(cfg) _tile_loadconfig(cfg)
#define PIT_TILE_RELEASE() _tile_release()
#define PIT_TILE_ZERO(t) _tile_zero(t)
#define PIT_TILE_LOADD(t, p, s) _tile_loadd(t, p, s)
#define PIT_TILE_STORED(t, p, s) _tile_stored(t, p, s)
#define PIT_TILE_DPBF16PS(c, a, b) _tile_dpbf16ps(c, a, b)
#include "cpu/gemm_amx_kernel.inc"  // undefines the macros above
#endif

// Tile sizes: C in 2 x 2 tiles (32 x 32), the other four tiles for A and B; KC, MC as the
// AVX512-BF16 kernel's (KC a multiple of 32), NC the largest multiple of 32 under its 4080.
// Not tuned: no AMX machine has timed this kernel yet. 256 multiply-adds a cycle for
// choose_grid is half tdpbf16ps's nominal 16·16·32 per 16 cycles.
struct TilesAmx {
  static constexpr int MR = 2 * kAmxTile, NR = 2 * kAmxTile;
  static constexpr int64_t KC = 768, MC = 256, NC = 4064;
};

// ---- selection -----------------------------------------------------------------------------

struct Bf16Gemm {
  const Tiles<uint16_t>* tiles;  // null: widen to f32
  const char* path;              // bf16_gemm_path()
};

// The AMX tiles with `kernel` (on the real tiles or the emulator), and the AVX-512 packers
// where this CPU has them (always, where it has AMX), else the plain ones.
Tiles<uint16_t> amx_tiles(Kernel<uint16_t> kernel, void (*begin)(), void (*end)()) {
  using T = TilesAmx;
#if PIT_X86
  if (cpu_has_avx512())
    return make_tiles<T, uint16_t>(kAmxK, 256, kernel, pack_a_amx_avx512, pack_b_amx<pack_pairs_avx512<T::NR>>,
                                   begin, end);
#endif
  return make_tiles<T, uint16_t>(kAmxK, 256, kernel, pack_a_amx, pack_b_amx<pack_pairs<T::NR>>, begin, end);
}

Bf16Gemm select_bf16_gemm() {
  if (cpu_amx_emulated()) {
    static const Tiles<uint16_t> tiles = amx_tiles(kernel_amx_emulated, amx_begin_emulated, amx_end_emulated);
    return {&tiles, "amx-emulated"};
  }
#if PIT_X86 && defined(__linux__)
  if (cpu_has_amx()) {
    static const Tiles<uint16_t> tiles = amx_tiles(kernel_amx_hardware, amx_begin_hardware, amx_end_hardware);
    return {&tiles, "amx"};
  }
#endif
#if PIT_X86
  if (cpu_has_avx512_bf16()) {
    using T = TilesAvx512Bf16;
    static const Tiles<uint16_t> tiles = make_tiles<T, uint16_t>(
        2, 48, kernel_avx512bf16<T::MR, T::NR / 16>, pack_pairs_avx512<T::MR>,
        pack_pairs_avx512<T::NR>);
    return {&tiles, "avx512bf16"};
  }
#endif
  return {nullptr, "f32-widened"};
}

const Bf16Gemm& bf16_gemm() {
  static const Bf16Gemm cached = select_bf16_gemm();
  return cached;
}

}  // namespace

const Tiles<uint16_t>* bf16_tiles() { return bf16_gemm().tiles; }

void throw_if_bf16_gemm_faulted() {
  if (!cpu_amx_emulated()) return;
  const std::string fault = amx_emulator::take_fault();
  if (!fault.empty()) throw std::logic_error(fault);
}

}  // namespace pit::cpu::gemm_internal

namespace pit::cpu {

const char* bf16_gemm_path() { return gemm_internal::bf16_gemm().path; }

}  // namespace pit::cpu
