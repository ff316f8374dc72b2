// The CPU backend's op table: every op of PIT_OPS (core/op_table.h), complete by
// construction (an op missing here fails to link), registered with the core at load.
#include "core/op_table.h"
#include "core/rng.h"
#include "cpu/backend.h"

namespace pit::cpu {
namespace {

OpTable make_table() {
  OpTable t;
#define PIT_OP_FILL(name, js_export) t.name = &cpu::name;
  PIT_OPS(PIT_OP_FILL)
#undef PIT_OP_FILL
  return t;
}

const OpTable table = make_table();
[[maybe_unused]] const bool registered = (register_op_table(Device::CPU, &table), true);

}  // namespace
}  // namespace pit::cpu
