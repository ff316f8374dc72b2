// One training step of any task: the task's forward and loss, then backward, gradient
// clipping, AdamW, zeroGrad and the EMA update. The runner's loop and `pit bench train` both
// run it, so the benchmark times exactly the step that training takes, for every task.
import { backward, tidy } from '../tensor.js';
import type { Ema } from './ema.js';
import { AdamW } from './optimizer.js';
import type { Recipe } from './recipe.js';
import type { StepContext, Task, TaskModel, TrainBatch } from './task.js';

export interface StepOptions<P> extends StepContext<P> {
  lr: number;
  /** Updated after the optimizer step when given. */
  ema?: Ema | null;
}

/** The AdamW a run of `task` trains `model` with: the recipe's decay and betas, the task's groups. */
export function taskOptimizer<P, M extends TaskModel>(task: Task<P, M, unknown>, model: M, recipe: Readonly<Recipe<P>>): AdamW {
  return new AdamW(model, { weightDecay: recipe.weightDecay, betas: [recipe.beta1, recipe.beta2], ...task.optimizerOptions?.(model, recipe) });
}

/** Runs one step on `batch`; returns the batch's loss (read before the backward). */
export function trainStep<P, M extends TaskModel>(task: Task<P, M, unknown>, model: M, optimizer: AdamW, batch: TrainBatch, o: StepOptions<P>): number {
  return tidy(() => {
    const loss = task.loss(model, batch, o);  // StepOptions is a StepContext
    if (loss.size !== 1) throw new RangeError(`${task.name}: the loss must be a scalar tensor (1 element), got shape [${loss.shape.join(', ')}]`);
    const value = loss.toArray()[0]!;
    backward(loss);
    if (o.recipe.clipGrad > 0) optimizer.clipGradNorm(o.recipe.clipGrad);
    optimizer.step(o.lr);
    optimizer.zeroGrad();
    o.ema?.update(model);
    return value;
  });
}
