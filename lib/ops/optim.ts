// Optimizer kernels (not differentiable): the AdamW step and the global gradient norm.
import { native } from '../native.js';
import type { Tensor } from '../tensor.js';
import { expectTensor, expectTensors } from './util.js';

export interface AdamwHyper {
  /** Learning rate for this tensor (a group's lr scale already applied). */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for the bias corrections. */
  step: number;
}

/** One AdamW step in place on param, m and v (decoupled weight decay, bias-corrected). */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamwHyper): void {
  expectTensors('adamwStep', { param, grad, m, v });
  native().adamw(param.handle, grad.handle, m.handle, v.handle, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step);
}

/** sqrt(Σ over tensors of Σ x²), accumulated in float64. */
export function gradNorm(tensors: readonly Tensor[]): number {
  if (!Array.isArray(tensors)) throw new TypeError(`gradNorm: 'tensors' must be an array of tensors, got ${typeof tensors}`);
  tensors.forEach((t, i) => expectTensor('gradNorm', `tensors[${i}]`, t));
  return native().gradNorm(tensors.map((t) => t.handle));
}
