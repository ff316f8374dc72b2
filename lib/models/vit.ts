// The ViT family with patch size p; p = 1 is the Pixel Transformer (PiT): one token per
// pixel. Parameter names follow timm's vision_transformer (SPEC.md §1).
//
// VitEncoder is the trunk every family shares: patch embedding, position embedding, cls token
// and the block stack, with the steps apart so MAE can mask between the position embedding
// and the cls token. VisionTransformer is the encoder plus the classification head.
import { add, concatTokens, mean, sliceTokens } from '../ops/index.js';
import type { Device, Tensor } from '../tensor.js';
import { BlockStack } from '../nn/block_stack.js';
import type { ForwardOptions } from '../nn/forward.js';
import { InitRng } from '../nn/init.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { PatchEmbed, patchify } from '../nn/patch_embed.js';
import { positionKinds, positionTable, type PositionKind } from '../nn/position.js';
import { parseModelName } from './names.js';

export interface VitConfig {
  imageSize: number | readonly [number, number]; // 32: H = W = 32; or [H, W]
  channels: number;                              // 3
  patch: number;                                 // 1 (PiT); 2 for ViT-*/2
  depth: number;                                 // 12 blocks
  dim: number;                                   // 192 (width d)
  heads: number;                                 // 12 (head size d/h)
  mlpRatio: number;                              // 4 (MLP hidden = 4d)
  classes: number;                               // 100 (CIFAR-100)
  posEmbed: PositionKind;                        // 'learned' (trunc-normal 0.02)
  pool: 'avg' | 'cls';                           // 'avg': mean of non-cls tokens → fc_norm → head
  dropPath: number;                              // 0 (block i gets rate·i/(depth − 1))
  seed: number;                                  // 0 (Philox seed of the initialisation)
}

/** The encoder's part of a config (no head). */
export type EncoderConfig = Omit<VitConfig, 'classes' | 'pool'>;

export interface BuildOptions {
  /** Where every parameter is made: 'cpu' (default) or 'cuda'. Inputs must be there too. */
  device?: Device;
}

export const defaultVitConfig: Readonly<VitConfig> = Object.freeze({
  imageSize: 32, channels: 3, patch: 1, depth: 12, dim: 192, heads: 12, mlpRatio: 4,
  classes: 100, posEmbed: 'learned', pool: 'avg', dropPath: 0, seed: 0,
});

/** A named model's full config (names: models/names.ts) with `overrides` applied on top. */
export function modelConfig(name: string, overrides: Partial<VitConfig> = {}): VitConfig {
  return { ...defaultVitConfig, ...parseModelName(name), ...overrides };
}

function imageHW(config: EncoderConfig): [number, number] {
  const s = config.imageSize;
  return typeof s === 'number' ? [s, s] : [s[0], s[1]];
}

/** Throws a TypeError naming `owner` and `name` unless v is a positive integer. */
export function positiveInteger(owner: string, name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TypeError(`${owner}: '${name}' must be a positive integer, got ${String(v)}`);
}

/** Checks an encoder config and returns the token grid (h, w) = (H/p, W/p). */
export function tokenGrid(config: EncoderConfig, owner = 'ViT'): [number, number] {
  const [H, W] = imageHW(config);
  positiveInteger(owner, 'imageSize', H);
  positiveInteger(owner, 'imageSize', W);
  for (const k of ['channels', 'patch', 'depth', 'dim', 'heads'] as const) positiveInteger(owner, k, config[k]);
  const p = config.patch;
  if (H % p || W % p) throw new RangeError(`${owner}: 'imageSize' ${H}×${W} must be divisible by 'patch' ${p}`);
  if (config.dim % config.heads) throw new RangeError(`${owner}: 'heads' ${config.heads} must divide 'dim' ${config.dim}`);
  if (!positionKinds.includes(config.posEmbed)) throw new TypeError(`${owner}: 'posEmbed' must be "learned", "sincos" or "none", got ${String(config.posEmbed)}`);
  if (config.posEmbed === 'sincos' && config.dim % 4) throw new RangeError(`${owner}: sincos position embedding needs 'dim' divisible by 4, got ${config.dim}`);
  if (!(config.dropPath >= 0 && config.dropPath < 1)) throw new RangeError(`${owner}: 'dropPath' must be in [0, 1), got ${String(config.dropPath)}`);
  return [H / p, W / p];
}

