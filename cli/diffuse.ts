// `pit diffuse` (the DiT diffusion task, lib/train/tasks/diffuse.ts, through the shared training
// command, cli/run.ts) and `pit sample` (samples of a trained run: a labelled PNG grid with a
// row per class, and/or a folder of PNGs with samples.npy and labels.npy for `pit eval-gen`).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { selectBackend } from '../lib/native.js';
import {
  ditFromCheckpoint, ditModelName, ditTask, generateSamples, sampleGrid, sampleImage, writeNpy, writePng,
  type DiffusionMetrics, type DitConfig, type DitRecipe, type Precision,
} from '../lib/index.js';
import { deviceOption, integer, integers, number, precisionOption, skipChecksumOption } from './args.js';
import { samplingProgress, type TaskView } from './progress.js';
import { registerTrainingCommand } from './run.js';

const ditView: TaskView<DiffusionMetrics> = {
  modelLine(e) {
    const m = e.config as DitConfig, recipe = e.recipe as DitRecipe;
    const [h, w] = Array.isArray(m.imageSize) ? m.imageSize : [m.imageSize, m.imageSize];
    const space = recipe.data === 'latents' ? `latents × ${recipe.latentScale}` : `${recipe.data} pixels in [−1, 1]`;
    return `${ditModelName(m)} (${m.patch === 1 ? 'one token per pixel' : `${m.patch}×${m.patch} patches`}): depth ${m.depth}, dim ${m.dim}, ${m.heads} heads, ` +
      `${e.parameters.toLocaleString('en-US')} parameters on ${h}×${w}×${m.channels} ${space}, ${m.classes} classes; EMA ${recipe.ema}; device ${e.device}`;
  },
  metricsText: (test, ema) => `test loss ${test.loss.toFixed(4)} (MSE ${test.mse.toFixed(4)} + vb ${test.vb.toFixed(4)})` + (ema ? `  (EMA ${ema.loss.toFixed(4)})` : ''),
  finalLine: (last) => last
    ? `final held-out diffusion loss: ${last.test.loss.toFixed(4)} (MSE ${last.test.mse.toFixed(4)} + vb ${last.test.vb.toFixed(4)} bits on ${last.test.n} images` +
      `${last.ema ? `; EMA ${last.ema.loss.toFixed(4)}` : ''}); sample with: pit sample --checkpoint <this run> --out grid.png`
    : 'final held-out diffusion loss: none (the run had already finished every step)',
};

export function registerDiffuse(program: Command): void {
  registerTrainingCommand(program, {
    name: 'diffuse',
    description: 'train a class-conditional DiT (diffusion transformer; patch 1: one token per pixel) with DiT\'s recipe: AdamW lr 1e-4, constant, ' +
      'an EMA of the weights that sampling uses. With no flags, a dit-d4w64h4/1 on the built-in MNIST digits at 8×8',
    task: ditTask,
    view: ditView,
  });
}

interface SampleFlags {
  checkpoint: string;
  classes?: number[];
  n: number;
  steps: number;
  cfg: number;
  sampler: 'ddpm' | 'ddim';
  seed: number;
  out?: string;
  outDir?: string;
  ema: boolean;
  batchSize: number;
  scale?: number;
  device: 'auto' | 'cpu' | 'cuda';
  precision: Precision;
  skipChecksum: boolean;
  json: boolean;
}

/** The file of sample i (class k) in --out-dir. */
export const sampleFileName = (i: number, label: number): string => `sample-${String(i).padStart(5, '0')}-class-${label}.png`;

