// Position embeddings of a token grid: learned (i.i.d. trunc-normal, no locality prior),
// the fixed 2-D sin-cos table of MAE and DiT, or none. SPEC §1 and §2.
import type { InitRng } from './init.js';

export type PositionKind = 'learned' | 'sincos' | 'none';
export const positionKinds: readonly PositionKind[] = Object.freeze(['learned', 'sincos', 'none']);

/**
 * Fixed 2-D sin-cos table in float64, SPEC §2: `prefix` zero rows first (1 for a cls token,
 * 0 without), then token (r, c) of the h×w grid in row-major order; dims [0, D/2) encode c,
 * [D/2, D) encode r, each half [sin(pos·ω_k), cos(pos·ω_k)] with ω_k = 10000^(−k/(D/4)).
 */
export function sincosPositionTable(h: number, w: number, D: number, prefix = 1): Float64Array {
  if (D % 4) throw new RangeError(`sincosPositionTable: 'D' must be divisible by 4, got ${D}`);
  const q = D / 4;
  const out = new Float64Array((h * w + prefix) * D);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const row = (prefix + r * w + c) * D;
      for (let k = 0; k < q; k++) {
        const omega = 10000 ** (-k / q);
        out[row + k] = Math.sin(c * omega);
        out[row + q + k] = Math.cos(c * omega);
        out[row + 2 * q + k] = Math.sin(r * omega);
        out[row + 3 * q + k] = Math.cos(r * omega);
      }
    }
  }
  return out;
}

/**
 * The initial values of a (prefix + h·w, D) position table, and whether they train:
 * learned draws trunc-normal(0.02) from `rng` (one draw); sincos is fixed; none is null.
 */
export function positionTable(kind: PositionKind, h: number, w: number, D: number, rng: InitRng, prefix = 1): { values: Float32Array; trainable: boolean } | null {
  if (kind === 'learned') return { values: rng.truncNormal([(h * w + prefix) * D], 0.02), trainable: true };
  if (kind === 'sincos') return { values: Float32Array.from(sincosPositionTable(h, w, D, prefix)), trainable: false };
  if (kind === 'none') return null;
  throw new TypeError(`position embedding must be "learned", "sincos" or "none", got ${JSON.stringify(kind)}`);
}
