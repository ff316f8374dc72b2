// `pit mae show`: the MAE paper's reconstruction figure for a pre-training run's first held-out
// images (lib/viz/mae-grid.ts draws it). The run's saved recipe gives the data, its saved
// normalisation the colours; the masks come from --seed, so the same command gives the same PNG.
import { Command } from 'commander';
import { MaskedAutoencoder, type MaeConfig } from '../lib/models/mae.js';
import { selectBackend } from '../lib/native.js';
import {
  loadModelWeights, maeReconstruct, maeReconstructionGrid, makeRecipe, normalize, pretrainTask, readCheckpointWeights, resolveCheckpoint,
  savedRecipe, writePng,
} from '../lib/index.js';
import { deviceOption, integer, skipChecksumOption } from './args.js';
import { checkNormalization } from './train.js';

interface ShowFlags {
  checkpoint: string;
  out: string;
  n: number;
  seed: number;
  ema: boolean;
  scale?: number;
  columns?: number;
  dataDir?: string;
  device: 'auto' | 'cpu' | 'cuda';
  skipChecksum: boolean;
}

function show(flags: ShowFlags): void {
  const dir = resolveCheckpoint(flags.checkpoint);
  const weights = readCheckpointWeights(dir, { ema: flags.ema, verify: !flags.skipChecksum });
  const meta = weights.metadata;
  const config = meta.config as MaeConfig | undefined;
  if (meta.task !== pretrainTask.name || !config || typeof config !== 'object' || !('decoderDim' in config))
    throw new RangeError(`mae show: ${dir} is not an MAE pre-training checkpoint (its task is ${JSON.stringify(meta.task) ?? 'not recorded'}, not '${pretrainTask.name}'); ` +
      'pass a run folder or checkpoint of `pit pretrain`');
  const normalization = checkNormalization(weights.path, meta.normalization, config.channels, 'mae show');
  const recipe = makeRecipe(pretrainTask.recipe, { ...savedRecipe(pretrainTask.recipe, meta, dir), ...(flags.dataDir ? { dataDir: flags.dataDir } : {}) });
  const { test } = pretrainTask.data(recipe);
  if (flags.n > test.n) throw new RangeError(`mae show: '--n' ${flags.n} exceeds the ${test.n} held-out images of ${test.name}`);
  const size = test.channels * test.height * test.width;
  const images = normalize(test.images.slice(0, flags.n * size), test, normalization.mean, normalization.std);

  const model = new MaskedAutoencoder(config, { device: selectBackend({ device: flags.device }).backend });
  try {
    loadModelWeights(weights, model);
    const { pred, mask } = maeReconstruct(model, images, { seed: flags.seed });
    const grid = maeReconstructionGrid({ images, pred, mask, shape: test, patch: config.patch, normalization }, { scale: flags.scale, columns: flags.columns });
    writePng(flags.out, grid);
    console.log(`${flags.out}: ${grid.width}×${grid.height}, the first ${flags.n} images of ${test.name} as original / masked ` +
      `(${Math.round(config.maskRatio * 100)}%, --seed ${flags.seed}) / reconstruction, ${flags.ema ? 'EMA' : 'trained'} weights of ${dir}`);
  } finally {
    model.dispose();
  }
}

export function registerMae(program: Command): void {
  const mae = program.command('mae').description('look at masked-autoencoder (pit pretrain) runs');
  mae
    .command('show')
    .description('draw a PNG of held-out images as original / masked input (removed pixels grey) / reconstruction (visible pixels pasted back), as in the MAE paper\'s figures')
    .requiredOption('--checkpoint <path>', 'a pit pretrain run folder (its latest checkpoint) or a checkpoint folder')
    .requiredOption('--out <file>', 'the PNG to write')
    .option('--n <n>', 'how many held-out images (the first n of the split)', integer(1), 16)
    .option('--seed <s>', 'seed of the masks: the same seed draws the same masks', integer(0), 0)
    .option('--ema', 'use the EMA weights (ema.safetensors)', false)
    .option('--scale <k>', 'nearest-neighbour upscaling of each panel (default: panels at least 64 px)', integer(1))
    .option('--columns <c>', 'images per row of the grid (default ⌈√n⌉)', integer(1))
    .option('--data-dir <dir>', 'folder of the CIFAR binary files, if not where the run found them')
    .addOption(deviceOption())
    .addOption(skipChecksumOption('shown'))
    .action(show);
}
