// MAE pre-training (SPEC §3), the runner's second task: a masked autoencoder on the images
// alone (labels unused), loss = the model's MSE over the masked tokens, evaluation = the same
// loss on the held-out split under fixed masks, so epochs (and runs) compare.
//
// The learning rate follows MAE: the recipe gives the base lr `blr` and the run's peak lr is
// blr · batchSize / 256 (recipe.derived computes the shared `lr`, so the runner's schedule is
// untouched and `--lr` is no flag of `pit pretrain`).
import { maeConfig, MaskedAutoencoder, type MaeConfig } from '../../models/mae.js';
import { estimateMaeInferenceMemory, estimateMaeTrainingMemory, maeTokens } from '../../models/mae-memory.js';
import { modelSizes, parseModelName } from '../../models/names.js';
import { maxSeed, type Precision } from '../../nn/forward.js';
import type { Dataset } from '../../data/dataset.js';
import { imageDataSize, loadImageData } from '../data.js';
import { activationsPart, formatCount, imagesPart, trainingStatePart, type RunMemory } from '../memory.js';
import { failField, type RecipeField } from '../recipe-fields.js';
import type { Recipe, TaskRecipePart } from '../recipe.js';
import type { DataShape, EvalContext, Task } from '../task.js';
import { classifyRecipe } from './classify.js';
import { heldOutMeans } from './held-out.js';

export interface PretrainRecipe {
  /** The encoder: a model name (models/names.ts: pit-t, vit-s/2, pit-d4w64h4). */
  model: string;
  posEmbed: MaeConfig['posEmbed'];
  decoderPosEmbed: MaeConfig['decoderPosEmbed'];
  maskRatio: number;
  /** null: by the encoder (decoderSize). */
  decoderDepth: number | null;
  decoderDim: number | null;
  decoderHeads: number | null;
  normPixLoss: boolean;
  /** Base lr; the peak lr is blr · batchSize / 256 (MAE's rule). */
  blr: number;
}

/** The whole recipe of an MAE pre-training run. */
export type MaeRecipe = Recipe<PretrainRecipe>;

/** MAE's batch the base lr is quoted for: lr = blr · batch / 256. */
export const BLR_BATCH = 256;

/** The peak lr of a run: blr · batchSize / 256. */
export const maeLearningRate = (recipe: Readonly<Pick<MaeRecipe, 'blr' | 'batchSize'>>): number => (recipe.blr * recipe.batchSize) / BLR_BATCH;

/** MAE's decoder (8 blocks × 512 wide × 16 heads), the default for the preset encoders t, s, b, l. */
export const maeDecoder = Object.freeze({ depth: 8, dim: 512, heads: 16 });

/**
 * The decoder a recipe's null fields stand for: MAE's for a preset encoder (pit-t, vit-s/2, …);
 * for a custom d<depth>w<width>h<heads> encoder, 2 blocks of the encoder's width and heads
 * (the MNIST default pit-d4w64h4 gets 2 × 64 × 4).
 */
export function decoderSize(recipe: Readonly<Pick<PretrainRecipe, 'model' | 'decoderDepth' | 'decoderDim' | 'decoderHeads'>>): { depth: number; dim: number; heads: number } {
  const encoder = parseModelName(recipe.model);
  const preset = Object.values(modelSizes).some((s) => s.depth === encoder.depth && s.dim === encoder.dim && s.heads === encoder.heads);
  const fallback = preset ? maeDecoder : { depth: 2, dim: encoder.dim, heads: encoder.heads };
  return { depth: recipe.decoderDepth ?? fallback.depth, dim: recipe.decoderDim ?? fallback.dim, heads: recipe.decoderHeads ?? fallback.heads };
}

/** A field of the classifier's table (same key, flag and rule) with this task's help. */
function classifierField(key: 'model' | 'posEmbed', help: string): RecipeField<PretrainRecipe> {
  return { ...(classifyRecipe.fields.find((f) => f.key === key)! as unknown as RecipeField<PretrainRecipe>), help };
}

