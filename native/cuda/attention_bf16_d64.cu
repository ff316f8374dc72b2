// The bf16 tensor-core attention kernels instantiated for head dim 64, variants v1 and v2 (v3
// is v2 at this head dim; attention_bf16.cuh; one file per head dim keeps the builds short).
#include "cuda/attention_bf16.cuh"

namespace pit::cuda::attention_bf16 {

template void forward<64, 1>(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H);
template void backward<64, 1>(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                              const float* lse, int64_t B, int64_t L, int64_t H);
template void forward<64, 2>(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H);
template void backward<64, 2>(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                              const float* lse, int64_t B, int64_t L, int64_t H);

}  // namespace pit::cuda::attention_bf16
