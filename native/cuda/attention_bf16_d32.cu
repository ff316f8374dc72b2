// The bf16 tensor-core attention kernels instantiated for head dim 32, variants v1, v2, v3
// (attention_bf16.cuh; one file per head dim keeps the builds parallel and short).
#include "cuda/attention_bf16.cuh"

namespace pit::cuda::attention_bf16 {

template void forward<32, 1>(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H);
template void backward<32, 1>(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                              const float* lse, int64_t B, int64_t L, int64_t H);
template void forward<32, 2>(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H);
template void backward<32, 2>(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                              const float* lse, int64_t B, int64_t L, int64_t H);
template void forward<32, 3>(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H);
template void backward<32, 3>(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                              const float* lse, int64_t B, int64_t L, int64_t H);

}  // namespace pit::cuda::attention_bf16
