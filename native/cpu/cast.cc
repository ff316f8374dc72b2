// f32 <-> bf16 conversion (round to nearest even), the storage format of GPU activations.
#include "core/dtype.h"
#include "core/parallel.h"
#include "cpu/backend.h"

namespace pit::cpu {

void cast_f32_to_bf16(uint16_t* out, const float* x, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = f32_to_bf16(x[i]);
  });
}

void cast_bf16_to_f32(float* out, const uint16_t* x, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = bf16_to_f32(x[i]);
  });
}

}  // namespace pit::cpu