function checkHead(config: VitConfig): void {
  positiveInteger('ViT', 'classes', config.classes);
  if (!['avg', 'cls'].includes(config.pool)) throw new TypeError(`ViT: 'pool' must be "avg" or "cls", got ${String(config.pool)}`);
}

/**
 * SPEC §1's count: depth·(12d² + 13d) + (p²Cd + d) + d + (N+1)·d + 2d + (dK + K), the
 * (N+1)·d only for learned position embeddings; for an MLP ratio r, 12d² + 13d becomes
 * (4 + 2r)d² + (9 + r)d.
 */
export function parameterCount(config: VitConfig): number {
  checkHead(config);
  const { dim: d, classes: K } = config;
  return trunkParameterCount(config) + 2 * d + (d * K + K);
}

/** One pre-norm block of width d: two LayerNorms, qkv, proj and the MLP's two Linears. */
export function blockParameterCount(d: number, mlpRatio: number): number {
  const hidden = Math.round(d * mlpRatio);
  return 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d);
}

/** The VitEncoder's parameters: depth·block + patch embedding + cls + learned position table. */
export function trunkParameterCount(config: EncoderConfig): number {
  const [h, w] = tokenGrid(config);
  const { dim: d, patch: p, channels: C, depth } = config;
  const position = config.posEmbed === 'learned' ? (h * w + 1) * d : 0;
  return depth * blockParameterCount(d, config.mlpRatio) + (p * p * C * d + d) + d + position;
}

/** `patch_embed`, `cls_token`, `pos_embed` and `blocks.N`: the trunk without a head. */
export class VitEncoder extends Module {
  /** Token grid (H/p, W/p); N = h·w tokens besides cls. */
  readonly grid: readonly [number, number];
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: Tensor;
  /** (1, N + 1, d): a parameter (learned), a fixed buffer (sincos), or null (none). */
  readonly posEmbed: Tensor | null;
  readonly blocks: BlockStack;
  /** The model's whole config (subclasses narrow its type), frozen. */
  readonly config: Readonly<EncoderConfig>;

  /** `rng` draws every initial value in construction order and names the device. */
  constructor(config: EncoderConfig, rng: InitRng) {
    super(rng.device);
    this.config = Object.freeze(config);
    this.grid = tokenGrid(config);
    const { dim: d, patch: p, channels: C } = config;
    this.patchEmbed = this.child('patch_embed', new PatchEmbed(C, p, d, rng));
    this.clsToken = this.parameter('cls_token', rng.normal([1, 1, d], 1e-6), [1, 1, d]);
    this.posEmbed = this.positionEmbedding('pos_embed', config.posEmbed, d, rng);
    this.blocks = this.child('blocks', new BlockStack(config.depth, d, config.heads, { mlpRatio: config.mlpRatio, dropPath: config.dropPath, init: rng }));
  }

  /**
   * Registers a (1, N + 1, D) position table of this grid under `name` (cls row first): a
   * parameter when learned, a fixed buffer when sincos, nothing (null) for none.
   */
  protected positionEmbedding(name: string, kind: PositionKind, D: number, rng: InitRng): Tensor | null {
    const [h, w] = this.grid;
    const table = positionTable(kind, h, w, D, rng);
    if (!table) return null;
    const shape = [1, h * w + 1, D];
    return table.trainable ? this.parameter(name, table.values, shape) : this.buffer(name, table.values, shape);
  }

  /** images (B, C, H, W) → (B, N, C·p²) patch tokens (see patchify for the order). */
  patchify(images: Tensor): Tensor {
    const { channels: C, patch: p } = this.config;
    const [H, W] = [this.grid[0] * p, this.grid[1] * p];
    if (images.shape.length !== 4 || images.shape[1] !== C || images.shape[2] !== H || images.shape[3] !== W)
      throw new RangeError(`ViT: 'images' must be (B, ${C}, ${H}, ${W}), got shape [${images.shape.join(', ')}]`);
    this.expectDevice('images', images);
    return patchify(images, p);
  }

  /** images (B, C, H, W) → (B, N, d): embedded patches plus their position rows 1..N. */
  embed(images: Tensor): Tensor {
    return this.embedPatches(this.patchify(images));
  }