export const pretrainRecipe: TaskRecipePart<PretrainRecipe> = {
  // The MNIST recipe (README, "Pre-training (MAE)"): the pit-d4w64h4 encoder on 8×8 digits
  // (16 of 64 pixels visible), a 2 × 64 × 4 decoder, 10 epochs.
  defaults: Object.freeze({
    model: 'pit-d4w64h4', posEmbed: 'learned', decoderPosEmbed: 'learned', maskRatio: 0.75,
    decoderDepth: null, decoderDim: null, decoderHeads: null, normPixLoss: false, blr: 1e-2,
  }),
  // MAE's pre-training: AdamW β (0.9, 0.95), weight decay 0.05, cosine to 0; no clipping.
  sharedDefaults: { epochs: 10, beta1: 0.9, beta2: 0.95, weightDecay: 0.05, minLr: 0, clipGrad: 0 },
  fields: [
    classifierField('model', 'encoder: pit-<size> (1×1 patches) or vit-<size>/<p>, <size> t, s, b, l or d<depth>w<width>h<heads>'),
    classifierField('posEmbed', 'encoder position embedding'),
    { key: 'decoderPosEmbed', flag: '--decoder-pe <kind>', help: 'decoder position embedding (MAE\'s reference: frozen sincos)', rule: { kind: 'choice', values: ['learned', 'sincos', 'none'] } },
    { key: 'maskRatio', flag: '--mask-ratio <r>', help: 'share of tokens masked; the encoder sees int(N·(1 − r))', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'decoderDepth', flag: '--decoder-depth <n>', help: 'decoder blocks', rule: { kind: 'integer', min: 1, nullable: true },
      defaultHelp: `${maeDecoder.depth} for the presets t, s, b, l (MAE's 8 × 512 × 16 decoder: at p = 1 it runs on every pixel and costs ~20× a PiT-T encoder); 2 for d…w…h… encoders` },
    { key: 'decoderDim', flag: '--decoder-dim <n>', help: 'decoder width', rule: { kind: 'integer', min: 1, nullable: true },
      defaultHelp: `${maeDecoder.dim} for the presets; the encoder's width for d…w…h… encoders` },
    { key: 'decoderHeads', flag: '--decoder-heads <n>', help: 'decoder attention heads', rule: { kind: 'integer', min: 1, nullable: true },
      defaultHelp: `${maeDecoder.heads} for the presets; the encoder's heads for d…w…h… encoders` },
    { key: 'normPixLoss', flag: '--norm-pix-loss', help: 'normalise each target token by its mean and variance (needs patch > 1)', rule: { kind: 'boolean' } },
    { key: 'blr', flag: '--blr <lr>', help: `base learning rate: the peak lr is blr × batch size / ${BLR_BATCH} (MAE's rule; --lr is computed from it)`, rule: { kind: 'number', min: 0 } },
  ],
  check(r) {
    const decoder = decoderSize(r);
    if (decoder.dim % decoder.heads) failField(r, 'decoderHeads', `a divisor of the decoder width ${decoder.dim}`);
    if (r.normPixLoss && parseModelName(r.model).patch === 1)
      failField(r, 'normPixLoss', 'false at patch 1 (a token is one pixel: its mean and variance over one value are undefined, SPEC §3)');
  },
  sharedHelp: { weightDecay: 'AdamW weight decay (not on 1-D parameters: biases and LayerNorms, SPEC §3)' },
  derived: {
    rules: { lr: `blr × batchSize / ${BLR_BATCH}: set --blr` },
    apply: (r) => ({ lr: maeLearningRate(r) }),
  },
};

/** The MAE the recipe describes, for images of `shape`. */
export function recipeMaeConfig(recipe: Readonly<MaeRecipe>, shape: Pick<DataShape, 'channels' | 'height' | 'width'>): MaeConfig {
  const decoder = decoderSize(recipe);
  return maeConfig(recipe.model, {
    imageSize: [shape.height, shape.width], channels: shape.channels, posEmbed: recipe.posEmbed, seed: recipe.seed,
    maskRatio: recipe.maskRatio, decoderDepth: decoder.depth, decoderDim: decoder.dim, decoderHeads: decoder.heads,
    decoderPosEmbed: recipe.decoderPosEmbed, normPixLoss: recipe.normPixLoss,
  });
}

