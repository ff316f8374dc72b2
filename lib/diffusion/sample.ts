// Sampling (SPEC §4; guided-diffusion's p_sample_loop and ddim_sample_loop, DiT's
// forward_with_cfg): respace to K steps, start from Philox noise, and walk the chain from the
// last index to the first, one fused device step each (lib/ops/diffusion.ts's diffusionStep),
// the model called with the original t. Classifier-free guidance runs the model once on
// [x; x] with labels [y; null] and mixes the halves in the step.
import { substream, maxSeed } from '../nn/forward.js';
import { concatTokens, diffusionStep, type DiffusionStepScalars } from '../ops/index.js';
import { noGrad, randn, tensor, tidy, type Device, type Tensor } from '../tensor.js';
import { checkModelOutput, type Denoiser } from './loss.js';
import type { GaussianDiffusion } from './schedule.js';

export type Sampler = 'ddpm' | 'ddim';

/**
 * Which output channels guidance mixes: 'noise' the C noise channels (SPEC §4), 'dit' the first
 * three output channels, as DiT's forward_with_cfg slices them (for C = 4 latents: three of
 * the four noise channels; for C = 1: the noise and the variance), only to match its numbers.
 */
export type GuidedChannels = 'noise' | 'dit';

/** Variance of a model without learned σ: β_t ("large", DiT's choice) or β̃_t ("small"). */
export type FixedVariance = 'large' | 'small';

export interface SamplerStepOptions {
  sampler?: Sampler;
  /** Clip x̂₀ to [−1, 1] (default true; off for latents). */
  clipDenoised?: boolean;
  /** The model outputs v (2C channels). Default true. */
  learnedSigma?: boolean;
  fixedVariance?: FixedVariance;
  /** Guidance scale s, or undefined without guidance. */
  guidanceScale?: number;
  /** Output channels [0, guidedChannels) are guided (a count; 0 without guidance). */
  guidedChannels?: number;
}

/** The scalars of the step at `index` of a (respaced) process, for diffusionStep. */
export function stepScalars(diffusion: GaussianDiffusion, index: number, options: SamplerStepOptions = {}): DiffusionStepScalars {
  diffusion.checkTimestep(index, 'index', 'stepScalars');
  const { sampler = 'ddpm', clipDenoised = true, learnedSigma = true, fixedVariance = 'large' } = options;
  const i = index, d = diffusion;
  let logVarMax: number, logVarMin: number;
  if (learnedSigma) {
    logVarMax = Math.log(d.betas[i]!);
    logVarMin = d.posteriorLogVarianceClipped[i]!;
  } else if (fixedVariance === 'small') {
    logVarMax = logVarMin = d.posteriorLogVarianceClipped[i]!;
  } else {
    // guided-diffusion's FIXED_LARGE: [β̃₁, β₁, β₂, …]: β̃₁ at 0, where β₀ would be tiny.
    logVarMax = logVarMin = Math.log(i > 0 ? d.betas[i]! : d.timesteps > 1 ? d.posteriorVariance[1]! : d.betas[0]!);
  }
  return {
    recipSqrtAlphaBar: d.sqrtRecipAlphasCumprod[i]!, recipM1SqrtAlphaBar: d.sqrtRecipm1AlphasCumprod[i]!,
    meanX0: d.posteriorMeanCoef1[i]!, meanXt: d.posteriorMeanCoef2[i]!, logVarMax, logVarMin,
    sqrtAlphaBarPrev: Math.sqrt(d.alphasCumprodPrev[i]!), sqrtOneMinusAlphaBarPrev: Math.sqrt(1 - d.alphasCumprodPrev[i]!),
    guidanceScale: options.guidanceScale ?? 1, guidedChannels: options.guidedChannels ?? 0,
    clip: clipDenoised, ddim: sampler === 'ddim',
  };
}

export interface SampleProgress {
  /** Steps done, 1..steps. */
  step: number;
  steps: number;
  /** The model timestep of the step just taken (original t). */
  t: number;
}

