// Checks of the AMX tile emulator (cpu/amx_emulator.h) against the Intel SDM's definitions,
// so that the bf16 GEMM's AMX kernel, tested on it (PIT_CPU_ISA=amx-emulated), is tested
// against the instructions and not against the emulator's own mistakes. Built and run by
// test/cpu-amx-emulator.test.ts:
//   g++ -std=c++17 -O2 -Inative native/cpu/dev/amx_emulator_check.cc native/cpu/amx_emulator.cc -pthread
// Prints "ok <check>" or "FAIL <check>: why" per check, then "<n> of <m> checks failed".
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "cpu/amx_emulator.h"

namespace emu = pit::cpu::amx_emulator;
using pit::bf16_to_f32;
using pit::f32_to_bf16;

namespace {

int checks = 0, failed = 0;

void report(const std::string& name, const std::string& why) {
  ++checks;
  if (why.empty()) {
    std::printf("ok %s\n", name.c_str());
  } else {
    ++failed;
    std::printf("FAIL %s: %s\n", name.c_str(), why.c_str());
  }
}

// A palette-1 TILECFG: tile t gets rows[t] x colsb[t].
struct Config {
  unsigned char bytes[64] = {};
  Config() { bytes[0] = 1; }
  Config& tile(int t, int rows, int colsb) {
    bytes[16 + 2 * t] = static_cast<unsigned char>(colsb & 0xff);
    bytes[17 + 2 * t] = static_cast<unsigned char>(colsb >> 8);
    bytes[48 + t] = static_cast<unsigned char>(rows);
    return *this;
  }
};

// What emu records for `ops` (run on a fresh thread state): its fault, "" if none.
template <typename Ops>
std::string fault_of(const Ops& ops) {
  emu::tilerelease();
  emu::take_fault();
  ops();
  emu::tilerelease();
  return emu::take_fault();
}

void expect_fault(const std::string& name, const std::string& needle, const std::string& fault) {
  if (fault.empty()) return report(name, "no fault recorded");
  if (fault.find(needle) == std::string::npos) return report(name, "fault '" + fault + "' lacks '" + needle + "'");
  report(name, "");
}

void config_limits() {
  expect_fault("ldtilecfg: palette 2 (#GP)", "palette_id 2", fault_of([] {
    Config c;
    c.bytes[0] = 2;
    emu::ldtilecfg(c.bytes);
  }));
  expect_fault("ldtilecfg: reserved byte 5 set (#GP)", "byte 5", fault_of([] {
    Config c;
    c.tile(0, 16, 64).bytes[5] = 1;
    emu::ldtilecfg(c.bytes);
  }));
  expect_fault("ldtilecfg: 17 rows (#GP)", "17 rows > 16", fault_of([] { emu::ldtilecfg(Config().tile(3, 17, 64).bytes); }));
  expect_fault("ldtilecfg: 65 bytes per row (#GP)", "65 bytes per row > 64", fault_of([] { emu::ldtilecfg(Config().tile(7, 16, 65).bytes); }));
  expect_fault("ldtilecfg: rows without colsb (#GP)", "both be zero", fault_of([] { emu::ldtilecfg(Config().tile(1, 4, 0).bytes); }));
  expect_fault("ldtilecfg: tile 8 in palette 1 (#GP)", "tiles 8-15", fault_of([] {
    Config c;
    c.bytes[16 + 2 * 8] = 64;
    emu::ldtilecfg(c.bytes);
  }));
  report("ldtilecfg: 16 rows x 64 bytes, all 8 tiles, accepted", fault_of([] {
    Config c;
    for (int t = 0; t < 8; ++t) c.tile(t, 16, 64);
    emu::ldtilecfg(c.bytes);
    emu::tilezero(7);
  }));
  expect_fault("tileloadd before ldtilecfg (#UD)", "before ldtilecfg", fault_of([] {
    float x[16] = {};
    emu::tileloadd(0, x, 64);
  }));
  expect_fault("tilezero of an unconfigured tile (#UD)", "not configured", fault_of([] {
    emu::ldtilecfg(Config().tile(0, 16, 64).bytes);
    emu::tilezero(1);
  }));
}

void dot_product_shapes() {
  auto run = [](int c_rows, int c_colsb, int a_rows, int a_colsb, int b_rows, int b_colsb, int c, int a, int b) {
    return fault_of([=] {
      Config cfg;
      cfg.tile(0, c_rows, c_colsb).tile(1, a_rows, a_colsb).tile(2, b_rows, b_colsb);
      emu::ldtilecfg(cfg.bytes);
      emu::tdpbf16ps(c, a, b);
    });
  };
  report("tdpbf16ps: C 16x64, A 16x64, B 16x64 accepted", run(16, 64, 16, 64, 16, 64, 0, 1, 2));
  report("tdpbf16ps: C 3x20, A 3x28, B 7x20 accepted", run(3, 20, 3, 28, 7, 20, 0, 1, 2));
  expect_fault("tdpbf16ps: C.rows != A.rows (#UD)", "rows, A", run(8, 64, 16, 64, 16, 64, 0, 1, 2));
  expect_fault("tdpbf16ps: C.colsb != B.colsb (#UD)", "bytes per row, B", run(16, 64, 16, 64, 16, 32, 0, 1, 2));
  expect_fault("tdpbf16ps: A.colsb != 4 B.rows (#UD)", "not 4 x B's", run(16, 64, 16, 60, 16, 64, 0, 1, 2));
  expect_fault("tdpbf16ps: colsb not a multiple of 4 (#UD)", "multiples of 4", run(16, 62, 16, 64, 16, 62, 0, 1, 2));
  expect_fault("tdpbf16ps: C and A the same tile (#UD)", "must differ", run(16, 64, 16, 64, 16, 64, 1, 1, 2));
}

uint16_t bf16_bits(float x) { return f32_to_bf16(x); }

// C (m x n f32) += A (m x 2p bf16) · B (p pairs x n, pair-interleaved), on tiles 0, 1, 2
// configured to exactly those shapes, loaded and stored with strides wider than the rows.
std::vector<float> tile_product(int m, int n, int p, const std::vector<uint16_t>& a,
                                const std::vector<uint16_t>& b, const std::vector<float>& c0) {
  constexpr int a_ld = 40, b_ld = 40, c_ld = 24;  // elements; rows are at most 32, 32, 16 wide
  std::vector<uint16_t> a_mem(16 * a_ld, 0xffff), b_mem(16 * b_ld, 0xffff);  // NaN beyond the rows
  std::vector<float> c_mem(16 * c_ld, -7.0f);
  for (int r = 0; r < m; ++r)
    for (int k = 0; k < 2 * p; ++k) a_mem[r * a_ld + k] = a[r * 2 * p + k];
  for (int q = 0; q < p; ++q)
    for (int j = 0; j < 2 * n; ++j) b_mem[q * b_ld + j] = b[q * 2 * n + j];
  for (int r = 0; r < m; ++r)
    for (int j = 0; j < n; ++j) c_mem[r * c_ld + j] = c0[r * n + j];
  emu::ldtilecfg(Config().tile(0, m, 4 * n).tile(1, m, 4 * p).tile(2, p, 4 * n).bytes);
  emu::tileloadd(0, c_mem.data(), c_ld * 4);
  emu::tileloadd(1, a_mem.data(), a_ld * 2);
  emu::tileloadd(2, b_mem.data(), b_ld * 2);
  emu::tdpbf16ps(0, 1, 2);
  emu::tilestored(0, c_mem.data(), c_ld * 4);
  emu::tilerelease();
  return c_mem;  // with its stride: element (r, j) at r * 24 + j
}

void dot_product_values() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const int m = 5, n = 7, p = 9;
  std::vector<uint16_t> a(m * 2 * p), b(p * 2 * n);
  std::vector<float> c0(m * n);
  for (auto& x : a) x = bf16_bits(normal(rng));
  for (auto& x : b) x = bf16_bits(normal(rng));
  for (auto& x : c0) x = normal(rng);
  emu::take_fault();
  const std::vector<float> c = tile_product(m, n, p, a, b, c0);
  std::string why = emu::take_fault();
  double worst = 0;
  for (int r = 0; r < m && why.empty(); ++r)
    for (int j = 0; j < n; ++j) {
      double exact = c0[r * n + j], scale = std::fabs(exact);
      for (int q = 0; q < p; ++q)
        for (int h = 0; h < 2; ++h) {
          const double t = double(bf16_to_f32(a[r * 2 * p + 2 * q + h])) * bf16_to_f32(b[q * 2 * n + 2 * j + h]);
          exact += t, scale += std::fabs(t);
        }
      worst = std::max(worst, std::fabs(c[r * 24 + j] - exact) / (scale * 0x1p-24));
    }
  // 2p + 1 roundings of at most half an ulp of the running sums, each <= the sum of |terms|.
  if (why.empty() && !(worst <= p + 2)) why = "error " + std::to_string(worst) + " x 2^-24 Σ|terms| > " + std::to_string(p + 2);
  report("tdpbf16ps: 5 x 7 from 9 pairs against float64, strided loads and stores", why);