/**
 * The run's peak: weights, gradients, AdamW (and EMA), plus the larger of a training step's
 * activations (encoder on the K + 1 kept tokens, decoder on all N + 1) and an evaluation
 * batch's; the images on the host.
 */
export function pretrainMemory(recipe: Readonly<MaeRecipe>, { precision }: { precision: Precision }): RunMemory {
  const data = imageDataSize(recipe);
  const config = recipeMaeConfig(recipe, data);
  const train = estimateMaeTrainingMemory(config, { batch: recipe.batchSize, precision, ema: recipe.ema > 0, recompute: recipe.recompute });
  const evaluation = estimateMaeInferenceMemory(config, { batch: recipe.evalBatchSize, precision });
  const tokens = maeTokens(config);
  const modelKeys = ['model', 'decoderDepth', 'decoderDim', ...(recipe.posEmbed === 'learned' || recipe.decoderPosEmbed === 'learned' ? ['imageSize'] : []), ...(recipe.ema > 0 ? ['ema'] : [])];
  return {
    device: [
      trainingStatePart(train, recipe.ema > 0, modelKeys),
      activationsPart(train, evaluation, (evalWins) => `activations of ${evalWins ? 'an evaluation' : 'a training'} batch of ` +
        `${formatCount(evalWins ? recipe.evalBatchSize : recipe.batchSize)} images: encoder on ${formatCount(tokens.encoder)} tokens, decoder on ${formatCount(tokens.decoder)}`,
      ['imageSize', 'maskRatio', 'model', 'decoderDepth', 'decoderDim'], recipe.recompute),
    ],
    host: [imagesPart(data)],
  };
}

/** The held-out reconstruction loss: MSE over the masked tokens, averaged over every image. */
export interface ReconstructionMetrics {
  loss: number;
  n: number;
}

/**
 * Evaluation masks: batch i of the held-out split draws from { seed: EVAL_MASK_SEED, offset: i }
 * whatever the run's seed and step, so every epoch (and every run at the same evalBatchSize)
 * is scored on the same masks.
 */
export const EVAL_MASK_SEED = maxSeed;

/** The mean masked MSE of `model` on every image of `data`, in eval mode (restored afterwards). */
export function evaluateReconstruction(model: MaskedAutoencoder, data: Dataset, context: EvalContext): ReconstructionMetrics {
  // Every image has the same number of masked tokens: the batch means weighted by B give the mean over all.
  const [loss] = heldOutMeans(model, data, context, EVAL_MASK_SEED,
    (images, _labels, random) => model.forward(images, { random, precision: context.precision }).loss.toArray(), 'evaluateReconstruction');
  return { loss: loss!, n: data.n };
}

/** Names whose values (besides every 1-D parameter) AdamW does not decay: none (SPEC §3: 1-D parameters and biases only). */
export const maeNoDecayNames: readonly string[] = [];

export const pretrainTask: Task<PretrainRecipe, MaskedAutoencoder, ReconstructionMetrics> = {
  name: 'mae',
  checkpointFormat: 'pixel-transformer MAE checkpoint v1',
  recipe: pretrainRecipe,
  data: loadImageData,
  estimate: pretrainMemory,
  model: (recipe, shape, device) => new MaskedAutoencoder(recipeMaeConfig(recipe, shape), { device }),
  // SPEC §3: weight decay skips 1-D parameters (biases, LayerNorms) only; cls_token, mask_token
  // and the learned position tables are decayed, as in MAE's add_weight_decay.
  optimizerOptions: () => ({ noDecayNames: maeNoDecayNames }),
  loss: (model, batch, { recipe, random, precision }) => model.forward(batch.images, { random, precision, recompute: recipe.recompute }).loss,
  evaluate: evaluateReconstruction,
};
