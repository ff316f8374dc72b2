// The CPU backend's ops: pit::cpu::<op> for every op of the contract (core/ops.h), with its
// exact type; each is defined in the file its section header there names (cpu/<op>.cc) and
// registered by cpu/op_table.cc.
#pragma once
#include "core/op_table.h"

namespace pit::cpu {

PIT_OPS(PIT_DECLARE_OP)

}  // namespace pit::cpu
