// Attention probabilities of a trained ViT/PiT, for the locality analyses of SPEC §5 (the
// paper's appendix A). The training kernels never form the L×L matrix, and these numbers must
// not come from them: this is a separate, unfused path. It runs the model's own forward in
// eval mode without gradients, block by block (each block's own `forward`); for a requested
// block it also reads that block's qkv (the fused kernel's input: its norm1 and qkv Linear,
// (B, L, 3, H, D)), copies it to the host and computes softmax(q·kᵀ/√D) row by row in
// float64, stored as f32. Same numbers on both backends up to the qkv each computes.
import { checkPrecision, type Precision } from '../nn/forward.js';
import { VisionTransformer } from '../models/vit.js';
import { noGrad, Tensor, tidy } from '../tensor.js';

/** One block's attention probabilities. */
export interface AttentionMap {
  /** Block index, 0-based as in the parameter names `blocks.N` (a chart's "layer" is layer + 1). */
  layer: number;
  /** [B, heads, L, L]: L tokens with cls first (token 0), then the grid in row-major order. */
  shape: readonly [number, number, number, number];
  /** Row-major: probs[((b·H + h)·L + i)·L + j] = a_ij, query i attending to key j; rows sum to 1. */
  probs: Float32Array;
}

export interface AttentionMapsOptions {
  /** Block indices to read, 0-based (`blocks.N`), distinct, in [0, depth). */
  layers: readonly number[];
  /**
   * The forward's precision, as `model.forward` takes it (default 'f32'). Under 'mixed' the
   * fused kernels see qkv rounded to bf16 while the probabilities use the f32 qkv.
   */
  precision?: Precision;
  /** Refuse a request whose one layer needs more than this many bytes (B·H·L²·4). Default 1 GiB. */
  maxBytesPerLayer?: number;
}

export interface AttentionMapsResult {
  /** One map per requested layer, in the order of `options.layers`. */
  maps: AttentionMap[];
  /** (B, classes) logits of the same pass: the values of model.forward(images, { precision }). */
  logits: Float32Array;
}

export const DEFAULT_MAX_BYTES_PER_LAYER = 2 ** 30;

const received = (v: unknown): string =>
  v instanceof Tensor ? `a tensor [${v.shape.join(', ')}] ${v.dtype} on ${v.device}`
    : Array.isArray(v) ? `[${v.map((x) => (typeof x === 'string' ? JSON.stringify(x) : String(x))).join(', ')}]`
      : typeof v === 'string' ? JSON.stringify(v) : String(v);

/** B·H·L²·4 written as its factors and their product, for the refusal message. */
const bytesText = (B: number, H: number, L: number) => `${B}·${H}·${L}²·4 = ${(B * H * L * L * 4).toLocaleString('en-US')} bytes`;

function checkInputs(model: unknown, images: unknown, options: AttentionMapsOptions): { layers: number[]; precision: Precision } {
  if (!(model instanceof VisionTransformer)) throw new TypeError(`attentionMaps: 'model' must be a VisionTransformer (ViT or PiT classifier), received ${received(model)}`);
  const { channels: C, patch: p, depth, heads: H } = model.config;
  const [gh, gw] = model.grid;
  const want = `(B, ${C}, ${gh * p}, ${gw * p}) f32 with B ≥ 1`;
  if (!(images instanceof Tensor)) throw new TypeError(`attentionMaps: 'images' must be a tensor ${want}, received ${received(images)}`);
  const s = images.shape;
  if (s.length !== 4 || s[0]! < 1 || s[1] !== C || s[2] !== gh * p || s[3] !== gw * p || images.dtype !== 'f32')
    throw new RangeError(`attentionMaps: 'images' must be ${want}, received [${s.join(', ')}] ${images.dtype}`);
  if (images.device !== model.device)
    throw new TypeError(`attentionMaps: 'images' must be on ${model.device} (the model's device), received a tensor on ${images.device}`);
  if (typeof options !== 'object' || options === null) throw new TypeError(`attentionMaps: 'options' must be an object { layers }, received ${received(options)}`);
  const layers = options.layers;
  if (!Array.isArray(layers as unknown) || layers.length === 0)
    throw new TypeError(`attentionMaps: 'layers' must be a non-empty array of block indices in [0, ${depth}), received ${received(layers)}`);
  layers.forEach((l, i) => {
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= depth)
      throw new RangeError(`attentionMaps: 'layers[${i}]' must be an integer block index in [0, ${depth}) (0-based, as blocks.N; the model has depth ${depth}), received ${received(l)}`);
    if (layers.indexOf(l) !== i) throw new RangeError(`attentionMaps: 'layers' must be distinct, received ${received(layers)} (${l} twice)`);
  });
  const precision = checkPrecision(options.precision ?? 'f32');
  const maxBytes = options.maxBytesPerLayer ?? DEFAULT_MAX_BYTES_PER_LAYER;
  if (typeof maxBytes !== 'number' || !(maxBytes > 0)) throw new RangeError(`attentionMaps: 'maxBytesPerLayer' must be a positive number, received ${received(maxBytes)}`);
  const B = s[0]!, L = gh * gw + 1;
  if (B * H * L * L * 4 > maxBytes) {
    const fits = Math.floor(maxBytes / (H * L * L * 4));
    throw new RangeError(`attentionMaps: one layer's probabilities (B·heads·L²·4 bytes: ${bytesText(B, H, L)}) exceed 'maxBytesPerLayer' ${maxBytes.toLocaleString('en-US')} bytes; ${fits ? `use fewer images (at most ${fits})` : 'even one image does not fit: raise the limit'}`);
  }
  return { layers: layers.slice(), precision };
}

