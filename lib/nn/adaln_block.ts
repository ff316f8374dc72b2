// adaLN-Zero transformer block (DiT, SPEC §4): a conditioning vector c (B, d) per sample sets
// the shift and scale after each LayerNorm and a gate on each residual branch:
//   shift₁, scale₁, gate₁, shift₂, scale₂, gate₂ = adaLN_modulation(c)      (SiLU → Linear(d, 6d))
//   x = x + gate₁·attn(modulate(LN x, shift₁, scale₁))
//   x = x + gate₂·mlp(modulate(LN x, shift₂, scale₂))
// with modulate(x) = x·(1 + scale) + shift, LayerNorm without affine (eps 1e-6) and the MLP's
// GELU tanh-approximated. With the modulation Linear zero (DiT's adaLN-Zero init) every gate is
// 0 and the block is the identity. Names are facebookresearch/DiT's (`attn.qkv`, `mlp.fc1`,
// `adaLN_modulation.1`); `norm1` and `norm2` hold no parameters and are not modules here.
import { gatedResidual, layerNorm, modulate, silu, sliceTokens } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { Attention } from './attention.js';
import { maybeRecompute, normThen } from './block.js';
import { runBlocks } from './block_stack.js';
import { checkRecompute, type ForwardOptions } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { Linear } from './linear.js';
import { Mlp } from './mlp.js';
import { Module } from './module.js';

/** LayerNorm over the last dim without affine parameters, eps 1e-6 (DiT's norm1, norm2, norm_final). */
export const plainLayerNorm = (x: Tensor): Tensor => layerNorm(x, null, null, 1e-6);

/**
 * `adaLN_modulation`: nn.Sequential(SiLU, Linear(d, n·d)) as DiT writes it, so the Linear is
 * `adaLN_modulation.1`. forward(c) gives the n chunks (B, d) of the Linear's output, in order.
 */
export class AdaLNModulation extends Module {
  readonly linear: Linear;

  constructor(readonly dim: number, readonly chunks: number, init: Init = 0) {
    super(initDevice(init));
    this.linear = this.child('1', new Linear(dim, chunks * dim, initRng(init)));
  }

  /** c (B, d) → chunks × (B, d): Linear(SiLU(c)) split along its features. */
  forward(c: Tensor): Tensor[] {
    const B = c.shape[0]!, d = this.dim;
    const all = this.linear.forward(silu(c)).reshape([B, this.chunks, d]);
    return Array.from({ length: this.chunks }, (_, i) => sliceTokens(all, i, 1).reshape([B, d]));
  }
}

export interface AdaLNBlockOptions {
  mlpRatio?: number;   // 4: MLP hidden = 4d
  init?: Init;         // 0: seed or the model's generator (which names the device)
}

/** DiT's DiTBlock: `attn`, `mlp` and `adaLN_modulation.1`. */
export class AdaLNBlock extends Module {
  readonly attn: Attention;
  readonly mlp: Mlp;
  readonly adaLNModulation: AdaLNModulation;

  constructor(dim: number, heads: number, options: AdaLNBlockOptions = {}) {
    super(initDevice(options.init ?? 0));
    const rng = initRng(options.init ?? 0);
    this.attn = this.child('attn', new Attention(dim, heads, rng));
    this.mlp = this.child('mlp', new Mlp(dim, Math.round(dim * (options.mlpRatio ?? 4)), rng, { approximate: 'tanh' }));
    this.adaLNModulation = this.child('adaLN_modulation', new AdaLNModulation(dim, 6, rng));
  }

  /**
   * x (B, L, d) conditioned on c (B, d) → (B, L, d); the precision of `options` reaches attention.
   * With recompute 'mlp', LayerNorm → modulate → qkv and LayerNorm → modulate → fc1 → GELU run
   * again in the backward.
   */
  forward(x: Tensor, c: Tensor, options: ForwardOptions = {}): Tensor {
    const [shift1, scale1, gate1, shift2, scale2, gate2] = this.adaLNModulation.forward(c) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const mlp = options.recompute === 'mlp';
    // Under 'mixed' the modulated inputs of qkv and fc1, qkv and the GELU output are released once
    // read (their readers keep bf16 copies); the LayerNorm outputs stay: modulate's backward reads them.
    const qkv = maybeRecompute(mlp, 'norm1·modulate·qkv', [this.attn.qkv], [x, shift1, scale1],
      (x, shift, scale) => normThen(modulate(plainLayerNorm(x), shift, scale), (h) => this.attn.qkv.forward(h, options), options));
    x = gatedResidual(x, this.attn.fromQkv(qkv, options, true), gate1);
    const hidden = maybeRecompute(mlp, 'norm2·modulate·fc1·gelu', [this.mlp.fc1], [x, shift2, scale2],
      (x, shift, scale) => normThen(modulate(plainLayerNorm(x), shift, scale), (h) => this.mlp.hidden(h, options), options));
    return gatedResidual(x, this.mlp.fromHidden(hidden, options), gate2);
  }
}

/** `blocks.N`: depth adaLN-Zero blocks, all conditioned on the same c. */
export class AdaLNBlockStack extends Module {
  readonly blocks: readonly AdaLNBlock[];

  constructor(depth: number, dim: number, heads: number, options: AdaLNBlockOptions = {}) {
    super(initDevice(options.init ?? 0));
    if (!Number.isInteger(depth) || depth < 0) throw new TypeError(`AdaLNBlockStack: 'depth' must be a non-negative integer, got ${String(depth)}`);
    const rng = initRng(options.init ?? 0);
    this.blocks = Array.from({ length: depth }, (_, i) => this.child(String(i), new AdaLNBlock(dim, heads, { ...options, init: rng })));
  }

  /**
   * x (B, L, d) through every block under c (B, d); without gradients one block's tensors live at
   * a time. With recompute 'block' each block keeps only x and c and runs again in the backward.
   */
  forward(x: Tensor, c: Tensor, options: ForwardOptions = {}): Tensor {
    if (options.recompute !== undefined) checkRecompute(options.recompute);
    return runBlocks(x, this.blocks, (block, y) =>
      maybeRecompute(options.recompute === 'block', 'block', [block], [y, c], (y, c) => block.forward(y, c, options)));
  }
}
