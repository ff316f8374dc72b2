// Patch embedding: images (B, C, H, W) → tokens (B, N, d), one token per p×p patch (p = 1:
// one per pixel). timm's `patch_embed.proj` is a stride-p convolution; here it is a matmul on
// patchified tokens with the convolution's weight layout (d, C, p, p), so checkpoints read
// like timm's.
import { linear, permute } from '../ops/index.js';
import type { Tensor } from '../tensor.js';
import { initDevice, initRng, type Init } from './init.js';
import { Module } from './module.js';

/**
 * Images (B, C, H, W) → tokens (B, h·w, C·p²) with h = H/p, w = W/p, each patch flattened
 * in (channel, row, col) order, patches row-major: the input of a stride-p convolution, so a
 * (d, C, p, p) weight applies as it is. (For p = 1 a token is a pixel's channels.)
 */
export function patchify(images: Tensor, patch: number): Tensor {
  if (images.shape.length !== 4) throw new RangeError(`patchify: 'images' must be (B, C, H, W), got shape [${images.shape.join(', ')}]`);
  const [B, C, H, W] = images.shape as [number, number, number, number];
  const p = patch;
  if (!Number.isInteger(p) || p <= 0 || H % p || W % p) throw new RangeError(`patchify: 'patch' must be a positive integer dividing ${H}×${W}, got ${String(p)}`);
  const h = H / p, w = W / p;
  if (p === 1) return permute(images, [0, 2, 3, 1]).reshape([B, h * w, C]);
  // (B, C, h, p, w, p) → (B, h, w, C, p_row, p_col)
  return permute(images.reshape([B, C, h, p, w, p]), [0, 2, 4, 1, 3, 5]).reshape([B, h * w, C * p * p]);
}

/**
 * Tokens (B, h·w, p·p·C) → images (B, C, h·p, w·p), each token's values in (row, col, channel)
 * order: the inverse of facebookresearch/DiT's and MAE's own patchify, and the order DiT's
 * `final_layer.linear` writes (so its weights read as the reference's). This is not the
 * (channel, row, col) order of patchify above, which follows the convolution's weight layout;
 * for p = 1 the two agree (a token is one pixel's channels).
 */
export function unpatchify(tokens: Tensor, patch: number, grid: readonly [number, number]): Tensor {
  const [h, w] = grid, p = patch;
  if (tokens.shape.length !== 3) throw new RangeError(`unpatchify: 'tokens' must be (B, N, p²·C), got shape [${tokens.shape.join(', ')}]`);
  const [B, N, P] = tokens.shape as [number, number, number];
  if (!Number.isInteger(p) || p <= 0 || N !== h * w || P % (p * p))
    throw new RangeError(`unpatchify: 'tokens' [${tokens.shape.join(', ')}] must hold ${h}×${w} = ${h * w} tokens of p²·C values for 'patch' ${String(p)}`);
  const C = P / (p * p);
  if (p === 1) return permute(tokens.reshape([B, h, w, C]), [0, 3, 1, 2]);
  // (B, h, w, p_row, p_col, C) → (B, C, h, p_row, w, p_col)
  return permute(tokens.reshape([B, h, w, p, p, C]), [0, 5, 1, 3, 2, 4]).reshape([B, C, h * p, w * p]);
}

/** `patch_embed` with its `proj` (weight (d, C, p, p), bias (d)). */
export class PatchEmbed extends Module {
  readonly proj: PatchProjection;
  constructor(readonly channels: number, readonly patch: number, readonly dim: number, init: Init = 0) {
    super(initDevice(init));
    this.proj = this.child('proj', new PatchProjection(channels, patch, dim, init));
  }

  /** tokens (B, N, C·p²) from patchify → (B, N, d) */
  forward(tokens: Tensor): Tensor {
    return this.proj.forward(tokens);
  }
}

/** Initialised like every Linear: trunc-normal 0.02 over the flattened (d, C·p²) weight, zero bias. */
class PatchProjection extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly #flat: [number, number];
  constructor(channels: number, patch: number, dim: number, init: Init) {
    super(initDevice(init));
    const shape = [dim, channels, patch, patch];
    this.#flat = [dim, channels * patch * patch];
    this.weight = this.parameter('weight', initRng(init).truncNormal(shape, 0.02), shape);
    this.bias = this.parameter('bias', new Float32Array(dim), [dim]);
  }

  forward(tokens: Tensor): Tensor {
    return linear(tokens, this.weight.reshape(this.#flat), this.bias);
  }
}
