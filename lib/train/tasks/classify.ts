// Classification, the runner's first task: a ViT/PiT on labelled images, label-smoothed
// cross-entropy, and held-out loss, top-1 and top-5 after every epoch.
import { parseModelName } from '../../models/names.js';
import { modelConfig, VisionTransformer, type VitConfig } from '../../models/vit.js';
import { softmaxCrossEntropy } from '../../ops/index.js';
import { estimateInferenceMemory, estimateTrainingMemory } from '../../models/vit-memory.js';
import type { Precision } from '../../nn/forward.js';
import { imageDataSize, loadImageData } from '../data.js';
import { activationsPart, formatCount, imagesPart, trainingStatePart, type RunMemory } from '../memory.js';
import type { Recipe, TaskRecipePart } from '../recipe.js';
import { failField } from '../recipe-fields.js';
import { FINETUNE_HEAD_STD, layerDecayScale, loadPretrainedEncoder } from './finetune.js';
import type { DataShape, Task } from '../task.js';
import { evaluate, type ClassificationMetrics } from './classify-metrics.js';

export interface ClassifyRecipe {
  /** A model name (models/names.ts: pit-t, vit-s/2, pit-d4w64h4); depth/dim/heads/patch, when not null, override it. */
  model: string;
  depth: number | null;
  dim: number | null;
  heads: number | null;
  patch: number | null;
  posEmbed: VitConfig['posEmbed'];
  pool: VitConfig['pool'];
  dropPath: number;
  labelSmoothing: number;
  /** A run or checkpoint folder of a pre-trained MAE or classifier whose encoder starts this run (null: from scratch). */
  init: string | null;
  /** Layer-wise lr decay (SPEC §3) in (0, 1]; 1 = off. */
  layerDecay: number;
}

/** The whole recipe of a classification run. */
export type ClassifierRecipe = Recipe<ClassifyRecipe>;

