// `pit study dit`: the small-scale version of the paper's Table 5. For each generator (PiT, a
// DiT on one token per pixel, and DiT/2 of the same width and depth by default) and each seed:
// a `pit diffuse` run, then n samples at each guidance scale (1: no guidance, DiT's 1.5 for
// metrics), scored by `pit eval-gen`'s metrics in the feature space of one classifier (a
// `pit train` run on the same data: given, or trained once by the study at <out>/classifier).
//
// Layout: <out>/<model>/seed-<s>/train is an ordinary run folder; beside it samples-cfg<c>/
// holds samples.npy, labels.npy and metrics.json. metrics.json is written last (temp file +
// rename), so a stopped study redoes at most the sampling it was in, and skips finished work.
// The samples of seed s start from the same noise for every model (the sampler's seed is s and
// the sample shape is the data's), so the generators are compared pair by pair.
//
// Summary: per model and scale, each metric as mean ± sample std over the seeds, the
// real-vs-real floor beside it, and the paired difference of the first two models seed by seed.
// Files: study.json, study.md, and a grid of each model's first-seed samples per scale.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  classifierFromCheckpoint, classifyTask, ditFromCheckpoint, ditTask, evaluateGeneration, generateSamples, makeRecipe, modelName, npyFloat32, npyInt32, readNpy,
  sampleGrid, writeNpy, writePng,
  type ClassificationMetrics, type DiffusionMetrics, type LoadedDit, type GenerationMetrics, type Sampler, type SharedRecipe,
} from '../lib/index.js';
import { meanStd, modelFolder, studyRun, trainingSeconds, type MeanStd, type StudyRunContext } from './study-runs.js';

export interface DitStudyOptions extends StudyRunContext {
  /** Generators: DiT names (dit-d4w64h4/1 is PiT, dit-d4w64h4/2 the DiT/2 of the same size). */
  models: string[];
  seeds: number[];
  /** Epochs of each diffusion run (default: `pit diffuse`'s recipe). */
  epochs?: number;
  /** Guidance scales to sample at (1 is none). */
  cfgs: number[];
  /** Samples per run and scale, which is also the n of every metric (the Fréchet distance is biased at small n). */
  n: number;
  /** Respaced sampling steps. */
  steps: number;
  sampler: Sampler;
  /** A `pit train` run or checkpoint folder whose features the metrics use; default: the study trains one at <out>/classifier. */
  classifier?: string;
  /** Shared recipe fields of every run, diffusion and classifier alike (data, dataDir, imageSize, batchSize). */
  recipe?: Partial<SharedRecipe>;
  outDir: string;
  /** The command line, recorded in study.json. */
  command: string;
}

/** What one run of one generator at one scale scored (metrics.json). */
export interface DitStudySample {
  model: string;
  seed: number;
  cfg: number;
  folder: string;
  /** The diffusion run: its epochs, training seconds and last held-out loss. */
  epochs: number;
  trainSeconds: number;
  testLoss: number;
  sampleSeconds: number;
  frechet: number;
  meanTerm: number;
  /** Null only if the samples had no labels (never here). */
  accuracy: number;
  precision: number;
  recall: number;
  /** Median RMS pixel distance of a sample to its nearest training image, and the near-copies flagged. */
  nearestMedian: number;
  nearCopies: number;
}

export interface DitStudySummary {
  model: string;
  cfg: number;
  frechet: MeanStd;
  accuracy: MeanStd;
  precision: MeanStd;
  recall: MeanStd;
  nearestMedian: MeanStd;
  trainSeconds: MeanStd;
  sampleSeconds: MeanStd;
}

/** The real-vs-real floor: n training images in place of the samples (the same for every run). */
export interface DitStudyFloor {
  frechet: number;
  accuracy: number;
  precision: number;
  recall: number;
  nearestMedian: number;
}

export interface DitStudyReport {
  interrupted: boolean;
  classifier: string;
  runs: DitStudySample[];
  summary: DitStudySummary[];
  floor: DitStudyFloor | null;
  /** First model − second model, paired by seed, per scale. */
  differences: { models: [string, string]; cfg: number; frechet: MeanStd; accuracy: MeanStd }[];
  table: string;
  files: string[];
}

class Interrupted extends Error {}

/** The class of sample i of n over K classes: class-major and balanced (n/K of each when K divides n). */
export const studyLabels = (n: number, classes: number): Int32Array => Int32Array.from({ length: n }, (_, i) => Math.floor((i * classes) / n));

