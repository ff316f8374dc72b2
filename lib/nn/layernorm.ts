// LayerNorm over the last dim, eps 1e-6, affine weight 1 and bias 0.
import { layerNorm } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { initRng, type Init } from './init.js';
import { Module } from './module.js';

export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly eps: number;

  /** `init` draws nothing (the weights are 1 and 0); it names the device. */
  constructor(readonly dim: number, init: Init = 0, options: { eps?: number } = {}) {
    super(initRng(init).device);  // initRng, not initDevice: it refuses an eps passed where the init goes
    this.eps = options.eps ?? 1e-6;
    if (!(this.eps > 0)) throw new RangeError(`LayerNorm: 'eps' must be > 0, got ${String(options.eps)}`);
    if (!Number.isInteger(dim) || dim <= 0) throw new TypeError(`LayerNorm: 'dim' must be a positive integer, got ${String(dim)}`);
    this.weight = this.parameter('weight', new Float32Array(dim).fill(1), [dim]);
    this.bias = this.parameter('bias', new Float32Array(dim), [dim]);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
