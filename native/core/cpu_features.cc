#include "cpu_features.h"

#include <cstdlib>
#include <cstring>
#include <string>

#if PIT_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pit {
namespace {

enum Level { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAvx512Bf16 = 3, kAmx = 4 };
constexpr const char* kNames[] = {"scalar", "avx2", "avx512", "avx512bf16", "amx"};

struct Detected {
  int level = kScalar;
  bool amx_emulated = false;
  std::string note;
};

#if PIT_X86
// CPUID leaf 7 sub-leaf `sub`: {eax, ebx, ecx, edx}.
void cpuid7(unsigned sub, unsigned r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(7u), "c"(sub));
}

// Linux hands a process the AMX tile data state only when asked (arch_prctl
// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18); without it the first tile instruction faults.
bool request_amx_state(std::string& note) {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0) return true;
  note = "the kernel refused this process the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)";
  return false;
#else
  note = "AMX tiles are enabled only on Linux";
  return false;
#endif
}
#endif

constexpr const char* kAmxEmulated = "amx-emulated";

Detected detect() {
  Detected d;
  const char* isa = std::getenv("PIT_CPU_ISA");
  d.amx_emulated = isa && std::strcmp(isa, kAmxEmulated) == 0;
#if PIT_X86
  __builtin_cpu_init();
  bool avx512bf16 = false, amx = false;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) d.level = kAvx2;
  if (d.level == kAvx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    d.level = kAvx512;
    unsigned r0[4], r1[4];
    cpuid7(0, r0);
    cpuid7(1, r1);
    avx512bf16 = (r1[0] >> 5) & 1;                          // leaf 7.1 eax bit 5
    amx = ((r0[3] >> 22) & 1) && ((r0[3] >> 24) & 1);       // leaf 7.0 edx: AMX-BF16, AMX-TILE
  }
  if (avx512bf16) d.level = kAvx512Bf16;
  int cap = kAmx;
  if (d.amx_emulated) {
    cap = kAvx512Bf16;  // the real tiles stay untouched (and their grant unasked)
  } else if (isa) {
    cap = kScalar;
    for (int l = kAmx; l > kScalar; --l)
      if (std::strcmp(isa, kNames[l]) == 0) cap = l;
  }
  // Asked for only when it would be used, so a capped run leaves the process as it was.
  if (avx512bf16 && amx && cap >= kAmx && request_amx_state(d.note)) d.level = kAmx;
  if (cap < d.level) {
    d.note = std::string("capped by PIT_CPU_ISA=") + isa;
    d.level = cap;
  }
#endif
  if (d.amx_emulated)
    d.note = "PIT_CPU_ISA=amx-emulated: the bf16 GEMM runs the AMX kernel on a scalar tile emulator "
             "(for tests; slow), other kernels at most at avx512bf16";
  return d;
}

const Detected& detected() {
  static const Detected cached = detect();
  return cached;
}

}  // namespace

bool cpu_has_amx() { return detected().level >= kAmx; }
bool cpu_amx_emulated() { return detected().amx_emulated; }
bool cpu_has_avx512_bf16() { return detected().level >= kAvx512Bf16; }
bool cpu_has_avx512() { return detected().level >= kAvx512; }
bool cpu_has_avx2() { return detected().level >= kAvx2; }
const char* cpu_isa() { return kNames[detected().level]; }
const char* cpu_isa_note() { return detected().note.c_str(); }

}  // namespace pit
