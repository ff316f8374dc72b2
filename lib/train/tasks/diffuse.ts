// Class-conditional diffusion (SPEC §4, the paper's case study 3), the runner's third task: a
// DiT (lib/models/dit.ts) trained with the hybrid loss of lib/diffusion (MSE on ε + the
// variational bound that trains the learned variance), timesteps and noise from the step's
// Philox substreams and label dropout from the model's; evaluation = the same loss on the
// held-out split at fixed draws (held-out.ts), so epochs compare.
//
// The model sees pixels scaled to [−1, 1] or latents × latentScale. Both are the runner's
// normalisation (x − mean)/std, with mean 0.5 and std 0.5 per channel for pixels and mean 0 and
// std 1/latentScale for latents: the run saves it with every checkpoint, and sampling inverts it.
//
// DiT's recipe (SPEC §4): AdamW lr 1e-4, β (0.9, 0.999), weight decay 0, constant lr (minLr is
// computed = lr: no flag), no warm-up, no clipping, an EMA of the weights started as a copy of
// them. Horizontal flips for natural images only: CIFAR flips, digits and latents never.
import type { Dataset } from '../../data/dataset.js';
import { GaussianDiffusion } from '../../diffusion/schedule.js';
import { trainingLosses } from '../../diffusion/loss.js';
import { ditConfig, DiffusionTransformer, type DitConfig } from '../../models/dit.js';
import { estimateDitInferenceMemory, estimateDitTrainingMemory } from '../../models/dit-memory.js';
import { parseDitName } from '../../models/names.js';
import { maxSeed, type Precision, type Recompute } from '../../nn/forward.js';
import type { Tensor } from '../../tensor.js';
import { imageDataSize, loadImageData, type DataSplits } from '../data.js';
import { activationsPart, formatCount, imagesPart, trainingStatePart, type RunMemory } from '../memory.js';
import { failField } from '../recipe-fields.js';
import type { DataName, Recipe, TaskRecipePart } from '../recipe.js';
import type { DataShape, EvalContext, Task } from '../task.js';
import { heldOutMeans } from './held-out.js';

export interface DiffuseRecipe {
  /** A DiT name (models/names.ts): dit-<size>/<p>, <size> s, b, l, xl or d<depth>w<width>h<heads>. */
  model: string;
  posEmbed: DitConfig['posEmbed'];
  /** Share of training labels replaced by the null class (classifier-free guidance). */
  classDropout: number;
  /** Latents are multiplied by this before training (Stable Diffusion's VAE: 0.18215). */
  latentScale: number;
}

/** The whole recipe of a diffusion run. */
export type DitRecipe = Recipe<DiffuseRecipe>;

/** The MNIST default: 4 blocks, width 64, 4 heads, one token per pixel. */
export const DEFAULT_DIT_MODEL = 'dit-d4w64h4/1';
/** Stable Diffusion's VAE latent scale (SPEC §4). */
export const SD_LATENT_SCALE = 0.18215;
/** DiT's EMA decay, and the one short runs get (see defaultsFor). */
export const DIT_EMA = 0.9999, SHORT_RUN_EMA = 0.999;
/** Epochs and lr of the MNIST default (README, "Diffusion"). */
export const MNIST_DIT_EPOCHS = 40, MNIST_DIT_LR = 1e-3;

