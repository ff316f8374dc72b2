#include "cpu/amx_emulator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/dtype.h"

namespace pit::cpu::amx_emulator {
namespace {

constexpr int kTiles = 8, kMaxRows = 16, kMaxColsb = 64;

// One thread's tile state, as the hardware keeps it per thread (XSAVE component 18).
struct State {
  bool configured = false;
  bool poisoned = false;  // after a fault, until the next ldtilecfg
  int rows[kTiles] = {}, colsb[kTiles] = {};
  alignas(64) unsigned char data[kTiles][kMaxRows][kMaxColsb] = {};
};
thread_local State state;

std::mutex fault_mutex;
std::string first_fault;

// Records what the hardware would fault on and poisons this thread's tiles: every later
// store writes NaN, so a result computed past a fault can never pass for a good one.
void fault(const std::string& what) {
  {
    std::lock_guard<std::mutex> lock(fault_mutex);
    if (first_fault.empty()) first_fault = "AMX emulator: " + what;
  }
  state.poisoned = true;
}

// A tile an instruction may use: configured (rows and colsb not zero) after ldtilecfg.
bool usable(int tile, const char* op) {
  if (state.poisoned) return false;
  if (tile < 0 || tile >= kTiles) {
    fault(std::string(op) + ": no tile register tmm" + std::to_string(tile));
    return false;
  }
  if (!state.configured) {
    fault(std::string(op) + ": tmm" + std::to_string(tile) + " used before ldtilecfg (#UD)");
    return false;
  }
  if (state.rows[tile] == 0) {
    fault(std::string(op) + ": tmm" + std::to_string(tile) + " is not configured (#UD)");
    return false;
  }
  return true;
}

float f32_of(const unsigned char* tile_row, int index) {
  float x;
  std::memcpy(&x, tile_row + 4 * index, 4);
  return x;
}

// A bf16 operand as the instruction reads it: denormals as zero (DAZ).
float bf16_operand(const unsigned char* tile_row, int index) {
  uint16_t h;
  std::memcpy(&h, tile_row + 2 * index, 2);
  if ((h & 0x7f80u) == 0) h &= 0x8000u;
  return bf16_to_f32(h);
}

// A result as the instruction writes it: denormals flushed to zero (FTZ), sign kept.
float flush(float x) {
  return std::fabs(x) < std::numeric_limits<float>::min() ? std::copysign(0.0f, x) : x;
}

}  // namespace

void ldtilecfg(const void* config) {
  unsigned char c[64];
  std::memcpy(c, config, 64);
  state = State{};
  if (c[0] == 0) return;  // palette 0: the init state, as tilerelease
  std::string bad;
  if (c[0] != 1) bad = "palette_id " + std::to_string(c[0]) + " (only palette 1 exists)";
  for (int i = 1; i < 16 && bad.empty(); ++i)  // start_row too: this emulator never restarts
    if (c[i]) bad = "byte " + std::to_string(i) + " must be zero";
  for (int i = 32; i < 48 && bad.empty(); ++i)
    if (c[i]) bad = "reserved byte " + std::to_string(i) + " (colsb of tiles 8-15) must be zero";
  for (int i = 56; i < 64 && bad.empty(); ++i)
    if (c[i]) bad = "reserved byte " + std::to_string(i) + " (rows of tiles 8-15) must be zero";
  for (int t = 0; t < kTiles && bad.empty(); ++t) {
    const int colsb = c[16 + 2 * t] | (c[17 + 2 * t] << 8), rows = c[48 + t];
    if (rows > kMaxRows) bad = "tmm" + std::to_string(t) + ": " + std::to_string(rows) + " rows > 16";
    else if (colsb > kMaxColsb) bad = "tmm" + std::to_string(t) + ": " + std::to_string(colsb) + " bytes per row > 64";
    else if ((rows == 0) != (colsb == 0)) bad = "tmm" + std::to_string(t) + ": rows and colsb must both be zero or neither";
    state.rows[t] = rows;
    state.colsb[t] = colsb;
  }
  if (!bad.empty()) {
    state = State{};
    fault("ldtilecfg: " + bad + " (#GP)");
    return;
  }
  state.configured = true;
}

void tilerelease() { state = State{}; }

void tilezero(int tile) {
  if (!usable(tile, "tilezero")) return;
  std::memset(state.data[tile], 0, sizeof state.data[tile]);
}

void tileloadd(int tile, const void* base, int64_t stride) {
  if (!usable(tile, "tileloadd")) return;
  std::memset(state.data[tile], 0, sizeof state.data[tile]);
  const auto* src = static_cast<const unsigned char*>(base);
  for (int r = 0; r < state.rows[tile]; ++r)
    std::memcpy(state.data[tile][r], src + r * stride, static_cast<size_t>(state.colsb[tile]));
}

void tilestored(int tile, void* base, int64_t stride) {
  auto* dst = static_cast<unsigned char*>(base);
  if (state.poisoned || !usable(tile, "tilestored")) {
    // Only rows and bytes a configured tile would write; nothing at all when there is none.
    if (tile < 0 || tile >= kTiles) return;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int r = 0; r < state.rows[tile]; ++r)
      for (int b = 0; b + 4 <= state.colsb[tile]; b += 4) std::memcpy(dst + r * stride + b, &nan, 4);
    return;
  }
  for (int r = 0; r < state.rows[tile]; ++r)
    std::memcpy(dst + r * stride, state.data[tile][r], static_cast<size_t>(state.colsb[tile]));
}

