// Linear: y = x Wᵀ + b with W (out, in) as in timm; trunc-normal(0.02) weight, zero bias.
import { linear } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { gemmCompute, type ForwardOptions } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { Module } from './module.js';

export interface LinearOptions {
  bias?: boolean;      // default true
  std?: number;        // weight init std, default 0.02 (timm)
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  /** `init`: a seed (CPU) or the model's generator, which names the device. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, init: Init = 0, options: LinearOptions = {}) {
    super(initDevice(init));
    for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const)
      if (!Number.isInteger(v) || v <= 0) throw new TypeError(`Linear: '${name}' must be a positive integer, got ${String(v)}`);
    const rng = initRng(init);
    this.weight = this.parameter('weight', rng.truncNormal([outFeatures, inFeatures], options.std ?? 0.02), [outFeatures, inFeatures]);
    this.bias = options.bias === false ? null : this.parameter('bias', new Float32Array(outFeatures), [outFeatures]);
  }

  /** x (..., in) → (..., out); under 'mixed' precision the GEMM runs on bf16 copies (gemmCompute). */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    return linear(x, this.weight, this.bias, { compute: gemmCompute(options.precision) });
  }
}
