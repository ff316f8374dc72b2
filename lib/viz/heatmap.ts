// Heat-map grids: rows × cols small maps, each upscaled by nearest neighbour and coloured with
// viridis, white gaps between panels. Used for the centre query's attention (rows = layers,
// cols = heads; the paper's Fig. 8) and the position embeddings' similarity (a gh×gw grid of
// gh×gw maps, as the ViT paper draws it). Pure host code; writePng saves the result.
import type { CentreQueryMaps } from '../analysis/locality.js';
import type { PositionSimilarity } from '../analysis/position-similarity.js';
import type { RgbaImage } from './mae-grid.js';

/**
 * matplotlib's viridis (van der Walt & Smith, 2015) sampled at 10 evenly spaced points
 * (viridis(k/9), k = 0..9); viridis(t) interpolates them linearly in sRGB, within 2 levels
 * of the 256-entry table.
 */
export const VIRIDIS_STOPS: readonly string[] = Object.freeze([
  '#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725',
]);
const STOPS_RGB = VIRIDIS_STOPS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number]);

/** The grey of a value that is not a number (a map with nothing to show). */
export const HEATMAP_MISSING = 128;

/** viridis at t ∈ [0, 1] (clamped) as [r, g, b] bytes; NaN gives the missing grey. */
export function viridis(t: number): [number, number, number] {
  if (Number.isNaN(t)) return [HEATMAP_MISSING, HEATMAP_MISSING, HEATMAP_MISSING];
  const u = Math.min(1, Math.max(0, t)) * (STOPS_RGB.length - 1);
  const k = Math.min(STOPS_RGB.length - 2, Math.floor(u)), f = u - k;
  const a = STOPS_RGB[k]!, b = STOPS_RGB[k + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + f * (b[c]! - a[c]!))) as [number, number, number];
}

export interface HeatmapGridInputs {
  /** rows·cols panels of height×width values: value (y, x) of panel (r, c) at data[((r·cols + c)·height + y)·width + x]. */
  data: ArrayLike<number>;
  rows: number;
  cols: number;
  height: number;
  width: number;
}

export interface HeatmapGridOptions {
  /** Nearest-neighbour factor; default: the smallest making a panel ≥ 32 px on its short side. */
  scale?: number;
  /** White pixels between panels; default 2. */
  gap?: number;
  /**
   * Values mapped to viridis' ends: 'panel' (default) stretches each panel's own min..max (a
   * constant panel shows the low end); [lo, hi] is one scale for every panel (values outside clamp).
   */
  range?: 'panel' | readonly [number, number];
  /** 'viridis' (default) or 'grey' (black at the low end, white at the high end: images). */
  colormap?: 'viridis' | 'grey';
}

export interface HeatmapLayout {
  rows: number;
  cols: number;
  scale: number;
  gap: number;
  panelWidth: number;
  panelHeight: number;
  width: number;
  height: number;
  /** Top-left pixel of panel (r, c). */
  panel(r: number, c: number): { x: number; y: number };
}

export const HEATMAP_GAP = 2;

function positiveInteger(name: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1))
    throw new RangeError(`heatmapGrid: '${name}' must be a ${allowZero ? 'non-negative' : 'positive'} integer, received ${String(v)}`);
  return v;
}

export function heatmapLayout(rows: number, cols: number, height: number, width: number, scale: number, gap: number): HeatmapLayout {
  const panelWidth = width * scale, panelHeight = height * scale;
  return {
    rows, cols, scale, gap, panelWidth, panelHeight,
    width: cols * panelWidth + (cols - 1) * gap,
    height: rows * panelHeight + (rows - 1) * gap,
    panel: (r, c) => ({ x: c * (panelWidth + gap), y: r * (panelHeight + gap) }),
  };
}

