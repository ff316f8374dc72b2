// Fused multi-head self-attention on packed qkv; the backward recomputes scores from lse.
//
// Precision: f32 and bf16 kernels on both devices (bf16 q, k, v and output, fp32 accumulation
// and log-sum-exp; the GPU's on tensor cores, the CPU's with AVX512-BF16 or widened to f32). attention() takes f32 qkv either way;
// with the option precision 'bf16' it rounds qkv to bf16, runs the bf16 kernels and returns
// f32, the mixed-precision policy of DESIGN.md for attention. The caller passes the precision
// (a model's forward takes it from the run): there is no process-wide default.
import { native } from '../native.js';
import { copyOf, empty, record, tidy, Tensor } from '../tensor.js';
import { expectTensor } from './util.js';

export type AttentionPrecision = 'f32' | 'bf16';

/**
 * The forward alone, without recording gradients: out (B, L, H, D) in qkv's dtype (f32, or
 * bf16) and the f32 log-sum-exp (B, H, L) of each query's scaled scores (for tests,
 * studies and the backward).
 */
export function attentionWithLse(qkv: Tensor): { out: Tensor; lse: Tensor } {
  expectTensor('attention', 'qkv', qkv);
  if (qkv.shape.length !== 5 || qkv.shape[2] !== 3)
    throw new RangeError(`attention: 'qkv' must be (B, L, 3, H, D), got shape [${qkv.shape.join(', ')}]`);
  const [B, L, , H, D] = qkv.shape as [number, number, number, number, number];
  return tidy(() => {
    const out = empty([B, L, H, D], { dtype: qkv.dtype, device: qkv.device });
    const lse = empty([B, H, L], { device: qkv.device });
    native().attentionForward(out.handle, lse.handle, qkv.handle);
    return { out, lse };
  });
}

/**
 * qkv (B, L, 3, H, D) f32 -> (B, L, H, D) f32: softmax(Q Kᵀ · D^-0.5) V per head, never
 * forming the L x L matrix. The log-sum-exp is kept for the backward.
 */
export function attention(qkv: Tensor, options: { precision?: AttentionPrecision } = {}): Tensor {
  expectTensor('attention', 'qkv', qkv);
  const precision = options.precision ?? 'f32';
  if (precision !== 'f32' && precision !== 'bf16') throw new TypeError(`attention: 'precision' must be "f32" or "bf16", got ${JSON.stringify(precision)}`);
  if (precision === 'bf16' && qkv.dtype === 'f32') return mixedAttention(qkv);
  const { out, lse } = attentionWithLse(qkv);
  return record(out, 'attention', [qkv], (g) => tidy(() => {
    const dqkv = empty(qkv.shape, { dtype: qkv.dtype, device: qkv.device });
    native().attentionBackward(dqkv.handle, g.handle, qkv.handle, out.handle, lse.handle);
    return [dqkv];
  }), [lse]);
}

/** f32 in and out, bf16 kernels between: saves the bf16 qkv and output and the f32 lse. */
function mixedAttention(qkv: Tensor): Tensor {
  // Inside tidy: on an error (out of memory, say) nothing made here outlives the call.
  const { out, saved } = tidy(() => {
    const qkv16 = copyOf(qkv, { dtype: 'bf16' });
    const { out: out16, lse } = attentionWithLse(qkv16);
    return { out: copyOf(out16, { dtype: 'f32' }), saved: [qkv16, out16, lse] as const };
  });
  const [qkv16, out16, lse] = saved;
  return record(out, 'attention', [qkv], (g) => tidy(() => {
    const dout16 = copyOf(g, { dtype: 'bf16' });
    const dqkv16 = empty(qkv.shape, { dtype: 'bf16', device: qkv.device });
    native().attentionBackward(dqkv16.handle, dout16.handle, qkv16.handle, out16.handle, lse.handle);
    return [copyOf(dqkv16, { dtype: 'f32' })];
  }), [qkv16, out16, lse]);
}
