// Training-side diffusion: q_sample, the posterior mean, and the hybrid loss of one training
// step (SPEC §4; guided-diffusion's training_losses with learned σ and MSE). The step's
// timesteps and noise come from its Philox substreams, so the step is a pure function of
// (seed, step) on every backend.
import { substream, type RandomStream } from '../nn/forward.js';
import { diffusionLoss, DIFFUSION_LOSS_COEFS, mse, perSampleAxpby } from '../ops/index.js';
import { noGrad, rand, randn, tensor, tidy, Tensor, type Device } from '../tensor.js';
import type { GaussianDiffusion } from './schedule.js';

/**
 * The model as diffusion sees it: x (B, C, H, W) f32, t (B) i32 model timesteps (the original
 * t of a respaced process), y (B) i32 labels → (B, 2C, H, W) (ε̂, then the variance
 * interpolation v in [−1, 1]) with learned σ, or (B, C, H, W) (ε̂) without.
 */
export type Denoiser = (x: Tensor, t: Tensor, y: Tensor) => Tensor;

/** (B, C, H, W) f32 images, checked; `op` and `name` name them in errors. */
export function checkImages(op: string, name: string, x: unknown): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: '${name}' must be a Tensor (B, C, H, W), got ${x === null ? 'null' : typeof x}`);
  const t = x;
  if (t.shape.length !== 4 || t.shape.some((d) => d < 1))
    throw new RangeError(`${op}: '${name}' must be (B, C, H, W) with every dim at least 1, got shape [${t.shape.join(', ')}]`);
  if (t.dtype !== 'f32') throw new TypeError(`${op}: '${name}' must be f32, got ${t.dtype}`);
}

function checkSameShapeAndDevice(op: string, name: string, x: Tensor, x0: Tensor): void {
  if (x.shape.join() !== x0.shape.join()) throw new RangeError(`${op}: '${name}' must have x0's shape [${x0.shape.join(', ')}], got [${x.shape.join(', ')}]`);
  if (x.device !== x0.device) throw new TypeError(`${op}: '${name}' must be on x0's device (${x0.device}), got ${x.device}`);
}

/** Checks per-sample timesteps (length B, each an index of `diffusion`) and returns them. */
function checkTimesteps(op: string, diffusion: GaussianDiffusion, t: unknown, B: number): Int32Array {
  if (!(t instanceof Int32Array) && !Array.isArray(t)) throw new TypeError(`${op}: 't' must be an Int32Array or number[] of B timesteps, got ${t === null ? 'null' : typeof t}`);
  if (t.length !== B) throw new RangeError(`${op}: 't' must hold one timestep per sample (${B}), got ${t.length}`);
  for (let i = 0; i < t.length; i++) diffusion.checkTimestep(t[i], `t[${i}]`, op);
  return Int32Array.from(t as ArrayLike<number>);
}

/**
 * a[t_b]·x₀ + c[t_b]·y per sample b, with a and c schedule arrays of `diffusion` looked up at
 * each sample's t: q_sample and the posterior mean. `yName` names y in errors.
 */
function scheduleCombination(op: string, diffusion: GaussianDiffusion, t: ArrayLike<number>, x0: Tensor, a: Float64Array,
  y: Tensor, yName: string, c: Float64Array): Tensor {
  checkImages(op, 'x0', x0);
  checkImages(op, yName, y);
  checkSameShapeAndDevice(op, yName, y, x0);
  const ts = checkTimesteps(op, diffusion, t, x0.shape[0]!);
  const at = (values: Float64Array) => tensor(Float32Array.from(ts, (i) => values[i]!), [ts.length], { device: x0.device });
  return tidy(() => perSampleAxpby(x0, at(a), y, at(c)));
}

/** x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε per sample, x₀ and ε (B, C, H, W), t (B) indices of `diffusion`. */
export function qSample(diffusion: GaussianDiffusion, x0: Tensor, t: ArrayLike<number>, noise: Tensor): Tensor {
  return scheduleCombination('qSample', diffusion, t, x0, diffusion.sqrtAlphasCumprod, noise, 'noise', diffusion.sqrtOneMinusAlphasCumprod);
}

/** The posterior mean μ̃_t(x_t, x₀) = meanX0·x₀ + meanXt·x_t per sample (B, C, H, W). */
export function qPosteriorMean(diffusion: GaussianDiffusion, x0: Tensor, xt: Tensor, t: ArrayLike<number>): Tensor {
  return scheduleCombination('qPosteriorMean', diffusion, t, x0, diffusion.posteriorMeanCoef1, xt, 'xt', diffusion.posteriorMeanCoef2);
}

/** diffusionLoss's coefs (B, 7) for timesteps t, in DIFFUSION_LOSS_COEFS order (f32, host). */
export function lossCoefficients(diffusion: GaussianDiffusion, t: ArrayLike<number>): Float32Array {
  const ts = checkTimesteps('lossCoefficients', diffusion, Array.from(t), t.length);
  const K = DIFFUSION_LOSS_COEFS.length;
  const out = new Float32Array(ts.length * K);
  ts.forEach((i, b) => {
    out.set([diffusion.posteriorMeanCoef1[i]!, diffusion.posteriorMeanCoef2[i]!, diffusion.sqrtRecipAlphasCumprod[i]!,
      diffusion.sqrtRecipm1AlphasCumprod[i]!, Math.log(diffusion.betas[i]!), diffusion.posteriorLogVarianceClipped[i]!,
      i === 0 ? 1 : 0], b * K);
  });
  return out;
}

