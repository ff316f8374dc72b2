// Embedding: a (n, d) table whose row ids[b] is token b's vector (PyTorch's nn.Embedding;
// DiT's label table). The lookup is one gatherTokens on the table seen as (1, n, d), whose
// backward scatter-adds the rows' gradients, so a row looked up twice gets both.
import { gatherTokens } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { initDevice, initRng, type Init } from './init.js';
import { Module } from './module.js';

export interface EmbeddingOptions {
  std?: number;  // 0.02: N(0, std²) rows (DiT's initialize_weights; PyTorch's default is 1)
}

export class Embedding extends Module {
  /** (n, d) */
  readonly weight: Tensor;

  constructor(readonly rows: number, readonly dim: number, init: Init = 0, options: EmbeddingOptions = {}) {
    super(initDevice(init));
    for (const [name, v] of [['rows', rows], ['dim', dim]] as const)
      if (!Number.isInteger(v) || v <= 0) throw new TypeError(`Embedding: '${name}' must be a positive integer, got ${String(v)}`);
    this.weight = this.parameter('weight', initRng(init).normal([rows, dim], options.std ?? 0.02), [rows, dim]);
  }

  /** ids (B) i32, each in [0, rows) → (B, d). */
  forward(ids: Tensor): Tensor {
    const B = ids.shape[0]!;
    if (ids.shape.length !== 1) throw new RangeError(`Embedding: 'ids' must be (B), got shape [${ids.shape.join(', ')}]`);
    return gatherTokens(this.weight.reshape([1, this.rows, this.dim]), ids.reshape([1, B])).reshape([B, this.dim]);
  }
}
