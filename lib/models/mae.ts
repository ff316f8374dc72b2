// Masked autoencoder (SPEC §3, the PiT paper's case study 2) on any patch size; p = 1 is the
// pixel MAE. The encoder is the ViT trunk (timm names) seeing only the kept tokens; the
// decoder and its tensor names are facebookresearch/mae's (`mask_token`, `decoder_embed`,
// `decoder_pos_embed`, `decoder_blocks.N`, `decoder_norm`, `decoder_pred`), so weights read
// like the reference's.
//
// Masking and un-shuffling are one gatherTokens each (per-sample ids, native, one pass, with a
// scatter-add backward); only the argsort of the noise runs in JS, on the host.
import { add, concatTokens, gatherTokens, layerNorm, mse, scale, sliceTokens } from '../ops/index.js';
import { noGrad, rand, tensor, tidy, type Tensor } from '../tensor.js';
import { BlockStack } from '../nn/block_stack.js';
import { substream, type ForwardOptions, type RandomStream } from '../nn/forward.js';
import { InitRng, isLinearWeight, redrawParameters } from '../nn/init.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { positionKinds, type PositionKind } from '../nn/position.js';
import { parseModelName } from './names.js';
import {
  blockParameterCount, defaultVitConfig, positiveInteger, tokenGrid, trunkParameterCount, VitEncoder,
  type BuildOptions, type EncoderConfig,
} from './vit.js';

export interface MaeConfig extends EncoderConfig {
  maskRatio: number;             // 0.75: share of tokens removed (keeps 256 of 1,024)
  decoderDepth: number;          // 8 (MAE's default; the PiT paper does not state one)
  decoderDim: number;            // 512: at p = 1 this decoder costs ~20× a PiT-T encoder
  decoderHeads: number;          // 16
  decoderPosEmbed: PositionKind; // 'learned' (MAE's reference: frozen 'sincos')
  normPixLoss: boolean;          // false; true needs p > 1 (SPEC §3)
}

const { classes: _classes, pool: _pool, ...encoderDefaults } = defaultVitConfig;

/** PiT-T encoder (learned position embeddings, SPEC §3) with MAE's default decoder. */
export const defaultMaeConfig: Readonly<MaeConfig> = Object.freeze({
  ...encoderDefaults,
  maskRatio: 0.75, decoderDepth: 8, decoderDim: 512, decoderHeads: 16, decoderPosEmbed: 'learned', normPixLoss: false,
});

/** A named encoder (models/names.ts, e.g. 'pit-t') with MAE's defaults and `overrides` on top. */
export function maeConfig(name: string, overrides: Partial<MaeConfig> = {}): MaeConfig {
  return { ...defaultMaeConfig, ...parseModelName(name), ...overrides };
}

/** int(N·(1 − r)): how many of N tokens the encoder sees. */
export const keptTokens = (N: number, maskRatio: number): number => Math.floor(N * (1 - maskRatio));

/** Checks an MAE config (encoder and decoder) and returns the token grid (h, w). */
export function checkMaeConfig(config: MaeConfig): [number, number] {
  const owner = 'MAE';
  const [h, w] = tokenGrid(config, owner);
  for (const k of ['decoderDepth', 'decoderDim', 'decoderHeads'] as const) positiveInteger(owner, k, config[k]);
  const { maskRatio: r, decoderDim: dd, decoderHeads: hh, patch: p } = config;
  const N = h * w, keep = keptTokens(N, r);
  if (typeof r !== 'number' || !(keep >= 1 && keep < N))
    throw new RangeError(`${owner}: 'maskRatio' must leave at least one of the ${N} tokens visible and mask at least one (int(N·(1 − r)) in [1, ${N})), got ${String(r)}`);
  if (dd % hh) throw new RangeError(`${owner}: 'decoderHeads' ${hh} must divide 'decoderDim' ${dd}`);
  if (!positionKinds.includes(config.decoderPosEmbed)) throw new TypeError(`${owner}: 'decoderPosEmbed' must be "learned", "sincos" or "none", got ${String(config.decoderPosEmbed)}`);
  if (config.decoderPosEmbed === 'sincos' && dd % 4) throw new RangeError(`${owner}: sincos decoder position embedding needs 'decoderDim' divisible by 4, got ${dd}`);
  if (typeof config.normPixLoss !== 'boolean') throw new TypeError(`${owner}: 'normPixLoss' must be true or false, got ${String(config.normPixLoss)}`);
  if (config.normPixLoss && p === 1)
    throw new RangeError(`${owner}: 'normPixLoss' needs patch > 1: at p = 1 a token's target is one pixel's ${config.channels} value(s), whose mean and unbiased variance are undefined for 1 channel and remove the pixel's brightness for 3 (SPEC §3)`);
  return [h, w];
}

