// Every metric of generated images (SPEC §6) at one fixed, stated sample count n, each beside
// its real-vs-real floor: what the same metric gives for n real training images in place of
// the samples. The reference is n held-out (test) images, so the floor is what a generator
// that draws exactly from the data distribution would score; the Fréchet distance in
// particular is biased upwards at small n, and only comparable at equal n.
//   Fréchet distance   in the classifier's penultimate feature space (not FID: no Inception)
//   conditional acc.   the classifier agrees with the class each sample was drawn for
//   precision, recall  k-NN manifolds (k = 3) in the same feature space
//   nearest training   RMS pixel distance of each sample to its nearest training image
import type { Dataset } from '../data/dataset.js';
import { mixSeed, permutation } from '../data/random.js';
import { modelName } from '../models/names.js';
import type { VisionTransformer } from '../models/vit.js';
import type { Precision } from '../nn/forward.js';
import { classifierFeatures, labelAgreement, type ClassifierFeatures, type ImageSet } from './features.js';
import { featureStatistics, frechetDistance, type FrechetDistance } from './frechet.js';
import { precisionRecall } from './knn.js';
import { nearestImages } from './nearest.js';

export interface GenerationClassifier {
  model: VisionTransformer;
  /** The per-channel mean and std it was trained with. */
  normalization: { mean: ArrayLike<number>; std: ArrayLike<number> };
  /** What to call its feature space in the report; default its checkpoint, else its model name. */
  name?: string;
  checkpoint?: string;
}

export interface GenerationEvalOptions {
  classifier: GenerationClassifier;
  /** Generated images in the data's [0, 1] pixel space, shaped as the classifier's data. */
  samples: ImageSet;
  /** The class each sample was generated for (null: an unconditional model; no conditional accuracy). */
  labels: ArrayLike<number> | null;
  /** The classifier's data: the train split (floor, nearest image) and the held-out split (reference). */
  real: { train: Dataset; test: Dataset };
  /** Images per set compared: samples, train subset and test subset alike. */
  n: number;
  /** Seed of the subsets' choice; default 0. */
  seed?: number;
  /** Neighbours of the precision / recall manifolds; default 3. */
  k?: number;
  /** Images per classifier forward; default 500. */
  batchSize?: number;
  precision?: Precision;
  /** Fraction of held-out real images closer to the training set than the near-copy threshold; default 0.01. */
  copyQuantile?: number;
}

export interface SampleAndFloor<T> {
  /** The generated samples against the reference. */
  samples: T;
  /** n real training images against the same reference: the best a generator can expect. */
  floor: T;
}

export interface DistanceSummary {
  min: number;
  median: number;
}

export interface GenerationMetrics {
  /** "Fréchet distance in the feature space of <classifier>, not FID" */
  note: string;
  /** The classifier named, and the width of its feature vectors. */
  featureSpace: { classifier: string; dim: number };
  n: number;
  seed: number;
  frechet: SampleAndFloor<FrechetDistance>;
  /** Samples: agreement with their labels (null without labels); floor: the classifier's top-1 on the n held-out images. */
  conditionalAccuracy: SampleAndFloor<number | null>;
  precision: SampleAndFloor<number>;
  recall: SampleAndFloor<number>;
  k: number;
  nearestTraining: {
    /** RMS pixel distance (data units) of each sample to its nearest training image, over the n samples. */
    samples: DistanceSummary;
    /** The same for the n held-out real images: what a generator that does not copy looks like. */
    real: DistanceSummary;
    /** Samples closer than this are flagged: copyQuantile of the held-out images are closer. */
    threshold: number;
    copyQuantile: number;
    /** Indices (into the given samples) of the flagged samples, each with its distance and nearest training image. */
    nearCopies: { sample: number; train: number; distance: number }[];
    /** How many a generator that does not copy would have flagged, about: copyQuantile·n. */
    expectedByChance: number;
  };
  /** Indices of the images used: into samples, real.train and real.test. */
  subsets: { samples: Int32Array; train: Int32Array; test: Int32Array };
}

/** The first n of a seeded permutation of 0..total − 1. */
const subset = (total: number, n: number, seed: number): Int32Array => permutation(total, seed).slice(0, n);

function pick(set: ImageSet, indices: Int32Array): ImageSet {
  const size = set.channels * set.height * set.width;
  const images = new Float32Array(indices.length * size);
  indices.forEach((i, k) => images.set(set.images.subarray(i * size, (i + 1) * size), k * size));
  return { images, n: indices.length, channels: set.channels, height: set.height, width: set.width };
}

function summary(values: Float64Array): DistanceSummary {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return { min: sorted[0]!, median: sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2 };
}

function checkShape(what: string, set: ImageSet, model: VisionTransformer): void {
  const { channels, imageSize } = model.config;
  const [H, W] = typeof imageSize === 'number' ? [imageSize, imageSize] : imageSize;
  if (set.channels !== channels || set.height !== H || set.width !== W)
    throw new RangeError(`evaluateGeneration: '${what}' are ${set.channels}×${set.height}×${set.width} images, the classifier takes ${channels}×${H}×${W}`);
  if (set.images.length !== set.n * channels * H * W) throw new RangeError(`evaluateGeneration: '${what}' holds ${set.images.length} values, not ${set.n}·${channels}·${H}·${W}`);
}

