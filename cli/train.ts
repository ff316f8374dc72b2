// `pit train` and `pit eval`: flags → recipe → lib/train. Defaults shown by --help are the
// library's (defaultRecipe), so the CLI cannot drift from `npm start`.
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { VisionTransformer } from '../lib/models/vit.js';
import { selectBackend } from '../lib/native.js';
import {
  customModel, defaultRecipe, evaluate, loadClassificationData, loadModelWeights, makeRecipe, readCheckpointMetadata, resolveCheckpoint,
  trainClassifier, vitPresets, type ClassifierRecipe, type VitConfig,
} from '../lib/index.js';
import { deviceOption, integer, number, precisionOption } from './args.js';
import { formatDuration, progressReporter } from './progress.js';

const d = defaultRecipe;

function betas(value: string): [number, number] {
  const parts = value.split(',').map((s) => Number(s.trim()));
  if (parts.length !== 2 || !parts.every((b) => Number.isFinite(b) && b >= 0 && b < 1)) throw new InvalidArgumentError('expected two numbers in [0, 1) separated by a comma, e.g. 0.9,0.95');
  return parts as [number, number];
}

interface TrainFlags {
  data?: ClassifierRecipe['data'];
  dataDir?: string;
  imageSize?: number;
  model?: string;
  depth?: number;
  dim?: number;
  heads?: number;
  patch?: number;
  pe?: ClassifierRecipe['posEmbed'];
  pool?: ClassifierRecipe['pool'];
  dropPath?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  minLr?: number;
  weightDecay?: number;
  betas?: [number, number];
  warmupEpochs?: number;
  labelSmoothing?: number;
  clipGrad?: number;
  ema?: number;
  translate?: number;
  cropPadding?: number;
  flip?: boolean;
  seed?: number;
  evalBatchSize?: number;
  device: 'auto' | 'cpu' | 'cuda';
  precision: 'f32' | 'mixed';
  out?: string;
  resume?: boolean | string;
  json: boolean;
}

