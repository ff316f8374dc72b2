// Run-time CPU feature checks and the attribute that compiles a loop once per ISA level.
//
// Fast paths with intrinsics live inside functions marked PIT_TARGET_<ISA> and are called only
// when the matching cpu_has_<isa>() says so; the plain C++ path beside them is the reference
// and the fallback. Simple loops use PIT_MULTIVERSION instead: GCC compiles them for AVX-512,
// AVX2 and baseline x86-64 and picks one when the addon loads.
//
// The levels, each including the ones below it:
//   amx         AMX-BF16 tiles (tdpbf16ps), where the CPU has them and the kernel grants this
//               process the tile state (arch_prctl ARCH_REQ_XCOMP_PERM); Sapphire Rapids on
//   avx512bf16  AVX512-BF16 (vdpbf16ps: two bf16 multiply-adds per f32 lane); Zen 4, Cooper Lake
//   avx512      AVX-512 F/BW/DQ/VL
//   avx2        AVX2 + FMA
//   scalar      baseline x86-64 (or any other architecture)
// Only bf16 kernels use the two top levels; f32 kernels see them as avx512. amx runs the bf16
// GEMM on tiles (cpu/gemm_bf16.cc); bf16 attention sees it as avx512bf16.
// PIT_CPU_ISA=amx-emulated is no level: it caps the others at avx512bf16 and runs the bf16 GEMM's
// AMX kernel on a scalar emulator of the tiles (cpu/amx_emulator.h), so that tests check that
// kernel on any CPU. Never chosen without being asked for; slow.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define PIT_X86 1
#define PIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define PIT_TARGET_AVX512BF16 \
  __attribute__((target("avx512bf16,avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define PIT_TARGET_AMX \
  __attribute__((target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define PIT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#if !defined(__clang__)
#define PIT_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PIT_MULTIVERSION
#endif
#else
#define PIT_X86 0
#define PIT_TARGET_AVX512
#define PIT_TARGET_AVX512BF16
#define PIT_TARGET_AMX
#define PIT_TARGET_AVX2
#define PIT_MULTIVERSION
#endif

namespace pit {

// PIT_CPU_ISA=amx|avx512bf16|avx512|avx2|scalar caps what the fast paths may use (for tests
// and benches), amx-emulated as above; read once, when the addon loads.
bool cpu_has_amx();
bool cpu_amx_emulated();
bool cpu_has_avx512_bf16();
bool cpu_has_avx512();
bool cpu_has_avx2();
// "amx", "avx512bf16", "avx512", "avx2" or "scalar": the widest level in use.
const char* cpu_isa();
// Why the level is below what this CPU's instructions would allow, or "" (PIT_CPU_ISA set, or
// the kernel refusing the AMX tile state); under amx-emulated, that the emulator runs.
const char* cpu_isa_note();

}  // namespace pit
