// A trained classifier back from its checkpoint: the model with its weights, the per-channel
// normalisation it was trained with and its saved recipe. What `pit eval` evaluates and what
// the generation metrics (lib/eval) take their feature space from.
import { VisionTransformer, type VitConfig } from '../../models/vit.js';
import { checkpointNormalization, modelForEval, readCheckpointWeights, type LoadedModel, type ModelLoadOptions } from '../checkpoint.js';
import { savedRecipe } from '../recipe.js';
import { resolveCheckpoint } from '../run-checkpoints.js';
import { classifyTask } from './classify.js';
import type { ClassifierRecipe } from './classify.js';

/** ema (default false), verify, device and command (default 'classifier'). */
export type ClassifierCheckpointOptions = ModelLoadOptions;

/** The classifier, its saved recipe (complete: makeRecipe(classifyTask.recipe, recipe) rebuilds it) and config. */
export type LoadedClassifier = LoadedModel<VisionTransformer, Partial<ClassifierRecipe>, VitConfig>;

/**
 * The classifier a `pit train` run or checkpoint folder holds, weights loaded. The weights
 * file is read once and its checksum verified before its metadata (recipe, config,
 * normalisation) is used; a run of another task, or metadata without a config or a valid
 * normalisation, is an error naming the file.
 */
export function classifierFromCheckpoint(path: string, options: ClassifierCheckpointOptions = {}): LoadedClassifier {
  const { ema = false, verify = true, device = 'cpu', command = 'classifier' } = options;
  const dir = resolveCheckpoint(path);
  const weights = readCheckpointWeights(dir, { ema, verify });
  const meta = weights.metadata;
  if (meta.task !== undefined && meta.task !== classifyTask.name)
    throw new RangeError(`${command}: ${dir} is a '${String(meta.task)}' run; ${command} reads classification (pit train) checkpoints`);
  const recipe = savedRecipe(classifyTask.recipe, meta, dir);
  const config = meta.config as VitConfig | undefined;
  if (!config) throw new RangeError(`${command}: ${dir} is not a pit train checkpoint (its metadata has no model config)`);
  const normalization = checkpointNormalization(weights.path, meta.normalization, config.channels, command);
  const model = modelForEval(new VisionTransformer(config, { device }), weights);
  return { model, normalization, checkpoint: dir, weights: ema ? 'ema' : 'model', recipe, config: model.config };
}
