#include "cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace pit {
namespace {

int detect_level() {  // 2 = AVX-512, 1 = AVX2+FMA, 0 = scalar
  int level = 0;
#if PIT_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
  if (level == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    level = 2;
#endif
  if (const char* cap = std::getenv("PIT_CPU_ISA")) {
    int capped = std::strcmp(cap, "avx512") == 0 ? 2 : std::strcmp(cap, "avx2") == 0 ? 1 : 0;
    if (capped < level) level = capped;
  }
  return level;
}

int level() {
  static const int cached = detect_level();
  return cached;
}

}  // namespace

bool cpu_has_avx512() { return level() >= 2; }
bool cpu_has_avx2() { return level() >= 1; }
const char* cpu_isa() { return level() == 2 ? "avx512" : level() == 1 ? "avx2" : "scalar"; }

}  // namespace pit
