// Fills the CPU op table (native/core/op_table.h) from the functions of ops.h, and holds the
// CUDA table a CUDA build registers.
#include "core/op_table.h"

namespace pit {
namespace {

OpTable make_cpu_table() {
  OpTable t;
#define PIT_OP_FILL(name) t.name = &cpu::name;
  PIT_OPS(PIT_OP_FILL)
#undef PIT_OP_FILL
  t.fill_uniform = &pit::fill_uniform;
  t.fill_normal = &pit::fill_normal;
  return t;
}

const OpTable* registered_cuda_table = nullptr;

}  // namespace

const OpTable& cpu_op_table() {
  static const OpTable table = make_cpu_table();
  return table;
}

const OpTable* cuda_op_table() { return registered_cuda_table; }
void register_cuda_op_table(const OpTable* table) { registered_cuda_table = table; }

}  // namespace pit
