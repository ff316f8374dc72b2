// Run-time CPU feature checks and the attribute that compiles a loop once per ISA level.
//
// Fast paths with intrinsics live inside functions marked PIT_TARGET_AVX512 or
// PIT_TARGET_AVX2 and are called only when cpu_has_avx512() / cpu_has_avx2() say so; the
// plain C++ path beside them is the reference and the fallback. Simple loops use
// PIT_MULTIVERSION instead: GCC compiles them for AVX-512, AVX2 and baseline x86-64 and
// picks one when the addon loads.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define PIT_X86 1
#define PIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define PIT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#if !defined(__clang__)
#define PIT_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PIT_MULTIVERSION
#endif
#else
#define PIT_X86 0
#define PIT_TARGET_AVX512
#define PIT_TARGET_AVX2
#define PIT_MULTIVERSION
#endif

namespace pit {

// PIT_CPU_ISA=avx512|avx2|scalar caps what the fast paths may use (for tests and benches).
bool cpu_has_avx512();
bool cpu_has_avx2();
const char* cpu_isa();  // "avx512", "avx2" or "scalar": the widest path in use

}  // namespace pit
