// "What fits" before anything runs (`pit train … --estimate`): a run's estimated peak by part,
// checked against a memory size, and the largest image side the same recipe would train within
// it. The estimates are the tasks' own (Task.estimate), so they know the batch, the precision
// and the recomputation (--recompute), and cost microseconds.
import type { Precision } from '../nn/forward.js';
import type { Device } from '../tensor.js';
import { memoryLimit, type MemoryPart, type RunMemory } from './memory.js';
import { makeRecipe, type Recipe } from './recipe.js';
import type { Task, TaskModel } from './task.js';

export interface RunFit {
  memory: RunMemory;
  /** What the check counts against `limit`: the device parts, and on cpu the host parts too (they share the RAM). */
  bytes: number;
  limit: number;
  fits: boolean;
  /**
   * The largest --image-size whose run fits in `limit` (among the sizes the model takes: for a
   * ViT/p the multiples of p), or null: the recipe trains at its data's own size (latents), or
   * not even the smallest size fits. Capped at `maxSide`.
   */
  largestImageSize: number | null;
}

const sum = (parts: readonly MemoryPart[]) => parts.reduce((s, p) => s + p.bytes, 0);

/** The bytes of `memory` that must fit in the limit of `device` (as checkRunMemory counts them). */
export function countedBytes(memory: RunMemory, device: Device): number {
  return device === 'cpu' ? sum(memory.device) + sum(memory.host) : sum(memory.device);
}

/**
 * The estimated peak of `recipe`'s run on `device` against `limit` (default: what the device has),
 * and the largest image side that would fit at the same batch, precision and recomputation.
 */
export function fitRun<P>(task: Task<P, TaskModel, unknown>, recipe: Readonly<Recipe<P>>, options: { device: Device; precision: Precision; limit?: number; maxSide?: number }): RunFit {
  const { device, precision, maxSide = 1 << 16 } = options;
  const limit = options.limit ?? memoryLimit(device);
  if (!(limit > 0)) throw new RangeError(`fitRun: 'limit' must be a positive number of bytes, got ${String(limit)}`);
  const memory = task.estimate(recipe, { precision });
  const bytes = countedBytes(memory, device);
  return { memory, bytes, limit, fits: bytes <= limit, largestImageSize: recipe.data === 'latents' ? null : largestImageSize(task, recipe, precision, device, limit, maxSide) };
}

/** The counted bytes at image side `side`, or null where the recipe or its model refuses that side (a ViT/p does not tile it, an MAE keeps no token). */
function bytesAtSide<P>(task: Task<P, TaskModel, unknown>, recipe: Readonly<Recipe<P>>, precision: Precision, device: Device, side: number): number | null {
  try {
    return countedBytes(task.estimate(makeRecipe(task.recipe, { ...recipe, imageSize: side }), { precision }), device);
  } catch (err) {
    if (err instanceof RangeError) return null;
    throw err;
  }
}

function largestImageSize<P>(task: Task<P, TaskModel, unknown>, recipe: Readonly<Recipe<P>>, precision: Precision, device: Device, limit: number, maxSide: number): number | null {
  // The sides the model takes: from the smallest accepted, s0, in steps of the gap to the next
  // (the patch p for a ViT/p, whose sides are the multiples of p).
  const accepted = (s: number) => bytesAtSide(task, recipe, precision, device, s) !== null;
  let s0 = 0;
  for (let s = 1; s <= 64 && !s0; s++) if (accepted(s)) s0 = s;
  if (!s0) return null;
  let step = 1;
  while (step < 64 && !accepted(s0 + step)) step++;
  const side = (k: number) => s0 + k * step;
  const fits = (k: number) => (bytesAtSide(task, recipe, precision, device, side(k)) ?? Infinity) <= limit;
  if (!fits(0)) return null;
  // Memory grows with the side: double, then bisect.
  const most = Math.floor((maxSide - s0) / step);
  let good = 0, bad = 1;
  while (bad <= most && fits(bad)) (good = bad), (bad *= 2);
  if (bad > most) return side(fits(most) ? most : bisect(good, most));
  return side(bisect(good, bad));

  function bisect(lo: number, hi: number): number {
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }
}