/**
 * B timesteps uniform in [0, T) from the step's 'timestep' substream (drawn on the host, where
 * the coefficients are looked up: Philox gives the same numbers on every backend).
 */
export function drawTimesteps(diffusion: GaussianDiffusion, B: number, random: RandomStream): Int32Array {
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`drawTimesteps: 'B' must be a positive integer, got ${B}`);
  const u = tidy(() => noGrad(() => rand([B], substream(random, 'timestep')).toArray()));
  const T = diffusion.timesteps;
  return Int32Array.from(u, (x) => Math.min(T - 1, Math.floor(x * T)));
}

export interface TrainingLosses {
  /** MSE(ε̂, ε) + L_vb (just the MSE without learned σ), shape [], differentiable in the model. */
  loss: Tensor;
  /** (2) = [MSE, L_vb in bits] with learned σ, outside the graph, for logging; null without. */
  terms: Tensor | null;
  /** The sampled indices t (B). */
  t: Int32Array;
}

export interface TrainingLossOptions {
  /** The step's stream, { seed, offset: step }: timesteps and noise use its substreams. */
  random: RandomStream;
}

/**
 * One training step's loss (call it inside the step's tidy): t ~ U{0..T−1}, ε ~ N(0, I), x_t = q_sample(x₀, t, ε), the model at
 * (x_t, t, y), then MSE(ε̂, ε) + L_vb with learned σ (output (B, 2C, H, W)), or the MSE alone
 * (output (B, C, H, W)). x0 (B, C, H, W) on the model's device; labels (B) i32 there.
 */
export function trainingLosses(diffusion: GaussianDiffusion, denoiser: Denoiser, x0: Tensor, labels: Tensor,
  options: TrainingLossOptions): TrainingLosses {
  checkImages('trainingLosses', 'x0', x0);
  if (typeof denoiser !== 'function') throw new TypeError(`trainingLosses: 'denoiser' must be a function (x, t, y) => Tensor, got ${typeof denoiser}`);
  const [B, C] = x0.shape as [number, number, number, number];
  if (!(labels instanceof Tensor))
    throw new TypeError(`trainingLosses: 'labels' must be an i32 Tensor (B), got ${labels === null ? 'null' : typeof labels}`);
  if (labels.shape.length !== 1 || labels.shape[0] !== B || labels.dtype !== 'i32')
    throw new RangeError(`trainingLosses: 'labels' must be an i32 tensor of shape [${B}], got ${labels}`);
  if (labels.device !== x0.device) throw new TypeError(`trainingLosses: 'labels' must be on x0's device (${x0.device}), got ${labels.device}`);
  if (!options || typeof options.random !== 'object' || options.random === null)
    throw new TypeError("trainingLosses: 'options.random' must be the step's stream { seed, offset }");
  const t = drawTimesteps(diffusion, B, options.random);
  const device = x0.device;
  // No tidy here: the loss's backward reads noise, x_t and the coefficients, so they live in
  // the caller's scope (a training step's tidy) like the model's own activations.
  const noise = randn(x0.shape, { ...substream(options.random, 'noise'), device });
  const xt = noGrad(() => qSample(diffusion, x0, t, noise));
  const modelT = tensor(Int32Array.from(t, (i) => diffusion.timestepMap[i]!), [B], { device });
  const out = denoiser(xt, modelT, labels);
  const channels = checkModelOutput('trainingLosses', out, x0.shape, B, device);
  if (channels === C) return { loss: mse(out.reshape([B, C, -1]), noise.reshape([B, C, -1])), terms: null, t };
  const coefs = tensor(lossCoefficients(diffusion, t), [B, DIFFUSION_LOSS_COEFS.length], { device });
  const { loss, terms } = diffusionLoss(out, x0, xt, noise, coefs);
  return { loss, terms, t };
}

/**
 * Checks the denoiser's output against x (B, C, H, W): rows `rows`, C or 2C channels, x's
 * device. Returns its channel count.
 */
export function checkModelOutput(op: string, out: unknown, xShape: readonly number[], rows: number, device: Device): number {
  if (!(out instanceof Tensor)) throw new TypeError(`${op}: the denoiser must return a Tensor, got ${out === null ? 'null' : typeof out}`);
  const o = out;
  const [, C, H, W] = xShape as [number, number, number, number];
  const ok = o.shape.length === 4 && o.shape[0] === rows && (o.shape[1] === C || o.shape[1] === 2 * C) && o.shape[2] === H && o.shape[3] === W;
  if (!ok) throw new RangeError(`${op}: the denoiser's output must be (${rows}, ${C} or ${2 * C}, ${H}, ${W}), got shape [${o.shape.join(', ')}]`);
  if (o.dtype !== 'f32') throw new TypeError(`${op}: the denoiser's output must be f32, got ${o.dtype}`);
  if (o.device !== device) throw new TypeError(`${op}: the denoiser's output must be on ${device}, got ${o.device}`);
  return o.shape[1]!;
}
