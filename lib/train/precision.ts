// TEMPORARY stand-in for the model layer's ForwardOptions (lands on main with "Model parts:");
// removed on merge.
import { setAttentionPrecision } from '../ops/index.js';
import type { Device } from '../tensor.js';
export type Precision = 'f32' | 'mixed';
export interface RandomStream { seed: number; offset: number }
export function checkPrecision(precision: unknown, device: Device): Precision {
  if (precision !== 'f32' && precision !== 'mixed') throw new TypeError(`precision must be "f32" or "mixed", got ${JSON.stringify(precision)}`);
  if (precision === 'mixed' && device !== 'cuda')
    throw new TypeError(`precision "mixed" runs attention on bf16 tensor cores and needs the cuda device; this run is on ${device}`);
  setAttentionPrecision(precision === 'mixed' ? 'bf16' : 'f32');
  return precision;
}
export const applyPrecision = checkPrecision;