export interface SampleOptions {
  /** (B, C, H, W) of the samples. */
  shape: readonly number[];
  /** B class labels, one per sample (any integers ≥ 0 the denoiser accepts). */
  labels: Int32Array | readonly number[];
  /** Respaced steps K in [1, T] (default min(250, T); a respaced process: its own count). */
  steps?: number;
  /** 'ddpm' (ancestral, default) or 'ddim' (η = 0). */
  sampler?: Sampler;
  /** Classifier-free guidance scale s (1.5 for metrics, 4 for pictures); undefined: none. */
  guidanceScale?: number;
  /** The null class K (the label table's last row): needed with guidanceScale. */
  nullLabel?: number;
  /** Default 'noise'. */
  guidedChannels?: GuidedChannels;
  /** Clip x̂₀ to [−1, 1] (default true: pixels; false for latents). */
  clipDenoised?: boolean;
  /** For a model without learned σ; default 'large'. */
  fixedVariance?: FixedVariance;
  /** Philox seed in [0, 2^32): the same seed gives the same samples (default 0). */
  seed?: number;
  /** Default 'cpu'; the denoiser must answer on it. */
  device?: Device;
  /** Called after every step. */
  onStep?: (progress: SampleProgress) => void;
}

function checkOptions(diffusion: GaussianDiffusion, options: SampleOptions) {
  const op = 'sampleDiffusion';
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: 'options' must be an object, got ${options === null ? 'null' : typeof options}`);
  const { shape, labels } = options;
  if (!Array.isArray(shape) || shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || d < 1))
    throw new RangeError(`${op}: 'shape' must be (B, C, H, W), four positive integers, got ${JSON.stringify(shape)}`);
  const B = shape[0]!;
  if (!(labels instanceof Int32Array) && !Array.isArray(labels)) throw new TypeError(`${op}: 'labels' must be an Int32Array or number[] of ${B} labels, got ${labels === null ? 'null' : typeof labels}`);
  if (labels.length !== B) throw new RangeError(`${op}: 'labels' must hold one label per sample (${B}), got ${labels.length}`);
  for (let i = 0; i < B; i++)
    if (!Number.isInteger(labels[i]) || labels[i]! < 0 || labels[i]! > 2 ** 31 - 1) throw new RangeError(`${op}: 'labels[${i}]' must be a non-negative integer, got ${labels[i]}`);
  const T = diffusion.timesteps;
  const steps = options.steps ?? (diffusion.respacedFrom !== null ? T : Math.min(250, T));
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new RangeError(`${op}: 'steps' must be an integer in [1, ${T}], got ${steps}`);
  if (diffusion.respacedFrom !== null && steps !== T)
    throw new RangeError(`${op}: 'steps' (${steps}) must be ${T} for a process already respaced to ${T} steps; pass the original to respace it`);
  const sampler = options.sampler ?? 'ddpm';
  if (sampler !== 'ddpm' && sampler !== 'ddim') throw new TypeError(`${op}: 'sampler' must be "ddpm" or "ddim", got ${JSON.stringify(sampler)}`);
  const { guidanceScale, nullLabel } = options;
  if (guidanceScale !== undefined && (typeof guidanceScale !== 'number' || !Number.isFinite(guidanceScale)))
    throw new TypeError(`${op}: 'guidanceScale' must be a finite number, got ${JSON.stringify(guidanceScale)}`);
  if (guidanceScale !== undefined && (!Number.isInteger(nullLabel) || nullLabel! < 0 || nullLabel! > 2 ** 31 - 1))
    throw new RangeError(`${op}: 'nullLabel' must be the null class (a non-negative integer) when 'guidanceScale' is given, got ${JSON.stringify(nullLabel)}`);
  const guidedChannels = options.guidedChannels ?? 'noise';
  if (guidedChannels !== 'noise' && guidedChannels !== 'dit') throw new TypeError(`${op}: 'guidedChannels' must be "noise" or "dit", got ${JSON.stringify(guidedChannels)}`);
  const clipDenoised = options.clipDenoised ?? true;
  if (typeof clipDenoised !== 'boolean') throw new TypeError(`${op}: 'clipDenoised' must be a boolean, got ${JSON.stringify(clipDenoised)}`);
  const fixedVariance = options.fixedVariance ?? 'large';
  if (fixedVariance !== 'large' && fixedVariance !== 'small') throw new TypeError(`${op}: 'fixedVariance' must be "large" or "small", got ${JSON.stringify(fixedVariance)}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > maxSeed) throw new RangeError(`${op}: 'seed' must be an integer in [0, 2^32), got ${seed}`);
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`${op}: 'device' must be "cpu" or "cuda", got ${JSON.stringify(device)}`);
  if (options.onStep !== undefined && typeof options.onStep !== 'function') throw new TypeError(`${op}: 'onStep' must be a function, got ${typeof options.onStep}`);
  return { shape: shape.slice(), labels: Int32Array.from(labels), steps, sampler, guidanceScale, nullLabel: nullLabel ?? 0,
    guidedChannels, clipDenoised, fixedVariance, seed, device };
}

