// Pre-computed latents (SPEC §6): images someone encoded elsewhere (e.g. with a Stable-Diffusion
// VAE, as the paper does for ImageNet 256: 32×32×4), for training a diffusion model on them.
// A folder holds two NumPy files:
//   latents.npy   (N, C, H, W) float32 or float16, C order
//   labels.npy    (N) int32 or int64, each a class in [0, K); K = the largest label + 1
// A fixed, seeded split holds out a tenth of them (at least 1, at most 10,000) for the
// held-out loss. The values are kept as they are: the diffusion task scales them
// (--latent-scale), nothing here normalises them.
//
// The .npy files come through lib/eval/npy.ts (the reader the generation metrics use).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { npyFloat32, npyInt32, readNpy, readNpyHeader } from '../eval/npy.js';
import { selectExamples, type Dataset } from './dataset.js';
import { permutation } from './random.js';

export const LATENTS_FILE = 'latents.npy';
export const LATENT_LABELS_FILE = 'labels.npy';
/** The seed of the train / held-out shuffle: every run on a folder holds out the same latents. */
export const LATENT_SPLIT_SEED = 20240602;
/** The share held out, and its bounds. */
export const LATENT_TEST_SHARE = 0.1, LATENT_TEST_MAX = 10_000;

const layout = `${LATENTS_FILE} (N, C, H, W) float32 or float16 and ${LATENT_LABELS_FILE} (N) int32 or int64`;

/** The latents of a folder, from the headers and the labels (the latents themselves are not read). */
export interface LatentsInfo {
  n: number;
  channels: number;
  height: number;
  width: number;
  /** The largest label + 1. */
  classes: number;
  /** Held out by the split. */
  testImages: number;
}

/** Held-out latents of n: a tenth, at least 1, at most 10,000. */
export const latentTestCount = (n: number): number => Math.min(LATENT_TEST_MAX, Math.max(1, Math.round(n * LATENT_TEST_SHARE)));

function files(dir: string): { latents: string; labels: string } {
  if (typeof dir !== 'string' || !dir) throw new RangeError(`latents: the data folder must be given (--data-dir D holding ${layout})`);
  if (!existsSync(dir)) throw new RangeError(`latents: the folder ${dir} does not exist (--data-dir must hold ${layout})`);
  if (!statSync(dir).isDirectory()) throw new RangeError(`latents: ${dir} is a file, not a folder (--data-dir must be the folder holding ${layout})`);
  const latents = join(dir, LATENTS_FILE), labels = join(dir, LATENT_LABELS_FILE);
  for (const file of [latents, labels]) if (!existsSync(file)) throw new RangeError(`latents: ${dir} has no ${file.slice(dir.length + 1)}; the folder must hold ${layout}`);
  return { latents, labels };
}

/** Checks the labels (1-D, one per latent, each ≥ 0) and returns them with K. */
function checkedLabels(path: string, n: number): { labels: Int32Array; classes: number } {
  const array = readNpy(path);
  const labels = npyInt32(array, `latents: ${path}`);
  if (array.shape.length !== 1 || array.shape[0] !== n)
    throw new RangeError(`latents: ${path} must be 1-D with one label per latent (${n}, as ${LATENTS_FILE} has), got shape (${array.shape.join(', ')})`);
  let classes = 0;
  labels.forEach((y, i) => {
    if (y < 0) throw new RangeError(`latents: ${path}: label ${i} is ${y}; labels must be classes 0, 1, …, K − 1`);
    classes = Math.max(classes, y + 1);
  });
  return { labels, classes };
}

/**
 * What a latents folder holds, from the latents' header and the labels: every problem (a
 * missing or truncated file, a wrong dtype or shape, labels that do not match) is an error
 * naming the file, raised before the latents are read.
 */
export function inspectLatents(dir: string): LatentsInfo {
  return inspected(dir).info;
}

/** inspectLatents, with the file paths and the labels it read (loadLatents needs them too). */
function inspected(dir: string): { info: LatentsInfo; paths: { latents: string; labels: string }; labels: Int32Array } {
  const paths = files(dir);
  const header = readNpyHeader(paths.latents);
  if (header.dtype !== 'float32' && header.dtype !== 'float16')
    throw new RangeError(`latents: ${paths.latents} must be float32 or float16, got ${header.dtype}`);
  if (header.shape.length !== 4 || header.shape.some((d) => d < 1))
    throw new RangeError(`latents: ${paths.latents} must be 4-D (N, C, H, W) with every size ≥ 1, got shape (${header.shape.join(', ')})`);
  const [n, channels, height, width] = header.shape as [number, number, number, number];
  if (n < 2) throw new RangeError(`latents: ${paths.latents} holds ${n} latent; at least 2 are needed (one is held out)`);
  const { labels, classes } = checkedLabels(paths.labels, n);
  return { info: { n, channels, height, width, classes, testImages: latentTestCount(n) }, paths, labels };
}

/**
 * The latents of `dir` split by LATENT_SPLIT_SEED into train and held-out sets; both carry the
 * train split's per-channel statistics (as every loader's splits do).
 */
export function loadLatents(dir: string): { train: Dataset; test: Dataset } {
  const { info, paths, labels } = inspected(dir);
  const images = npyFloat32(readNpy(paths.latents), `latents: ${paths.latents}`);
  for (let i = 0; i < images.length; i++)
    if (!Number.isFinite(images[i]!)) throw new RangeError(`latents: ${paths.latents}: value ${i} is ${images[i]}; latents must be finite`);
  const { n, channels, height, width, classes } = info;
  const order = permutation(n, LATENT_SPLIT_SEED);
  const trainIdx = order.subarray(0, n - info.testImages), testIdx = order.subarray(n - info.testImages);
  // The whole set's statistics are never used: each split takes the train split's.
  const all: Dataset = { images, labels, n, channels, height, width, classes, name: 'latents', mean: new Float32Array(channels), std: new Float32Array(channels).fill(1) };
  const train = selectExamples(all, trainIdx, 'latents-train');
  return { train, test: selectExamples(all, testIdx, 'latents-test', { mean: train.mean, std: train.std }) };
}
