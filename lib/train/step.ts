// One classifier training step: forward, label-smoothed cross-entropy, backward, gradient
// clipping, AdamW, and the EMA update. The trainer's loop and `pit bench train` both run it,
// so the benchmark times exactly the step that training takes.
import type { VisionTransformer } from '../models/vit.js';
import { setAttentionPrecision, softmaxCrossEntropy } from '../ops/index.js';
import { backward, tidy, type Device, type Tensor } from '../tensor.js';
import type { Ema } from './ema.js';
import type { AdamW } from './optimizer.js';

/** 'f32' throughout, or 'mixed': attention in bf16 on the GPU's tensor cores, the rest f32. */
export type Precision = 'f32' | 'mixed';

/** Sets the ops' precision for a run on `device`; 'mixed' needs the GPU's bf16 kernels. */
export function applyPrecision(precision: Precision, device: Device): void {
  if (precision !== 'f32' && precision !== 'mixed') throw new TypeError(`precision must be "f32" or "mixed", got ${JSON.stringify(precision)}`);
  if (precision === 'mixed' && device !== 'cuda')
    throw new TypeError(`precision "mixed" runs attention on bf16 tensor cores and needs the cuda device; this run is on ${device}`);
  setAttentionPrecision(precision === 'mixed' ? 'bf16' : 'f32');
}

export interface StepOptions {
  lr: number;
  labelSmoothing: number;
  /** Global gradient-norm limit; 0 turns clipping off. */
  clipGrad: number;
  /** Philox (seed, offset) of the step's drop-path draws. */
  seed: number;
  offset: number;
  ema?: Ema | null;
}

/** Runs one step on images (B, C, H, W) and labels (B,) i32; returns the batch's mean loss. */
export function classifierStep(model: VisionTransformer, optimizer: AdamW, images: Tensor, labels: Tensor, o: StepOptions): number {
  return tidy(() => {
    const logits = model.forward(images, { seed: o.seed, offset: o.offset });
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