/** Only the flags the user typed: recipe defaults stay the library's, and a resume can tell what was asked. */
function recipeFromFlags(f: TrainFlags): Partial<ClassifierRecipe> {
  return {
    data: f.data, dataDir: f.dataDir, imageSize: f.imageSize, model: f.model, depth: f.depth, dim: f.dim, heads: f.heads,
    patch: f.patch, posEmbed: f.pe, pool: f.pool, dropPath: f.dropPath, epochs: f.epochs, batchSize: f.batchSize, lr: f.lr,
    minLr: f.minLr, weightDecay: f.weightDecay, beta1: f.betas?.[0], beta2: f.betas?.[1], warmupEpochs: f.warmupEpochs,
    labelSmoothing: f.labelSmoothing, clipGrad: f.clipGrad, ema: f.ema, translate: f.translate, cropPadding: f.cropPadding,
    flip: f.flip, seed: f.seed, evalBatchSize: f.evalBatchSize,
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a PiT (or ViT/p) classifier; with no flags, the npm start recipe on the built-in MNIST digits')
    .addOption(new Option('--data <name>', 'data set').choices(['mnist', 'cifar10', 'cifar100']).default(d.data))
    .option('--data-dir <dir>', 'folder of the CIFAR binary files (cifar-10-batches-bin / cifar-100-binary)')
    .option('--image-size <n>', `resize images to n×n (default: ${d.imageSize} for mnist, the data's own 32 for cifar)`, integer(1))
    .addOption(new Option('--model <name>', `preset, or "custom": depth ${customModel.depth}, dim ${customModel.dim}, ${customModel.heads} heads, patch ${customModel.patch} unless overridden`).choices(['custom', ...Object.keys(vitPresets)]).default(d.model))
    .option('--depth <n>', 'blocks (overrides the model)', integer(1))
    .option('--dim <n>', 'width d (overrides the model)', integer(1))
    .option('--heads <n>', 'attention heads (overrides the model)', integer(1))
    .option('--patch <n>', 'patch size p: 1 is PiT, 2 the ViT/2 baseline (overrides the model)', integer(1))
    .addOption(new Option('--pe <kind>', 'position embedding').choices(['learned', 'sincos', 'none']).default(d.posEmbed))
    .addOption(new Option('--pool <kind>', 'pooling before the head').choices(['avg', 'cls']).default(d.pool))
    .option('--drop-path <rate>', 'stochastic depth rate of the last block', number(0, 1), d.dropPath)
    .option('--epochs <n>', 'epochs', integer(1), d.epochs)
    .option('--batch-size <n>', 'images per step', integer(1), d.batchSize)
    .option('--lr <lr>', 'peak learning rate', number(0), d.lr)
    .option('--min-lr <lr>', 'learning rate at the end of the cosine', number(0), d.minLr)
    .option('--weight-decay <wd>', 'AdamW weight decay (not on 1-D parameters, cls, position embeddings)', number(0), d.weightDecay)
    .option('--betas <b1,b2>', 'AdamW betas', betas, [d.beta1, d.beta2])
    .option('--warmup-epochs <n>', 'epochs of linear warm-up (fractions allowed)', number(0), d.warmupEpochs)
    .option('--label-smoothing <s>', 'label smoothing', number(0, 1), d.labelSmoothing)
    .option('--clip-grad <norm>', 'clip the global gradient norm (0: off)', number(0), d.clipGrad)
    .option('--ema <decay>', 'keep an EMA of the weights with this decay (0: off)', number(0, 1), d.ema)
    .option('--translate <px>', `random translation by up to ±px (default: ${d.translate} for mnist, 0 for cifar)`, integer(0))
    .option('--crop-padding <px>', 'random crop with this zero padding (default: 0 for mnist, 4 for cifar)', integer(0))
    .option('--flip', 'random horizontal flips (default: off for mnist, on for cifar)')
    .option('--no-flip', 'no random horizontal flips')
    .option('--seed <n>', 'seed of initialisation, data order, augmentation and drop path', integer(0), d.seed)
    .option('--eval-batch-size <n>', 'images per evaluation batch', integer(1), d.evalBatchSize)
    .addOption(deviceOption())
    .addOption(precisionOption())
    .option('--out <dir>', 'run folder (default: runs/<data>-<date>-<time>)')
    .option('--resume [dir]', 'continue the run in --out (or in dir) from its latest checkpoint, with its saved recipe')
    .option('--json', 'print JSON lines (start, epoch, checkpoint) instead of text', false)
    .action(async (flags: TrainFlags, command: Command) => {
      // Only what the user typed reaches the recipe (commander fills defaults for --help).
      const typed = Object.fromEntries(Object.entries(flags).filter(([k]) => command.getOptionValueSource(k) === 'cli')) as Partial<TrainFlags>;
      const given = recipeFromFlags({ ...typed, device: flags.device, precision: flags.precision, json: flags.json });
      const resume = flags.resume;
      const out = flags.out ?? (typeof resume === 'string' ? resume : undefined) ?? join('runs', `${flags.data ?? d.data}-${timestamp()}`);
      if (resume === true && !flags.out) throw new InvalidArgumentError('--resume without a folder needs --out <run folder>');
      if (!resume) makeRecipe(given); // fail on a bad combination before loading anything

      const controller = new AbortController();
      let interrupts = 0;
      const onSigint = () => {
        interrupts++;
        if (interrupts > 1) process.exit(130);
        console.error('\npit train: interrupted; finishing this step and saving a checkpoint (Ctrl-C again to quit without saving)');
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      const reporter = progressReporter({ json: flags.json, tty: !flags.json && Boolean(process.stderr.isTTY) });
      const started = performance.now();
      try {
        const result = await trainClassifier({ recipe: given, out, resume: resume ?? false, device: flags.device, precision: flags.precision, signal: controller.signal, onEvent: reporter.onEvent });
        reporter.done();
        if (result.interrupted) {
          console.log(`resume with: pit train --out ${out} --resume`);
          process.exitCode = 130;
          return;
        }
        const last = result.final;
        if (flags.json) return;
        console.log(`run folder ${out} (${formatDuration((performance.now() - started) / 1000)})`);
        if (last) console.log(`final top-1 accuracy: ${(100 * last.test.top1).toFixed(2)}% on ${last.test.n} held-out images (top-5 ${(100 * last.test.top5).toFixed(2)}%)`);
        else console.log('final top-1 accuracy: none (the run had already finished every step)');
        result.model.dispose();
      } finally {
        reporter.done();
        process.off('SIGINT', onSigint);
      }
    });
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a checkpoint on its data set\'s held-out split (loss, top-1, top-5)')
    .requiredOption('--checkpoint <path>', 'a run folder (its latest checkpoint) or a checkpoint folder')
    .option('--data-dir <dir>', 'folder of the CIFAR binary files, if not where the run found them')
    .option('--ema', 'evaluate the EMA weights (ema.safetensors)', false)
    .option('--batch-size <n>', 'images per batch', integer(1), d.evalBatchSize)
    .addOption(deviceOption())
    .option('--json', 'print one JSON object', false)
    .action((flags: { checkpoint: string; dataDir?: string; ema: boolean; batchSize: number; device: 'auto' | 'cpu' | 'cuda'; json: boolean }) => {
      const dir = resolveCheckpoint(flags.checkpoint);
      const meta = readCheckpointMetadata(dir);
      const saved = meta.recipe as ClassifierRecipe | undefined;
      const config = meta.config as VitConfig | undefined;
      if (!saved || !config) throw new RangeError(`eval: ${dir} is not a pit train checkpoint (its metadata has no recipe or config)`);
      const recipe = makeRecipe({ ...saved, ...(flags.dataDir ? { dataDir: flags.dataDir } : {}) });
      const device = selectBackend({ device: flags.device }).backend;
      const { test } = loadClassificationData(recipe);
      const model = new VisionTransformer(config, { device });
      try {
        loadModelWeights(dir, model, { ema: flags.ema });
        const normalization = meta.normalization as { mean: number[]; std: number[] };
        const metrics = evaluate(model, test, { normalization, batchSize: flags.batchSize, device });
        if (flags.json) {
          console.log(JSON.stringify({ checkpoint: dir, weights: flags.ema ? 'ema' : 'model', data: test.name, ...metrics }));
          return;
        }
        console.log(`${dir} (${flags.ema ? 'EMA' : 'trained'} weights) on ${test.name}, ${metrics.n} images`);
        console.log(`loss ${metrics.loss.toFixed(4)}  top-1 ${(100 * metrics.top1).toFixed(2)}%  top-5 ${(100 * metrics.top5).toFixed(2)}%`);
      } finally {
        model.dispose();
      }
    });
}