const cfgFolder = (cfg: number) => `samples-cfg${cfg}`;

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** Runs the study (or its unfinished parts), writes its files and returns the report. */
export async function runDitStudy(options: DitStudyOptions): Promise<DitStudyReport> {
  const { models, seeds, cfgs, n, steps, sampler, outDir, signal } = options;
  const fail = (what: string, expected: string, got: unknown) => { throw new RangeError(`study dit: '${what}' must be ${expected}, got ${String(got)}`); };
  if (!models.length) fail('models', 'at least one DiT name', '[]');
  if (!seeds.length) fail('seeds', 'at least one seed', '[]');
  if (new Set(seeds).size !== seeds.length) fail('seeds', 'different seeds', seeds.join(', '));
  if (!cfgs.length) fail('cfgs', 'at least one guidance scale', '[]');
  if (!Number.isInteger(n) || n < 2) fail('n', 'an integer ≥ 2', n);
  const say = options.onLine ?? (() => {});
  const epochs = options.epochs ?? makeRecipe(ditTask.recipe, options.recipe ?? {}).epochs;
  mkdirSync(outDir, { recursive: true });
  const runs: DitStudySample[] = [];
  const report = (interrupted: boolean, classifier: string, floor: DitStudyFloor | null) => finish(options, { interrupted, classifier, runs, floor, epochs });

  // The classifier whose features every metric uses.
  let classifierPath = options.classifier;
  if (!classifierPath) {
    classifierPath = join(outDir, 'classifier');
    const recipe = { ...options.recipe, seed: 0 };
    const records = await studyRun(classifyTask, classifierPath, recipe, makeRecipe(classifyTask.recipe, recipe).epochs, options);
    if (!records) return report(true, classifierPath, null);
    const last = records.at(-1)! as { test: ClassificationMetrics };
    say(`classifier ${classifierPath}: held-out top-1 ${(last.test.top1 * 100).toFixed(2)}%`);
  }
  const classifier = classifierFromCheckpoint(classifierPath, { device: options.device, command: 'study dit' });
  let floor: DitStudyFloor | null = null;
  try {
    const classifierRecipe = makeRecipe(classifyTask.recipe, { ...classifier.recipe, ...(options.recipe?.dataDir ? { dataDir: options.recipe.dataDir } : {}) });
    // Its features would be those of permuted pixels, and the DiT's samples are not permuted.
    if (classifierRecipe.permuteSwaps > 0)
      throw new RangeError(`study dit: ${classifier.checkpoint} was trained on permuted pixels (permuteSwaps ${classifierRecipe.permuteSwaps}); generation is scored with a classifier trained without a permutation`);
    const real = classifyTask.data(classifierRecipe);
    const name = `${classifier.checkpoint} (${modelName(classifier.config)}, ${classifier.config.dim} features)`;
    for (const model of models)
      for (const seed of seeds) {
        const base = join(outDir, modelFolder(model), `seed-${seed}`);
        const trainFolder = join(base, 'train');
        const records = await studyRun(ditTask, trainFolder, { ...options.recipe, model, seed, epochs }, epochs, options);
        if (!records) {
          say(`interrupted: ${trainFolder} saved; run the same command again to continue`);
          return report(true, classifierPath, floor);
        }
        const trained = { epochs: records.at(-1)!.epoch, trainSeconds: trainingSeconds(records), testLoss: (records.at(-1)!.test as DiffusionMetrics).loss };
        let loaded: LoadedDit | null = null;
        try {
          for (const cfg of cfgs) {
            const folder = join(base, cfgFolder(cfg));
            const metricsPath = join(folder, 'metrics.json');
            if (existsSync(metricsPath)) {
              const saved = JSON.parse(readFileSync(metricsPath, 'utf8')) as { run: DitStudySample; floor: DitStudyFloor };
              runs.push(saved.run);
              floor ??= saved.floor;
              continue;
            }
            say(`${model} seed ${seed}: sampling ${n} at guidance ${cfg} (${sampler}, ${steps} steps)`);
            // Read once per run, for whichever scales still need sampling.
            loaded ??= ditFromCheckpoint(trainFolder, { device: options.device, command: 'study dit' });
            const dit = loaded;
            const started = performance.now();
            let generated;
            try {
              generated = generateSamples(dit, {
                labels: studyLabels(n, dit.config.classes), steps, sampler, guidanceScale: cfg, seed,
                onStep: () => { if (signal?.aborted) throw new Interrupted(); },
              });
            } catch (e) {
              if (!(e instanceof Interrupted)) throw e;
              say(`interrupted: the sampling of ${folder} is dropped; run the same command again to continue`);
              return report(true, classifierPath, floor);
            }
            const sampleSeconds = (performance.now() - started) / 1000;
            const [, C, H, W] = generated.shape;
            mkdirSync(folder, { recursive: true });
            writeNpy(join(folder, 'samples.npy'), { dtype: 'float32', shape: generated.shape, data: generated.samples });
            writeNpy(join(folder, 'labels.npy'), { dtype: 'int32', shape: [n], data: generated.labels });
            const m: GenerationMetrics = evaluateGeneration({
              classifier: { ...classifier, name }, samples: { images: generated.samples, n, channels: C, height: H, width: W }, labels: generated.labels, real, n, seed: 0,
            });
            const run: DitStudySample = {
              model, seed, cfg, folder, ...trained, sampleSeconds,
              frechet: m.frechet.samples.distance, meanTerm: m.frechet.samples.meanTerm, accuracy: m.conditionalAccuracy.samples!,
              precision: m.precision.samples, recall: m.recall.samples, nearestMedian: m.nearestTraining.samples.median, nearCopies: m.nearestTraining.nearCopies.length,
            };
            floor = {
              frechet: m.frechet.floor.distance, accuracy: m.conditionalAccuracy.floor!, precision: m.precision.floor, recall: m.recall.floor,
              nearestMedian: m.nearestTraining.real.median,
            };
            writeAtomic(metricsPath, JSON.stringify({ run, floor, note: m.note, featureSpace: m.featureSpace }, null, 2) + '\n');
            runs.push(run);
            say(`${model} seed ${seed} cfg ${cfg}: Fréchet ${run.frechet.toFixed(4)} (floor ${floor.frechet.toFixed(4)}), conditional accuracy ${(run.accuracy * 100).toFixed(2)}%, ` +
              `precision ${run.precision.toFixed(3)}, recall ${run.recall.toFixed(3)} (${sampleSeconds.toFixed(0)} s of sampling)`);
          }
        } finally {
          loaded?.model.dispose();
        }
      }
  } finally {
    classifier.model.dispose();
  }
  return report(false, classifierPath, floor);
}

