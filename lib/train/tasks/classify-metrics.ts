// Classification metrics over a whole dataset: mean cross-entropy, top-1 and top-5 accuracy.
import type { Dataset } from '../../data/dataset.js';
import { normalize } from '../../data/transforms.js';
import { softmaxCrossEntropy } from '../../ops/index.js';
import type { ForwardOptions, Precision } from '../../nn/forward.js';
import { noGrad, tensor, tidy, type Device, type Tensor } from '../../tensor.js';

export interface ClassificationMetrics {
  /** Mean cross-entropy (no label smoothing). */
  loss: number;
  /** Fractions in [0, 1]. */
  top1: number;
  top5: number;
  n: number;
}

/** A model as evaluation needs it: its device, eval mode and images (B, C, H, W) → logits (B, K). */
export interface Classifier {
  readonly device: Device;
  eval(): unknown;
  train(mode?: boolean): unknown;
  readonly training: boolean;
  forward(images: Tensor, options?: ForwardOptions): Tensor;
}

/**
 * For each row of logits (B, K), whether the label is among the k largest, for k = 1 and 5
 * (k = K when K < 5). A tie counts against the label: a logit equal to the label's and
 * earlier in the row ranks above it, so constant logits score as chance, not as a hit.
 */
export function topKHits(logits: Float32Array, labels: ArrayLike<number>, classes: number): { top1: number; top5: number } {
  let top1 = 0, top5 = 0;
  for (let b = 0; b < labels.length; b++) {
    const row = b * classes, label = labels[b]!;
    const target = logits[row + label]!;
    let above = 0;
    for (let c = 0; c < classes; c++) {
      const v = logits[row + c]!;
      if (v > target || (v === target && c < label) || Number.isNaN(v)) above++;
    }
    if (Number.isNaN(target)) above = classes;
    if (above === 0) top1++;
    if (above < 5) top5++;
  }
  return { top1, top5 };
}

export interface EvaluateOptions {
  /** Per-channel statistics to normalise with (the training split's). */
  normalization: { mean: ArrayLike<number>; std: ArrayLike<number> };
  /** Default 500. */
  batchSize?: number;
  /** The run's precision (default 'f32'). */
  precision?: Precision;
}

/** Evaluates `model` on every example of `data`, in eval mode (restored afterwards). */
export function evaluate(model: Classifier, data: Dataset, options: EvaluateOptions): ClassificationMetrics {
  const { normalization, batchSize = 500, precision = 'f32' } = options;
  const { device } = model;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`evaluate: 'batchSize' must be a positive integer, got ${String(batchSize)}`);
  if (data.n < 1) throw new RangeError(`evaluate: dataset '${data.name}' is empty`);
  const { channels: C, height: H, width: W, classes: K } = data;
  const size = C * H * W;
  const wasTraining = model.training;
  model.eval();
  let lossSum = 0, top1 = 0, top5 = 0;
  try {
    noGrad(() => {
      for (let start = 0; start < data.n; start += batchSize) {
        const B = Math.min(batchSize, data.n - start);
        const images = normalize(data.images.slice(start * size, (start + B) * size), data, normalization.mean, normalization.std);
        const labels = data.labels.subarray(start, start + B);
        tidy(() => {
          const logits = model.forward(tensor(images, [B, C, H, W], { device }), { precision });
          if (logits.shape.length !== 2 || logits.shape[0] !== B || logits.shape[1] !== K)
            throw new RangeError(`evaluate: the model must give logits (${B}, ${K}) for '${data.name}', got [${logits.shape.join(', ')}]`);
          lossSum += softmaxCrossEntropy(logits, tensor(labels, [B], { device })).toArray()[0]! * B;
          const hits = topKHits(logits.toArray() as Float32Array, labels, K);
          top1 += hits.top1;
          top5 += hits.top5;
        });
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return { loss: lossSum / data.n, top1: top1 / data.n, top5: top5 / data.n, n: data.n };
}
