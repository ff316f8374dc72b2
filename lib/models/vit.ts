// The ViT family with patch size p; p = 1 is the Pixel Transformer (PiT): one token per
// pixel. Parameter names follow timm's vision_transformer (SPEC.md §1).
import { add, concatTokens, linear, mean, permute, sliceTokens } from '../ops/index.js';
import { tensor, type Tensor } from '../tensor.js';
import { Block, type Noise } from '../nn/block.js';
import { InitRng } from '../nn/init.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';

export interface VitConfig {
  imageSize: number | readonly [number, number]; // 32: H = W = 32; or [H, W]
  channels: number;                              // 3
  patch: number;                                 // 1 (PiT); 2 for ViT-*/2
  depth: number;                                 // 12 blocks
  dim: number;                                   // 192 (width d)
  heads: number;                                 // 12 (head size d/h)
  mlpRatio: number;                              // 4 (MLP hidden = 4d)
  classes: number;                               // 100 (CIFAR-100)
  posEmbed: 'learned' | 'sincos' | 'none';       // 'learned' (trunc-normal 0.02)
  pool: 'avg' | 'cls';                           // 'avg': mean of non-cls tokens → fc_norm → head
  dropPath: number;                              // 0 (block i gets rate·i/(depth − 1))
  seed: number;                                  // 0 (Philox seed of the initialisation)
}

export const defaultVitConfig: Readonly<VitConfig> = Object.freeze({
  imageSize: 32, channels: 3, patch: 1, depth: 12, dim: 192, heads: 12, mlpRatio: 4,
  classes: 100, posEmbed: 'learned', pool: 'avg', dropPath: 0, seed: 0,
});

const sizes = { t: { depth: 12, dim: 192, heads: 12 }, s: { depth: 12, dim: 384, heads: 12 },
  b: { depth: 12, dim: 768, heads: 12 }, l: { depth: 24, dim: 1024, heads: 16 } } as const;

/** SPEC §1 table: PiT-T/S/B/L (p = 1) and the paper's ViT baselines vit-t/2 … vit-l/2 (p = 2). */
export const vitPresets: Readonly<Record<string, Partial<VitConfig>>> = Object.freeze(Object.fromEntries(
  Object.entries(sizes).flatMap(([k, s]) => [[`pit-${k}`, { ...s, patch: 1 }], [`vit-${k}/2`, { ...s, patch: 2 }]]),
));

/** A preset's full config with `overrides` applied on top. */
export function presetConfig(name: string, overrides: Partial<VitConfig> = {}): VitConfig {
  const preset = vitPresets[name];
  if (!preset) throw new RangeError(`presetConfig: 'name' must be one of ${Object.keys(vitPresets).join(', ')}; got "${name}"`);
  return { ...defaultVitConfig, ...preset, ...overrides };
}

function imageHW(config: VitConfig): [number, number] {
  const s = config.imageSize;
  return typeof s === 'number' ? [s, s] : [s[0], s[1]];
}

/** Checks a config and returns the token grid (h, w) = (H/p, W/p). */
function tokenGrid(config: VitConfig): [number, number] {
  const positive = (name: keyof VitConfig, v: unknown) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TypeError(`ViT: '${name}' must be a positive integer, got ${String(v)}`);
  };
  const [H, W] = imageHW(config);
  positive('imageSize', H);
  positive('imageSize', W);
  for (const k of ['channels', 'patch', 'depth', 'dim', 'heads', 'classes'] as const) positive(k, config[k]);
  const p = config.patch;
  if (H % p || W % p) throw new RangeError(`ViT: 'imageSize' ${H}×${W} must be divisible by 'patch' ${p}`);
  if (config.dim % config.heads) throw new RangeError(`ViT: 'heads' ${config.heads} must divide 'dim' ${config.dim}`);
  if (!['learned', 'sincos', 'none'].includes(config.posEmbed)) throw new TypeError(`ViT: 'posEmbed' must be "learned", "sincos" or "none", got ${String(config.posEmbed)}`);
  if (!['avg', 'cls'].includes(config.pool)) throw new TypeError(`ViT: 'pool' must be "avg" or "cls", got ${String(config.pool)}`);
  if (config.posEmbed === 'sincos' && config.dim % 4) throw new RangeError(`ViT: sincos position embedding needs 'dim' divisible by 4, got ${config.dim}`);
  if (!(config.dropPath >= 0 && config.dropPath < 1)) throw new RangeError(`ViT: 'dropPath' must be in [0, 1), got ${String(config.dropPath)}`);
  return [H / p, W / p];
}

