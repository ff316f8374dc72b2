// `pit mae show`: the MAE paper's reconstruction figure for a pre-training run's first held-out
// images (lib/viz/mae-figure.ts builds it). The run's saved recipe gives the data, its saved
// normalisation the colours; the masks come from --seed, so the same command gives the same PNG.
import { Command } from 'commander';
import { maeFigure, writePng } from '../lib/index.js';
import { deviceOption, integer, skipChecksumOption } from './args.js';

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
  const figure = maeFigure(flags.checkpoint, {
    n: flags.n, seed: flags.seed, ema: flags.ema, scale: flags.scale, columns: flags.columns, dataDir: flags.dataDir, device: flags.device, verify: !flags.skipChecksum,
  });
  writePng(flags.out, figure.image);
  console.log(`${flags.out}: ${figure.image.width}×${figure.image.height}, ${figure.caption.replace(/seed (\d+)/, '--seed $1')}`);
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
