// Generated samples as a labelled RGBA grid (`pit sample --out`): one row per class, the class
// number drawn at the row's left in a 3×5 pixel font, the samples of that class to its right,
// each upscaled by nearest neighbour. Pure host code on arrays in [0, 1].
import type { ImageShape } from '../data/transforms.js';
import { defaultScale, type RgbaImage } from './mae-grid.js';

/** White lines between samples and between rows. */
export const SAMPLE_GAP = 2;
const WHITE = 255, INK = 0;

/** Digits 0–9 as 3×5 bitmaps, a row of three bits per string. */
const DIGITS = [
  '111101101101111', '010110010010111', '111001111100111', '111001111001111', '101101111001001',
  '111100111001111', '111100111101111', '111001010010010', '111101111101111', '111101111001111',
].map((bits) => Array.from(bits, (b) => b === '1'));
const GLYPH_W = 3, GLYPH_H = 5;

export interface SampleGridLayout {
  /** The class of each row, top to bottom. */
  rowClasses: number[];
  columns: number;
  /** Pixels of one sample panel (the image side × scale). */
  panelWidth: number;
  panelHeight: number;
  /** The label column on the left. */
  labelWidth: number;
  /** Size of a font pixel. */
  glyphScale: number;
  width: number;
  height: number;
  /** Top-left corner of the panel of column `col` in row `row`. */
  panel(row: number, col: number): { x: number; y: number };
}

export interface SampleGridInputs {
  /** (rows·columns, C, H, W) in [0, 1], row-major: row r holds samples r·columns … r·columns + columns − 1. */
  images: Float32Array;
  /** The class of each sample: every sample of row r must be of rowClasses[r]. */
  labels: ArrayLike<number>;
  shape: ImageShape;
  /** The class of each row. */
  rowClasses: readonly number[];
}

/** Where everything goes for `rows` rows of `columns` panels of `shape` at `scale`, labelled with up to `digits` digits. */
export function sampleGridLayout(rowClasses: readonly number[], columns: number, shape: Pick<ImageShape, 'height' | 'width'>, scale: number): SampleGridLayout {
  const panelWidth = shape.width * scale, panelHeight = shape.height * scale;
  // The font fills about half a row's height; a label is its digits plus a margin of one font pixel each side.
  const glyphScale = Math.max(1, Math.floor(panelHeight / (2 * GLYPH_H)));
  const digits = Math.max(1, ...rowClasses.map((c) => String(c).length));
  const labelWidth = (digits * (GLYPH_W + 1) + 1) * glyphScale + SAMPLE_GAP;
  const rows = rowClasses.length;
  return {
    rowClasses: [...rowClasses], columns, panelWidth, panelHeight, labelWidth, glyphScale,
    width: labelWidth + columns * panelWidth + (columns - 1) * SAMPLE_GAP,
    height: rows * panelHeight + (rows - 1) * SAMPLE_GAP,
    panel: (row, col) => ({ x: labelWidth + col * (panelWidth + SAMPLE_GAP), y: row * (panelHeight + SAMPLE_GAP) }),
  };
}

/** Draws `text` (digits) in the font at (x, y), each font pixel `g`×`g`. */
function drawDigits(data: Uint8Array, width: number, text: string, x: number, y: number, g: number): void {
  [...text].forEach((ch, k) => {
    const glyph = DIGITS[Number(ch)]!;
    for (let gy = 0; gy < GLYPH_H; gy++)
      for (let gx = 0; gx < GLYPH_W; gx++) {
        if (!glyph[gy * GLYPH_W + gx]) continue;
        for (let dy = 0; dy < g; dy++)
          for (let dx = 0; dx < g; dx++) {
            const o = ((y + gy * g + dy) * width + x + (k * (GLYPH_W + 1) + gx) * g + dx) * 4;
            data[o] = data[o + 1] = data[o + 2] = INK;
          }
      }
  });
}

/**
 * The grid of `inputs`: one row per class with its number at the left, 1 channel drawn grey and
 * 3 as RGB. `scale` defaults to panels of at least 64 px.
 */
export function sampleGrid(inputs: SampleGridInputs, options: { scale?: number } = {}): RgbaImage & { layout: SampleGridLayout } {
  const { images, labels, shape, rowClasses } = inputs;
  const { channels: C, height: H, width: W } = shape;
  if (C !== 1 && C !== 3) throw new RangeError(`sampleGrid: images must have 1 or 3 channels to draw, got ${C}`);
  const rows = rowClasses.length, size = C * H * W, n = images.length / size;
  if (rows < 1 || !Number.isInteger(n) || n % rows || n < rows) throw new RangeError(`sampleGrid: 'images' must be (rows·columns, ${C}, ${H}, ${W}) with ${rows} rows, got ${images.length} values`);
  if (labels.length !== n) throw new RangeError(`sampleGrid: 'labels' must hold one class per sample (${n}), got ${labels.length}`);
  rowClasses.forEach((c) => {
    if (!Number.isInteger(c) || c < 0) throw new RangeError(`sampleGrid: row classes must be non-negative integers, got ${c}`);
  });
  const columns = n / rows;
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / columns);
    if (labels[i] !== rowClasses[row]) throw new RangeError(`sampleGrid: sample ${i} is of class ${labels[i]} but sits in row ${row}, of class ${rowClasses[row]}`);
  }
  const scale = options.scale ?? defaultScale(shape);
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`sampleGrid: 'scale' must be a positive integer, got ${String(scale)}`);
  const layout = sampleGridLayout(rowClasses, columns, shape, scale);
  const data = new Uint8Array(layout.width * layout.height * 4).fill(WHITE);
  const byte = (v: number) => Math.round(255 * Math.min(1, Math.max(0, v)));
  for (let row = 0; row < rows; row++) {
    const g = layout.glyphScale;
    drawDigits(data, layout.width, String(rowClasses[row]), g, row * (layout.panelHeight + SAMPLE_GAP) + Math.floor((layout.panelHeight - GLYPH_H * g) / 2), g);
    for (let col = 0; col < columns; col++) {
      const i = row * columns + col, { x: x0, y: y0 } = layout.panel(row, col);
      for (let y = 0; y < H * scale; y++)
        for (let x = 0; x < W * scale; x++) {
          const o = ((y0 + y) * layout.width + x0 + x) * 4, pixel = Math.floor(y / scale) * W + Math.floor(x / scale);
          for (let c = 0; c < 3; c++) data[o + c] = byte(images[i * size + (C === 1 ? 0 : c) * H * W + pixel]!);
        }
    }
  }
  return { width: layout.width, height: layout.height, data, layout };
}

/** The samples as one RGBA image each, at their own size (for `pit sample --out-dir`). */
export function sampleImage(images: Float32Array, index: number, shape: ImageShape): RgbaImage {
  const { channels: C, height: H, width: W } = shape;
  if (C !== 1 && C !== 3) throw new RangeError(`sampleImage: images must have 1 or 3 channels to draw, got ${C}`);
  const data = new Uint8Array(H * W * 4), base = index * C * H * W;
  for (let p = 0; p < H * W; p++)
    for (let c = 0; c < 4; c++) data[p * 4 + c] = c === 3 ? 255 : Math.round(255 * Math.min(1, Math.max(0, images[base + (C === 1 ? 0 : c) * H * W + p]!)));
  return { width: W, height: H, data };
}
