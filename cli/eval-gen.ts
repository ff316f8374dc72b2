// `pit eval-gen`: the generation metrics (lib/eval) of samples saved as .npy, in the feature
// space of a classifier trained by `pit train`, each beside its real-vs-real floor.
import { Command } from 'commander';
import { selectBackend } from '../lib/native.js';
import {
  classifierFromCheckpoint, classifyTask, evaluateGeneration, makeRecipe, modelName, npyFloat32, npyInt32, readNpy, sharedRecipe,
  type GenerationMetrics, type ImageSet,
} from '../lib/index.js';
import { deviceOption, integer, skipChecksumOption } from './args.js';

interface EvalGenFlags {
  classifier: string;
  samples: string;
  labels?: string;
  n: number;
  seed: number;
  signed: boolean;
  dataDir?: string;
  ema: boolean;
  batchSize: number;
  device: 'auto' | 'cpu' | 'cuda';
  skipChecksum: boolean;
  json: boolean;
}

/** Beyond this margin outside the pixel range, the samples are taken to be in another range (an error, not a clip). */
const RANGE_SLACK = 0.5;

/**
 * The samples of an .npy file (N, C, H, W) in [0, 1]: [−1, 1] samples (signed) are mapped by
 * (x + 1)/2; values slightly outside are clipped (and counted), far outside are an error.
 */
export function readSamples(path: string, signed: boolean): { set: ImageSet; clipped: number } {
  const array = readNpy(path);
  const values = npyFloat32(array, `eval-gen: --samples ${path}`);
  if (array.shape.length !== 4) throw new RangeError(`eval-gen: --samples ${path} must be 4-D (N, C, H, W), got shape (${array.shape.join(', ')})`);
  const [n, channels, height, width] = array.shape as [number, number, number, number];
  const images = signed ? values.map((x) => (x + 1) / 2) : values;   // values is the file's own copy
  let lo = Infinity, hi = -Infinity, clipped = 0;
  for (let i = 0; i < images.length; i++) {
    const x = images[i]!;
    if (!Number.isFinite(x)) throw new RangeError(`eval-gen: --samples ${path}: value ${i} is ${x}`);
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
    if (x < 0 || x > 1) {
      images[i] = Math.min(1, Math.max(0, x));
      clipped++;
    }
  }
  const raw = (v: number) => (signed ? 2 * v - 1 : v).toFixed(3);
  if (lo < -RANGE_SLACK || hi > 1 + RANGE_SLACK)
    throw new RangeError(`eval-gen: --samples ${path} holds values from ${raw(lo)} to ${raw(hi)}, not in ${signed ? '[−1, 1] (--signed)' : '[0, 1]'}` +
      (signed ? '' : lo < -RANGE_SLACK ? '; samples in [−1, 1] (as the diffusion sampler gives them) need --signed' : ''));
  return { set: { images, n, channels, height, width }, clipped };
}

/** The class labels of an .npy file: 1-D int32 or int64, one per sample. */
export function readLabels(path: string, samples: number): Int32Array {
  const array = readNpy(path);
  const labels = npyInt32(array, `eval-gen: --labels ${path}`);
  if (array.shape.length !== 1 || array.shape[0] !== samples)
    throw new RangeError(`eval-gen: --labels ${path} must be 1-D with one label per sample (${samples}), got shape (${array.shape.join(', ')})`);
  return labels;
}