  // Rows and bytes outside the configuration: stores leave them alone, loads never read them
  // (the NaN beyond each row and below the last one would show).
  std::string outside;
  for (int r = 0; r < 16; ++r)
    for (int j = 0; j < 24; ++j)
      if ((r >= m || j >= n) && c[r * 24 + j] != -7.0f) outside = "element (" + std::to_string(r) + ", " + std::to_string(j) + ") written";
  for (int r = 0; r < m && outside.empty(); ++r)
    for (int j = 0; j < n; ++j)
      if (std::isnan(c[r * 24 + j])) outside = "NaN from outside the configured rows read";
  report("tileloadd / tilestored: only rows x colsb, at the given stride", outside);
}

// One A row and one B column of a single pair, C = 0: the value of one dot product step.
float one_pair(float a0, float a1, float b0, float b1, float c = 0.0f) {
  return tile_product(1, 1, 1, {bf16_bits(a0), bf16_bits(a1)}, {bf16_bits(b0), bf16_bits(b1)}, {c})[0];
}

uint16_t raw_bits_bf16(uint16_t h) { return h; }

void pairing_and_flushing() {
  // A's even element meets B's even element of the same column, odd meets odd.
  const float v = one_pair(2.0f, 3.0f, 5.0f, 7.0f);
  report("tdpbf16ps: even with even, odd with odd (2·5 + 3·7 = 31)", v == 31.0f ? "" : "got " + std::to_string(v));
  // DAZ: a denormal bf16 (bits 0x0001, 2^-133) times 2^120 reads as 0, not 2^-13.
  const float daz = tile_product(1, 1, 1, {raw_bits_bf16(0x0001), 0}, {bf16_bits(0x1p120f), 0}, {0.0f})[0];
  report("tdpbf16ps: denormal bf16 inputs read as zero", daz == 0.0f ? "" : "got " + std::to_string(daz));
  // FTZ: 2^-70 · 2^-70 = 2^-140, a denormal f32, is flushed (an IEEE FMA would keep it).
  const float ftz = one_pair(0x1p-70f, 0.0f, 0x1p-70f, 0.0f);
  report("tdpbf16ps: denormal results flushed to zero", ftz == 0.0f && !std::signbit(ftz) ? "" : "got " + std::to_string(ftz));
  // The SDM sums a column's even products and its odd products apart (from zero), adds the
  // two, and only then adds C: 1 + (2^-24 + 2^-24) = 1 + 2^-23. Adding each product to C in
  // turn would round twice to even, back to 1.
  const float order = one_pair(0x1p-12f, 0x1p-12f, 0x1p-12f, 0x1p-12f, 1.0f);
  report("tdpbf16ps: the pair's products summed before C is added", order == 1.0f + 0x1p-23f ? "" : "got " + std::to_string(order));
}