export const diffuseRecipe: TaskRecipePart<DiffuseRecipe> = {
  dataSets: ['mnist', 'cifar10', 'cifar100', 'latents'],
  defaults: Object.freeze({ model: DEFAULT_DIT_MODEL, posEmbed: 'sincos', classDropout: 0.1, latentScale: SD_LATENT_SCALE }),
  // DiT's optimisation (SPEC §4); batch 256 as DiT's is for CIFAR and latents, MNIST's is below.
  sharedDefaults: {
    epochs: 100, batchSize: 256, lr: 1e-4, beta1: 0.9, beta2: 0.999, weightDecay: 0, warmupEpochs: 0, clipGrad: 0, ema: DIT_EMA,
    translate: 0, cropPadding: 0,
  },
  // The MNIST default is a run of 5,000 steps (40 epochs of 125 at batch 64), chosen by
  // measurement (README, "Diffusion"). An EMA at 0.9999 averages over ~10,000 steps, so after
  // 5,000 it would still hold 0.9999^5000 = 61% of the starting weights (whose output is exactly
  // zero: adaLN-Zero); at 0.999 that share is 0.999^5000 < 1%, and the average spans the last
  // ~1,000 steps. DiT's lr 1e-4 is for batch 256 and hundreds of epochs; on the digits lr 1e-3
  // had a lower held-out loss after 8 epochs (0.072 against 0.081) and draws digits after 40.
  defaultsFor: (given) => ((given.data ?? 'mnist') === 'mnist' ? { epochs: MNIST_DIT_EPOCHS, batchSize: 64, lr: MNIST_DIT_LR, ema: SHORT_RUN_EMA } : {}),
  fields: [
    {
      key: 'model', flag: '--model <name>', help: 'DiT: dit-<size>/<p>, <size> s, b, l, xl or d<depth>w<width>h<heads>; /1 is one token per pixel (the paper\'s PiT)',
      rule: { kind: 'text', check: parseDitName, expected: 'a DiT name such as dit-d4w64h4/1, dit-s/2 or dit-l/1' },
    },
    { key: 'posEmbed', flag: '--pe <kind>', help: 'position embedding (sincos is DiT\'s; learned carries no locality prior)', rule: { kind: 'choice', values: ['sincos', 'learned', 'none'] } },
    { key: 'classDropout', flag: '--class-dropout <p>', help: 'share of training labels replaced by the null class (for classifier-free guidance)', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'latentScale', flag: '--latent-scale <s>', help: '--data latents: multiply the latents by s (Stable Diffusion\'s VAE: 0.18215)', rule: { kind: 'number', min: 0 } },
  ],
  check(part) {
    const r = part as Readonly<DitRecipe>;  // checkRecipe checks the task's part on the whole recipe
    const { dim, heads, patch } = parseDitName(r.model);
    if (dim % heads) failField(r, 'model', `a DiT whose heads divide its width (${dim} is not a multiple of ${heads})`);
    if (r.imageSize !== null && r.imageSize % patch) failField(r, 'imageSize', `a multiple of the patch size ${patch} of ${r.model}`);
    if (!(r.latentScale > 0)) failField(r, 'latentScale', 'a number > 0');
    if (r.flip && r.data === 'mnist') failField(r, 'flip', 'false for digits (a mirrored digit is not a digit: the model would learn to draw them)');
    if (r.permuteSwaps) failField(r, 'permuteSwaps', '0 for diffusion (a DiT trained on permuted pixels draws permuted images; the permutation study is for classifiers)');
  },
  sharedHelp: {
    data: 'data set: digits, CIFAR (pixels scaled to [−1, 1]) or pre-computed latents (× --latent-scale)',
    dataDir: 'folder of the CIFAR binary files, or of latents.npy (N, C, H, W) float32/float16 and labels.npy (N) int32/int64',
    weightDecay: 'AdamW weight decay (DiT: 0)',
    ema: `EMA of the weights, started as a copy of them; sampling uses it (0: off; ${SHORT_RUN_EMA} for mnist, DiT's ${DIT_EMA} otherwise)`,
    epochs: `epochs (${MNIST_DIT_EPOCHS} for mnist, 100 otherwise)`,
    batchSize: 'images per step (64 for mnist, DiT\'s 256 otherwise)',
    lr: `learning rate, constant (${MNIST_DIT_LR} for mnist, DiT's 1e-4 otherwise)`,
  },
  derived: {
    rules: { minLr: 'DiT trains at a constant lr: minLr = lr' },
    apply: (r) => ({ minLr: r.lr }),
  },
};

/** The per-channel statistics the runner normalises with: pixels → [−1, 1], latents → × latentScale. */
export function diffusionNormalization(data: DataName, channels: number, latentScale: number): { mean: Float32Array; std: Float32Array } {
  const latents = data === 'latents';
  return { mean: new Float32Array(channels).fill(latents ? 0 : 0.5), std: new Float32Array(channels).fill(latents ? 1 / latentScale : 0.5) };
}

/** The recipe's data with the diffusion's normalisation in place of the data's own statistics. */
export function diffusionData(recipe: Readonly<DitRecipe>): DataSplits {
  const { train, test, permutation } = loadImageData(recipe);
  const stats = diffusionNormalization(recipe.data, train.channels, recipe.latentScale);
  return { train: { ...train, ...stats }, test: { ...test, ...stats }, permutation };
}

