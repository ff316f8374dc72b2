// MLP: fc1 Linear(d, hidden) → GELU (exact erf) → fc2 Linear(hidden, d).
import { gelu } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { initDevice, initRng, type Init } from './init.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, init: Init = 0) {
    super(initDevice(init));
    const rng = initRng(init);
    this.fc1 = this.child('fc1', new Linear(dim, hidden, rng));
    this.fc2 = this.child('fc2', new Linear(hidden, dim, rng));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(gelu(this.fc1.forward(x)));
  }
}