/** The grid as an RGBA image (white gaps), with its layout. */
export function heatmapGrid(inputs: HeatmapGridInputs, options: HeatmapGridOptions = {}): RgbaImage & { layout: HeatmapLayout } {
  const rows = positiveInteger('rows', inputs.rows), cols = positiveInteger('cols', inputs.cols);
  const h = positiveInteger('height', inputs.height), w = positiveInteger('width', inputs.width);
  const data = inputs.data;
  if (!data || typeof data.length !== 'number' || data.length !== rows * cols * h * w)
    throw new RangeError(`heatmapGrid: 'data' must hold rows·cols·height·width = ${rows}·${cols}·${h}·${w} = ${rows * cols * h * w} values, received ${data?.length}`);
  const scale = positiveInteger('scale', options.scale ?? Math.max(1, Math.ceil(32 / Math.min(h, w))));
  const gap = positiveInteger('gap', options.gap ?? HEATMAP_GAP, true);
  const range = options.range ?? 'panel';
  if (range !== 'panel' && !(Array.isArray(range) && range.length === 2 && Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[0] < range[1]))
    throw new RangeError(`heatmapGrid: 'range' must be "panel" or [lo, hi] with lo < hi, received ${JSON.stringify(range)}`);
  const colormap = options.colormap ?? 'viridis';
  if (colormap !== 'viridis' && colormap !== 'grey') throw new RangeError(`heatmapGrid: 'colormap' must be "viridis" or "grey", received ${JSON.stringify(colormap)}`);
  const colour = colormap === 'viridis' ? viridis : (t: number): [number, number, number] => {
    const g = Number.isNaN(t) ? HEATMAP_MISSING : Math.round(255 * Math.min(1, Math.max(0, t)));
    return [g, g, g];
  };
  const layout = heatmapLayout(rows, cols, h, w, scale, gap);
  if (layout.width * layout.height > 2 ** 28)
    throw new RangeError(`heatmapGrid: the image would be ${layout.width}×${layout.height} pixels (more than 2^28); lower 'scale' (${scale})`);
  const out = new Uint8Array(layout.width * layout.height * 4).fill(255);
  const size = h * w;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const base = (r * cols + c) * size;
      let lo: number, hi: number;
      if (range === 'panel') {
        lo = Infinity; hi = -Infinity;
        for (let i = 0; i < size; i++) { const v = data[base + i]!; if (v < lo) lo = v; if (v > hi) hi = v; }
      } else [lo, hi] = range as [number, number];
      const { x: x0, y: y0 } = layout.panel(r, c);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const v = data[base + y * w + x]!;
          const rgb = colour(Number.isNaN(v) ? NaN : hi > lo ? (v - lo) / (hi - lo) : 0);
          for (let dy = 0; dy < scale; dy++) {
            let o = ((y0 + y * scale + dy) * layout.width + x0 + x * scale) * 4;
            for (let dx = 0; dx < scale; dx++, o += 4) { out[o] = rgb[0]; out[o + 1] = rgb[1]; out[o + 2] = rgb[2]; out[o + 3] = 255; }
          }
        }
      }
    }
  }
  return { width: layout.width, height: layout.height, data: out, layout };
}

/**
 * Fig. 8: one row per layer (in the order given), one column per head, each panel a head's
 * attention from the query token over the grid, each on its own scale (range 'panel').
 */
export function centreQueryFigure(layers: readonly CentreQueryMaps[], options: HeatmapGridOptions = {}): RgbaImage & { layout: HeatmapLayout } {
  if (!Array.isArray(layers as unknown) || layers.length === 0) throw new RangeError(`centreQueryFigure: 'layers' must be a non-empty array of centreQueryMaps results, received ${String(layers)}`);
  const [heads, gh, gw] = layers[0]!.shape;
  layers.forEach((m, i) => {
    if (m.shape.join() !== [heads, gh, gw].join())
      throw new RangeError(`centreQueryFigure: 'layers[${i}].shape' must be [${heads}, ${gh}, ${gw}] like layers[0], received [${m.shape.join(', ')}]`);
  });
  const data = new Float32Array(layers.length * heads * gh * gw);
  layers.forEach((m, i) => data.set(m.data, i * m.data.length));
  return heatmapGrid({ data, rows: layers.length, cols: heads, height: gh, width: gw }, options);
}

/**
 * The similarity grid: panel (r, c) is position (r, c)'s cosine similarity to every position,
 * on one scale [-1, 1] unless options.range says otherwise.
 */
export function positionSimilarityFigure(similarity: PositionSimilarity, options: HeatmapGridOptions = {}): RgbaImage & { layout: HeatmapLayout } {
  const [gh, gw] = similarity.grid;
  return heatmapGrid({ data: similarity.data, rows: gh, cols: gw, height: gh, width: gw }, { range: [-1, 1], ...options });
}
