// What one forward pass needs besides its inputs, passed down the module tree with the call:
// the run's precision and the Philox stream of its random draws (drop path today; masking and
// diffusion noise later). Nothing here is process-wide: two models in one process can run at
// different precisions.
import type { AttentionPrecision } from '../ops/index.js';
import type { Device } from '../tensor.js';

/** 'f32' throughout, or 'mixed': attention in bf16 on the GPU's tensor cores, the rest f32. */
export type Precision = 'f32' | 'mixed';

/**
 * A Philox (seed, offset) stream. A forward takes consecutive offsets from `offset` for its
 * draws, so a training step passes { seed, offset: step } and replays exactly.
 */
export interface RandomStream {
  seed: number;
  offset: number;
}

export interface ForwardOptions {
  /** Default 'f32'. */
  precision?: Precision;
  /** Needed by a training forward that draws (drop path > 0). */
  random?: RandomStream;
}

/** Checks a run's precision for `device` and returns it; 'mixed' needs the GPU's bf16 kernels. */
export function checkPrecision(precision: unknown, device: Device): Precision {
  if (precision !== 'f32' && precision !== 'mixed') throw new TypeError(`precision must be "f32" or "mixed", got ${JSON.stringify(precision)}`);
  if (precision === 'mixed' && device !== 'cuda')
    throw new TypeError(`precision "mixed" runs attention on bf16 tensor cores and needs the cuda device; this run is on ${device}`);
  return precision;
}

/** The attention kernels' dtype under a run's precision. */
export function attentionPrecision(precision: Precision | undefined): AttentionPrecision {
  return precision === 'mixed' ? 'bf16' : 'f32';
}
