// The peak memory of one training step of a ViT/PiT, estimated from its config alone, before
// anything is built: what the runner checks against the device so that `--depth 1000000000`
// or `--image-size 100000` is refused in milliseconds instead of dying after minutes.
//
// What a step holds at its peak (the end of the backward, before tidy() frees the graph):
//   state        parameters P, their gradients P, AdamW's m and v 2P, the EMA P (when on): f32
//   activations  every tensor the forward made, kept alive by the step's tidy() until the
//                backward ends, per token and per block, times B·(N + 1) tokens and depth;
//   backward     the gradients in flight: about one block's worth, plus the trunk's
// Activations per token per block, in f32 values, for width d, MLP ratio r and H heads:
//   norm1 d + its mean and rstd 2, qkv 3d, attention out d + its log-sum-exp H, proj d,
//   residual d, norm2 d + 2, fc1 r·d, gelu r·d, fc2 d, residual d  =  (10 + 2r)·d + 4 + H
// Mixed precision also keeps bf16 copies of qkv and of the attention output (4d) and of the four
// GEMMs' inputs (qkv's d, proj's d, fc1's d, fc2's r·d): (7 + r)·d·2 bytes, and per block (not per
// token) the bf16 copies of the four weights, (4 + 2r)·d² values of 2 bytes (weightCopyBytes).
// It releases the f32 tensors only those copies are read from (nn/forward.ts, releaseUnderMixed):
// norm1's and norm2's outputs, the attention output and the GELU output, (3 + r)·d, and qkv, 3d,
// where the bf16 attention kernel runs (the head dim is one of BF16_HEAD_DIMS).
// With recomputation (nn/forward.ts, Recompute) a block keeps less and rebuilds it in the backward,
// one block (or segment) at a time (blockBytes):
//   mlp    drops norm1's and norm2's outputs with their statistics and fc1's output, (2 + r)·d + 4
//          f32 values, and under mixed precision the bf16 copies qkv and fc1 read, 2d bf16 values;
//          the backward rebuilds one segment at a time, the larger norm2 → fc1 → GELU: its
//          dropped (1 + r)·d + 2 and a second GELU output r·d (and fc1's bf16 input d)
//   block  keeps only its input, d f32 values; the backward rebuilds one whole block and its output
import { BF16_HEAD_DIMS, type Recompute } from '../nn/forward.js';
import { parameterCount, tokenGrid, type VitConfig } from './vit.js';

const F32 = 4, BF16 = 2;

export interface TrainingMemoryOptions {
  batch: number;
  /** 'f32' (default) or 'mixed' (bf16 copies of the attention and GEMM operands kept for the backward). */
  precision?: 'f32' | 'mixed';
  /** An EMA of the weights is kept (one more copy of the parameters). */
  ema?: boolean;
  /** What the backward recomputes instead of keeping (default 'none'). */
  recompute?: Recompute;
}

/** Bytes of one training step at its peak, by what holds them. */
export interface TrainingMemory {
  parameters: number;
  gradients: number;
  /** AdamW's first and second moments. */
  optimizer: number;
  ema: number;
  /** Tensors the forward keeps for the backward (blocks and trunk), and the images. */
  activations: number;
  /** Gradients in flight during the backward. */
  backward: number;
  total: number;
  /** For messages: tokens per image (N + 1 with cls) and the parameter count. */
  tokens: number;
  parameterCount: number;
}

/** Throws unless `batch` is a positive integer; `op` names the estimate. */
export function checkBatch(op: string, batch: number): void {
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`${op}: 'batch' must be a positive integer, got ${String(batch)}`);
}

/**
 * A training step's memory from its parts: `parameterCount` f32 weights, as many gradients, two
 * AdamW moments and (with `ema`) one more copy, beside the step's activations and backward.
 */
export function stepMemory(parameterCount: number, step: { activations: number; backward: number; ema: boolean; tokens: number }): TrainingMemory {
  const parameters = parameterCount * F32;
  const parts = { parameters, gradients: parameters, optimizer: 2 * parameters, ema: step.ema ? parameters : 0, activations: step.activations, backward: step.backward };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return { ...parts, total, tokens: step.tokens, parameterCount };
}

/** f32 values one block keeps per token for the backward (see the header). */
export function activationsPerToken(config: Pick<VitConfig, 'dim' | 'heads' | 'mlpRatio'>, precision: 'f32' | 'mixed' = 'f32'): number {
  const { dim: d, heads: H } = config;
  const r = Math.round(d * config.mlpRatio) / d;
  const f32 = (10 + 2 * r) * d + 4 + H;
  if (precision !== 'mixed') return f32 * F32;
  const released = (3 + r + (BF16_HEAD_DIMS.includes(d / H) ? 3 : 0)) * d;
  return (f32 - released) * F32 + (7 + r) * d * BF16;
}

/**
 * Bytes per token one block keeps from its forward to its backward under `recompute`, and the
 * most the backward rebuilds at once: `full` is what it keeps without recomputation, `mlp`
 * what the 'mlp' segments drop and rebuild (mlpSegmentBytes), `input` the block's input.
 */
