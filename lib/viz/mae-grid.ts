// The MAE paper's reconstruction figure as an RGBA image: for each image a triplet of panels,
// original / masked input (removed patches grey) / reconstruction with the visible pixels
// pasted back, all denormalised and clipped to [0, 1]. Panels are upscaled by nearest
// neighbour (an 8×8 digit is 8 pixels wide otherwise); triplets sit in a grid, separated by
// white lines. Pure host code on arrays: `pit mae show` runs the model and writes the PNG.
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import type { ImageShape } from '../data/transforms.js';
import type { MaskedAutoencoder } from '../models/mae.js';
import type { Precision } from '../nn/forward.js';
import { noGrad, tensor, tidy } from '../tensor.js';

/** An RGBA image, row-major, 4 bytes a pixel. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** The grey (0..255, every channel) of a removed patch in the masked-input panel. */
export const MASK_GREY = 128;
/** White lines: between the three panels of an image, and (wider) between images. */
export const PANEL_SEPARATOR = 2;
export const TRIPLET_GAP = 8;
const WHITE = 255;

/** The smallest nearest-neighbour factor that makes a panel at least `minSide` pixels on its short side. */
export const defaultScale = (shape: Pick<ImageShape, 'height' | 'width'>, minSide = 64): number =>
  Math.max(1, Math.ceil(minSide / Math.min(shape.height, shape.width)));

/** Where everything goes: `columns` triplets a row, panels of (H·scale) × (W·scale). */
export interface GridLayout {
  columns: number;
  rows: number;
  panelWidth: number;
  panelHeight: number;
  width: number;
  height: number;
  /** Top-left corner of panel k (0 original, 1 masked, 2 reconstruction) of image i. */
  panel(i: number, k: number): { x: number; y: number };
}

export function gridLayout(n: number, shape: Pick<ImageShape, 'height' | 'width'>, scale: number, columns = Math.ceil(Math.sqrt(n))): GridLayout {
  const panelWidth = shape.width * scale, panelHeight = shape.height * scale;
  const cols = Math.min(columns, n), rows = Math.ceil(n / cols);
  const tripletWidth = 3 * panelWidth + 2 * PANEL_SEPARATOR;
  return {
    columns: cols, rows, panelWidth, panelHeight,
    width: cols * tripletWidth + (cols - 1) * TRIPLET_GAP,
    height: rows * panelHeight + (rows - 1) * TRIPLET_GAP,
    panel: (i, k) => ({
      x: (i % cols) * (tripletWidth + TRIPLET_GAP) + k * (panelWidth + PANEL_SEPARATOR),
      y: Math.floor(i / cols) * (panelHeight + TRIPLET_GAP),
    }),
  };
}

export interface ReconstructionInputs {
  /** (B, C, H, W): the normalised images the model saw. */
  images: Float32Array;
  /** (B, N, p²·C): the model's prediction per token, in patchify's (channel, row, col) order. */
  pred: Float32Array;
  /** (B, N): 1 where the token was removed. */
  mask: Float32Array;
  shape: ImageShape;
  patch: number;
  /** The run's per-channel normalisation: a pixel shown is clip(x·std + mean, 0, 1). */
  normalization: { mean: ArrayLike<number>; std: ArrayLike<number> };
}

export interface GridOptions {
  /** Nearest-neighbour factor; default: panels ≥ 64 px (defaultScale). */
  scale?: number;
  /** Triplets per row; default ⌈√B⌉. */
  columns?: number;
}

/**
 * The figure for B images: original / masked input / reconstruction (prediction on removed
 * tokens, the original on visible ones). 1 channel is drawn grey, 3 as RGB.
 */
