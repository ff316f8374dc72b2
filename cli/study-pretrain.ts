// `pit study pretrain`: the small-scale Table 4 (bench/pretrain-study.ts): MAE pre-training +
// fine-tuning against training from scratch, per encoder, over several seeds.
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseModelName, selectBackend, type DataName } from '../lib/index.js';
import { runPretrainStudy } from '../bench/pretrain-study.js';
import { deviceOption, integer, modelNames, seedList } from './args.js';
import { stopSignals } from './run.js';

interface StudyFlags {
  models: string[];
  seeds: number[];
  pretrainEpochs: number;
  epochs: number;
  layerDecay: number;
  data: DataName;
  dataDir?: string;
  imageSize?: number;
  batchSize?: number;
  device: 'auto' | 'cpu' | 'cuda';
  out: string;
}

function decay(value: string): number {
  const d = Number(value);
  if (!(d > 0 && d <= 1)) throw new InvalidArgumentError('expected a number in (0, 1] (1 is off)');
  return d;
}

export function registerPretrainStudy(study: Command): void {
  study
    .command('pretrain')
    .description('MAE pre-training + fine-tuning against training from scratch (the paper\'s Table 4, small): per model and seed, ' +
      '`pit pretrain`, `pit train --init` and `pit train`, then top-1/top-5 as mean ± std and the paired gain, a table, JSON and reconstruction figures')
    .addOption(new Option('--models <list>', 'encoders (PiT and ViT/2 of one size by default)').argParser(modelNames(parseModelName))
      .default(['pit-d4w64h4', 'vit-d4w64h4/2'], 'pit-d4w64h4,vit-d4w64h4/2'))
    .addOption(new Option('--seeds <list>', 'seeds; each seeds a pre-training, a fine-tuning and a scratch run').argParser(seedList).default([0, 1, 2], '0,1,2'))
    .option('--pretrain-epochs <n>', 'epochs of MAE pre-training; the rest is the `pit pretrain` recipe', integer(1), 10)
    .option('--epochs <n>', 'epochs of fine-tuning and of training from scratch; the rest is the `pit train` recipe', integer(1), 20)
    .option('--layer-decay <d>', 'layer-wise lr decay of fine-tuning; 1 is off. Off by default: on the 4-block MNIST models the paper\'s 0.65 ' +
      '(for 12 blocks) left PiT no gain from pre-training, off gave +1.7 points (bench/RESULTS.md)', decay, 1)
    .addOption(new Option('--data <name>', 'data set').choices(['mnist', 'cifar10', 'cifar100']).default('mnist'))
    .option('--data-dir <dir>', 'folder of the CIFAR binary files')
    .option('--image-size <n>', 'resize images to n×n (default: the recipes\', 8 for mnist)', integer(1))
    .option('--batch-size <n>', 'images per step of every run (default: the recipes\')', integer(1))
    .addOption(deviceOption())
    .option('--out <dir>', 'study folder: one run folder per model, seed and setting; the same command again continues it', 'runs/study-pretrain')
    .action(async (f: StudyFlags) => {
      const device = selectBackend({ device: f.device }).backend;
      const stop = stopSignals('pit study pretrain');
      try {
        const report = await runPretrainStudy({
          models: f.models, seeds: f.seeds, pretrainEpochs: f.pretrainEpochs, epochs: f.epochs, layerDecay: f.layerDecay, device, outDir: f.out,
          recipe: { data: f.data, ...(f.dataDir ? { dataDir: f.dataDir } : {}), ...(f.imageSize ? { imageSize: f.imageSize } : {}), ...(f.batchSize ? { batchSize: f.batchSize } : {}) },
          command: `pit ${process.argv.slice(2).join(' ')}`, signal: stop.signal, onLine: (line) => console.error(line),
        });
        if (report.interrupted) {
          process.exitCode = stop.exitStatus();
          return;
        }
        console.log(report.table);
        console.log(`wrote ${report.files.join(', ')}`);
      } finally {
        stop.release();
      }
    });
}