/** The summary, the files (grids only for a finished study) and the report. */
function finish(options: DitStudyOptions, state: { interrupted: boolean; classifier: string; runs: DitStudySample[]; floor: DitStudyFloor | null; epochs: number }): DitStudyReport {
  const { models, seeds, cfgs, outDir } = options;
  const { interrupted, classifier, runs, floor, epochs } = state;
  const summary: DitStudySummary[] = [];
  for (const model of models)
    for (const cfg of cfgs) {
      const rs = runs.filter((r) => r.model === model && r.cfg === cfg);
      if (!rs.length) continue;
      const of = (key: 'frechet' | 'accuracy' | 'precision' | 'recall' | 'nearestMedian' | 'trainSeconds' | 'sampleSeconds') => meanStd(rs.map((r) => r[key]));
      summary.push({
        model, cfg, frechet: of('frechet'), accuracy: of('accuracy'), precision: of('precision'), recall: of('recall'), nearestMedian: of('nearestMedian'),
        trainSeconds: of('trainSeconds'), sampleSeconds: of('sampleSeconds'),
      });
    }
  const differences: DitStudyReport['differences'] = [];
  if (models.length >= 2)
    for (const cfg of cfgs) {
      const pairs = seeds.flatMap((seed) => {
        const a = runs.find((r) => r.model === models[0] && r.seed === seed && r.cfg === cfg);
        const b = runs.find((r) => r.model === models[1] && r.seed === seed && r.cfg === cfg);
        return a && b ? [[a, b] as const] : [];
      });
      if (pairs.length)
        differences.push({
          models: [models[0]!, models[1]!], cfg,
          frechet: meanStd(pairs.map(([a, b]) => a.frechet - b.frechet)), accuracy: meanStd(pairs.map(([a, b]) => a.accuracy - b.accuracy)),
        });
    }

  const files: string[] = [];
  if (!interrupted)
    for (const model of models)
      for (const cfg of cfgs) {
        const path = join(outDir, `samples-${modelFolder(model)}-cfg${cfg}.png`);
        writePng(path, firstSeedGrid(join(outDir, modelFolder(model), `seed-${seeds[0]}`, cfgFolder(cfg))));
        files.push(path);
      }
  const write = (name: string, text: string) => {
    const path = join(outDir, name);
    writeAtomic(path, text);
    files.push(path);
  };
  const { n, steps, sampler } = options;
  write('study.json', JSON.stringify({ command: options.command, epochs, seeds, cfgs, n, steps, sampler, classifier, recipe: options.recipe ?? {}, runs, floor, summary, differences }, null, 2) + '\n');
  const table = studyTable({ summary, floor, differences, epochs, seeds, n, steps, sampler, classifier });
  write('study.md', table);
  return { interrupted, classifier, runs, summary, floor, differences, table, files };
}

