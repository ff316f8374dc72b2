// A trained classifier back from its checkpoint: the model with its weights, the per-channel
// normalisation it was trained with and its saved recipe. What `pit eval` evaluates and what
// the generation metrics (lib/eval) take their feature space from.
import { VisionTransformer, type VitConfig } from '../../models/vit.js';
import type { Device } from '../../tensor.js';
import { checkpointNormalization, loadModelWeights, readCheckpointWeights } from '../checkpoint.js';
import { savedRecipe } from '../recipe.js';
import { resolveCheckpoint } from '../run-checkpoints.js';
import { classifyTask } from './classify.js';
import type { ClassifierRecipe } from './classify.js';

export interface ClassifierCheckpointOptions {
  /** Load ema.safetensors (an error when the run kept no EMA). Default false. */
  ema?: boolean;
  /** Check the weights file's checksum before using its metadata. Default true. */
  verify?: boolean;
  /** Where the model is built; default 'cpu'. */
  device?: Device;
  /** The command named in errors about the checkpoint's metadata. Default 'classifier'. */
  command?: string;
}

export interface LoadedClassifier {
  /** In eval mode; the caller disposes it. */
  model: VisionTransformer;
  /** The per-channel mean and std of the training split, which the model's inputs are normalised by. */
  normalization: { mean: number[]; std: number[] };
  /** The checkpoint folder read (a run folder resolves to its latest). */
  checkpoint: string;
  /** Which weights: the trained model's or its EMA. */
  weights: 'model' | 'ema';
  /** The run's recipe as saved (complete; makeRecipe(classifyTask.recipe, recipe) rebuilds it). */
  recipe: Partial<ClassifierRecipe>;
  config: VitConfig;
}

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
  const model = new VisionTransformer(config, { device });
  try {
    loadModelWeights(weights, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, normalization, checkpoint: dir, weights: ema ? 'ema' : 'model', recipe, config: model.config };
}