/**
 * The encoder trunk + its `norm` + the decoder: trunk + 2d + (d·dd + dd) + dd (mask token)
 * + (N + 1)·dd (learned decoder table only) + decoderDepth·block(dd) + 2dd + (dd·P + P),
 * P = p²·C values predicted per token.
 */
export function maeParameterCount(config: MaeConfig): number {
  const [h, w] = checkMaeConfig(config);
  const { dim: d, decoderDim: dd, patch: p, channels: C } = config;
  const P = p * p * C;
  const decoderPosition = config.decoderPosEmbed === 'learned' ? (h * w + 1) * dd : 0;
  return trunkParameterCount(config) + 2 * d
    + (d * dd + dd) + dd + decoderPosition + config.decoderDepth * blockParameterCount(dd, config.mlpRatio) + 2 * dd + (dd * P + P);
}

/** One step's masks, per sample, in host memory. */
export interface RandomMasking {
  /** K = int(N·(1 − r)) tokens kept per sample. */
  keep: number;
  /** (B, N): argsort of the noise; its first K entries are the kept tokens. */
  idsShuffle: Int32Array;
  /** (B, N): argsort(idsShuffle), the position of each token in the shuffled order. */
  idsRestore: Int32Array;
  /** (B, N): 1 for a removed token, 0 for a kept one, in the original token order. */
  mask: Float32Array;
}

/**
 * MAE's random_masking (SPEC §3): noise U[0, 1) per token from the step's 'mask' substream
 * (never the step's own stream, which drop path draws from), drawn on the host: Philox gives
 * the same numbers on every backend, and the argsort runs here anyway.
 */
export function randomMasking(B: number, N: number, maskRatio: number, random: RandomStream): RandomMasking {
  const keep = keptTokens(N, maskRatio);
  if (!Number.isInteger(B) || B <= 0 || !Number.isInteger(N) || !(keep >= 1 && keep < N))
    throw new RangeError(`randomMasking: needs a positive integer 'B' and a ratio keeping int(N·(1 − r)) in [1, N), got B ${B}, N ${N}, maskRatio ${maskRatio}`);
  const noise = tidy(() => noGrad(() => rand([B, N], substream(random, 'mask')).toArray())); // (B, N)
  const idsShuffle = new Int32Array(B * N), idsRestore = new Int32Array(B * N);
  const mask = new Float32Array(B * N);
  for (let b = 0; b < B; b++) {
    const row = b * N;
    const order = Array.from({ length: N }, (_, n) => n).sort((i, j) => noise[row + i]! - noise[row + j]! || i - j);
    order.forEach((n, k) => {
      idsShuffle[row + k] = n;
      idsRestore[row + n] = k;
      mask[row + n] = k < keep ? 0 : 1;
    });
  }
  return { keep, idsShuffle, idsRestore, mask };
}

/**
 * Gather ids that un-shuffle the decoder's tokens and put cls back in front in one pass:
 * for x = [mask_token, cls, kept_0 .. kept_{K−1}] (B, K + 2, ·), output row 0 is cls (1),
 * row n + 1 is kept token idsRestore[n] (its index + 2) or the mask token (0) if removed.
 */
