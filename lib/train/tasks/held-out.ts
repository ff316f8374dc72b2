// The held-out evaluation that scores a model by a loss it draws random numbers for (MAE's masks,
// diffusion's timesteps and noise): batch i of the held-out split draws from { seed, offset: i }
// whatever the run's seed and step, so every epoch (and every run at the same evalBatchSize) is
// scored on the same draws and the numbers compare.
import type { Dataset } from '../../data/dataset.js';
import { normalize } from '../../data/transforms.js';
import type { RandomStream } from '../../nn/forward.js';
import type { Module } from '../../nn/module.js';
import { noGrad, tensor, tidy, type Tensor } from '../../tensor.js';
import type { EvalContext } from '../task.js';

/**
 * The means over every image of `data` of the values `score` gives per batch: `images` (B, C, H,
 * W) normalised with the run's statistics, `labels` (B) i32, both on the model's device, and the
 * batch's stream { seed, offset: i }. Each batch's values are weighted by its size, so a score that
 * is a mean over its batch (with the same count of terms per image) gives the mean over all.
 * The model runs in eval mode without gradients, its mode restored afterwards.
 */
export function heldOutMeans(model: Module, data: Dataset, context: Pick<EvalContext, 'normalization' | 'batchSize'>, seed: number,
  score: (images: Tensor, labels: Tensor, random: RandomStream) => ArrayLike<number>, who: string): number[] {
  if (data.n < 1) throw new RangeError(`${who}: dataset '${data.name}' is empty`);
  const { channels: C, height: H, width: W } = data;
  const { normalization, batchSize } = context;
  const size = C * H * W;
  const wasTraining = model.training;
  model.eval();
  let sums: number[] = [];
  try {
    noGrad(() => {
      for (let start = 0, i = 0; start < data.n; start += batchSize, i++) {
        const B = Math.min(batchSize, data.n - start);
        const images = normalize(data.images.slice(start * size, (start + B) * size), data, normalization.mean, normalization.std);
        const values = tidy(() => Array.from(score(tensor(images, [B, C, H, W], { device: model.device }),
          tensor(data.labels.slice(start, start + B), [B], { device: model.device }), { seed, offset: i })));
        sums = values.map((v, k) => (sums[k] ?? 0) + v * B);
      }
    });
  } finally {
    model.train(wasTraining);
  }
  return sums.map((s) => s / data.n);
}