function sample(f: SampleFlags): void {
  if (!f.out && !f.outDir) throw new InvalidArgumentError('give --out <grid.png> and/or --out-dir <folder>');
  const device = selectBackend({ device: f.device }).backend;
  const loaded = ditFromCheckpoint(f.checkpoint, { ema: f.ema, verify: !f.skipChecksum, device });
  try {
    const K = loaded.config.classes;
    const classes = f.classes ?? Array.from({ length: K }, (_, k) => k);
    for (const c of classes) if (c >= K) throw new InvalidArgumentError(`--classes: ${c} is not a class of this run (its classes are 0 to ${K - 1})`);
    const latents = loaded.recipe.data === 'latents';
    if (f.out && latents) throw new InvalidArgumentError('--out draws pixels, and this run generates latents: use --out-dir (samples.npy) and decode them with your VAE');
    // Row r of the grid is class classes[r]: the samples go class by class.
    const labels = classes.flatMap((c) => Array<number>(f.n).fill(c));
    const progress = samplingProgress(Boolean(process.stderr.isTTY) && !f.json);
    let generated;
    try {
      generated = generateSamples(loaded, {
        labels, steps: f.steps, sampler: f.sampler, guidanceScale: f.cfg, seed: f.seed, batchSize: f.batchSize, precision: f.precision, onStep: progress.onStep,
      });
    } finally {
      progress.stop();
    }
    const [N, C, H, W] = generated.shape;
    const shape = { channels: C, height: H, width: W };
    const written: string[] = [];
    if (f.out) {
      const grid = sampleGrid({ images: generated.samples, labels: generated.labels, shape, rowClasses: classes }, { scale: f.scale });
      writePng(f.out, grid);
      written.push(`${f.out}: ${grid.width}×${grid.height}, a row per class (${classes.join(', ')}) of ${f.n} samples`);
    }
    if (f.outDir) {
      mkdirSync(f.outDir, { recursive: true });
      writeNpy(join(f.outDir, 'samples.npy'), { dtype: 'float32', shape: generated.shape, data: generated.samples });
      writeNpy(join(f.outDir, 'labels.npy'), { dtype: 'int32', shape: [N], data: generated.labels });
      const drawable = !latents && (C === 1 || C === 3);
      if (drawable) for (let i = 0; i < N; i++) writePng(join(f.outDir, sampleFileName(i, generated.labels[i]!)), sampleImage(generated.samples, i, shape));
      written.push(`${f.outDir}: samples.npy (${N}, ${C}, ${H}, ${W}) float32 ${latents ? `latents (÷ ${loaded.recipe.latentScale}: the VAE's scale)` : 'in [0, 1]'}, labels.npy (${N}) int32` +
        (drawable ? `, ${N} PNGs` : ''));
    }
    const what = { checkpoint: loaded.checkpoint, weights: loaded.weights, classes, n: f.n, steps: f.steps, sampler: f.sampler, cfg: f.cfg, seed: f.seed, batchSize: f.batchSize, device };
    if (f.json) {
      console.log(JSON.stringify({ ...what, out: f.out ?? null, outDir: f.outDir ?? null, shape: generated.shape, space: generated.space }));
      return;
    }
    console.log(`${N} samples of ${loaded.checkpoint} (${loaded.weights === 'ema' ? 'EMA' : 'trained'} weights): ${f.sampler} ${f.steps} steps, ` +
      `guidance ${f.cfg === 1 ? 'off (cfg 1)' : `scale ${f.cfg}`}, --seed ${f.seed}, --batch-size ${f.batchSize}, device ${device}`);
    for (const line of written) console.log(line);
  } finally {
    loaded.model.dispose();
  }
}

export function registerSample(program: Command): void {
  program
    .command('sample')
    .description('draw samples from a pit diffuse run: a labelled PNG grid (a row per class) and/or a folder of PNGs with samples.npy and labels.npy that pit eval-gen reads')
    .requiredOption('--checkpoint <path>', 'a pit diffuse run folder (its latest checkpoint) or a checkpoint folder')
    .option('--classes <list>', 'the classes to sample, e.g. 0,1,2 (default: every class of the run)', integers(0))
    .option('--n <k>', 'samples of each class (a row of the grid)', integer(1), 8)
    .option('--steps <k>', 'sampling steps, respaced from the 1000 of training', integer(1), 250)
    .option('--cfg <s>', 'classifier-free guidance scale (4 for pictures, 1.5 for metrics; 1: the conditional model alone)', number(0), 4)
    .addOption(new Option('--sampler <kind>', 'ddpm (ancestral) or ddim (η = 0, deterministic given the starting noise)').choices(['ddpm', 'ddim']).default('ddpm'))
    .option('--seed <s>', 'seed of the noise: the same seed (and --batch-size) gives the same samples', integer(0), 0)
    .option('--out <file>', 'write the labelled grid as a PNG')
    .option('--out-dir <dir>', 'write samples.npy (N, C, H, W) float32 in [0, 1] (latents: at the VAE\'s scale), labels.npy (N) int32 and one PNG per sample')
    .option('--no-ema', 'sample the trained weights instead of their EMA')
    .option('--batch-size <n>', 'samples per call of the sampler (batch c > 0 draws from a seed mixed from --seed and c)', integer(1), 256)
    .option('--scale <k>', 'nearest-neighbour upscaling of the grid\'s panels (default: at least 64 px)', integer(1))
    .addOption(deviceOption())
    .addOption(precisionOption())
    .addOption(skipChecksumOption('sampled'))
    .option('--json', 'print one JSON object', false)
    .action(sample);
}
