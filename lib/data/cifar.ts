// CIFAR-10 / CIFAR-100 binary distributions, read from the user's directory.
//
// CIFAR-10 record: 1 label byte (0..9) + 3,072 pixel bytes; files data_batch_1..5.bin
// (train) and test_batch.bin, in <dir>/cifar-10-batches-bin/ or <dir> itself.
// CIFAR-100 record: coarse label byte (0..19) + fine label byte (0..99) + 3,072 pixel
// bytes; files train.bin and test.bin, in <dir>/cifar-100-binary/ or <dir> itself.
// Pixels are the R plane, then G, then B, each 32×32 row-major: already CHW, so a record
// maps straight onto one NCHW image. We use the fine label for CIFAR-100.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { channelStats, type Dataset } from './dataset.js';

export const CIFAR_SIDE = 32, CIFAR_CHANNELS = 3, CIFAR_TRAIN = 50_000, CIFAR_TEST = 10_000;
const PIXELS = CIFAR_CHANNELS * CIFAR_SIDE * CIFAR_SIDE; // 3,072

interface Format {
  name: 'cifar10' | 'cifar100';
  subdir: string;
  train: string[];
  test: string[];
  labelBytes: number;
  classes: number;
  /** Upper bound of each label byte, in record order (CIFAR-100: coarse, fine). */
  labelLimits: number[];
}

const CIFAR10: Format = {
  name: 'cifar10',
  subdir: 'cifar-10-batches-bin',
  train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  test: ['test_batch.bin'],
  labelBytes: 1,
  classes: 10,
  labelLimits: [10],
};

const CIFAR100: Format = {
  name: 'cifar100',
  subdir: 'cifar-100-binary',
  train: ['train.bin'],
  test: ['test.bin'],
  labelBytes: 2,
  classes: 100,
  labelLimits: [20, 100],
};

/** The folder holding the files: <dir>/<subdir> when it has them, else <dir>. */
function locate(dir: string, f: Format): string {
  const all = [...f.train, ...f.test];
  const nested = join(dir, f.subdir);
  for (const candidate of [nested, dir]) if (all.every((file) => existsSync(join(candidate, file)))) return candidate;
  const where = existsSync(nested) ? nested : dir;
  const missing = all.filter((file) => !existsSync(join(where, file))).map((file) => join(where, file));
  throw new Error(`${f.name}: missing file${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; expected ${all.join(', ')} in ${nested} or ${dir}`);
}

function readSplit(folder: string, files: string[], f: Format, split: string): Dataset {
  const record = f.labelBytes + PIXELS;
  const buffers = files.map((file) => {
    const path = join(folder, file);
    const size = statSync(path).size;
    if (size === 0 || size % record !== 0)
      throw new Error(`${f.name}: ${path} is truncated or not a ${f.name} file: ${size} bytes is not a whole multiple of the ${record}-byte record (${f.labelBytes} label byte${f.labelBytes > 1 ? 's' : ''} + ${PIXELS} pixels)`);
    return { path, bytes: readFileSync(path) };
  });
  const n = buffers.reduce((s, b) => s + b.bytes.length / record, 0);
  const images = new Float32Array(n * PIXELS), labels = new Int32Array(n);
  const toUnit = new Float32Array(256).map((_, v) => v / 255);
  let i = 0;
  for (const { path, bytes } of buffers)
    for (let r = 0; r < bytes.length; r += record, i++) {
      for (let k = 0; k < f.labelBytes; k++)
        if (bytes[r + k]! >= f.labelLimits[k]!)
          throw new Error(`${f.name}: ${path}: record ${r / record} has label byte ${k} = ${bytes[r + k]}, expected 0..${f.labelLimits[k]! - 1}; is this a ${f.name} binary file?`);
      labels[i] = bytes[r + f.labelBytes - 1]!; // CIFAR-10: the label; CIFAR-100: the fine label
      const out = i * PIXELS, src = r + f.labelBytes;
      for (let p = 0; p < PIXELS; p++) images[out + p] = toUnit[bytes[src + p]!]!;
    }
  const { mean, std } = channelStats(images, n, CIFAR_CHANNELS, CIFAR_SIDE * CIFAR_SIDE);
  return { images, labels, n, channels: CIFAR_CHANNELS, height: CIFAR_SIDE, width: CIFAR_SIDE, classes: f.classes, name: `${f.name}-${split}`, mean, std };
}

/** Below a millionth (a grey level is 1/255 ≈ 0.004), a channel's spread is rounding, not data. */
const minStd = 1e-6;

function load(dir: string, f: Format): { train: Dataset; test: Dataset } {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`${f.name}: 'dir' must be a directory path, got ${String(dir)}`);
  const folder = locate(dir, f);
  const train = readSplit(folder, f.train, f, 'train');
  // The statistics normalise every image: a channel that never varies (a file of one repeated
  // byte) would divide by zero, so it is refused here, where the files can be named.
  const flat = Array.from(train.std).findIndex((s) => !(s > minStd));
  if (flat >= 0)
    throw new RangeError(`${f.name}: the training files (${f.train.map((file) => join(folder, file)).join(', ')}) have zero variance in channel ${flat} ` +
      `(every pixel ${Math.round(train.mean[flat]! * 255)}), expected natural images; are they ${f.name} binary files?`);
  const test = readSplit(folder, f.test, f, 'test');
  // Both splits normalise with the training statistics.
  return { train, test: { ...test, mean: train.mean, std: train.std } };
}

/** CIFAR-10 from <dir>/cifar-10-batches-bin (or <dir>): 50,000 train, 10,000 test, 3×32×32, 0..1. */
export const loadCifar10 = (dir: string): { train: Dataset; test: Dataset } => load(dir, CIFAR10);

/** CIFAR-100 (fine labels) from <dir>/cifar-100-binary (or <dir>): 50,000 / 10,000, 3×32×32, 0..1. */
export const loadCifar100 = (dir: string): { train: Dataset; test: Dataset } => load(dir, CIFAR100);
