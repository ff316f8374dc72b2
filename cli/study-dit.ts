// `pit study dit`: the small-scale Table 5 (bench/dit-study.ts): PiT (a DiT on one token per
// pixel) against DiT/2 of the same size, sampled with and without guidance, over several seeds.
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDitName, selectBackend } from '../lib/index.js';
import { runDitStudy, type DitStudyOptions } from '../bench/dit-study.js';
import { integer, modelNames, number, seedList } from './args.js';
import { runStudyCommand, studyDataOptions, studyRecipe, type StudyDataFlags } from './study-common.js';

interface StudyFlags extends StudyDataFlags, Pick<DitStudyOptions, 'models' | 'seeds' | 'epochs' | 'cfgs' | 'n' | 'steps' | 'sampler' | 'classifier'> {
  out: string;
}

function scales(value: string): number[] {
  const one = number(0);
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new InvalidArgumentError('expected a comma-separated list of guidance scales ≥ 0, e.g. 1,1.5');
  const cfgs = list.map((s) => one(s));
  if (new Set(cfgs).size !== cfgs.length) throw new InvalidArgumentError(`expected different scales, got ${value}`);
  return cfgs;
}

export function registerDitStudy(study: Command): void {
  const command = study
    .command('dit')
    .description('PiT against DiT/2 as generators (the paper\'s Table 5, small): per model and seed, `pit diffuse`, then samples at each guidance scale ' +
      'scored in a classifier\'s feature space (Fréchet distance, conditional accuracy, precision/recall, nearest training image) as mean ± std, ' +
      'with the real-vs-real floor, paired differences, a table, JSON and sample grids')
    .addOption(new Option('--models <list>', 'generators: DiT names (/1 is PiT: one token per pixel)').argParser(modelNames(parseDitName))
      .default(['dit-d4w64h4/1', 'dit-d4w64h4/2'], 'dit-d4w64h4/1,dit-d4w64h4/2'))
    .addOption(new Option('--seeds <list>', 'seeds; each seeds a diffusion run and its sampling noise (shared by the models)').argParser(seedList).default([0, 1, 2], '0,1,2'))
    .option('--epochs <n>', 'epochs of each diffusion run (default: the `pit diffuse` recipe\'s, 40 for mnist)', integer(1))
    .addOption(new Option('--cfgs <list>', 'guidance scales to sample at; 1 is none, 1.5 is DiT\'s (and the paper\'s) for metrics').argParser(scales).default([1, 1.5], '1,1.5'))
    .option('--n <k>', 'samples per run and scale: also the n of every metric (the Fréchet distance is biased at small n)', integer(2), 1000)
    .option('--steps <k>', 'sampling steps, respaced from the 1000 of training', integer(1), 250)
    .addOption(new Option('--sampler <kind>', 'ddpm (ancestral) or ddim (η = 0)').choices(['ddpm', 'ddim']).default('ddpm'))
    .option('--classifier <path>', 'a pit train run or checkpoint on the same data whose features the metrics use (default: the study trains one at <out>/classifier with `pit train`\'s recipe)')
    .option('--out <dir>', 'study folder; the same command again continues it', 'runs/study-dit');
  studyDataOptions(command).action((f: StudyFlags) => runStudyCommand('pit study dit', (context) => runDitStudy({
    models: f.models, seeds: f.seeds, epochs: f.epochs, cfgs: f.cfgs, n: f.n, steps: f.steps, sampler: f.sampler, classifier: f.classifier,
    device: selectBackend({ device: f.device }).backend, outDir: f.out, recipe: studyRecipe(f), ...context,
  })));
}
