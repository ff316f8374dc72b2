// The image data a recipe names, as a train and a held-out split: every task of the runner
// trains on images (classification on their labels, MAE and diffusion on the pixels).
import { channelStats, type Dataset } from '../data/dataset.js';
import { loadCifar10, loadCifar100 } from '../data/cifar.js';
import { loadMnist } from '../data/mnist.js';
import { resizeImages } from '../data/resize.js';
import type { SharedRecipe } from './recipe.js';

export interface DataSplits {
  train: Dataset;
  /** Held out; carries the train split's mean and std, which normalise both. */
  test: Dataset;
}

/** The recipe's train and test splits, resized to imageSize; both carry the train statistics. */
export function loadImageData(recipe: Readonly<SharedRecipe>): DataSplits {
  if (recipe.data === 'mnist') return loadMnist({ size: recipe.imageSize ?? undefined });
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
