// The CPU backend's ops: pit::cpu::<op> for every op of the contract (core/ops.h), with its
// exact type; each is defined in the file its section header there names (cpu/<op>.cc) and
// registered by cpu/op_table.cc.
#pragma once
#include <string>

#include "core/op_table.h"

namespace pit::cpu {

PIT_OPS(PIT_DECLARE_OP)

// How matmul_forward_bf16 / matmul_backward_bf16 run on this CPU (buildInfo().cpuBf16Gemm):
// "amx" (packed bf16 panels on AMX tiles, tdpbf16ps), "avx512bf16" (vdpbf16ps), "amx-emulated"
// (the AMX kernel on the tile emulator: PIT_CPU_ISA=amx-emulated only) or "f32-widened"
// (gemm_bf16.cc, matmul.cc).
const char* bf16_gemm_path();

// The multiply-add peak on all threads (peak.cc): kind "f32" (FMA) or "bf16" (vdpbf16ps),
// measured for about `seconds` in five runs; the fastest run's FLOPs and wall time. A
// TypeError where this CPU level has no such loop.
struct PeakRun {
  double flops, seconds;
};
PeakRun cpu_peak(const std::string& kind, double seconds);

}  // namespace pit::cpu
