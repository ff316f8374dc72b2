// MLP: fc1 Linear(d, hidden) → GELU → fc2 Linear(hidden, d). GELU is exact (erf) as in timm's
// ViT, or the tanh approximation DiT's blocks use.
import type { GeluApproximate } from '../native.js';
import { gelu } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { releaseUnderMixed, type ForwardOptions } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export interface MlpOptions {
  /** 'none' (default): exact erf GELU; 'tanh': the tanh approximation (DiT). */
  approximate?: GeluApproximate;
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly approximate: GeluApproximate;

  constructor(dim: number, hidden: number, init: Init = 0, options: MlpOptions = {}) {
    super(initDevice(init));
    const rng = initRng(init);
    this.approximate = options.approximate ?? 'none';
    if (this.approximate !== 'none' && this.approximate !== 'tanh') throw new TypeError(`Mlp: 'approximate' must be "none" or "tanh", got ${JSON.stringify(options.approximate)}`);
    this.fc1 = this.child('fc1', new Linear(dim, hidden, rng));
    this.fc2 = this.child('fc2', new Linear(hidden, dim, rng));
  }

  /** The precision reaches both Linears (their GEMMs in bf16 under 'mixed'); GELU stays f32. */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    return this.fromHidden(this.hidden(x, options), options);
  }

  /** fc2 on the hidden activations, which are released under 'mixed' (fc2 keeps its bf16 copy). */
  fromHidden(hidden: Tensor, options: ForwardOptions = {}): Tensor {
    const y = this.fc2.forward(hidden, options);
    releaseUnderMixed(options.precision, hidden);
    return y;
  }

  /** The first half of forward: GELU(fc1 x), (..., hidden). */
  hidden(x: Tensor, options: ForwardOptions = {}): Tensor {
    return gelu(this.fc1.forward(x, options), this.approximate);
  }
}
