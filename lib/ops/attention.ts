// Fused multi-head self-attention on packed qkv; the backward recomputes scores from lse.
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyLike, emptyOn, expectTensor } from './util.js';

/**
 * The forward alone, without recording gradients: out (B, L, H, D) and the log-sum-exp
 * (B, H, L) of each query's scaled scores (for tests, studies and the backward).
 */
export function attentionWithLse(qkv: Tensor): { out: Tensor; lse: Tensor } {
  expectTensor('attention', 'qkv', qkv);
  if (qkv.shape.length !== 5 || qkv.shape[2] !== 3)
    throw new RangeError(`attention: 'qkv' must be (B, L, 3, H, D), got shape [${qkv.shape.join(', ')}]`);
  const [B, L, , H, D] = qkv.shape as [number, number, number, number, number];
  const out = emptyOn(qkv, [B, L, H, D]);
  const lse = emptyOn(qkv, [B, H, L]);
  native().attentionForward(out.handle, lse.handle, qkv.handle);
  return { out, lse };
}

/**
 * qkv (B, L, 3, H, D) -> (B, L, H, D): softmax(Q Kᵀ · D^-0.5) V per head, never forming the
 * L x L matrix. The log-sum-exp is kept for the backward.
 */
export function attention(qkv: Tensor): Tensor {
  const { out, lse } = attentionWithLse(qkv);
  return record(out, 'attention', [qkv], (g) => {
    const dqkv = emptyLike(qkv);
    native().attentionBackward(dqkv.handle, g.handle, qkv.handle, out.handle, lse.handle);
    return [dqkv];
  }, [lse]);
}
