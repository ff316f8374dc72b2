// Mean attention distance and offset per head (SPEC §5; the paper's Fig. 6–7) and the centre
// query's attention maps (Fig. 8), from the probabilities attentionMaps returns. Pure host
// code in float64.
//
// Definitions (LOCALITY_DEFINITION says them in one line for a study's output):
// - Token t of the gh×gw grid (row r = ⌊t/gw⌋, column c = t mod gw) sits at its patch centre
//   ((r + ½)·p, (c + ½)·p) in pixels.
// - The cls row (cls as query) and column (cls as key) are dropped; each remaining row is
//   renormalised to sum 1: a_ij ← a_ij / Σ_{j'≠cls} a_ij'. A row with no mass left is skipped
//   and not counted in `queries`.
// - Mean distance of a head: mean over images and query tokens of Σ_j a_ij·‖pos_i − pos_j‖.
//   Mean offset: mean of ‖pos_i − Σ_j a_ij·pos_j‖. Both divided by √(H·W) pixels: the side of a
//   square image, and for a non-square one the side of the square of the same area (this keeps
//   the metric Euclidean: per-axis scaling would not).
import type { VitEncoder } from '../models/vit.js';
import type { AttentionMap } from './attention-maps.js';

/** Where the tokens of an attention map sit. */
export interface TokenGeometry {
  /** (gh, gw): the token grid. */
  grid: readonly [number, number];
  /** Pixels per token side (1 for PiT). */
  patch: number;
  /** (H, W) in pixels; default grid·patch (when given it must equal that). */
  imageSize?: readonly [number, number];
  /** Token 0 is a cls token (every ViT/PiT here: true). */
  cls: boolean;
}

/** The geometry of a ViT/PiT's tokens: its grid, patch and image size, cls first. */
export function tokenGeometry(model: VitEncoder): TokenGeometry {
  const [gh, gw] = model.grid, p = model.config.patch;
  return { grid: [gh, gw], patch: p, imageSize: [gh * p, gw * p], cls: true };
}

export const LOCALITY_DEFINITION =
  'cls row and column dropped, each row renormalised to sum 1; tokens at their patch centres in pixels; ' +
  'mean attention distance = mean over images and query tokens of Σ_j a_ij·‖pos_i − pos_j‖, mean offset = mean of ‖pos_i − Σ_j a_ij·pos_j‖, ' +
  'both divided by √(H·W) (the image side when square)';

export interface HeadLocality {
  /** The head's index in the model (kept when sortHeads reorders). */
  head: number;
  /** Mean attention distance, in units of √(H·W) pixels. */
  distance: number;
  /** Mean attention offset, same units. */
  offset: number;
  /** Mean mass the queries put on cls before it was dropped (0 without cls). */
  clsMass: number;
  /** Query rows averaged (images × grid tokens, less rows with no mass off cls). */
  queries: number;
}

export interface LayerLocality {
  /** Block index, 0-based as in AttentionMap. */
  layer: number;
  /** In head order; sortHeads gives the paper's order (by distance). */
  heads: HeadLocality[];
  /** True when a cls row and column were dropped and the rows renormalised. */
  clsDropped: boolean;
  /** The pixel length distances are divided by: √(H·W). */
  unit: number;
}

interface Resolved { gh: number; gw: number; p: number; H: number; W: number; cls: number; N: number; L: number; B: number; heads: number }

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

function resolve(owner: string, map: AttentionMap, geometry: TokenGeometry): Resolved {
  if (typeof map !== 'object' || map === null || !(map.probs instanceof Float32Array) || !Array.isArray(map.shape) || map.shape.length !== 4)
    throw new TypeError(`${owner}: 'map' must be an AttentionMap { layer, shape: [B, heads, L, L], probs: Float32Array }, received ${String(map)}`);
  if (typeof geometry !== 'object' || geometry === null) throw new TypeError(`${owner}: 'geometry' must be { grid: [gh, gw], patch, imageSize?, cls }, received ${String(geometry)}`);
  const grid = geometry.grid;
  if (!Array.isArray(grid) || grid.length !== 2 || !grid.every((g) => Number.isInteger(g) && g > 0))
    throw new RangeError(`${owner}: 'grid' must be [gh, gw] of positive integers, received ${Array.isArray(grid) ? shapeText(grid) : String(grid)}`);
  const [gh, gw] = grid as [number, number];
  const p = geometry.patch;
  if (!Number.isInteger(p) || p <= 0) throw new RangeError(`${owner}: 'patch' must be a positive integer, received ${String(p)}`);
  const [H, W] = geometry.imageSize ?? [gh * p, gw * p];
  if (H !== gh * p || W !== gw * p)
    throw new RangeError(`${owner}: 'imageSize' must be grid·patch = [${gh * p}, ${gw * p}] (grid [${gh}, ${gw}], patch ${p}), received [${H}, ${W}]`);
  if (typeof geometry.cls !== 'boolean') throw new TypeError(`${owner}: 'cls' must be a boolean, received ${String(geometry.cls)}`);
  const cls = geometry.cls ? 1 : 0, N = gh * gw, L = N + cls;
  const [B, heads, L1, L2] = map.shape;
  if (L1 !== L || L2 !== L || !(B! >= 1) || !(heads! >= 1))
    throw new RangeError(`${owner}: 'map.shape' must be [B, heads, ${L}, ${L}] for a ${gh}×${gw} grid${cls ? ' plus cls' : ''}, received ${shapeText(map.shape)}`);
  if (map.probs.length !== B! * heads! * L * L)
    throw new RangeError(`${owner}: 'map.probs' must hold B·heads·L² = ${B! * heads! * L * L} values for shape ${shapeText(map.shape)}, received ${map.probs.length}`);
  return { gh, gw, p, H, W, cls, N, L, B: B!, heads: heads! };
}

