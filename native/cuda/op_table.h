// The CUDA op table is filled by the op files themselves: each defines its kernels' host
// functions in pit::cuda with the contract's type (core/ops.h; declared below, so a drifting
// signature fails to compile or link) and registers them with PIT_CUDA_OP(name) at load time.
// The table is registered with the core on first use, at load, whether or not a GPU turns
// out to be usable: without one no tensor can be on the cuda device (read_device and
// Tensor::empty refuse it), and opTable() still lists what this build has kernels for.
#pragma once
#include "core/op_table.h"

namespace pit::cuda {

PIT_OPS(PIT_DECLARE_OP)
PIT_GPU_OPS(PIT_DECLARE_OP)

OpTable& op_table_entries();

}  // namespace pit::cuda

#define PIT_CUDA_OP(name)                                                                 \
  [[maybe_unused]] static const bool pit_cuda_op_registered_##name =                      \
      (::pit::cuda::op_table_entries().name = &::pit::cuda::name, true);
