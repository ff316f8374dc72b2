// Samples from a trained diffusion run (`pit sample`): the DiT back from its checkpoint (the EMA
// weights by default, as DiT samples), then lib/diffusion's samplers, the results mapped back
// from the model's space through the run's saved normalisation: pixels to [0, 1] (clipped, as
// DiT clamps), latents to the VAE's scale (÷ latentScale, not clipped).
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { mixSeed } from '../../data/random.js';
import { sampleDiffusion, type Sampler } from '../../diffusion/sample.js';
import { DiffusionTransformer, type DitConfig } from '../../models/dit.js';
import type { Precision } from '../../nn/forward.js';
import { tidy } from '../../tensor.js';
import { checkpointNormalization, EMA_FILE, modelForEval, readCheckpointWeights, type LoadedModel, type ModelLoadOptions } from '../checkpoint.js';
import { makeRecipe, savedRecipe } from '../recipe.js';
import { resolveCheckpoint } from '../run-checkpoints.js';
import { diffusionOf, ditTask, type DitRecipe } from './diffuse.js';

/** ema (default true: sampling uses the EMA; false: the trained weights), verify, device and command (default 'sample'). */
export type DitCheckpointOptions = ModelLoadOptions;

/** The DiT, its recipe (rebuilt complete from the saved one) and config. */
export type LoadedDit = LoadedModel<DiffusionTransformer, Readonly<DitRecipe>, DitConfig>;

/**
 * The DiT a `pit diffuse` run or checkpoint folder holds, weights loaded (read once, checksum
 * verified before the metadata is used). A run of another task, or EMA asked of a run without
 * one, is an error saying what to pass instead.
 */
export function ditFromCheckpoint(path: string, options: DitCheckpointOptions = {}): LoadedDit {
  const { ema = true, verify = true, device = 'cpu', command = 'sample' } = options;
  const dir = resolveCheckpoint(path);
  // One file read: the EMA file carries the model file's metadata. Without one (a run trained
  // with --ema 0), the model file's metadata says which error to give.
  const read = readCheckpointWeights(dir, { ema: ema && existsSync(join(dir, EMA_FILE)), verify });
  const meta = read.metadata;
  if (meta.task !== ditTask.name)
    throw new RangeError(`${command}: ${dir} is ${meta.task === undefined ? 'not a training checkpoint of pit diffuse' : `a '${String(meta.task)}' run`}; ${command} reads diffusion (pit diffuse) checkpoints`);
  const recipe = makeRecipe(ditTask.recipe, savedRecipe(ditTask.recipe, meta, dir));
  const config = meta.config as DitConfig | undefined;
  if (!config || typeof config !== 'object') throw new RangeError(`${command}: ${read.path} has no model config in its metadata`);
  if (ema && recipe.ema === 0) throw new RangeError(`${command}: ${dir} was trained without an EMA (--ema 0); sample its trained weights instead (--no-ema)`);
  if (ema && basename(read.path) !== EMA_FILE) throw new RangeError(`checkpoint: ${dir} has no ${EMA_FILE} (the run was trained without --ema)`);
  const normalization = checkpointNormalization(read.path, meta.normalization, config.channels, command);
  const dit = modelForEval(new DiffusionTransformer(config, { device }), read);
  return { model: dit, normalization, checkpoint: dir, weights: ema ? 'ema' : 'model', recipe, config: dit.config };
}

export interface GenerateOptions {
  /** The class of each sample (in [0, K)). */
  labels: ArrayLike<number>;
  /** Respaced sampling steps (default 250). */
  steps?: number;
  sampler?: Sampler;
  /** Classifier-free guidance scale s (default 4, for pictures; 1.5 for metrics); 1 runs the conditional model alone. */
  guidanceScale?: number;
  /** Default 0. */
  seed?: number;
  /**
   * Samples per call of the sampler (default 256): batch c draws its noise from seed c = 0 ? seed
   * : mixSeed(seed, c), so the samples are a function of (seed, batchSize, labels).
   */
  batchSize?: number;
  precision?: Precision;
  /** After each sampling step: steps done and to do, over every batch. */
  onStep?: (done: number, total: number) => void;
}

export interface GeneratedSamples {
  /** (N, C, H, W): pixels in [0, 1], or latents at the VAE's scale (the model's ÷ latentScale). */
  samples: Float32Array;
  labels: Int32Array;
  shape: [number, number, number, number];
  space: 'pixels' | 'latents';
}

const inRange = (name: string, value: number, ok: boolean, expected: string) => {
  if (!ok) throw new RangeError(`generateSamples: '${name}' must be ${expected}, got ${String(value)}`);
};

/** Samples `labels.length` images (or latents) from a loaded DiT, in the data's own space. */
export function generateSamples(loaded: Pick<LoadedDit, 'model' | 'normalization' | 'recipe'>, options: GenerateOptions): GeneratedSamples {
  const { model, normalization, recipe } = loaded;
  const { steps = 250, sampler = 'ddpm', guidanceScale = 4, seed = 0, batchSize = 256, precision, onStep } = options;
  const { channels: C, classes: K, timesteps: T } = model.config;
  const [H, W] = [model.grid[0] * model.config.patch, model.grid[1] * model.config.patch];
  const labels = Int32Array.from(options.labels);
  labels.forEach((y, i) => inRange(`labels[${i}]`, y, Number.isInteger(y) && y >= 0 && y < K, `a class in [0, ${K})`));
  inRange('labels.length', labels.length, labels.length >= 1, 'at least 1');
  inRange('batchSize', batchSize, Number.isInteger(batchSize) && batchSize >= 1, 'a positive integer');
  inRange('guidanceScale', guidanceScale, Number.isFinite(guidanceScale) && guidanceScale >= 0, 'a number ≥ 0');
  if (guidanceScale !== 1 && recipe.classDropout === 0)
    throw new RangeError(`generateSamples: guidance (scale ${guidanceScale}) needs the null class, which this run never trained (class dropout 0); use guidance scale 1`);
  const latents = recipe.data === 'latents';
  const diffusion = diffusionOf(T);
  const size = C * H * W, out = new Float32Array(labels.length * size);
  const batches = Math.ceil(labels.length / batchSize);
  for (let c = 0; c < batches; c++) {
    const part = labels.subarray(c * batchSize, (c + 1) * batchSize);
    const x = tidy(() => sampleDiffusion(diffusion, (xt, t, y) => model.forward(xt, t, y, { precision, train: false }), {
      shape: [part.length, C, H, W], labels: part, steps, sampler, seed: c === 0 ? seed : mixSeed(seed, c), device: model.device,
      // s = 1 is the conditional model: no second half to run.
      ...(guidanceScale === 1 ? {} : { guidanceScale, nullLabel: K }),
      clipDenoised: !latents,  // DiT turns the clip off for latents (SPEC §4)
      onStep: onStep && ((p) => onStep(c * p.steps + p.step, batches * p.steps)),
    }).toArray() as Float32Array);
    out.set(x, c * batchSize * size);
  }
  // Back from the model's space: x·std + mean per channel; pixels clipped to [0, 1].
  const plane = H * W;
  for (let i = 0; i < labels.length; i++)
    for (let ch = 0; ch < C; ch++) {
      const m = normalization.mean[ch]!, s = normalization.std[ch]!;
      for (let p = (i * C + ch) * plane, end = p + plane; p < end; p++) {
        const v = out[p]! * s + m;
        out[p] = latents ? v : Math.min(1, Math.max(0, v));
      }
    }
  return { samples: out, labels, shape: [labels.length, C, H, W], space: latents ? 'latents' : 'pixels' };
}