/**
 * Samples (B, C, H, W) on `device` from `denoiser` (DDPM or DDIM over K respaced steps, with
 * optional classifier-free guidance). Noise: the seed's 'noise' substream, offset 0 for x_T and
 * K − i for the step at index i, so the samples are a function of the seed alone. Each step's
 * tensors are freed before the next.
 */
export function sampleDiffusion(diffusion: GaussianDiffusion, denoiser: Denoiser, options: SampleOptions): Tensor {
  if (typeof denoiser !== 'function') throw new TypeError(`sampleDiffusion: 'denoiser' must be a function (x, t, y) => Tensor, got ${typeof denoiser}`);
  const o = checkOptions(diffusion, options);
  const spaced = o.steps === diffusion.timesteps ? diffusion : diffusion.respace(o.steps);
  const K = spaced.timesteps;
  const [B, C, H, W] = o.shape as [number, number, number, number];
  const guided = o.guidanceScale !== undefined;
  const rows = guided ? 2 * B : B;
  const noiseKey = substream({ seed: o.seed, offset: 0 }, 'noise').seed;
  const labels = guided ? Int32Array.from({ length: rows }, (_, i) => (i < B ? o.labels[i]! : o.nullLabel)) : o.labels;
  const y = tensor(labels, [rows], { device: o.device });   // the same every step
  let x = randn(o.shape, { seed: noiseKey, offset: 0, device: o.device });
  try {
    for (let i = K - 1; i >= 0; i--) {
      const next = tidy(() => noGrad(() => {
        const t = tensor(new Int32Array(rows).fill(spaced.timestepMap[i]!), [rows], { device: o.device });
        // [x; x]: both halves see the same x_t (a batch concat as two (1, B, ·) token blocks).
        const input = guided ? concatTokens(x.reshape([1, B, -1]), x.reshape([1, B, -1])).reshape([rows, C, H, W]) : x;
        const out = denoiser(input, t, y);
        const channels = checkModelOutput('sampleDiffusion', out, o.shape, rows, o.device);
        const guidedChannels = !guided ? 0 : o.guidedChannels === 'dit' ? Math.min(3, channels) : C;
        const step = stepScalars(spaced, i, { sampler: o.sampler, clipDenoised: o.clipDenoised, learnedSigma: channels === 2 * C,
          fixedVariance: o.fixedVariance, guidanceScale: o.guidanceScale, guidedChannels });
        const noise = o.sampler === 'ddpm' && i > 0 ? randn(o.shape, { seed: noiseKey, offset: K - i, device: o.device }) : null;
        return diffusionStep(out, x, noise, step);
      }));
      x.dispose();
      x = next;
      options.onStep?.({ step: K - i, steps: K, t: spaced.timestepMap[i]! });
    }
  } catch (err) {
    x.dispose();
    throw err;
  } finally {
    y.dispose();
  }
  return x;
}