/**
 * qkv (B, L, 3, H, D) values → probabilities (B, H, L, L): softmax(q_i·k_j · D^-0.5) over j,
 * in float64 (max-subtracted), stored as f32. The scale is the model's (SPEC §1: (d/h)^-0.5).
 */
export function softmaxFromQkv(qkv: ArrayLike<number>, B: number, L: number, H: number, D: number): Float32Array {
  if (qkv.length !== B * L * 3 * H * D) throw new RangeError(`softmaxFromQkv: 'qkv' must hold B·L·3·H·D = ${B * L * 3 * H * D} values, received ${qkv.length}`);
  const probs = new Float32Array(B * H * L * L);
  const scale = 1 / Math.sqrt(D);
  const q = new Float64Array(L * D), k = new Float64Array(L * D), row = new Float64Array(L);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      // Gather this head's q (scaled) and k as (L, D) rows: contiguous for the inner loop.
      for (let l = 0; l < L; l++) {
        const base = ((b * L + l) * 3) * H * D + h * D;
        for (let d = 0; d < D; d++) {
          q[l * D + d] = qkv[base + d]! * scale;
          k[l * D + d] = qkv[base + H * D + d]!;
        }
      }
      for (let i = 0; i < L; i++) {
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += q[i * D + d]! * k[j * D + d]!;
          row[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j < L; j++) sum += row[j] = Math.exp(row[j]! - max);
        const out = ((b * H + h) * L + i) * L;
        for (let j = 0; j < L; j++) probs[out + j] = row[j]! / sum;
      }
    }
  }
  return probs;
}

/**
 * The attention probabilities of `options.layers` for normalised `images` (B, C, H, W) on the
 * model's device, and the logits of the same pass. The model runs in eval mode (restored
 * afterwards) without gradients. Refuses (RangeError) when B·heads·L²·4 bytes for one layer
 * exceeds `maxBytesPerLayer` (1 GiB): e.g. 4 images of 32×32 PiT-T (L = 1025, 12 heads) need
 * 202 MB a layer. Host work per layer: B·H·L²·D multiply-adds in float64.
 */
export function attentionMaps(model: VisionTransformer, images: Tensor, options: AttentionMapsOptions): AttentionMapsResult {
  const { layers, precision } = checkInputs(model, images, options);
  const { heads: H, dim: d } = model.config;
  const D = d / H, B = images.shape[0]!, L = model.grid[0] * model.grid[1] + 1;
  const wanted = new Set(layers);
  const found = new Map<number, AttentionMap>();
  const wasTraining = model.training;
  model.eval();
  try {
    const logits = tidy(() => noGrad(() => {
      let x = model.blockInput(images);
      model.blocks.blocks.forEach((block, i) => {
        const next = tidy(() => {
          if (wanted.has(i)) {
            // The block's own norm1 and qkv Linear on its input: the tensor its Attention
            // reshapes to (B, L, 3, H, D) and hands to the fused kernel.
            const qkv = block.attn.qkv.forward(block.norm1.forward(x));
            found.set(i, { layer: i, shape: [B, H, L, L], probs: softmaxFromQkv(qkv.toArray(), B, L, H, D) });
          }
          return block.forward(x, { precision });
        });
        x.dispose();
        x = next;
      });
      return model.head.forward(model.poolTokens(x)).toArray() as Float32Array;
    }));
    return { maps: layers.map((l) => found.get(l)!), logits };
  } finally {
    model.train(wasTraining);
  }
}