/**
 * Every generation metric of `samples` at n images, with its real-vs-real floor. Subsets are
 * chosen by `seed`: n of the samples (all, when there are n), n training and n held-out images.
 */
export function evaluateGeneration(options: GenerationEvalOptions): GenerationMetrics {
  const { classifier, samples, labels, real, n, seed = 0, k = 3, batchSize, precision, copyQuantile = 0.01 } = options;
  const { model, normalization } = classifier;
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`evaluateGeneration: 'n' must be an integer ≥ 2, got ${String(n)}`);
  if (!Number.isInteger(seed)) throw new RangeError(`evaluateGeneration: 'seed' must be an integer, got ${String(seed)}`);
  if (!(copyQuantile > 0 && copyQuantile < 1)) throw new RangeError(`evaluateGeneration: 'copyQuantile' must be in (0, 1), got ${String(copyQuantile)}`);
  checkShape('samples', samples, model);
  checkShape('real.train', real.train, model);
  checkShape('real.test', real.test, model);
  for (const [what, have] of [['samples', samples.n], ['real.train', real.train.n], ['real.test', real.test.n]] as const)
    if (have < n) throw new RangeError(`evaluateGeneration: n = ${n} images are compared, but '${what}' has only ${have} (the Fréchet distance is biased at small n: compare runs at one fixed n)`);
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new RangeError(`evaluateGeneration: 'k' must be an integer in [1, n − 1], got ${String(k)}`);
  const classes = model.config.classes;
  if (labels) {
    if (labels.length !== samples.n) throw new RangeError(`evaluateGeneration: ${samples.n} samples but ${labels.length} labels`);
    for (let i = 0; i < labels.length; i++)
      if (!Number.isInteger(labels[i]) || labels[i]! < 0 || labels[i]! >= classes)
        throw new RangeError(`evaluateGeneration: label ${i} is ${labels[i]}, not a class of the classifier (0..${classes - 1})`);
  }

  const subsets = {
    samples: subset(samples.n, n, mixSeed(seed, 1)),
    train: subset(real.train.n, n, mixSeed(seed, 2)),
    test: subset(real.test.n, n, mixSeed(seed, 3)),
  };
  const sampleSet = pick(samples, subsets.samples), trainSet = pick(real.train, subsets.train), testSet = pick(real.test, subsets.test);
  const featureOptions = { normalization, batchSize, precision };
  const of = (set: ImageSet): ClassifierFeatures => classifierFeatures(model, set, featureOptions);
  const [fs, ft, fr] = [of(sampleSet), of(trainSet), of(testSet)];
  const dim = fs.dim;

  const reference = featureStatistics(fr.features, n, dim);
  const frechet = {
    samples: frechetDistance(featureStatistics(fs.features, n, dim), reference),
    floor: frechetDistance(featureStatistics(ft.features, n, dim), reference),
  };
  const prSamples = precisionRecall(fr.features, n, fs.features, n, dim, k);
  const prFloor = precisionRecall(fr.features, n, ft.features, n, dim, k);
  const sampleLabels = labels ? Int32Array.from(subsets.samples, (i) => labels[i]!) : null;
  const testLabels = Int32Array.from(subsets.test, (i) => real.test.labels[i]!);

  // Memorisation: nearest training image (the whole train split) in pixel space.
  const pixels = samples.channels * samples.height * samples.width;
  const nearSamples = nearestImages(sampleSet.images, real.train.images, pixels, { device: model.device });
  const nearReal = nearestImages(testSet.images, real.train.images, pixels, { device: model.device });
  const realSorted = Float64Array.from(nearReal.distance).sort();
  const threshold = realSorted[Math.floor(copyQuantile * n)]!;
  const nearCopies = [...nearSamples.distance.keys()].filter((i) => nearSamples.distance[i]! < threshold)
    .map((i) => ({ sample: subsets.samples[i]!, train: nearSamples.index[i]!, distance: nearSamples.distance[i]! }))
    .sort((a, b) => a.distance - b.distance);

  const name = classifier.name ?? classifier.checkpoint ?? modelName(model.config);
  return {
    note: `Fréchet distance in the feature space of ${name}, not FID`,
    featureSpace: { classifier: name, dim },
    n, seed, k,
    frechet,
    conditionalAccuracy: {
      samples: sampleLabels ? labelAgreement(fs.logits, sampleLabels, classes) : null,
      floor: labelAgreement(fr.logits, testLabels, classes),
    },
    precision: { samples: prSamples.precision, floor: prFloor.precision },
    recall: { samples: prSamples.recall, floor: prFloor.recall },
    nearestTraining: {
      samples: summary(nearSamples.distance),
      real: summary(nearReal.distance),
      threshold, copyQuantile, nearCopies,
      expectedByChance: copyQuantile * n,
    },
    subsets,
  };
}
