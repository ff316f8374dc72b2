// PIT_HOST_DEVICE marks core math that compiles for the host and, under nvcc, for the GPU too
// (core/rng.h's Philox, core/diffusion.h's per-element diffusion math): one definition that
// both backends run.
#pragma once

#ifdef __CUDACC__
#define PIT_HOST_DEVICE __host__ __device__
#else
#define PIT_HOST_DEVICE
#endif
