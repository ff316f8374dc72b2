// In-place transforms on NCHW float32 batches (B, C, H, W): per-channel normalisation,
// seeded augmentation (random crop with zero padding, random translation, horizontal flip)
// and the locality study's fixed pixel permutation (permute.ts).
//
// Work is done per image row with typed-array subarray/set/fill/reverse, never per pixel in
// JS closures. Randomness comes from the caller's Rng, so a seed reproduces a batch exactly.
import { permutePixels } from './permute.js';
import { Rng } from './random.js';

/** The per-image layout of a batch. */
export interface ImageShape {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

function imageCount(images: Float32Array, s: ImageShape, op: string): number {
  const size = s.channels * s.height * s.width;
  if (images.length % size !== 0) throw new RangeError(`${op}: 'images' has ${images.length} values, not a multiple of ${s.channels}·${s.height}·${s.width}`);
  return images.length / size;
}

/** (x − mean[c]) / std[c] for every pixel of channel c, in place. */
export function normalize(images: Float32Array, s: ImageShape, mean: ArrayLike<number>, std: ArrayLike<number>): Float32Array {
  const n = imageCount(images, s, 'normalize');
  if (mean.length !== s.channels || std.length !== s.channels)
    throw new RangeError(`normalize: 'mean' and 'std' need ${s.channels} values (one per channel), got ${mean.length} and ${std.length}`);
  const plane = s.height * s.width;
  for (let c = 0; c < s.channels; c++)
    if (!(std[c]! > 0)) throw new RangeError(`normalize: 'std[${c}]' must be > 0, got ${std[c]}`);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < s.channels; c++) {
      const m = mean[c]!, inv = 1 / std[c]!;
      const start = (i * s.channels + c) * plane;
      for (let p = start; p < start + plane; p++) images[p] = (images[p]! - m) * inv;
    }
  return images;
}

/**
 * Shifts image `index` of the batch by (dy, dx) in place: out(y, x) = in(y + dy, x + dx), zero
 * where that falls outside. `scratch` holds one plane (H·W).
 */
export function shiftImage(images: Float32Array, s: ImageShape, index: number, dy: number, dx: number, scratch: Float32Array): void {
  const { channels, height: h, width: w } = s;
  if (dy === 0 && dx === 0) return;
  // Columns [x0, x1) of the output read source columns [x0 + dx, x1 + dx).
  const x0 = Math.max(0, -dx), x1 = Math.min(w, w - dx);
  for (let c = 0; c < channels; c++) {
    const plane = images.subarray((index * channels + c) * h * w, (index * channels + c + 1) * h * w);
    scratch.set(plane);
    plane.fill(0);
    if (x1 <= x0) continue;
    for (let y = Math.max(0, -dy); y < Math.min(h, h - dy); y++) {
      const src = (y + dy) * w;
      plane.set(scratch.subarray(src + x0 + dx, src + x1 + dx), y * w + x0);
    }
  }
}

/**
 * Random crop with zero padding, per image: the same as padding each side by `padding` zeros
 * and cropping H×W at a uniform offset, i.e. a shift by (dy, dx) uniform in [−padding, padding]².
 */
export function randomCrop(images: Float32Array, s: ImageShape, padding: number, rng: Rng): Float32Array {
  if (!Number.isInteger(padding) || padding < 0) throw new RangeError(`randomCrop: 'padding' must be a non-negative integer, got ${String(padding)}`);
  const n = imageCount(images, s, 'randomCrop');
  const scratch = new Float32Array(s.height * s.width);
  for (let i = 0; i < n; i++) {
    const dy = rng.int(2 * padding + 1) - padding, dx = rng.int(2 * padding + 1) - padding;
    shiftImage(images, s, i, dy, dx, scratch);
  }
  return images;
}

/** Small random translation for digits: each image moves by up to ±maxShift pixels per axis. */
export function randomTranslate(images: Float32Array, s: ImageShape, maxShift: number, rng: Rng): Float32Array {
  if (!Number.isInteger(maxShift) || maxShift < 0) throw new RangeError(`randomTranslate: 'maxShift' must be a non-negative integer, got ${String(maxShift)}`);
  return randomCrop(images, s, maxShift, rng);
}

/** Mirrors image `index` left–right in place (each row reversed). */
export function flipImage(images: Float32Array, s: ImageShape, index: number): void {
  const { channels, height: h, width: w } = s;
  const start = index * channels * h * w;
  for (let r = 0; r < channels * h; r++) images.subarray(start + r * w, start + (r + 1) * w).reverse();
}

/** Mirrors each image left–right with probability p (default 0.5), in place. */
export function randomFlip(images: Float32Array, s: ImageShape, rng: Rng, p = 0.5): Float32Array {
  const n = imageCount(images, s, 'randomFlip');
  for (let i = 0; i < n; i++) if (rng.next() < p) flipImage(images, s, i);
  return images;
}

export interface AugmentOptions {
  /** Random crop with this much zero padding (CIFAR: 4). */
  cropPadding?: number;
  /** Random translation by up to ± this many pixels (MNIST: 2). */
  translate?: number;
  /** Horizontal flip with probability 0.5 (natural images only; never for digits). */
  flip?: boolean;
  /** Normalise with these statistics (usually the training split's). */
  normalize?: { mean: ArrayLike<number>; std: ArrayLike<number> };
  /** A fixed pixel permutation (pixelPermutation), applied last: after the augmentation, as SPEC §5 says. */
  permutation?: ArrayLike<number> | null;
}

/**
 * A batch transform for BatchLoader: crop, translate, flip, normalise, then permute, in that
 * order (normalising is per channel, so it commutes with the permutation exactly).
 */
export function augmentation(s: ImageShape, o: AugmentOptions): (images: Float32Array, rng: Rng) => void {
  if (o.permutation && o.permutation.length !== s.height * s.width)
    throw new RangeError(`augmentation: 'permutation' must have H·W = ${s.height * s.width} entries for ${s.height}×${s.width} images, got ${o.permutation.length}`);
  return (images, rng) => {
    if (o.cropPadding) randomCrop(images, s, o.cropPadding, rng);
    if (o.translate) randomTranslate(images, s, o.translate, rng);
    if (o.flip) randomFlip(images, s, rng);
    if (o.normalize) normalize(images, s, o.normalize.mean, o.normalize.std);
    if (o.permutation) permutePixels(images, s.channels, s.height, s.width, o.permutation);
  };
}
