// `pit study pretrain`: the small-scale Table 4 (bench/pretrain-study.ts): MAE pre-training +
// fine-tuning against training from scratch, per encoder, over several seeds.
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseModelName, selectBackend } from '../lib/index.js';
import { runPretrainStudy } from '../bench/pretrain-study.js';
import { integer, modelNames, seedList } from './args.js';
import { runStudyCommand, studyDataOptions, studyRecipe, type StudyDataFlags } from './study-common.js';

interface StudyFlags extends StudyDataFlags {
  models: string[];
  seeds: number[];
  pretrainEpochs: number;
  epochs: number;
  layerDecay: number;
  out: string;
}

function decay(value: string): number {
  const d = Number(value);
  if (!(d > 0 && d <= 1)) throw new InvalidArgumentError('expected a number in (0, 1] (1 is off)');
  return d;
}

export function registerPretrainStudy(study: Command): void {
  const command = study
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
    .option('--out <dir>', 'study folder: one run folder per model, seed and setting; the same command again continues it', 'runs/study-pretrain');
  studyDataOptions(command).action((f: StudyFlags) => runStudyCommand('pit study pretrain', (context) => runPretrainStudy({
    models: f.models, seeds: f.seeds, pretrainEpochs: f.pretrainEpochs, epochs: f.epochs, layerDecay: f.layerDecay,
    device: selectBackend({ device: f.device }).backend, outDir: f.out, recipe: studyRecipe(f), ...context,
  })));
}