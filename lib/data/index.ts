// Data: datasets (MNIST, CIFAR), resizing, transforms and the batch loader.
export { channelStats, selectExamples, type Dataset } from './dataset.js';
export { loadMnist, loadMnistAll, MNIST_SPLIT_SEED, type MnistOptions } from './mnist.js';
export { loadCifar10, loadCifar100 } from './cifar.js';
export { resizeImages } from './resize.js';
export { augmentation, flipImage, normalize, randomCrop, randomFlip, randomTranslate, shiftImage, type AugmentOptions, type ImageShape } from './transforms.js';
export { BatchLoader, type Batch, type LoaderOptions, type LoaderState } from './loader.js';
export { mixSeed, permutation, Rng, shuffleInPlace } from './random.js';
export { inspectLatents, latentTestCount, loadLatents, LATENT_LABELS_FILE, LATENT_SPLIT_SEED, LATENT_TEST_MAX, LATENT_TEST_SHARE, LATENTS_FILE, type LatentsInfo } from './latents.js';
export { inversePermutation, permutePixels, pixelPermutation, type PermutationOptions } from './permute.js';