/** The DiT the recipe describes, for images of `shape`. */
export function recipeDitConfig(recipe: Readonly<DitRecipe>, shape: Pick<DataShape, 'channels' | 'height' | 'width' | 'classes'>): DitConfig {
  return ditConfig(recipe.model, {
    imageSize: [shape.height, shape.width], channels: shape.channels, classes: shape.classes,
    posEmbed: recipe.posEmbed, classDropout: recipe.classDropout, seed: recipe.seed,
  });
}

const processes = new Map<number, GaussianDiffusion>();
/** The diffusion process a model of `timesteps` steps trains under (DiT's: linear β, T = 1000). */
export function diffusionOf(timesteps: number): GaussianDiffusion {
  let d = processes.get(timesteps);
  if (!d) processes.set(timesteps, (d = new GaussianDiffusion({ timesteps })));
  return d;
}

/** The hybrid loss terms of one batch: [loss, MSE, L_vb]; the loss is differentiable in the model. */
function batchLosses(model: DiffusionTransformer, images: Tensor, labels: Tensor, random: { seed: number; offset: number }, options: { precision?: Precision; recompute?: Recompute }) {
  return trainingLosses(diffusionOf(model.config.timesteps), (x, t, y) => model.forward(x, t, y, { random, ...options }), images, labels, { random });
}

/**
 * The run's peak: weights, gradients, AdamW and the EMA, plus the larger of a training step's
 * activations and an evaluation batch's; the images (or latents) on the host.
 */
export function diffuseMemory(recipe: Readonly<DitRecipe>, { precision }: { precision: Precision }): RunMemory {
  const data = imageDataSize(recipe);
  const config = recipeDitConfig(recipe, data);
  const train = estimateDitTrainingMemory(config, { batch: recipe.batchSize, precision, ema: recipe.ema > 0, recompute: recipe.recompute });
  const evaluation = estimateDitInferenceMemory(config, { batch: recipe.evalBatchSize, precision });
  const sizeKeys = recipe.data === 'latents' ? ['dataDir'] : ['imageSize'];
  return {
    device: [
      trainingStatePart(train, recipe.ema > 0, ['model', ...(recipe.posEmbed === 'learned' ? sizeKeys : []), ...(recipe.ema > 0 ? ['ema'] : [])]),
      activationsPart(train, evaluation, (evalWins) => `activations of ${evalWins ? 'an evaluation' : 'a training'} batch of ` +
        `${formatCount(evalWins ? recipe.evalBatchSize : recipe.batchSize)} images of ${formatCount(train.tokens)} tokens`, [...sizeKeys, 'model'], recipe.recompute),
    ],
    host: [{ ...imagesPart(data), keys: sizeKeys }],
  };
}

/** The held-out diffusion loss: its mean and its two terms over every image. */
export interface DiffusionMetrics {
  /** MSE + L_vb, as training minimises it. */
  loss: number;
  /** MSE(ε̂, ε). */
  mse: number;
  /** The variational bound in bits (what trains the variance). */
  vb: number;
  n: number;
}

/**
 * Evaluation draws: batch i of the held-out split takes its timesteps and noise from
 * { seed: EVAL_DIFFUSION_SEED, offset: i } whatever the run's seed and step (held-out.ts).
 */
export const EVAL_DIFFUSION_SEED = maxSeed;

/** The mean hybrid loss of `model` on every image of `data` at the fixed evaluation draws, labels kept (no dropout). */
export function evaluateDiffusion(model: DiffusionTransformer, data: Dataset, context: EvalContext): DiffusionMetrics {
  const [loss, mse, vb] = heldOutMeans(model, data, context, EVAL_DIFFUSION_SEED, (images, labels, random) => {
    const r = batchLosses(model, images, labels, random, { precision: context.precision });
    const terms = r.terms?.toArray() ?? [Number.NaN, 0];
    return [r.loss.toArray()[0]!, terms[0]!, terms[1]!];
  }, 'evaluateDiffusion');
  return { loss: loss!, mse: mse!, vb: vb!, n: data.n };
}

export const ditTask: Task<DiffuseRecipe, DiffusionTransformer, DiffusionMetrics> = {
  name: 'dit',
  checkpointFormat: 'pixel-transformer DiT checkpoint v1',
  recipe: diffuseRecipe,
  data: diffusionData,
  estimate: diffuseMemory,
  model: (recipe, shape, device) => new DiffusionTransformer(recipeDitConfig(recipe, shape), { device }),
  loss: (model, batch, { recipe, random, precision }) => batchLosses(model, batch.images, batch.labels, random, { precision, recompute: recipe.recompute }).loss,
  evaluate: evaluateDiffusion,
};
