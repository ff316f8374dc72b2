// Multi-head self-attention: qkv Linear(d, 3d) → (B, L, 3, H, D) → fused attention
// (scale D^-0.5) → (B, L, d) → proj Linear(d, d). The kernels' precision comes with the call.
import { attention } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { attentionPrecision, type ForwardOptions } from './forward.js';
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
    return this.fromQkv(this.qkv.forward(x, options), options);
  }

  /** The rest of forward after the qkv Linear: qkv (B, L, 3d) → attention → proj → (B, L, d). */
  fromQkv(qkv: Tensor, options: ForwardOptions = {}): Tensor {
    const [B, L] = qkv.shape as [number, number, number];
    const headDim = this.dim / this.heads;
    const heads = qkv.reshape([B, L, 3, this.heads, headDim]);
    return this.proj.forward(attention(heads, { precision: attentionPrecision(options.precision, headDim) }).reshape([B, L, this.dim]), options);
  }
}