function decoderGatherIds({ keep, idsRestore }: RandomMasking, B: number, N: number): Int32Array {
  const ids = new Int32Array(B * (N + 1));
  for (let b = 0; b < B; b++) {
    ids[b * (N + 1)] = 1;
    for (let n = 0; n < N; n++) {
      const k = idsRestore[b * N + n]!;
      ids[b * (N + 1) + n + 1] = k < keep ? k + 2 : 0;
    }
  }
  return ids;
}

/** What a forward returns; all on the model's device. */
export interface MaeOutput {
  /** Scalar (shape []): MSE per token averaged over the removed tokens only. */
  loss: Tensor;
  /** (B, N, p²·C): the prediction for every token, in patchify's value order. */
  pred: Tensor;
  /** (B, N) f32: 1 for a removed token, 0 for a kept one. */
  mask: Tensor;
  /** (B, N) i32: each token's position in the shuffled order (< K: kept). */
  idsRestore: Tensor;
}

/** A forward needs the step's random stream: the masks are drawn from it. */
export interface MaeForwardOptions extends ForwardOptions {
  random: RandomStream;
}

export class MaskedAutoencoder extends VitEncoder {
  declare readonly config: Readonly<MaeConfig>;  // set (frozen) by VitEncoder
  /** The encoder's final LayerNorm. */
  readonly norm: LayerNorm;
  /** (1, 1, dd): stands in for every removed token in the decoder. */
  readonly maskToken: Tensor;
  /** (1, N + 1, dd) learned parameter, sincos buffer or null. */
  readonly decoderPosEmbed: Tensor | null;
  readonly decoderEmbed: Linear;
  readonly decoderBlocks: BlockStack;
  readonly decoderNorm: LayerNorm;
  readonly decoderPred: Linear;

  constructor(config: Partial<MaeConfig> = {}, options: BuildOptions = {}) {
    const c: MaeConfig = { ...defaultMaeConfig, ...config };
    checkMaeConfig(c);
    const rng = new InitRng(c.seed, options.device);
    super(c, rng);
    const { dim: d, decoderDim: dd, patch: p, channels: C } = c;
    this.norm = this.child('norm', new LayerNorm(d, rng));
    // Parameters before children, as PyTorch lists them: mask_token, then decoder_pos_embed.
    this.maskToken = this.parameter('mask_token', rng.normal([1, 1, dd], 0.02), [1, 1, dd]);
    this.decoderPosEmbed = this.positionEmbedding('decoder_pos_embed', c.decoderPosEmbed, dd, rng);
    this.decoderEmbed = this.child('decoder_embed', new Linear(d, dd, rng));
    this.decoderBlocks = this.child('decoder_blocks', new BlockStack(c.decoderDepth, dd, c.decoderHeads, { mlpRatio: c.mlpRatio, init: rng }));
    this.decoderNorm = this.child('decoder_norm', new LayerNorm(dd, rng));
    this.decoderPred = this.child('decoder_pred', new Linear(dd, p * p * C, rng));
    // MAE's initialize_weights: xavier-uniform Linears (patch embed on its flattened view) and
    // cls N(0, 0.02) instead of timm's trunc-normal and 1e-6; biases 0, LayerNorms (1, 0) as built.
    redrawParameters(this, (name, param) => {
      if (name === 'cls_token') return rng.normal(param.shape, 0.02);
      return isLinearWeight(name, param) ? rng.xavierUniform(param.shape) : null;
    });
  }

  /** N = h·w tokens besides cls. */
  get tokens(): number {
    return this.grid[0] * this.grid[1];
  }

  /**
   * images (B, C, H, W) → loss, pred (B, N, p²C), mask (B, N), idsRestore (B, N). The masks
   * come from `random` (seed, offset = step): the same stream gives the same masks.
   */
  forward(images: Tensor, options: MaeForwardOptions): MaeOutput {
    const random = options?.random;
    if (!random) throw new TypeError('MaskedAutoencoder.forward: options.random {seed, offset} is required: the masks are drawn from it (offset = the step)');
    const patches = this.patchify(images);                      // (B, N, p²C), checks shape and device
    const B = patches.shape[0]!, N = this.tokens;
    const masking = randomMasking(B, N, this.config.maskRatio, random);
    const latent = this.encode(patches, masking, options);      // (B, K + 1, d)
    const pred = this.decode(latent, masking, options);         // (B, N, p²C)
    const mask = tensor(masking.mask, [B, N], { device: this.device });
    const idsRestore = tensor(masking.idsRestore, [B, N], { device: this.device });
    return { loss: this.lossOnPatches(patches, pred, mask), pred, mask, idsRestore };
  }