// The tile state is per thread: a thread's configuration is not another's.
void per_thread_state() {
  emu::take_fault();
  emu::ldtilecfg(Config().tile(0, 16, 64).bytes);
  std::string other;
  std::thread([&] {
    emu::tilezero(0);
    other = emu::take_fault();
  }).join();
  emu::tilezero(0);  // still configured here
  const std::string mine = emu::take_fault();
  emu::tilerelease();
  std::string why;
  if (other.find("before ldtilecfg") == std::string::npos) why = "another thread saw this thread's configuration";
  else if (!mine.empty()) why = "this thread lost its configuration: " + mine;
  report("tile configuration and data are per thread", why);
}

// After a fault, stores write NaN until the next ldtilecfg.
void poison_after_fault() {
  emu::take_fault();
  emu::ldtilecfg(Config().tile(0, 2, 8).tile(1, 2, 8).tile(2, 3, 8).bytes);
  emu::tilezero(0);
  emu::tdpbf16ps(0, 1, 2);  // A.colsb 8 != 4 x B.rows 12: #UD
  float out[4] = {1, 1, 1, 1};
  emu::tilestored(0, out, 8);
  const std::string fault = emu::take_fault();
  emu::tilerelease();
  std::string why;
  if (fault.empty()) why = "no fault";
  for (float x : out)
    if (!std::isnan(x)) why = "a store after the fault wrote a number";
  report("a faulted thread's stores write NaN", why);
}

}  // namespace

int main() {
  config_limits();
  dot_product_shapes();
  dot_product_values();
  pairing_and_flushing();
  per_thread_state();
  poison_after_fault();
  std::printf("%d of %d checks failed\n", failed, checks);
  return failed ? 1 : 0;
}
