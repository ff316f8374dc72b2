// Multi-head self-attention: qkv Linear(d, 3d) → (B, L, 3, H, D) → fused attention
// (scale D^-0.5) → (B, L, d) → proj Linear(d, d). The kernels' precision comes with the call.
import { attention } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { attentionPrecision, releaseUnderMixed, type ForwardOptions } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(readonly dim: number, readonly heads: number, init: Init = 0) {
    super(initDevice(init));
    if (!Number.isInteger(heads) || heads <= 0 || dim % heads !== 0)
      throw new TypeError(`Attention: 'heads' must be a positive integer dividing dim ${dim}, got ${String(heads)}`);
    const rng = initRng(init);
    this.qkv = this.child('qkv', new Linear(dim, 3 * dim, rng));
    this.proj = this.child('proj', new Linear(dim, dim, rng));
  }

  /** x (B, L, d) → (B, L, d); 'mixed' precision runs the GEMMs and the attention kernels in bf16 (gemmCompute, attentionPrecision). */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    return this.fromQkv(this.qkv.forward(x, options), options, true);
  }

  /**
   * The rest of forward after the qkv Linear: qkv (B, L, 3d) → attention → proj → (B, L, d).
   * Under 'mixed' the f32 tensors it makes are released once read (releaseUnderMixed), and with
   * `owned` (the caller made qkv and no one else reads it) qkv too, where the bf16 attention
   * kernel kept its own copy.
   */
  fromQkv(qkv: Tensor, options: ForwardOptions = {}, owned = false): Tensor {
    const [B, L] = qkv.shape as [number, number, number];
    const headDim = this.dim / this.heads;
    const heads = qkv.reshape([B, L, 3, this.heads, headDim]);
    const precision = attentionPrecision(options.precision, headDim);
    const out = attention(heads, { precision });
    if (precision === 'bf16') {
      heads.release();
      if (owned) qkv.release();
    }
    const merged = out.reshape([B, L, this.dim]);
    const y = this.proj.forward(merged, options);
    releaseUnderMixed(options.precision, out, merged);
    return y;
  }
}