  /** patches (B, N, C·p²) from patchify → (B, N, d) embedded, plus position rows 1..N. */
  embedPatches(patches: Tensor): Tensor {
    const x = this.patchEmbed.forward(patches);
    if (!this.posEmbed) return x;
    const [h, w] = this.grid;
    return add(x, sliceTokens(this.posEmbed, 1, h * w).reshape([h * w, this.config.dim]));
  }

  /** (B, n, d) → (B, n + 1, d): the cls token (plus position row 0) in front. */
  prependCls(x: Tensor): Tensor {
    const cls = this.posEmbed ? add(this.clsToken, sliceTokens(this.posEmbed, 0, 1)) : this.clsToken;
    return concatTokens(cls, x);
  }

  /**
   * Tokens after the blocks (B, N + 1, d), before any final norm: the values of
   * blocks(prependCls(embed(images))). Without masking, the table is added to [cls; patches]
   * in one op: the gradient of pos_embed is then one sum over the batch of (N + 1)·d values, as
   * in every run before the encoder had steps. (The CPU sum blocks its rows by the row length,
   * so summing N·d and d apart would change the last bits and, through training, the runs.)
   */
  features(images: Tensor, options: ForwardOptions = {}): Tensor {
    return this.blocks.forward(this.blockInput(images), options);
  }

  /**
   * images (B, C, H, W) → (B, N + 1, d): [cls; embedded patches] plus the position table, the
   * first block's input (features runs the blocks on it; lib/analysis runs them one by one).
   */
  blockInput(images: Tensor): Tensor {
    const [h, w] = this.grid;
    const x = concatTokens(this.clsToken, this.patchEmbed.forward(this.patchify(images)));
    return this.posEmbed ? add(x, this.posEmbed.reshape([h * w + 1, this.config.dim])) : x;
  }
}

export interface ClassifierBuildOptions extends BuildOptions {
  /** Trunc-normal std of the head weight: 0.02 (timm, default); 2e-5 to fine-tune a pre-trained encoder (MAE, SPEC §3). */
  headStd?: number;
}

export class VisionTransformer extends VitEncoder {
  declare readonly config: Readonly<VitConfig>;  // set (frozen) by VitEncoder
  readonly norm: LayerNorm;
  readonly head: Linear;

  constructor(config: Partial<VitConfig> = {}, options: ClassifierBuildOptions = {}) {
    const c: VitConfig = { ...defaultVitConfig, ...config };
    checkHead(c);
    const rng = new InitRng(c.seed, options.device);
    super(c, rng);
    this.norm = this.child(c.pool === 'avg' ? 'fc_norm' : 'norm', new LayerNorm(c.dim, rng));
    this.head = this.child('head', new Linear(c.dim, c.classes, rng, { std: options.headStd }));
  }

  /**
   * images (B, C, H, W) f32 → logits (B, classes). A training forward with drop path needs
   * `random` (seed, and an offset such as the step) for the per-sample masks.
   */
  forward(images: Tensor, options: ForwardOptions = {}): Tensor {
    return this.head.forward(this.pooledFeatures(images, options));
  }

  /**
   * images (B, C, H, W) f32 → (B, d): the pooled, normed vector the head sees (forward is
   * head(pooledFeatures)), the penultimate features generation metrics compare (lib/eval).
   * Not `features`, which the encoder already names: its tokens (B, N + 1, d) after the blocks.
   */
  pooledFeatures(images: Tensor, options: ForwardOptions = {}): Tensor {
    return this.poolTokens(this.features(images, options));
  }

  /** x (B, N + 1, d), the tokens after the blocks → (B, d): pooled ('avg' or 'cls') and normed. */
  poolTokens(x: Tensor): Tensor {
    const [B, L, d] = x.shape as [number, number, number];
    const pooled = this.config.pool === 'avg'
      ? mean(sliceTokens(x, 1, L - 1), 1)
      : sliceTokens(x, 0, 1).reshape([B, d]);   // LayerNorm is per token: norm(x)[0] = norm(x[0])
    return this.norm.forward(pooled);
  }
}

/** A model by name (models/names.ts), e.g. vit('pit-t', { classes: 10 }, { device: 'cuda' }). */
export function vit(name: string, overrides: Partial<VitConfig> = {}, options: BuildOptions = {}): VisionTransformer {
  return new VisionTransformer(modelConfig(name, overrides), options);
}
