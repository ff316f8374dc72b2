// The backend contract: the type of every op that a backend (native/cpu/, native/cuda/)
// implements, as a function type in pit::ops. Every op is a free function over raw,
// contiguous pointers on its device: outputs first, then inputs, then sizes; shapes in the
// comments. The binding has already checked dtypes, devices and shapes, so backends trust
// their arguments. Each backend defines pit::<backend>::<op> with exactly this type, in the
// file its section header names (matmul.cc: cpu/matmul.cc and cuda/matmul.cu), and registers
// it in the op table (core/op_table.h), whose op list also names each op's binding export.
#pragma once
#include <cstdint>
#include <vector>

#include "dtype.h"

namespace pit {

enum class GeluForm { Erf, Tanh };  // exact 0.5x(1+erf(x/√2)), or the tanh approximation

namespace diffusion {
struct Step;  // core/diffusion.h: only the diffusion files include the math
}

}  // namespace pit

namespace pit::ops {

// ---- matmul.cc ----------------------------------------------------------------------
// out (batch, M, N) = op(A) · op(B) (+ bias (N)), accumulated into out when `accumulate`.
// A is stored (batch, M, K), or (batch, K, M) when trans_a. B is stored (K, N), or (N, K)
// when trans_b, and has a batch dimension (batch, ...) unless b_shared (one B for all).
using matmul_forward = void(float* out, const float* a, const float* b, const float* bias, int64_t batch,
                            int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared,
                            bool accumulate);
// Gradients of matmul_forward (without accumulate) given dout (batch, M, N): da in A's
// stored layout, db in B's stored layout (summed over the batch when b_shared), dbias (N)
// = column sums of dout. Each of da, db, dbias may be null (not wanted). Overwrites.
using matmul_backward = void(float* da, float* db, float* dbias, const float* dout, const float* a,
                             const float* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                             bool trans_b, bool b_shared);

// ---- attention.cc -------------------------------------------------------------------
// Multi-head self-attention on packed qkv (B, L, 3, H, D) -> out (B, L, H, D), with
// scale D^-0.5, no mask. lse (B, H, L) receives the natural-log log-sum-exp of each
// query's scaled scores. Tiled with an online softmax; never materialises L x L.
using attention_forward = void(float* out, float* lse, const float* qkv, int64_t B, int64_t L, int64_t H,
                               int64_t D);
// dqkv (B, L, 3, H, D), fully overwritten, from dout (B, L, H, D) and the forward's
// qkv, out and lse; scores are recomputed tile by tile.
using attention_backward = void(float* dqkv, const float* dout, const float* qkv, const float* out,
                                const float* lse, int64_t B, int64_t L, int64_t H, int64_t D);

// ---- attention_bf16.cc (cpu), attention_bf16.cu (cuda) --------------------------------------
// attention_forward / attention_backward on bf16 qkv, out, dout and dqkv (uint16_t bf16
// bits) with fp32 lse; otherwise the same shapes and definition. bf16 products, fp32 sums and
// softmax statistics, P and dS rounded to bf16 before the matmuls that use them, outputs
// rounded once (the CPU without AVX512-BF16 computes in f32 and rounds the outputs).
using attention_forward_bf16 = void(uint16_t* out, float* lse, const uint16_t* qkv, int64_t B, int64_t L, int64_t H,
                                    int64_t D);
using attention_backward_bf16 = void(uint16_t* dqkv, const uint16_t* dout, const uint16_t* qkv, const uint16_t* out,
                                     const float* lse, int64_t B, int64_t L, int64_t H, int64_t D);

// ---- layernorm.cc -------------------------------------------------------------------
// x (N, C) -> out (N, C), mean (N), rstd (N) = 1/sqrt(var + eps) (biased variance).
// weight, bias (C) are null for the non-affine form.
using layernorm_forward = void(float* out, float* mean, float* rstd, const float* x, const float* weight,
                               const float* bias, int64_t N, int64_t C, float eps);
// dx (N, C); dweight, dbias (C) overwritten, null when not wanted (or non-affine).
using layernorm_backward = void(float* dx, float* dweight, float* dbias, const float* dout, const float* x,
                                const float* weight, const float* mean, const float* rstd, int64_t N,
                                int64_t C);

// ---- gelu.cc ------------------------------------------------------------------------
using gelu_forward = void(float* out, const float* x, int64_t n, GeluForm form);
using gelu_backward = void(float* dx, const float* dout, const float* x, int64_t n, GeluForm form);

// ---- silu.cc ------------------------------------------------------------------------
using silu_forward = void(float* out, const float* x, int64_t n);
using silu_backward = void(float* dx, const float* dout, const float* x, int64_t n);

// ---- modulate.cc --------------------------------------------------------------------
// out (B, L, C) = x · (1 + scale[b]) + shift[b]; shift, scale (B, C).
using modulate_forward = void(float* out, const float* x, const float* shift, const float* scale, int64_t B,
                              int64_t L, int64_t C);
// dx (B, L, C), dshift (B, C), dscale (B, C); any may be null.
using modulate_backward = void(float* dx, float* dshift, float* dscale, const float* dout, const float* x,
                               const float* scale, int64_t B, int64_t L, int64_t C);

// ---- gated_residual.cc --------------------------------------------------------------
// out (B, L, C) = x + gate[b] · y; gate (B, C). (dx = dout, so the backward skips it.)
using gated_residual_forward = void(float* out, const float* x, const float* y, const float* gate, int64_t B,
                                    int64_t L, int64_t C);
// dy (B, L, C), dgate (B, C); either may be null.
using gated_residual_backward = void(float* dy, float* dgate, const float* dout, const float* y,
                                     const float* gate, int64_t B, int64_t L, int64_t C);

// ---- elementwise.cc -----------------------------------------------------------------
// b broadcasts over leading dims: element i of a meets b[i % nb] (nb divides n; nb = n is
// the same shape, nb = 1 a scalar).
using add_forward = void(float* out, const float* a, const float* b, int64_t n, int64_t nb);
using mul_forward = void(float* out, const float* a, const float* b, int64_t n, int64_t nb);
using scale_forward = void(float* out, const float* x, float alpha, int64_t n);
using axpy = void(float* y, const float* x, float alpha, int64_t n);  // y += alpha · x
using fill = void(float* out, float value, int64_t n);

// ---- softmax_cross_entropy.cc ------------------------------------------------------
// logits (N, K), targets (N) in [0, K). losses (N): cross-entropy against the label-smoothed
// target (1 - s on the label, s/K everywhere). dlogits (N, K), if not null, =
// grad_scale · (softmax - smoothed target), in the same pass.
using softmax_cross_entropy = void(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                                   int64_t N, int64_t K, float smoothing, float grad_scale);

// ---- mse.cc -------------------------------------------------------------------------
// pred, target (B, L, P); mask (B, L) or null. loss (1) = mean over tokens of the
// per-token mean over P of (pred - target)^2, weighted by mask (Σ mask·e / Σ mask).
using mse_forward = void(float* loss, const float* pred, const float* target, const float* mask, int64_t B,
                         int64_t L, int64_t P);
// dpred (B, L, P) = dloss[0] · ∂loss/∂pred.
using mse_backward = void(float* dpred, const float* dloss, const float* pred, const float* target,
                          const float* mask, int64_t B, int64_t L, int64_t P);

// ---- per_sample_axpby.cc ------------------------------------------------------------
// out (B, n) = a[b]·x (B, n) + c[b]·y (B, n), one coefficient pair per sample: a, c (B). y and c
// are null together for out = a[b]·x. out may be x or y (element for element). Diffusion's
// q_sample (√ᾱ_t x₀ + √(1−ᾱ_t) ε) and posterior mean at per-sample t.
using per_sample_axpby = void(float* out, const float* x, const float* y, const float* a, const float* c, int64_t B,
                              int64_t n);

// ---- diffusion_loss.cc ----------------------------------------------------------------
// The hybrid loss of DiT / improved DDPM (SPEC §4; the per-element math: core/diffusion.h).
// model_out (B, 2C, N): ε̂ in channels [0, C), v in [C, 2C); x0, xt, noise (B, C, N); coefs
// (B, diffusion::kLossCoefs), each sample's schedule row at its t.
//   terms (2) = [mean over B·C·N of (ε̂ − ε)², mean of the vb term in bits (ε̂ detached)]
//   loss (1) = terms[0] + terms[1]
// vb (B, C, N), when not null, receives each element's vb term. Either of terms, vb may be null.
using diffusion_loss_forward = void(float* loss, float* terms, float* vb, const float* model_out, const float* x0,
                                    const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                                    int64_t N);
// dout (B, 2C, N) = dloss[0]·∂loss/∂model_out: the MSE's gradient in the ε̂ channels, the vb
// term's (through v only) in the v channels. dloss is on the device.
using diffusion_loss_backward = void(float* dout, const float* dloss, const float* model_out, const float* x0,
                                     const float* xt, const float* noise, const float* coefs, int64_t B, int64_t C,
                                     int64_t N);

// ---- diffusion_step.cc ----------------------------------------------------------------
// One sampling step (ancestral or DDIM, core/diffusion.h's step_element) for every element:
// x_next, xt (B, C, N); model_out (B, Cout, N), Cout = 2C (learned σ) or C; with guidance
// (guided) model_out is (2B, Cout, N), the conditional half first, and the first
// step.guided_channels of its Cout channels are guided, the rest (and the variance, unless
// guided) taken from the conditional half. noise (B, C, N) or null (no noise this step).
using diffusion_step = void(float* x_next, const float* model_out, const float* xt, const float* noise,
                            const diffusion::Step& step, bool guided, int64_t B, int64_t C, int64_t Cout, int64_t N);

// ---- reduce.cc ----------------------------------------------------------------------
// x viewed as (outer, n, inner) -> out (outer, inner): sum over the middle axis (or mean).
using sum_forward = void(float* out, const float* x, int64_t outer, int64_t n, int64_t inner, bool mean);
// dx (outer, n, inner) = dout (outer, inner) broadcast (divided by n for the mean).
using sum_backward = void(float* dx, const float* dout, int64_t outer, int64_t n, int64_t inner, bool mean);

// ---- tokens.cc ----------------------------------------------------------------------
// out (B, K, C) = x (B, L, C) at token ids (B, K); ids are already checked to be in [0, L).
using gather_tokens = void(float* out, const float* x, const int32_t* ids, int64_t B, int64_t L, int64_t K,
                           int64_t C);
// out (B, L, C) += src (B, K, C) at token ids (B, K): the backward of gather_tokens.
using scatter_add_tokens = void(float* out, const float* src, const int32_t* ids, int64_t B, int64_t L,
                                int64_t K, int64_t C);
// out (B, La + Lb, C) = [a; b] along tokens; a is (B, La, C), or (1, La, C) broadcast over the
// batch when a_shared (the cls token).
using concat_tokens = void(float* out, const float* a, const float* b, int64_t B, int64_t La, int64_t Lb,
                           int64_t C, bool a_shared);
// out (B, Lo, C) = x (B, L, C) tokens [start, start + Lo).
using slice_tokens = void(float* out, const float* x, int64_t B, int64_t L, int64_t start, int64_t Lo, int64_t C);
// dx (B, L, C): dout (B, Lo, C) in tokens [start, start + Lo), zeros elsewhere.
using slice_tokens_backward = void(float* dx, const float* dout, int64_t B, int64_t L, int64_t start, int64_t Lo,
                                   int64_t C);

// ---- permute.cc ---------------------------------------------------------------------
// out = x with axes reordered: out's axis i is x's axis perm[i]; x has `shape`.
using permute = void(float* out, const float* x, const std::vector<int64_t>& shape, const std::vector<int>& perm);

// ---- adamw.cc -----------------------------------------------------------------------
// One AdamW step in place (decoupled weight decay, bias correction; step counts from 1):
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr (m̂ / (√v̂ + eps) + wd p).
using adamw = void(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int64_t step);

// ---- grad_norm.cc -------------------------------------------------------------------
// Σ x² over a tensor, accumulated in float64 (combined across tensors for the global norm).
using sum_of_squares = double(const float* x, int64_t n);

// ---- cast.cc ------------------------------------------------------------------------
using cast_f32_to_bf16 = void(uint16_t* out, const float* x, int64_t n);
using cast_bf16_to_f32 = void(float* out, const uint16_t* x, int64_t n);

// ---- rng.cc (the generator: core/rng.h) -------------------------------------------
// out (n) from the Philox stream (seed, offset) of core/rng.h: element i is a pure function
// of (seed, offset, i) on every backend.
using fill_uniform = void(float* out, int64_t n, uint64_t seed, uint64_t offset);
using fill_normal = void(float* out, int64_t n, uint64_t seed, uint64_t offset);

// ---- bf16 operands (matmul.cc: cpu/matmul.cc widens them to f32, exactly; cuda/matmul.cu) ---
// matmul_forward / matmul_backward with bf16 a, b and dout (uint16_t bf16 bits) and fp32
// accumulation; otherwise the same shapes and definition. forward: out is bf16 or f32
// (out_dtype), bias null or of out's dtype. backward: da bf16; db bf16 or f32 (db_dtype);
// dbias bf16 or f32 (dbias_dtype), its sums taken in fp32.
using matmul_forward_bf16 = void(void* out, DType out_dtype, const uint16_t* a, const uint16_t* b, const void* bias,
                                 int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                                 bool b_shared, bool accumulate);
using matmul_backward_bf16 = void(uint16_t* da, void* db, DType db_dtype, void* dbias, DType dbias_dtype,
                                  const uint16_t* dout, const uint16_t* a, const uint16_t* b, int64_t batch, int64_t M,
                                  int64_t N, int64_t K, bool trans_a, bool trans_b, bool b_shared);

}  // namespace pit::ops

// Declares pit::<backend>::<op> with the contract's type, in the backend's namespace:
// namespace pit::cpu { PIT_OPS(PIT_DECLARE_OP) }. A definition whose signature drifts from
// the contract then no longer defines the declared function, and the table fails to link.
#define PIT_DECLARE_OP(name, js_export) ::pit::ops::name name;
