// Classification, the runner's first task: a ViT/PiT on labelled images, label-smoothed
// cross-entropy, and held-out loss, top-1 and top-5 after every epoch.
import { VisionTransformer, presetConfig, vitPresets, type VitConfig } from '../../models/vit.js';
import { softmaxCrossEntropy } from '../../ops/index.js';
import { loadImageData } from '../data.js';
import type { Recipe, TaskRecipePart } from '../recipe.js';
import type { DataShape, Task } from '../task.js';
import { evaluate, type ClassificationMetrics } from './classify-metrics.js';

export interface ClassifyRecipe {
  /**
   * A preset (pit-t, vit-s/2, …) or "custom" (customModel: depth 4, dim 64, 4 heads, patch 1);
   * depth/dim/heads/patch, when not null, override it.
   */
  model: string;
  depth: number | null;
  dim: number | null;
  heads: number | null;
  patch: number | null;
  posEmbed: VitConfig['posEmbed'];
  pool: VitConfig['pool'];
  dropPath: number;
  labelSmoothing: number;
}

/** The whole recipe of a classification run. */
export type ClassifierRecipe = Recipe<ClassifyRecipe>;

/** The "custom" model before overrides: the small PiT of the default recipe. */
export const customModel = Object.freeze({ depth: 4, dim: 64, heads: 4, patch: 1 });

export const classifyRecipe: TaskRecipePart<ClassifyRecipe> = {
  defaults: Object.freeze({
    model: 'custom', depth: null, dim: null, heads: null, patch: null, posEmbed: 'learned', pool: 'avg', dropPath: 0, labelSmoothing: 0.1,
  }),
  fields: [
    {
      key: 'model', flag: '--model <name>', help: `preset, or "custom": depth ${customModel.depth}, dim ${customModel.dim}, ${customModel.heads} heads, patch ${customModel.patch} unless overridden`,
      rule: { kind: 'text', accepts: (name) => name === 'custom' || Boolean(vitPresets[name]), expected: `"custom" or one of ${Object.keys(vitPresets).join(', ')}` },
    },
    { key: 'depth', flag: '--depth <n>', help: 'blocks (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'dim', flag: '--dim <n>', help: 'width d (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'heads', flag: '--heads <n>', help: 'attention heads (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'patch', flag: '--patch <n>', help: 'patch size p: 1 is PiT, 2 the ViT/2 baseline (overrides the model)', rule: { kind: 'integer', min: 1, nullable: true } },
    { key: 'posEmbed', flag: '--pe <kind>', help: 'position embedding', rule: { kind: 'choice', values: ['learned', 'sincos', 'none'] } },
    { key: 'pool', flag: '--pool <kind>', help: 'pooling before the head', rule: { kind: 'choice', values: ['avg', 'cls'] } },
    { key: 'dropPath', flag: '--drop-path <rate>', help: 'stochastic depth rate of the last block', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'labelSmoothing', flag: '--label-smoothing <s>', help: 'label smoothing', rule: { kind: 'number', min: 0, max: 1 } },
  ],
};

/** The model the recipe describes, for images of `shape`. */
export function recipeModelConfig(recipe: Readonly<ClassifierRecipe>, shape: DataShape): VitConfig {
  const base = recipe.model === 'custom' ? presetConfig('pit-t', customModel) : presetConfig(recipe.model);
  const pick = <K extends 'depth' | 'dim' | 'heads' | 'patch'>(k: K): number => recipe[k] ?? base[k];
  return {
    ...base,
    imageSize: [shape.height, shape.width],
    channels: shape.channels,
    classes: shape.classes,
    depth: pick('depth'),
    dim: pick('dim'),
    heads: pick('heads'),
    patch: pick('patch'),
    posEmbed: recipe.posEmbed,
    pool: recipe.pool,
    dropPath: recipe.dropPath,
    seed: recipe.seed,
  };
}

export const classifyTask: Task<ClassifyRecipe, VisionTransformer, ClassificationMetrics> = {
  name: 'classify',
  checkpointFormat: 'pixel-transformer classifier checkpoint v1',
  recipe: classifyRecipe,
  data: loadImageData,
  model: (recipe, shape, _device) => new VisionTransformer(recipeModelConfig(recipe, shape)),
  loss: (model, batch, { recipe, random }) =>
    softmaxCrossEntropy(model.forward(batch.images, random), batch.labels, { labelSmoothing: recipe.labelSmoothing }),
  evaluate: (model, data, { normalization, batchSize, device }) => evaluate(model, data, { normalization, batchSize, device }),
};