export const classifyRecipe: TaskRecipePart<ClassifyRecipe> = {
  defaults: Object.freeze({
    model: 'pit-d4w64h4', depth: null, dim: null, heads: null, patch: null, posEmbed: 'learned', pool: 'avg', dropPath: 0, labelSmoothing: 0.1, init: null, layerDecay: 1,
  }),
  fields: [
    {
      key: 'model', flag: '--model <name>', help: 'model: pit-<size> (1×1 patches) or vit-<size>/<p>, <size> t, s, b, l or d<depth>w<width>h<heads>',
      rule: { kind: 'text', check: parseModelName, expected: 'a model name such as pit-t, vit-s/2 or pit-d4w64h4 (pit-<size> or vit-<size>/<patch>, <size> one of t, s, b, l or d<depth>w<width>h<heads>)' },
    },
    { key: 'depth', flag: '--depth <n>', help: 'blocks (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'dim', flag: '--dim <n>', help: 'width d (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'heads', flag: '--heads <n>', help: 'attention heads (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'patch', flag: '--patch <n>', help: 'patch size p: 1 is PiT, 2 the ViT/2 baseline (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'posEmbed', flag: '--pe <kind>', help: 'position embedding', rule: { kind: 'choice', values: ['learned', 'sincos', 'none'] } },
    { key: 'pool', flag: '--pool <kind>', help: 'pooling before the head', rule: { kind: 'choice', values: ['avg', 'cls'] } },
    { key: 'dropPath', flag: '--drop-path <rate>', help: 'stochastic depth rate of the last block', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'labelSmoothing', flag: '--label-smoothing <s>', help: 'label smoothing', rule: { kind: 'number', min: 0, max: 1 } },
    {
      key: 'init', flag: '--init <path>', help: 'fine-tune: start from the encoder of a pre-trained MAE or classifier (its run folder or checkpoint folder); decoder dropped, head fresh (std 2e-5)',
      rule: { kind: 'text', nullable: true, check: nonEmpty, expected: 'a run folder or checkpoint folder' },
    },
    { key: 'layerDecay', flag: '--layer-decay <d>', help: 'layer-wise lr decay: block k trains at lr·d^(depth − k), the embeddings at lr·d^(depth + 1); 1 is off', rule: { kind: 'number', min: 0, max: 1, maxClosed: true } },
  ],
  check: (r) => {
    if (!(r.layerDecay > 0)) failField(r, 'layerDecay', 'a number in (0, 1] (1 is off)');
  },
  // Fine-tuning (SPEC §3, MAE's recipe): AdamW β (0.9, 0.999), not pre-training's 0.95.
  defaultsFor: (given) => (given.init != null ? { beta1: 0.9, beta2: 0.999 } : {}),
  sharedHelp: { beta1: 'AdamW betas (with --init, fine-tuning: 0.9,0.999 unless given, SPEC §3)' },
  // Runs saved before model names had one grammar called the npm start model "custom".
  upgrade: (saved) => (saved.model === 'custom' ? { ...saved, model: 'pit-d4w64h4' } : { ...saved }),
};

function nonEmpty(value: string): void {
  if (!value) throw new RangeError('must be a run folder or checkpoint folder, got an empty path');
}

/** The model the recipe describes (its name, then the overrides that are not null), for images of `shape`. */
export function recipeModelConfig(recipe: Readonly<ClassifierRecipe>, shape: DataShape): VitConfig {
  const overrides = Object.fromEntries((['depth', 'dim', 'heads', 'patch'] as const).filter((k) => recipe[k] !== null).map((k) => [k, recipe[k]]));
  return modelConfig(recipe.model, {
    ...overrides,
    imageSize: [shape.height, shape.width],
    channels: shape.channels,
    classes: shape.classes,
    posEmbed: recipe.posEmbed,
    pool: recipe.pool,
    dropPath: recipe.dropPath,
    seed: recipe.seed,
  });
}

/**
 * The run's peak: weights, gradients, AdamW (and EMA) on the device, plus the larger of a
 * training step's activations and an evaluation batch's (one block's tensors at a time: see
 * estimateInferenceMemory); the images on the host.
 */
export function classifyMemory(recipe: Readonly<ClassifierRecipe>, { precision }: { precision: Precision }): RunMemory {
  const data = imageDataSize(recipe);
  const config = recipeModelConfig(recipe, data);
  const train = estimateTrainingMemory(config, { batch: recipe.batchSize, precision, ema: recipe.ema > 0, recompute: recipe.recompute });
  const evaluation = estimateInferenceMemory(config, { batch: recipe.evalBatchSize, precision });
  // The keys that make each part grow (a learned position table grows with the image).
  const modelKeys = ['model', 'depth', 'dim', ...(recipe.posEmbed === 'learned' ? ['imageSize'] : []), ...(recipe.ema > 0 ? ['ema'] : [])];
  return {
    device: [
      trainingStatePart(train, recipe.ema > 0, modelKeys),
      activationsPart(train, evaluation, (evalWins) => evalWins
        ? `activations of an evaluation batch of ${formatCount(recipe.evalBatchSize)} images × ${formatCount(train.tokens)} tokens, one block of width ${formatCount(config.dim)} at a time`
        : `activations of a training batch of ${formatCount(recipe.batchSize)} images × ${formatCount(train.tokens)} tokens × ${formatCount(config.depth)} blocks of width ${formatCount(config.dim)}`,
      ['imageSize', 'patch', 'depth', 'dim', 'model'], recipe.recompute),
    ],
    host: [imagesPart(data)],
  };
}

export const classifyTask: Task<ClassifyRecipe, VisionTransformer, ClassificationMetrics> = {
  name: 'classify',
  checkpointFormat: 'pixel-transformer classifier checkpoint v1',
  recipe: classifyRecipe,
  data: loadImageData,
  estimate: classifyMemory,
  model: (recipe, shape, device) =>
    new VisionTransformer(recipeModelConfig(recipe, shape), { device, ...(recipe.init !== null ? { headStd: FINETUNE_HEAD_STD } : {}) }),
  initialize: (model, recipe) => {
    if (recipe.init !== null) loadPretrainedEncoder(model, recipe.init);
  },
  optimizerOptions: (model, recipe) => (recipe.layerDecay < 1 ? { lrScale: layerDecayScale(model.config.depth, recipe.layerDecay) } : {}),
  loss: (model, batch, { recipe, random, precision }) =>
    softmaxCrossEntropy(model.forward(batch.images, { precision, random, recompute: recipe.recompute }), batch.labels, { labelSmoothing: recipe.labelSmoothing }),
  evaluate,
};
