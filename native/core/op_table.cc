// The registry of each device's op table (core/op_table.h) and the listing behind opTable().
#include "core/op_table.h"

namespace pit {
namespace {

// Indexed by Device. Zero-initialised before any static initialiser runs, so backends may
// register from theirs in any order.
const OpTable* registered[2] = {nullptr, nullptr};

size_t slot(Device device) { return device == Device::CPU ? 0 : 1; }

}  // namespace

void register_op_table(Device device, const OpTable* table) { registered[slot(device)] = table; }

const OpTable* op_table(Device device) { return registered[slot(device)]; }

std::vector<OpListing> list_ops() {
  std::vector<OpListing> out;
  auto add = [&](const char* name, const char* js_export, bool gpu_only, auto OpTable::*entry) {
    OpListing op{name, js_export, gpu_only, {}};
    for (Device d : {Device::CPU, Device::CUDA})
      if (const OpTable* t = op_table(d); t && t->*entry) op.devices.push_back(d);
    out.push_back(std::move(op));
  };
#define PIT_LIST_OP(name, js_export) add(#name, js_export, false, &OpTable::name);
#define PIT_LIST_GPU_OP(name, js_export) add(#name, js_export, true, &OpTable::name);
  PIT_OPS(PIT_LIST_OP)
  PIT_GPU_OPS(PIT_LIST_GPU_OP)
#undef PIT_LIST_OP
#undef PIT_LIST_GPU_OP
  return out;
}

}  // namespace pit