/**
 * SPEC §1's count: depth·(12d² + 13d) + (p²Cd + d) + d + (N+1)·d + 2d + (dK + K), the
 * (N+1)·d only for learned position embeddings; for an MLP ratio r, 12d² + 13d becomes
 * (4 + 2r)d² + (9 + r)d.
 */
export function parameterCount(config: VitConfig): number {
  const [h, w] = tokenGrid(config);
  const { dim: d, patch: p, channels: C, classes: K, depth } = config;
  const hidden = Math.round(d * config.mlpRatio);
  const block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d);
  const position = config.posEmbed === 'learned' ? (h * w + 1) * d : 0;
  return depth * block + (p * p * C * d + d) + d + position + 2 * d + (d * K + K);
}

/**
 * Fixed 2-D sin-cos table (h·w + 1, D) in float64, SPEC §2: row 0 (cls) zeros; token
 * (r, c) in row-major order; dims [0, D/2) encode c, [D/2, D) encode r, each half
 * [sin(pos·ω_k), cos(pos·ω_k)] with ω_k = 10000^(−k/(D/4)).
 */
export function sincosPositionTable(h: number, w: number, D: number): Float64Array {
  if (D % 4) throw new RangeError(`sincosPositionTable: 'D' must be divisible by 4, got ${D}`);
  const q = D / 4;
  const out = new Float64Array((h * w + 1) * D);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const row = (1 + r * w + c) * D;
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

export class VisionTransformer extends Module {
  readonly config: Readonly<VitConfig>;
  /** Token grid (H/p, W/p); N = h·w tokens besides cls. */
  readonly grid: readonly [number, number];
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: Tensor;
  /** (N + 1, d): a parameter (learned), a fixed buffer (sincos), or null (none). */
  readonly posEmbed: Tensor | null;
  readonly blocks: Block[];
  readonly norm: LayerNorm;
  readonly head: Linear;

  constructor(config: Partial<VitConfig> = {}) {
    super();
    const c = { ...defaultVitConfig, ...config };
    this.config = Object.freeze(c);
    const [h, w] = (this.grid = tokenGrid(c));
    const { dim: d, patch: p, channels: C } = c;
    const rng = new InitRng(c.seed);
    const N = h * w;
    this.patchEmbed = this.child('patch_embed', new PatchEmbed(C, p, d, rng));
    this.clsToken = this.parameter('cls_token', rng.normal([1, 1, d], 1e-6), [1, 1, d]);
    if (c.posEmbed === 'learned') this.posEmbed = this.parameter('pos_embed', rng.truncNormal([1, N + 1, d], 0.02), [1, N + 1, d]);
    else if (c.posEmbed === 'sincos') this.posEmbed = this.buffer('pos_embed', tensor(Float32Array.from(sincosPositionTable(h, w, d)), [1, N + 1, d]));
    else this.posEmbed = null;
    const blocks = this.child('blocks', new Blocks());
    this.blocks = Array.from({ length: c.depth }, (_, i) => blocks.add(new Block(d, c.heads, {
      mlpRatio: c.mlpRatio, init: rng, dropPath: c.depth > 1 ? (c.dropPath * i) / (c.depth - 1) : 0,
    })));
    this.norm = this.child(c.pool === 'avg' ? 'fc_norm' : 'norm', new LayerNorm(d));
    this.head = this.child('head', new Linear(d, c.classes, rng));
  }

  /**
   * Images (B, C, H, W) → tokens (B, N, C·p²), each patch flattened in (channel, row, col)
   * order, patches row-major: the input of timm's stride-p convolution, so the embedding
   * weight (d, C, p, p) is timm's layout as it is. (For p = 1 a token is a pixel's channels.)
   */
  patchify(images: Tensor): Tensor {
    const { channels: C, patch: p } = this.config;
    const [h, w] = this.grid;
    const [H, W] = [h * p, w * p];
    if (images.shape.length !== 4 || images.shape[1] !== C || images.shape[2] !== H || images.shape[3] !== W)
      throw new RangeError(`ViT: 'images' must be (B, ${C}, ${H}, ${W}), got shape [${images.shape.join(', ')}]`);
    const B = images.shape[0]!;
    if (p === 1) return permute(images, [0, 2, 3, 1]).reshape([B, h * w, C]);
    // (B, C, h, p, w, p) → (B, h, w, C, p_row, p_col)
    return permute(images.reshape([B, C, h, p, w, p]), [0, 2, 4, 1, 3, 5]).reshape([B, h * w, C * p * p]);
  }

  /** Tokens after the blocks (B, N + 1, d), before the head. */
  features(images: Tensor, noise?: Noise): Tensor {
    const [h, w] = this.grid;
    const d = this.config.dim;
    let x = concatTokens(this.clsToken, this.patchEmbed.forward(this.patchify(images)));
    if (this.posEmbed) x = add(x, this.posEmbed.reshape([h * w + 1, d]));
    // Block i draws its two drop-path masks at offsets 2·depth·noise.offset + 2i (+1).
    const depth = this.blocks.length;
    this.blocks.forEach((block, i) => {
      x = block.forward(x, noise && { seed: noise.seed, offset: 2 * depth * noise.offset + 2 * i });
    });
    return x;
  }

  /**
   * images (B, C, H, W) f32 → logits (B, classes). A training forward with drop path needs
   * `noise` (seed, and an offset such as the step) for the per-sample masks.
   */
  forward(images: Tensor, noise?: Noise): Tensor {
    const x = this.features(images, noise);
    const [B, L, d] = x.shape as [number, number, number];
    const pooled = this.config.pool === 'avg'
      ? mean(sliceTokens(x, 1, L - 1), 1)
      : sliceTokens(x, 0, 1).reshape([B, d]);   // LayerNorm is per token: norm(x)[0] = norm(x[0])
    return this.head.forward(this.norm.forward(pooled));
  }
}

/**
 * `patch_embed`: timm's stride-p convolution `proj` (weight (d, C, p, p), bias (d)) applied as
 * a matmul on patchified tokens. Initialised like every Linear (trunc-normal 0.02 over the
 * flattened (d, C·p²) weight, zero bias).
 */
export class PatchEmbed extends Module {
  readonly proj: PatchProjection;
  constructor(channels: number, patch: number, dim: number, rng: InitRng) {
    super();
    this.proj = this.child('proj', new PatchProjection(channels, patch, dim, rng));
  }

  /** tokens (B, N, C·p²) from patchify → (B, N, d) */
  forward(tokens: Tensor): Tensor {
    return this.proj.forward(tokens);
  }
}

class PatchProjection extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly #flat: [number, number];
  constructor(channels: number, patch: number, dim: number, rng: InitRng) {
    super();
    const shape = [dim, channels, patch, patch];
    this.#flat = [dim, channels * patch * patch];
    this.weight = this.parameter('weight', rng.truncNormal(shape, 0.02), shape);
    this.bias = this.parameter('bias', new Float32Array(dim), [dim]);
  }

  forward(tokens: Tensor): Tensor {
    return linear(tokens, this.weight.reshape(this.#flat), this.bias);
  }
}

/** `blocks.N`: children named by index. */
class Blocks extends Module {
  #count = 0;
  add(block: Block): Block {
    return this.child(String(this.#count++), block);
  }
}

/** A model from a preset name (SPEC §1), e.g. vit('pit-t', { classes: 10 }). */
export function vit(name: string, overrides: Partial<VitConfig> = {}): VisionTransformer {
  return new VisionTransformer(presetConfig(name, overrides));
}