  /** patches (B, N, p²C) → (B, K + 1, d): embed, keep K tokens per sample, cls in front, blocks, norm. */
  encode(patches: Tensor, masking: RandomMasking, options: ForwardOptions = {}): Tensor {
    const B = patches.shape[0]!;
    const idsKeep = tensor(keptIds(masking, B, this.tokens), [B, masking.keep], { device: this.device });
    const kept = gatherTokens(this.embedPatches(patches), idsKeep);  // (B, K, d)
    return this.norm.forward(this.blocks.forward(this.prependCls(kept), options));
  }

  /** latent (B, K + 1, d) → pred (B, N, p²C) for every token, in the original order. */
  decode(latent: Tensor, masking: RandomMasking, options: ForwardOptions = {}): Tensor {
    const B = latent.shape[0]!, N = this.tokens, dd = this.config.decoderDim;
    const ids = tensor(decoderGatherIds(masking, B, N), [B, N + 1], { device: this.device });
    const embedded = concatTokens(this.maskToken, this.decoderEmbed.forward(latent)); // (B, K + 2, dd)
    let x = gatherTokens(embedded, ids);                                             // (B, N + 1, dd)
    if (this.decoderPosEmbed) x = add(x, this.decoderPosEmbed.reshape([N + 1, dd]));
    // The decoder has no drop path: it gets the precision and the recomputation, not the random stream.
    x = this.decoderBlocks.forward(x, { precision: options.precision, recompute: options.recompute });
    // Norm and prediction are per token: dropping cls first gives the same values for less work.
    return this.decoderPred.forward(this.decoderNorm.forward(sliceTokens(x, 1, N)));
  }

  /**
   * The reconstruction loss of pred (B, N, p²C) against `images` (B, C, H, W): per-token MSE
   * averaged over the tokens where mask (B, N) is 1; with normPixLoss each target token is
   * normalised by its own mean and unbiased variance (+ 1e-6).
   */
  loss(images: Tensor, pred: Tensor, mask: Tensor): Tensor {
    return this.lossOnPatches(this.patchify(images), pred, mask);
  }

  private lossOnPatches(patches: Tensor, pred: Tensor, mask: Tensor): Tensor {
    const target = this.config.normPixLoss ? noGrad(() => normalizedPatches(patches)) : patches;
    return mse(pred, target, mask);
  }
}

/** (B, K) i32: the first K of each sample's shuffled order. */
function keptIds({ keep, idsShuffle }: RandomMasking, B: number, N: number): Int32Array {
  const ids = new Int32Array(B * keep);
  for (let b = 0; b < B; b++) ids.set(idsShuffle.subarray(b * N, b * N + keep), b * keep);
  return ids;
}

/**
 * (t − mean)/√(var_unbiased + 1e-6) per token of patches (B, N, P), as one LayerNorm: with
 * var_u = var·P/(P − 1) it equals √((P − 1)/P)·(t − mean)/√(var + 1e-6·(P − 1)/P).
 */
function normalizedPatches(patches: Tensor): Tensor {
  const P = patches.shape[2]!, f = (P - 1) / P;
  return scale(layerNorm(patches, null, null, 1e-6 * f), Math.sqrt(f));
}

/** A masked autoencoder on a named encoder, e.g. mae('pit-t', { decoderDepth: 4 }, { device: 'cuda' }). */
export function mae(name: string, overrides: Partial<MaeConfig> = {}, options: BuildOptions = {}): MaskedAutoencoder {
  return new MaskedAutoencoder(maeConfig(name, overrides), options);
}