const percent = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(2)}%`);
const fixed = (x: number, digits: number) => x.toFixed(digits);

/** The report as text lines. */
export function generationReport(m: GenerationMetrics, testName: string, clipped: number, device: string): string[] {
  const row = (name: string, samples: string, floor: string, note = '') => `${name.padEnd(24)}${samples.padStart(10)}${floor.padStart(12)}${note ? `  ${note}` : ''}`;
  const near = m.nearestTraining;
  const copies = near.nearCopies.slice(0, 10).map((c) => `${c.sample} (train ${c.train}, ${fixed(c.distance, 4)})`).join(', ');
  return [
    m.note,
    `n = ${m.n} per set (seed ${m.seed}, device ${device}): the samples, and as the floor ${m.n} training images, each against ${m.n} held-out images of ${testName}`,
    ...(clipped ? [`(${clipped} sample values outside the pixel range were clipped to it)`] : []),
    '',
    row('', 'samples', 'floor'),
    row('Fréchet distance', fixed(m.frechet.samples.distance, 4), fixed(m.frechet.floor.distance, 4)),
    row('  mean term |Δμ|²', fixed(m.frechet.samples.meanTerm, 4), fixed(m.frechet.floor.meanTerm, 4)),
    row('conditional accuracy', percent(m.conditionalAccuracy.samples), percent(m.conditionalAccuracy.floor),
      m.conditionalAccuracy.samples === null ? '(no --labels; floor: the classifier\'s top-1 on the held-out images)' : '(floor: the classifier\'s top-1 on the held-out images)'),
    row(`precision (k = ${m.k})`, fixed(m.precision.samples, 4), fixed(m.precision.floor, 4)),
    row(`recall (k = ${m.k})`, fixed(m.recall.samples, 4), fixed(m.recall.floor, 4)),
    '',
    `nearest training image (RMS pixel distance): samples min ${fixed(near.samples.min, 4)}, median ${fixed(near.samples.median, 4)}; ` +
      `held-out real images min ${fixed(near.real.min, 4)}, median ${fixed(near.real.median, 4)}`,
    `near-copies: ${near.nearCopies.length} of ${m.n} samples closer than ${fixed(near.threshold, 4)} (where ${100 * near.copyQuantile}% of held-out images are; ` +
      `about ${near.expectedByChance} expected without copying)${copies ? `: ${copies}${near.nearCopies.length > 10 ? ', …' : ''}` : ''}`,
  ];
}

export function registerEvalGen(program: Command): void {
  program
    .command('eval-gen')
    .description('metrics of generated images: Fréchet distance in a trained classifier\'s feature space (not FID), conditional accuracy, k-NN precision/recall, nearest training image; each with its real-vs-real floor')
    .requiredOption('--classifier <path>', 'a pit train run folder (its latest checkpoint) or checkpoint folder: its penultimate features are the feature space')
    .requiredOption('--samples <file>', '.npy of float32 or float16 samples (N, C, H, W) in [0, 1] (or [−1, 1] with --signed), shaped as the classifier\'s data')
    .option('--labels <file>', '.npy of int32 or int64 labels (N): the class each sample was generated for')
    .option('--n <n>', 'images per set compared (fixed: the Fréchet distance is biased at small n)', integer(2), 1000)
    .option('--seed <s>', 'seed of the subsets chosen', integer(0), 0)
    .option('--signed', 'the samples are in [−1, 1] (the diffusion range), mapped by (x + 1)/2', false)
    .option('--data-dir <dir>', 'folder of the CIFAR binary files, if not where the classifier\'s run found them')
    .option('--ema', 'use the classifier\'s EMA weights', false)
    .option('--batch-size <n>', 'images per batch', integer(1), sharedRecipe.defaults.evalBatchSize)
    .addOption(deviceOption())
    .addOption(skipChecksumOption('classifier'))
    .option('--json', 'print one JSON object', false)
    .action((flags: EvalGenFlags) => {
      const { set: samples, clipped } = readSamples(flags.samples, flags.signed);
      const labels = flags.labels ? readLabels(flags.labels, samples.n) : null;
      const device = selectBackend({ device: flags.device }).backend;
      const classifier = classifierFromCheckpoint(flags.classifier, { ema: flags.ema, verify: !flags.skipChecksum, device, command: 'eval-gen' });
      try {
        const recipe = makeRecipe(classifyTask.recipe, { ...classifier.recipe, ...(flags.dataDir ? { dataDir: flags.dataDir } : {}) });
        // Its features would be those of permuted pixels, and the samples are not permuted.
        if (recipe.permuteSwaps > 0)
          throw new RangeError(`eval-gen: ${classifier.checkpoint} was trained on permuted pixels (--permute-swaps ${recipe.permuteSwaps}); generation is scored with a classifier trained without a permutation`);
        const real = classifyTask.data(recipe);
        const name = `${classifier.checkpoint} (${modelName(classifier.config)}${flags.ema ? ', EMA' : ''}, ${classifier.config.dim} features)`;
        const metrics = evaluateGeneration({ classifier: { ...classifier, name }, samples, labels, real, n: flags.n, seed: flags.seed, batchSize: flags.batchSize });
        if (flags.json) {
          const { subsets, ...rest } = metrics;
          console.log(JSON.stringify({
            classifier: classifier.checkpoint, weights: classifier.weights, samples: flags.samples, labels: flags.labels ?? null, signed: flags.signed,
            data: real.test.name, device, clipped, ...rest,
          }));
          return;
        }
        for (const line of generationReport(metrics, real.test.name, clipped, device)) console.log(line);
      } finally {
        classifier.model.dispose();
      }
    });
}