export function blockBytes(recompute: Recompute, full: number, mlp: { dropped: number; rebuilt: number }, input: number): { kept: number; rebuilt: number } {
  if (recompute === 'block') return { kept: input, rebuilt: full + input };
  if (recompute === 'mlp') return { kept: full - mlp.dropped, rebuilt: mlp.rebuilt };
  return { kept: full, rebuilt: 0 };
}

/**
 * Bytes per token the 'mlp' segments of a block do not keep, and the most one of them rebuilds
 * (see the header); `modulated` adds DiT's modulated copies, one per segment.
 */
export function mlpSegmentBytes(config: Pick<VitConfig, 'dim' | 'mlpRatio'>, precision: 'f32' | 'mixed' = 'f32', modulated = false): { dropped: number; rebuilt: number } {
  const d = config.dim, r = Math.round(d * config.mlpRatio) / d, m = modulated ? 1 : 0;
  const mixed = precision === 'mixed' ? 1 : 0;
  // Under mixed the two GEMM inputs (LayerNorm or modulated outputs) are released anyway: not dropped here.
  return {
    dropped: ((2 + r + 2 * m - 2 * mixed) * d + 4) * F32 + mixed * 2 * d * BF16,
    rebuilt: ((1 + 2 * r + m) * d + 2) * F32 + mixed * d * BF16,
  };
}

/**
 * Bytes per block of the bf16 weight copies mixed precision's GEMMs keep for the backward, qkv's
 * 3d², proj's d², fc1's and fc2's r·d²: 'mlp' drops qkv's and fc1's (rebuilt one at a time),
 * 'block' all four (rebuilt for one block at a time). None in f32.
 */
export function weightCopyBytes(config: Pick<VitConfig, 'dim' | 'mlpRatio'>, precision: 'f32' | 'mixed' = 'f32', recompute: Recompute = 'none'): { kept: number; rebuilt: number } {
  if (precision !== 'mixed') return { kept: 0, rebuilt: 0 };
  const d = config.dim, hidden = Math.round(d * config.mlpRatio);
  const qkv = 3 * d * d, proj = d * d, fc = hidden * d;
  if (recompute === 'block') return { kept: 0, rebuilt: (qkv + proj + 2 * fc) * BF16 };
  if (recompute === 'mlp') return { kept: (proj + fc) * BF16, rebuilt: Math.max(qkv, fc) * BF16 };
  return { kept: (qkv + proj + 2 * fc) * BF16, rebuilt: 0 };
}

/** A ViT/PiT block's blockBytes. */
export function vitBlockBytes(config: Pick<VitConfig, 'dim' | 'heads' | 'mlpRatio'>, precision: 'f32' | 'mixed' = 'f32', recompute: Recompute = 'none') {
  return blockBytes(recompute, activationsPerToken(config, precision), mlpSegmentBytes(config, precision), config.dim * F32);
}

/**
 * The trunk's tensors of a forward at `batch` images: the images C·p² per patch and their
 * patchified copy, the patch embedding N·d, [cls; patches] and the position sum 2·L·d, the
 * pooled slice N·d, then per image the head's few vectors.
 */
function trunkBytes(config: VitConfig, batch: number): number {
  const [h, w] = tokenGrid(config);
  const { dim: d, channels: C, patch: p, classes: K } = config;
  const N = h * w, L = N + 1;
  return batch * (2 * N * C * p * p + N * d + 2 * L * d + N * d + 4 * d + 2 * K) * F32;
}

/**
 * The activations of a forward without gradients (an evaluation batch) at its peak: the trunk,
 * and inside the block being run its own tensors plus the residual stream it read (BlockStack
 * frees each block's intermediates once its output exists, so depth does not multiply).
 */
export function estimateInferenceMemory(config: VitConfig, options: Omit<TrainingMemoryOptions, 'ema'>): number {
  const { batch: B, precision = 'f32' } = options;
  checkBatch('estimateInferenceMemory', B);
  const [h, w] = tokenGrid(config);
  const L = h * w + 1;
  return B * L * (activationsPerToken(config, precision) + config.dim * F32) + trunkBytes(config, B);
}

/** The training step's peak memory for `config` at `batch` images (see the header for the terms). */
export function estimateTrainingMemory(config: VitConfig, options: TrainingMemoryOptions): TrainingMemory {
  const { batch: B, precision = 'f32', ema = false, recompute = 'none' } = options;
  checkBatch('estimateTrainingMemory', B);
  const [h, w] = tokenGrid(config);
  const { dim: d, depth } = config;
  const N = h * w, L = N + 1, hidden = Math.round(d * config.mlpRatio);
  const P = parameterCount(config);
  const block = vitBlockBytes(config, precision, recompute), weights = weightCopyBytes(config, precision, recompute);
  const activations = B * L * (depth * block.kept + (depth ? block.rebuilt : 0)) + depth * weights.kept + (depth ? weights.rebuilt : 0) + trunkBytes(config, B);
  // In flight at once: the gradients of a block's widest tensors (MLP hidden twice, the
  // residual stream and qkv) and of the trunk's (B, L, d) stream.
  const backward = B * L * (2 * hidden + 3 * d + 3 * d) * F32;
  return stepMemory(P, { activations, backward, ema, tokens: L });
}
