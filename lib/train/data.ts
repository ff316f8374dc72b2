// The image data a recipe names, as a train and a held-out split: every task of the runner
// trains on images (classification on their labels, MAE and diffusion on the pixels), or, for
// diffusion, on pre-computed latents (lib/data/latents.ts).
import { channelStats, type Dataset } from '../data/dataset.js';
import { CIFAR_CHANNELS, CIFAR_SIDE, CIFAR_TEST, CIFAR_TRAIN, loadCifar10, loadCifar100 } from '../data/cifar.js';
import { inspectLatents, loadLatents } from '../data/latents.js';
import { loadMnist, MNIST_SIDE, MNIST_TOTAL, MNIST_TRAIN } from '../data/mnist.js';
import { permutePixels, pixelPermutation } from '../data/permute.js';
import { resizeImages } from '../data/resize.js';
import type { SharedRecipe } from './recipe.js';
import type { DataShape } from './task.js';

export interface DataSplits {
  /** Not permuted: the runner permutes each training batch after its augmentation. */
  train: Dataset;
  /**
   * Held out, with the recipe's pixel permutation applied (no augmentation comes before it);
   * carries the train split's mean and std, which normalise both.
   */
  test: Dataset;
  /**
   * The recipe's pixel permutation (recipePermutation), already applied to `test`; null or
   * absent when the recipe has none. The runner refuses a permuting recipe whose task's data
   * does not carry it (the held-out images would not be permuted).
   */
  permutation?: Int32Array | null;
}

/**
 * The recipe's pixel permutation of height×width images (SPEC §5: permuteSwaps disjoint pairs
 * within permuteDelta, seeded by permuteSeed), or null when permuteSwaps is 0. The same for
 * every consumer of the recipe: built from the recipe and the data's (resized) size alone.
 */
export function recipePermutation(recipe: Readonly<SharedRecipe>, height: number, width: number): Int32Array | null {
  if (recipe.permuteSwaps === 0) return null;
  return pixelPermutation(height, width, { swaps: recipe.permuteSwaps, delta: recipe.permuteDelta, seed: recipe.permuteSeed });
}

/**
 * The recipe's train and test splits, resized to imageSize; both carry the train statistics.
 * The test images are permuted as the recipe says (every consumer of the held-out split, the
 * runner's evaluation and `pit eval` alike, reads them from here); the train images are not.
 */
export function loadImageData(recipe: Readonly<SharedRecipe>): DataSplits {
  const { train, test } = loadSplits(recipe);
  const permutation = recipePermutation(recipe, test.height, test.width);
  // The splits are fresh copies (loadMnist selects, CIFAR is read or resized per call).
  if (permutation) permutePixels(test.images, test.channels, test.height, test.width, permutation);
  return { train, test, permutation };
}

function loadSplits(recipe: Readonly<SharedRecipe>): DataSplits {
  if (recipe.data === 'mnist') return loadMnist({ size: recipe.imageSize ?? undefined });
  if (recipe.data === 'latents') return loadLatents(recipe.dataDir!);  // at their own size (the recipe's check)
  const { train, test } = recipe.data === 'cifar10' ? loadCifar10(recipe.dataDir!) : loadCifar100(recipe.dataDir!);
  const side = recipe.imageSize;
  if (side === null || (side === train.height && side === train.width)) return { train, test };
  const resize = (d: Dataset): Dataset => ({
    ...d, height: side, width: side,
    images: resizeImages(d.images, d.n * d.channels, d.height, d.width, side, side),
  });
  const small = resize(train);
  const stats = channelStats(small.images, small.n, small.channels, side * side);
  return { train: { ...small, ...stats }, test: { ...resize(test), ...stats } };
}

/** The shape of the recipe's data and its split sizes, from the recipe alone (nothing is read). */
export interface ImageDataSize extends DataShape {
  trainImages: number;
  testImages: number;
}

/**
 * What loadImageData(recipe) will hold, known before loading (CIFAR at its standard 50,000 /
 * 10,000; latents from their files' headers and labels), so that a run's memory can be checked
 * before anything is read or resized.
 */
export function imageDataSize(recipe: Readonly<SharedRecipe>): ImageDataSize {
  if (recipe.data === 'latents') {
    const { n, testImages, ...shape } = inspectLatents(recipe.dataDir!);
    return { ...shape, trainImages: n - testImages, testImages };
  }
  const mnist = recipe.data === 'mnist';
  const side = recipe.imageSize ?? (mnist ? MNIST_SIDE : CIFAR_SIDE);
  return mnist
    ? { channels: 1, height: side, width: side, classes: 10, trainImages: MNIST_TRAIN, testImages: MNIST_TOTAL - MNIST_TRAIN }
    : { channels: CIFAR_CHANNELS, height: side, width: side, classes: recipe.data === 'cifar10' ? 10 : 100, trainImages: CIFAR_TRAIN, testImages: CIFAR_TEST };
}

/**
 * Host bytes of the loaded images: the resized stack and the split copies of it (MNIST resizes
 * all 10,000 digits, then copies out the two splits), f32.
 */
export function imageDataBytes(size: ImageDataSize): number {
  return 2 * (size.trainImages + size.testImages) * size.channels * size.height * size.width * 4;
}
