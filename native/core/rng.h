// Philox 4x32-10 (Salmon et al., SC'11): a counter-based generator, so element i of a
// stream is a pure function of (seed, offset, i). Any backend, any thread split, gives
// the same numbers; the CUDA kernels use the same formulas.
//
// Element i draws from block i/4, counter (lo(i/4), hi(i/4), lo(offset), hi(offset)),
// key (lo(seed), hi(seed)), lane i%4. uniform: (x >> 8)·2^-24 in [0, 1).
// normal: Box-Muller on lanes (0,1) and (2,3): u1 = ((x0 >> 8) + 1)·2^-24 in (0, 1],
// u2 = (x1 >> 8)·2^-24, n0 = r cos(2πu2), n1 = r sin(2πu2), r = sqrt(-2 ln u1).
#pragma once
#include <cstdint>

// The generator itself compiles for the GPU too (native/cuda/rng.cu).
#include "core/host_device.h"

namespace pit {

struct Philox4 {
  uint32_t x[4];
};

PIT_HOST_DEVICE inline Philox4 philox4x32_10(uint64_t block, uint64_t offset, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
  uint32_t c2 = static_cast<uint32_t>(offset), c3 = static_cast<uint32_t>(offset >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t(0xD2511F53u) * c0;
    uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = static_cast<uint32_t>(p1);
    c2 = n2;
    c3 = static_cast<uint32_t>(p0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// The fills built on it are ops of the table (fill_uniform, fill_normal in core/ops.h):
// cpu/rng.cc and cuda/rng.cu give the same uniform bits, and normals equal up to the last
// bits of the GPU's logf/sincosf.

}  // namespace pit