export function maeReconstructionGrid(inputs: ReconstructionInputs, options: GridOptions = {}): RgbaImage & { layout: GridLayout } {
  const { images, pred, mask, shape, patch: p, normalization } = inputs;
  const { channels: C, height: H, width: W } = shape;
  if (C !== 1 && C !== 3) throw new RangeError(`maeReconstructionGrid: 'shape.channels' must be 1 or 3 to draw, got ${C}`);
  if (!Number.isInteger(p) || p < 1 || H % p || W % p) throw new RangeError(`maeReconstructionGrid: 'patch' must divide ${H}×${W}, got ${p}`);
  const w = W / p, N = (H / p) * w, size = C * H * W;
  const B = images.length / size;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`maeReconstructionGrid: 'images' must be (B, ${C}, ${H}, ${W}) with B ≥ 1, got ${images.length} values`);
  if (pred.length !== B * N * p * p * C) throw new RangeError(`maeReconstructionGrid: 'pred' must be (${B}, ${N}, ${p * p * C}), got ${pred.length} values`);
  if (mask.length !== B * N) throw new RangeError(`maeReconstructionGrid: 'mask' must be (${B}, ${N}), got ${mask.length} values`);
  const scale = options.scale ?? defaultScale(shape);
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`maeReconstructionGrid: 'scale' must be a positive integer, got ${String(scale)}`);
  const layout = gridLayout(B, shape, scale, options.columns);
  const data = new Uint8Array(layout.width * layout.height * 4).fill(WHITE);

  const byte = (v: number, c: number) => Math.round(255 * Math.min(1, Math.max(0, v * Number(normalization.std[c]) + Number(normalization.mean[c]))));
  // (C) bytes of pixel (y, x) of image b in each panel; null: the mask grey.
  const rgb = new Uint8Array(3);
  const put = (b: number, k: number, y: number, x: number, value: ((c: number) => number) | null) => {
    for (let c = 0; c < 3; c++) rgb[c] = value ? value(C === 1 ? 0 : c) : MASK_GREY;
    const { x: x0, y: y0 } = layout.panel(b, k);
    for (let dy = 0; dy < scale; dy++) {
      let o = ((y0 + y * scale + dy) * layout.width + x0 + x * scale) * 4;
      for (let dx = 0; dx < scale; dx++, o += 4) {
        data.set(rgb, o);
        data[o + 3] = 255;
      }
    }
  };
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const token = Math.floor(y / p) * w + Math.floor(x / p);
        const removed = mask[b * N + token]! > 0.5;
        const original = (c: number) => byte(images[b * size + (c * H + y) * W + x]!, c);
        // patchify's order within a token: (channel, row in patch, column in patch).
        const predicted = (c: number) => byte(pred[(b * N + token) * p * p * C + (c * p + (y % p)) * p + (x % p)]!, c);
        put(b, 0, y, x, original);
        put(b, 1, y, x, removed ? null : original);
        put(b, 2, y, x, removed ? predicted : original);
      }
  return { width: layout.width, height: layout.height, data, layout };
}

/**
 * One forward of `model` in eval mode (restored afterwards) on normalised `images`
 * (B, C, H, W), its masks drawn from { seed, offset: 0 }: the same seed, the same masks.
 * Returns pred (B, N, p²·C) and mask (B, N) on the host.
 */
export function maeReconstruct(model: MaskedAutoencoder, images: Float32Array, options: { seed: number; precision?: Precision }): { pred: Float32Array; mask: Float32Array } {
  const { channels: C, patch: p } = model.config;
  const [h, w] = model.grid;
  const B = images.length / (C * h * p * w * p);
  const wasTraining = model.training;
  model.eval();
  try {
    return tidy(() => noGrad(() => {
      const out = model.forward(tensor(images, [B, C, h * p, w * p], { device: model.device }), { random: { seed: options.seed, offset: 0 }, precision: options.precision });
      return { pred: out.pred.toArray() as Float32Array, mask: out.mask.toArray() as Float32Array };
    }));
  } finally {
    model.train(wasTraining);
  }
}

/** Writes an RGBA image as a PNG file. */
export function writePng(path: string, image: RgbaImage): void {
  const png = new PNG({ width: image.width, height: image.height });
  png.data.set(image.data);
  writeFileSync(path, PNG.sync.write(png));
}
