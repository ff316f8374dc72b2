// A scalar emulator of the AMX tile instructions the bf16 GEMM uses, so that its AMX kernel
// (gemm_amx_kernel.inc) runs, unchanged, on CPUs without AMX: PIT_CPU_ISA=amx-emulated, for
// tests only (never chosen automatically; slow).
//
// Semantics are those of the Intel SDM, palette 1 (8 tiles of at most 16 rows x 64 bytes):
//   ldtilecfg   the 64-byte TILECFG: byte 0 palette_id (0: release, 1: palette 1),
//               byte 1 start_row, bytes 16 + 2t colsb of tile t, byte 48 + t rows of tile t;
//               everything else reserved and zero; per tile rows <= 16, colsb <= 64, and rows
//               and colsb both zero or both not; all tile data zeroed.
//   tileloadd   rows x colsb bytes from base + row · stride; the rest of the tile zeroed.
//   tilestored  rows x colsb bytes to base + row · stride.
//   tilezero    the whole tile zeroed.
//   tdpbf16ps   C, A, B distinct and configured, C.rows == A.rows, C.colsb == B.colsb,
//               A.colsb == 4 · B.rows, every colsb a multiple of 4; then for each m, n and
//               k pair p:  C[m][n] += f32(A[m][2p])·f32(B[p][2n]), then
//                          C[m][n] += f32(A[m][2p+1])·f32(B[p][2n+1]),
//               products exact, each sum rounded to nearest even, bf16 inputs that are
//               denormal read as zero and denormal results flushed to zero (MXCSR ignored).
//   tilerelease the init state: no configuration, tiles zero.
// The state (configuration and the 8 tiles) is per thread, as the hardware's is.
//
// A use the hardware would fault on (#GP, #UD: an invalid configuration, a tile used before
// ldtilecfg or unconfigured, mismatched shapes) cannot throw from inside the thread pool:
// it is recorded (the first message wins), the thread's tiles are poisoned with NaN until the
// next ldtilecfg, and take_fault() hands the message to the caller, which throws it.
#pragma once
#include <cstdint>
#include <string>

namespace pit::cpu::amx_emulator {

void ldtilecfg(const void* config);
void tilerelease();
void tilezero(int tile);
void tileloadd(int tile, const void* base, int64_t stride);
void tilestored(int tile, void* base, int64_t stride);
void tdpbf16ps(int c, int a, int b);

// The first fault recorded by any thread since the last call, cleared; "" if none.
std::string take_fault();

}  // namespace pit::cpu::amx_emulator
