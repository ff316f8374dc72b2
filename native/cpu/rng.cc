// fill_uniform / fill_normal on the CPU: the Philox stream of core/rng.h, four elements
// per generator call, multi-threaded; identical for any thread count.
#include <cmath>

#include "core/parallel.h"
#include "core/rng.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

constexpr float kTwoPow24Inv = 1.0f / 16777216.0f;

inline float uniform01(uint32_t x) { return static_cast<float>(x >> 8) * kTwoPow24Inv; }

}  // namespace

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      Philox4 r = philox4x32_10(static_cast<uint64_t>(blk), offset, seed);
      for (int lane = 0; lane < 4 && blk * 4 + lane < n; ++lane) out[blk * 4 + lane] = uniform01(r.x[lane]);
    }
  });
}

void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset) {
  int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, 2048, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      Philox4 r = philox4x32_10(static_cast<uint64_t>(blk), offset, seed);
      float v[4];
      for (int pair = 0; pair < 2; ++pair) {
        float u1 = (static_cast<float>(r.x[2 * pair] >> 8) + 1.0f) * kTwoPow24Inv;
        float u2 = uniform01(r.x[2 * pair + 1]);
        float radius = std::sqrt(-2.0f * std::log(u1));
        float angle = 6.2831853071795864f * u2;
        v[2 * pair] = radius * std::cos(angle);
        v[2 * pair + 1] = radius * std::sin(angle);
      }
      for (int lane = 0; lane < 4 && blk * 4 + lane < n; ++lane) out[blk * 4 + lane] = v[lane];
    }
  });
}

}  // namespace pit::cpu
