// Cosine similarity of a model's position embeddings, each grid position against every other
// (the ViT paper's Fig. 7 centre; here for the learned table of a PiT or ViT/p). The cls row is
// excluded. Host float64.
import type { VitEncoder } from '../models/vit.js';
import type { PositionKind } from '../nn/position.js';

export interface PositionSimilarity {
  /** Which table: the trained 'learned' one, or the fixed 'sincos' one (shown as it is). */
  kind: Exclude<PositionKind, 'none'>;
  grid: readonly [number, number];
  /** [N, gh, gw], N = gh·gw: panel i is position i's similarity to every position. */
  shape: readonly [number, number, number];
  /** data[i·N + j] = cos(e_i, e_j) for grid tokens i, j (row-major); NaN where a row is all zeros. */
  data: Float32Array;
}

/** The N×N cosine similarities of the position table's grid rows (cls row dropped). */
export function positionSimilarity(model: VitEncoder): PositionSimilarity {
  if (typeof model !== 'object' || model === null || !('posEmbed' in model) || !('grid' in model))
    throw new TypeError(`positionSimilarity: 'model' must be a ViT/PiT (VitEncoder), received ${String(model)}`);
  const kind = model.config.posEmbed;
  if (!model.posEmbed || kind === 'none')
    throw new RangeError(`positionSimilarity: the model has no position table (posEmbed "${kind}"); it needs "learned" or "sincos"`);
  const [gh, gw] = model.grid, N = gh * gw, d = model.config.dim;
  const table = model.posEmbed.toArray();   // (1, N + 1, d), cls row first
  const rows = new Float64Array(N * d);
  for (let i = 0; i < N; i++) {
    let norm = 0;
    for (let k = 0; k < d; k++) norm += table[(i + 1) * d + k]! ** 2;
    norm = Math.sqrt(norm);
    for (let k = 0; k < d; k++) rows[i * d + k] = norm > 0 ? table[(i + 1) * d + k]! / norm : Number.NaN;
  }
  const data = new Float32Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = i; j < N; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += rows[i * d + k]! * rows[j * d + k]!;
      data[i * N + j] = data[j * N + i] = s;
    }
  }
  return { kind, grid: [gh, gw], shape: [N, gh, gw], data };
}
