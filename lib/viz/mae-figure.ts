// The MAE paper's reconstruction figure for a pre-training checkpoint: its first held-out
// images as original / masked input / reconstruction (mae-grid.ts draws it). The checkpoint's
// saved recipe gives the data, its saved normalisation the colours; the masks come from
// `seed`, so the same call gives the same picture. `pit mae show` and `pit study pretrain` use it.
import { normalize } from '../data/transforms.js';
import { MaskedAutoencoder, type MaeConfig } from '../models/mae.js';
import { selectBackend } from '../native.js';
import { checkpointNormalization, loadModelWeights, readCheckpointWeights } from '../train/checkpoint.js';
import { makeRecipe, savedRecipe } from '../train/recipe.js';
import { resolveCheckpoint } from '../train/run-checkpoints.js';
import { pretrainTask } from '../train/tasks/pretrain.js';
import { maeReconstruct, maeReconstructionGrid, type GridLayout, type RgbaImage } from './mae-grid.js';

export interface MaeFigureOptions {
  /** How many held-out images (the first n of the split); default 16. */
  n?: number;
  /** Seed of the masks; default 0. */
  seed?: number;
  /** The EMA weights (ema.safetensors) instead of the trained ones. */
  ema?: boolean;
  /** Nearest-neighbour upscaling of each panel (default: panels at least 64 px). */
  scale?: number;
  /** Images per row (default ⌈√n⌉). */
  columns?: number;
  /** The CIFAR folder, if not where the run found it. */
  dataDir?: string;
  device?: 'auto' | 'cpu' | 'cuda';
  /** Check the weights' checksum (default true). */
  verify?: boolean;
  /** The command named in errors (default 'mae show'). */
  command?: string;
}

export interface MaeFigure {
  image: RgbaImage & { layout: GridLayout };
  /** The checkpoint folder the weights came from. */
  checkpoint: string;
  /** What it shows, in words. */
  caption: string;
}

/** The figure of the checkpoint (or run folder's latest) at `from`. */
export function maeFigure(from: string, options: MaeFigureOptions = {}): MaeFigure {
  const { n = 16, seed = 0, ema = false, command = 'mae show' } = options;
  const dir = resolveCheckpoint(from);
  const weights = readCheckpointWeights(dir, { ema, verify: options.verify ?? true });
  const meta = weights.metadata;
  const config = meta.config as MaeConfig | undefined;
  if (meta.task !== pretrainTask.name || !config || typeof config !== 'object' || !('decoderDim' in config))
    throw new RangeError(`${command}: ${dir} is not an MAE pre-training checkpoint (its task is ${JSON.stringify(meta.task) ?? 'not recorded'}, not '${pretrainTask.name}'); ` +
      'pass a run folder or checkpoint of `pit pretrain`');
  const normalization = checkpointNormalization(weights.path, meta.normalization, config.channels, command);
  const recipe = makeRecipe(pretrainTask.recipe, { ...savedRecipe(pretrainTask.recipe, meta, dir), ...(options.dataDir ? { dataDir: options.dataDir } : {}) });
  const { test } = pretrainTask.data(recipe);
  if (n > test.n) throw new RangeError(`${command}: '--n' ${n} exceeds the ${test.n} held-out images of ${test.name}`);
  const size = test.channels * test.height * test.width;
  const images = normalize(test.images.slice(0, n * size), test, normalization.mean, normalization.std);

  const model = new MaskedAutoencoder(config, { device: selectBackend({ device: options.device ?? 'auto' }).backend });
  try {
    loadModelWeights(weights, model);
    const { pred, mask } = maeReconstruct(model, images, { seed });
    const image = maeReconstructionGrid({ images, pred, mask, shape: test, patch: config.patch, normalization }, { scale: options.scale, columns: options.columns });
    const caption = `the first ${n} images of ${test.name} as original / masked (${Math.round(config.maskRatio * 100)}%, seed ${seed}) / reconstruction, ` +
      `${ema ? 'EMA' : 'trained'} weights of ${dir}`;
    return { image, checkpoint: dir, caption };
  } finally {
    model.dispose();
  }
}
