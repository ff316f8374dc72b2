// Losses reduced to a scalar (shape []): softmax cross-entropy with label smoothing (loss
// and dlogits in one native pass) and the mean squared error with an optional token mask.
import { native } from '../native.js';
import { isGradEnabled, record, Tensor } from '../tensor.js';
import { emptyLike, emptyOn, expectTensor, handleOrNull } from './util.js';

export interface CrossEntropyOptions {
  /** Weight s moved from the label to a uniform target: (1 − s)·onehot + s/K. */
  labelSmoothing?: number;
}

/** Mean cross-entropy of logits (N, K) against i32 targets (N); a scalar (shape []). */
export function softmaxCrossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  expectTensor('softmaxCrossEntropy', 'logits', logits);
  expectTensor('softmaxCrossEntropy', 'targets', targets);
  if (logits.shape.length !== 2) throw new RangeError(`softmaxCrossEntropy: 'logits' must be (N, K), got shape [${logits.shape.join(', ')}]`);
  const smoothing = options.labelSmoothing ?? 0;
  const N = logits.shape[0]!;
  if (N === 0) throw new RangeError("softmaxCrossEntropy: 'logits' must have at least one row, got shape [0, ...]");
  const losses = emptyOn(logits, [N]);
  // The gradient of the mean loss, computed in the same pass when it will be wanted.
  const dlogits = isGradEnabled() && logits.requiresGrad ? emptyLike(logits) : null;
  native().softmaxCrossEntropy(losses.handle, handleOrNull(dlogits), logits.handle, targets.handle, smoothing, 1 / N);
  const loss = emptyOn(logits, []);
  native().sumForward(loss.handle, losses.handle, 0, true);
  losses.dispose();
  return record(loss, 'softmaxCrossEntropy', [logits], (g) => {
    const dx = emptyLike(logits);
    native().mul(dx.handle, dlogits!.handle, g.handle);  // g: the upstream scalar
    return [dx];
  }, dlogits ? [dlogits] : []);
}

/**
 * Mean over tokens of the per-token mean over P of (pred − target)², for pred, target
 * (B, L, P); with mask (B, L), Σ mask·e / Σ mask (MAE: loss on the removed tokens only).
 */
export function mse(pred: Tensor, target: Tensor, mask: Tensor | null = null): Tensor {
  expectTensor('mse', 'pred', pred);
  expectTensor('mse', 'target', target);
  if (mask !== null) expectTensor('mse', 'mask', mask);
  const loss = emptyOn(pred, []);
  native().mseForward(loss.handle, pred.handle, target.handle, handleOrNull(mask));
  return record(loss, 'mse', [pred, target], (g) => {
    const dpred = emptyLike(pred);
    native().mseBackward(dpred.handle, g.handle, pred.handle, target.handle, handleOrNull(mask));
    let dtarget: Tensor | null = null;
    if (target.requiresGrad) {
      dtarget = emptyLike(pred);
      native().scale(dtarget.handle, dpred.handle, -1);
    }
    return [pred.requiresGrad ? dpred : (dpred.dispose(), null), dtarget];
  });
}
