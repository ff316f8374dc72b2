// The CUDA op table is filled by the op files themselves: each defines its kernels' host
// functions in pit::cuda with the exact signature of the CPU op of the same name (or, for the
// GPU-only entries such as attention_forward_bf16, of OpTable's member; checked by the
// compiler through OpTable's entry types) and registers them with PIT_CUDA_OP(name) at load
// time. initialize() publishes the table to the binding once a GPU is ready.
#pragma once
#include "core/op_table.h"

namespace pit::cuda {

OpTable& op_table_entries();

}  // namespace pit::cuda

#define PIT_CUDA_OP(name)                                                                 \
  [[maybe_unused]] static const bool pit_cuda_op_registered_##name =                      \
      (::pit::cuda::op_table_entries().name = &::pit::cuda::name, true);
