// One classifier training step: forward, label-smoothed cross-entropy, backward, gradient
// clipping, AdamW, and the EMA update. The trainer's loop and `pit bench train` both run it,
// so the benchmark times exactly the step that training takes.
import type { VisionTransformer } from '../models/vit.js';
import type { Precision } from '../nn/forward.js';
import { softmaxCrossEntropy } from '../ops/index.js';
import { backward, tidy, type Tensor } from '../tensor.js';
import type { Ema } from './ema.js';
import type { AdamW } from './optimizer.js';

export interface StepOptions {
  lr: number;
  labelSmoothing: number;
  /** Global gradient-norm limit; 0 turns clipping off. */
  clipGrad: number;
  /** Philox (seed, offset) of the step's drop-path draws. */
  seed: number;
  offset: number;
  /** Default 'f32'. */
  precision?: Precision;
  ema?: Ema | null;
}

/** Runs one step on images (B, C, H, W) and labels (B,) i32; returns the batch's mean loss. */
export function classifierStep(model: VisionTransformer, optimizer: AdamW, images: Tensor, labels: Tensor, o: StepOptions): number {
  return tidy(() => {
    const logits = model.forward(images, { precision: o.precision, random: { seed: o.seed, offset: o.offset } });
    const loss = softmaxCrossEntropy(logits, labels, { labelSmoothing: o.labelSmoothing });
    const value = loss.toArray()[0]!;
    backward(loss);
    if (o.clipGrad > 0) optimizer.clipGradNorm(o.clipGrad);
    optimizer.step(o.lr);
    optimizer.zeroGrad();
    o.ema?.update(model);
    return value;
  });
}