// The SDM's operation: per row m, the even and the odd products of every k pair summed in two
// f32 accumulators per column (fused multiply-adds from zero), those two added, and the sum
// added to C[m][n]; every step rounded to nearest even with DAZ and FTZ.
void tdpbf16ps(int c, int a, int b) {
  if (!usable(c, "tdpbf16ps") || !usable(a, "tdpbf16ps") || !usable(b, "tdpbf16ps")) return;
  const int* rows = state.rows;
  const int* colsb = state.colsb;
  std::string bad;
  if (c == a || c == b || a == b) bad = "tmm" + std::to_string(c) + ", tmm" + std::to_string(a) + ", tmm" + std::to_string(b) + " must differ";
  else if (colsb[c] % 4 || colsb[a] % 4 || colsb[b] % 4) bad = "colsb must be multiples of 4";
  else if (rows[c] != rows[a]) bad = "C has " + std::to_string(rows[c]) + " rows, A " + std::to_string(rows[a]);
  else if (colsb[c] != colsb[b]) bad = "C has " + std::to_string(colsb[c]) + " bytes per row, B " + std::to_string(colsb[b]);
  else if (colsb[a] != 4 * rows[b]) bad = "A's " + std::to_string(colsb[a]) + " bytes per row are not 4 x B's " + std::to_string(rows[b]) + " rows";
  if (!bad.empty()) {
    fault("tdpbf16ps: " + bad + " (#UD)");
    return;
  }
  const int pairs = colsb[a] / 4, columns = colsb[c] / 4;
  for (int m = 0; m < rows[c]; ++m) {
    float even[kMaxColsb / 4] = {}, odd[kMaxColsb / 4] = {};
    for (int p = 0; p < pairs; ++p) {
      const float a0 = bf16_operand(state.data[a][m], 2 * p), a1 = bf16_operand(state.data[a][m], 2 * p + 1);
      for (int n = 0; n < columns; ++n) {
        even[n] = flush(std::fma(a0, bf16_operand(state.data[b][p], 2 * n), even[n]));
        odd[n] = flush(std::fma(a1, bf16_operand(state.data[b][p], 2 * n + 1), odd[n]));
      }
    }
    for (int n = 0; n < columns; ++n) {
      const float sum = flush(flush(f32_of(state.data[c][m], n)) + flush(even[n] + odd[n]));
      std::memcpy(state.data[c][m] + 4 * n, &sum, 4);
    }
  }
}

std::string take_fault() {
  std::lock_guard<std::mutex> lock(fault_mutex);
  std::string out;
  out.swap(first_fault);
  return out;
}

}  // namespace pit::cpu::amx_emulator
