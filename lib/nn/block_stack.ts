// `blocks.N`: a stack of transformer blocks with drop path rising linearly with depth, as
// timm's ViT and MAE's encoder build it (MAE's decoder is another stack: `decoder_blocks`).
import { isGradEnabled, tidy, type Tensor } from '../tensor.js';
import { Block, maybeRecompute } from './block.js';
import { checkRecompute, type ForwardOptions } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { Module } from './module.js';

export interface BlockStackOptions {
  mlpRatio?: number;   // 4
  /** Drop-path rate of the last block; block i gets rate·i/(depth − 1). Default 0. */
  dropPath?: number;
  init?: Init;         // 0: seed or the model's generator (which names the device)
}

export class BlockStack extends Module {
  readonly blocks: readonly Block[];

  constructor(depth: number, dim: number, heads: number, options: BlockStackOptions = {}) {
    super(initDevice(options.init ?? 0));
    if (!Number.isInteger(depth) || depth < 0) throw new TypeError(`BlockStack: 'depth' must be a non-negative integer, got ${String(depth)}`);
    const rng = initRng(options.init ?? 0);
    const rate = options.dropPath ?? 0;
    this.blocks = Array.from({ length: depth }, (_, i) => this.child(String(i), new Block(dim, heads, {
      mlpRatio: options.mlpRatio, init: rng, dropPath: depth > 1 ? (rate * i) / (depth - 1) : 0,
    })));
  }

  /**
   * x (B, L, d) through every block. Each block draws two drop-path masks; block i takes
   * offsets 2·depth·random.offset + 2i (+1), so one step's offset never overlaps another's.
   * With recompute 'block' only each block's input is kept, and the block runs again in the
   * backward (drawing the same masks).
   */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    const { random } = options;
    if (options.recompute !== undefined) checkRecompute(options.recompute);
    const depth = this.blocks.length;
    return runBlocks(x, this.blocks, (block, y, i) => {
      const o = { ...options, random: random && { seed: random.seed, offset: 2 * depth * random.offset + 2 * i } };
      return maybeRecompute(options.recompute === 'block', 'block', [block], [y], (y) => block.forward(y, o));
    });
  }
}

/**
 * x through `blocks` in order, `step` giving each block's output from its input. Without
 * gradients (evaluation, sampling) nothing is kept for a backward: each block's intermediates
 * and the previous residual stream are freed as soon as its output exists, so inference holds
 * one block's tensors at a time instead of every block's. (x itself is the caller's.)
 */
export function runBlocks<B>(x: Tensor, blocks: readonly B[], step: (block: B, y: Tensor, i: number) => Tensor): Tensor {
  const keepsGraph = isGradEnabled();
  let y = x;
  blocks.forEach((block, i) => {
    if (keepsGraph) {
      y = step(block, y, i);
      return;
    }
    const next = tidy(() => step(block, y, i));
    if (y !== x) y.dispose();
    y = next;
  });
  return y;
}
