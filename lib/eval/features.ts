// The feature space generated images are judged in: the penultimate features (the pooled,
// normed vector its head sees) of the project's own trained classifier, since FID's Inception
// weights cannot ship (SPEC §6). Images come in the data's [0, 1] pixel space and are
// normalised as the classifier was trained.
import { normalize } from '../data/transforms.js';
import type { VisionTransformer } from '../models/vit.js';
import type { Precision } from '../nn/forward.js';
import { noGrad, tensor, tidy } from '../tensor.js';
import { topKHits } from '../train/tasks/classify-metrics.js';

/** Images (n, channels, height, width), NCHW float32 (a Dataset is one). */
export interface ImageSet {
  readonly images: Float32Array;
  readonly n: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

export interface FeatureOptions {
  /** The per-channel mean and std the classifier was trained with (its checkpoint's). */
  normalization: { mean: ArrayLike<number>; std: ArrayLike<number> };
  /** Images per forward; default 500. */
  batchSize?: number;
  /** Default 'f32'. */
  precision?: Precision;
}

export interface ClassifierFeatures {
  /** (n, dim): the pooled, normed vectors the head sees. */
  features: Float32Array;
  /** (n, classes): the head's logits on them (the model's forward). */
  logits: Float32Array;
  n: number;
  dim: number;
  classes: number;
}

/**
 * The classifier's penultimate features and logits of every image of `set`, in batches: each
 * batch runs without the autograd tape and its tensors are freed before the next. The model
 * runs in eval mode (its mode is restored afterwards).
 */
export function classifierFeatures(model: VisionTransformer, set: ImageSet, options: FeatureOptions): ClassifierFeatures {
  const { normalization, batchSize = 500, precision = 'f32' } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`classifierFeatures: 'batchSize' must be a positive integer, got ${String(batchSize)}`);
  const { n, channels: C, height: H, width: W } = set;
  const size = C * H * W;
  if (set.images.length !== n * size) throw new RangeError(`classifierFeatures: ${n} images of ${C}×${H}×${W} need ${n * size} values, got ${set.images.length}`);
  const dim = model.config.dim, classes = model.config.classes;
  const features = new Float32Array(n * dim), logits = new Float32Array(n * classes);
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let start = 0; start < n; start += batchSize) {
        const B = Math.min(batchSize, n - start);
        const images = normalize(set.images.slice(start * size, (start + B) * size), set, normalization.mean, normalization.std);
        tidy(() => {
          const pooled = model.pooledFeatures(tensor(images, [B, C, H, W], { device: model.device }), { precision });
          features.set(pooled.toArray() as Float32Array, start * dim);
          logits.set(model.head.forward(pooled).toArray() as Float32Array, start * classes);
        });
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return { features, logits, n, dim, classes };
}

/**
 * The fraction of images the classifier assigns to their label (argmax of the logits; a tie
 * counts against the label, as evaluate's top-1 does).
 */
export function labelAgreement(logits: Float32Array, labels: ArrayLike<number>, classes: number): number {
  if (logits.length !== labels.length * classes) throw new RangeError(`labelAgreement: ${labels.length} labels need ${labels.length}·${classes} logits, got ${logits.length}`);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= classes) throw new RangeError(`labelAgreement: label ${i} is ${y}, not a class in 0..${classes - 1}`);
  }
  return labels.length ? topKHits(logits, labels, classes).top1 / labels.length : NaN;
}