/** Up to GRID_COLUMNS samples of each class from a finished samples folder, a row per class (as many columns as the rarest class has, up to that). */
const GRID_COLUMNS = 8;
function firstSeedGrid(folder: string) {
  const samples = readNpyFloat(join(folder, 'samples.npy'));
  const labels = readNpyInt(join(folder, 'labels.npy'));
  const [, C, H, W] = samples.shape as [number, number, number, number];
  const size = C * H * W;
  const rowClasses = [...new Set(labels)].sort((a, b) => a - b);
  const ofClass = rowClasses.map((c) => labels.flatMap((y, i) => (y === c ? [i] : [])));
  const columns = Math.min(GRID_COLUMNS, ...ofClass.map((is) => is.length));
  const picked = ofClass.flatMap((is) => is.slice(0, columns));
  const images = new Float32Array(picked.length * size);
  picked.forEach((i, k) => images.set(samples.data.subarray(i * size, (i + 1) * size), k * size));
  return sampleGrid({ images, labels: picked.map((i) => labels[i]!), shape: { channels: C, height: H, width: W }, rowClasses });
}

function readNpyFloat(path: string) {
  const array = readNpy(path);
  return { shape: array.shape, data: npyFloat32(array, path) };
}
const readNpyInt = (path: string) => Array.from(npyInt32(readNpy(path), path));

const ms = (m: MeanStd, scale = 1, digits = 3) => `${(m.mean * scale).toFixed(digits)} ± ${(m.std * scale).toFixed(digits)}`;

/** The summary as a Markdown table. */
function studyTable(s: Pick<DitStudyReport, 'summary' | 'floor' | 'differences'> & { epochs: number; seeds: number[]; n: number; steps: number; sampler: Sampler; classifier: string }): string {
  const lines = [
    `| model | guidance | Fréchet ↓ | conditional accuracy % ↑ | precision ↑ | recall ↑ | nearest training image (median RMS) | training (s) | sampling (s) |`,
    `|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const r of s.summary)
    lines.push(`| ${r.model} | ${r.cfg === 1 ? 'none (1)' : r.cfg} | ${ms(r.frechet)} | ${ms(r.accuracy, 100, 2)} | ${ms(r.precision)} | ${ms(r.recall)} | ${ms(r.nearestMedian)} | ` +
      `${r.trainSeconds.mean.toFixed(0)} ± ${r.trainSeconds.std.toFixed(0)} | ${r.sampleSeconds.mean.toFixed(0)} ± ${r.sampleSeconds.std.toFixed(0)} |`);
  if (s.floor)
    lines.push(`| real training images (floor) | | ${s.floor.frechet.toFixed(3)} | ${(s.floor.accuracy * 100).toFixed(2)} (classifier top-1) | ${s.floor.precision.toFixed(3)} | ` +
      `${s.floor.recall.toFixed(3)} | ${s.floor.nearestMedian.toFixed(3)} (held-out images) | | |`);
  lines.push('', `Mean ± sample std over seeds ${s.seeds.join(', ')}; ${s.epochs} epoch${s.epochs === 1 ? '' : 's'} of \`pit diffuse\` each; n = ${s.n} samples per run and scale ` +
    `(${s.sampler}, ${s.steps} steps, the EMA weights), against n held-out images. Fréchet distance in the penultimate features of ${s.classifier} (not FID).`);
  if (s.differences.length) {
    lines.push('', 'Paired by seed (the same starting noise), first model − second:', '');
    for (const d of s.differences)
      lines.push(`- ${d.models[0]} − ${d.models[1]}, guidance ${d.cfg}: Fréchet ${d.frechet.mean >= 0 ? '+' : ''}${ms(d.frechet)}, ` +
        `conditional accuracy ${d.accuracy.mean >= 0 ? '+' : ''}${ms(d.accuracy, 100, 2)} points (${d.frechet.n} seeds)`);
  }
  return lines.join('\n') + '\n';
}
