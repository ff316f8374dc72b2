// Gaussian diffusion's device ops (per-element math: native/core/diffusion.h): per-sample
// axpby (q_sample, posterior means), the fused hybrid loss (MSE + variational bound) with its
// backward, and one sampling step. Images are (B, C, ...) (H, W flattened by the addon); the
// per-sample and per-step coefficients come from the float64 schedule (lib/diffusion/).
import { native, type DiffusionStepScalars } from '../native.js';
import { empty, record, tidy, Tensor } from '../tensor.js';
import { emptyLike, emptyOn, expectTensor, expectTensors, handleOrNull } from './util.js';

export type { DiffusionStepScalars } from '../native.js';

/**
 * The columns of diffusionLoss's coefs (B, 7), each the schedule's value at the sample's t, in
 * native/core/diffusion.h's LossCoef order.
 */
export const DIFFUSION_LOSS_COEFS = ['meanX0', 'meanXt', 'recipSqrtAlphaBar', 'recipM1SqrtAlphaBar', 'logBeta',
  'posteriorLogVariance', 'firstStep'] as const;

/**
 * out (B, ...) = a[b]·x + c[b]·y with one coefficient per sample: a, c (B), constants (no
 * gradient). y and c are given together or not at all (out = a[b]·x). Differentiable in x, y.
 */
export function perSampleAxpby(x: Tensor, a: Tensor, y: Tensor | null = null, c: Tensor | null = null): Tensor {
  expectTensors('perSampleAxpby', { x, a });
  if (y !== null) expectTensor('perSampleAxpby', 'y', y);
  if (c !== null) expectTensor('perSampleAxpby', 'c', c);
  const out = emptyLike(x);
  native().perSampleAxpby(out.handle, x.handle, handleOrNull(y), a.handle, handleOrNull(c));
  return record(out, 'perSampleAxpby', [x, y], (g) => {
    const scaled = (by: Tensor) => {
      const d = emptyLike(g);
      native().perSampleAxpby(d.handle, g.handle, null, by.handle, null);
      return d;
    };
    return [x.requiresGrad ? scaled(a) : null, y?.requiresGrad && c ? scaled(c) : null];
  });
}

export interface DiffusionLoss {
  /** MSE(ε̂, ε) + L_vb (shape []), differentiable in the model output. */
  loss: Tensor;
  /** (2): [MSE, L_vb in bits], for logging (outside the graph). */
  terms: Tensor;
}

/**
 * The hybrid loss of DiT / improved DDPM (SPEC §4) in one fused pass: modelOutput (B, 2C, ...)
 * holds ε̂ in channels [0, C) and the variance interpolation v in [C, 2C); x0, xt, noise
 * (B, C, ...); coefs (B, 7) per DIFFUSION_LOSS_COEFS. Both terms are means over elements; the
 * vb term sees ε̂ detached, so ε̂ gets only the MSE's gradient and v only the vb term's.
 */
export function diffusionLoss(modelOutput: Tensor, x0: Tensor, xt: Tensor, noise: Tensor, coefs: Tensor): DiffusionLoss {
  expectTensors('diffusionLoss', { modelOutput, x0, xt, noise, coefs });
  const { loss, terms } = tidy(() => {
    const loss = emptyOn(x0, []), terms = emptyOn(x0, [2]);
    native().diffusionLossForward(loss.handle, terms.handle, null, modelOutput.handle, x0.handle, xt.handle, noise.handle, coefs.handle);
    return { loss, terms };
  });
  record(loss, 'diffusionLoss', [modelOutput], (g) => {
    const dout = emptyLike(modelOutput);
    native().diffusionLossBackward(dout.handle, g.handle, modelOutput.handle, x0.handle, xt.handle, noise.handle, coefs.handle);
    return [dout];
  });
  return { loss, terms };
}

/** Each element's variational-bound term in bits (B, C, ...), as diffusionLoss averages it; no gradient. */
export function diffusionVbTerms(modelOutput: Tensor, x0: Tensor, xt: Tensor, coefs: Tensor): Tensor {
  expectTensors('diffusionVbTerms', { modelOutput, x0, xt, coefs });
  return tidy(() => {
    const vb = emptyLike(x0), loss = emptyOn(x0, []);
    // The MSE half reads a noise tensor; xt stands in for it (its result is not kept).
    native().diffusionLossForward(loss.handle, null, vb.handle, modelOutput.handle, x0.handle, xt.handle, xt.handle, coefs.handle);
    return vb;
  });
}

/**
 * One sampling step x_t → x_{t−1} (B, C, ...): modelOutput (B, C or 2C, ...), or (2B, ...) with
 * guidance (conditional half first); noise (B, C, ...) or null for a step without noise. Not
 * differentiable.
 */
export function diffusionStep(modelOutput: Tensor, xt: Tensor, noise: Tensor | null, step: DiffusionStepScalars): Tensor {
  expectTensors('diffusionStep', { modelOutput, xt });
  if (noise !== null) expectTensor('diffusionStep', 'noise', noise);
  const out = empty(xt.shape, { device: xt.device });
  native().diffusionStep(out.handle, modelOutput.handle, xt.handle, handleOrNull(noise), step);
  return out;
}