/**
 * Mean attention distance and offset of each head of one layer (definitions at the top of
 * this file), averaged over the map's images and all grid query tokens.
 */
export function attentionDistances(map: AttentionMap, geometry: TokenGeometry): LayerLocality {
  const { gh, gw, p, H, W, cls, N, L, B, heads } = resolve('attentionDistances', map, geometry);
  const unit = Math.sqrt(H * W);
  // ‖pos_i − pos_j‖ / unit depends only on (|Δr|, |Δc|): a gh×gw table.
  const dist = new Float64Array(gh * gw);
  for (let dr = 0; dr < gh; dr++) for (let dc = 0; dc < gw; dc++) dist[dr * gw + dc] = (p * Math.hypot(dr, dc)) / unit;
  const ys = new Float64Array(N), xs = new Float64Array(N);
  for (let t = 0; t < N; t++) {
    ys[t] = ((Math.floor(t / gw) + 0.5) * p) / unit;
    xs[t] = (((t % gw) + 0.5) * p) / unit;
  }
  const probs = map.probs;
  const out: HeadLocality[] = [];
  for (let h = 0; h < heads; h++) {
    let distance = 0, offset = 0, clsMass = 0, queries = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) {
        const row = ((b * heads + h) * L + cls + i) * L;
        const ri = Math.floor(i / gw), ci = i % gw;
        let mass = 0, sd = 0, sy = 0, sx = 0;
        for (let j = 0; j < N; j++) {
          const a = probs[row + cls + j]!;
          mass += a;
          sd += a * dist[Math.abs(ri - Math.floor(j / gw)) * gw + Math.abs(ci - (j % gw))]!;
          sy += a * ys[j]!;
          sx += a * xs[j]!;
        }
        if (cls) clsMass += probs[row]!;
        if (!(mass > 0)) continue;
        distance += sd / mass;
        offset += Math.hypot(ys[i]! - sy / mass, xs[i]! - sx / mass);
        queries++;
      }
    }
    out.push({ head: h, distance: distance / queries, offset: offset / queries, clsMass: clsMass / (B * N), queries });
  }
  return { layer: map.layer, heads: out, clsDropped: cls === 1, unit };
}

/** The layer with its heads sorted by mean distance, nearest first (the paper's Fig. 6–7 order). */
export function sortHeads(layer: LayerLocality): LayerLocality {
  return { ...layer, heads: layer.heads.slice().sort((a, b) => a.distance - b.distance || a.head - b.head) };
}

export interface CentreQueryMaps {
  layer: number;
  /** The query token's grid row and column, and its index in the map (cls counted). */
  row: number;
  col: number;
  token: number;
  /** [heads, gh, gw] */
  shape: readonly [number, number, number];
  /** data[(h·gh + r)·gw + c]: head h's attention from the query to grid token (r, c); each head's map sums to 1. */
  data: Float32Array;
}

export interface CentreQueryOptions {
  /** One image of the batch; default: the mean over the batch. */
  image?: number;
  /** The query's [row, col]; default the centre [⌊gh/2⌋, ⌊gw/2⌋] (for an even side, the lower/right of the middle two). */
  query?: readonly [number, number];
}

/**
 * Fig. 8: each head's attention from the centre query token over the grid, cls column dropped
 * and the row renormalised to 1 (as attentionDistances), averaged over the batch unless
 * `options.image` picks one.
 */
export function centreQueryMaps(map: AttentionMap, geometry: TokenGeometry, options: CentreQueryOptions = {}): CentreQueryMaps {
  const { gh, gw, cls, N, L, B, heads } = resolve('centreQueryMaps', map, geometry);
  const [row, col] = options.query ?? [Math.floor(gh / 2), Math.floor(gw / 2)];
  if (!Number.isInteger(row) || !Number.isInteger(col) || row < 0 || row >= gh || col < 0 || col >= gw)
    throw new RangeError(`centreQueryMaps: 'query' must be [row, col] inside the ${gh}×${gw} grid, received [${String(row)}, ${String(col)}]`);
  const image = options.image;
  if (image !== undefined && (!Number.isInteger(image) || image < 0 || image >= B))
    throw new RangeError(`centreQueryMaps: 'image' must be an integer in [0, ${B}) (the map's batch), received ${String(image)}`);
  const images = image === undefined ? Array.from({ length: B }, (_, b) => b) : [image];
  const token = cls + row * gw + col;
  const data = new Float32Array(heads * N);
  const acc = new Float64Array(N);
  for (let h = 0; h < heads; h++) {
    acc.fill(0);
    let used = 0;
    for (const b of images) {
      const base = ((b * heads + h) * L + token) * L + cls;
      let mass = 0;
      for (let j = 0; j < N; j++) mass += map.probs[base + j]!;
      if (!(mass > 0)) continue;
      for (let j = 0; j < N; j++) acc[j] += map.probs[base + j]! / mass;
      used++;
    }
    for (let j = 0; j < N; j++) data[h * N + j] = used ? acc[j]! / used : Number.NaN;
  }
  return { layer: map.layer, row, col, token, shape: [heads, gh, gw], data };
}
