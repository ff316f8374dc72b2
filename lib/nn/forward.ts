// What one forward pass needs besides its inputs, passed down the module tree with the call:
// the run's precision and the Philox stream of its random draws (drop path today; masking and
// diffusion noise later). Nothing here is process-wide: two models in one process can run at
// different precisions.
import type { AttentionPrecision, GemmCompute } from '../ops/index.js';
import type { Tensor } from '../tensor.js';

/**
 * 'f32' throughout, or 'mixed' (torch.autocast's bf16, on either device: the GPU's tensor cores,
 * the CPU's AVX512-BF16 or AMX kernels, or exact f32 emulation where the CPU has neither): the blocks'
 * GEMMs (qkv, proj, fc1, fc2) on bf16 copies of their f32 operands with fp32 accumulation and
 * f32 outputs, attention in bf16 where a bf16 kernel exists for the head dim (BF16_HEAD_DIMS);
 * LayerNorm, GELU, softmax, losses, reductions, the embeddings and heads, and AdamW's master
 * weights and moments stay f32.
 */
export type Precision = 'f32' | 'mixed';

/**
 * A Philox (seed, offset) stream. A forward takes consecutive offsets from `offset` for its
 * draws, so a training step passes { seed, offset: step } and replays exactly.
 */
export interface RandomStream {
  seed: number;
  offset: number;
}

/**
 * The purposes that draw random numbers in a training step, each with its own stream. The
 * numbers are part of every saved run's identity: never renumber them, only add.
 */
const purposes = { dropPath: 0, mask: 1, timestep: 2, noise: 3, labelDrop: 4 } as const;
export type RandomPurpose = keyof typeof purposes;

/** Seeds are below 2^32: the key's high 32 bits tell the purposes apart. */
export const maxSeed = 2 ** 32 - 1;

/**
 * The stream of one purpose within a step's stream: the same offset under the Philox key
 * seed + purpose·2^32, so two purposes never share numbers, whatever offsets each takes.
 * Drop path (purpose 0) is the step's stream itself, drawn by BlockStack at offsets
 * 2·depth·step + 2i; MAE's masking, diffusion's timesteps and noise, and label dropping each
 * take substream(random, purpose) and may use offsets from random.offset on as they like.
 */
export function substream(random: RandomStream, purpose: RandomPurpose): RandomStream {
  if (!Number.isInteger(random.seed) || random.seed < 0 || random.seed > maxSeed)
    throw new RangeError(`substream: 'seed' must be an integer in [0, 2^32), got ${String(random.seed)}`);
  if (!(purpose in purposes)) throw new TypeError(`substream: 'purpose' must be one of ${Object.keys(purposes).join(', ')}, got ${JSON.stringify(purpose)}`);
  return { seed: random.seed + purposes[purpose] * 2 ** 32, offset: random.offset };
}

/**
 * What a training forward recomputes in the backward instead of keeping (activation
 * recomputation, torch.utils.checkpoint): 'none'; 'mlp', the LayerNorm outputs and the MLP's
 * GELU input (each block's norm1 → qkv and norm2 → fc1 → GELU rerun in the backward: about a third
 * of a block's activations for the qkv and fc1 GEMMs again); 'block', everything but each block's
 * input (the whole block's forward again). The gradients are the same bit for bit on the CPU.
 */
export type Recompute = 'none' | 'mlp' | 'block';
export const RECOMPUTE_MODES: readonly Recompute[] = ['none', 'mlp', 'block'];

export interface ForwardOptions {
  /** Default 'f32'. */
  precision?: Precision;
  /** Needed by a training forward that draws (drop path > 0). */
  random?: RandomStream;
  /** Default 'none'; only a forward that records gradients recomputes. */
  recompute?: Recompute;
}

/** Checks a recompute mode and returns it. */
export function checkRecompute(recompute: unknown): Recompute {
  if (!RECOMPUTE_MODES.includes(recompute as Recompute)) throw new TypeError(`recompute must be "none", "mlp" or "block", got ${JSON.stringify(recompute)}`);
  return recompute as Recompute;
}

/** Checks a run's precision and returns it. Both devices run both precisions. */
export function checkPrecision(precision: unknown): Precision {
  if (precision !== 'f32' && precision !== 'mixed') throw new TypeError(`precision must be "f32" or "mixed", got ${JSON.stringify(precision)}`);
  return precision;
}

/** The head dims the bf16 attention kernels are built for, on both devices (native/cuda/attention_bf16_d*.cu, native/cpu/attention_bf16.cc). */
export const BF16_HEAD_DIMS: readonly number[] = [16, 32, 64, 128];

/**
 * The attention kernels' dtype under a run's precision for heads of `headDim`: under 'mixed',
 * bf16 where a bf16 kernel exists and f32 otherwise, as autocast runs an op without a bf16
 * kernel in f32 (a tiny model with 8-wide heads still trains in mixed precision).
 */
export function attentionPrecision(precision: Precision | undefined, headDim: number): AttentionPrecision {
  return precision === 'mixed' && BF16_HEAD_DIMS.includes(headDim) ? 'bf16' : 'f32';
}

/**
 * Under 'mixed', releases (Tensor.release) f32 activations whose readers are all done and kept
 * bf16 copies for their backward: the blocks' LayerNorm (or modulated) outputs after their GEMM,
 * the GELU output after fc2, qkv after bf16 attention, attention's output after proj. The
 * gradients are unchanged (no backward reads them); the step holds ~(6 + r)·d f32 values a token
 * and block fewer. Only for tensors the caller made and no one else reads.
 */
export function releaseUnderMixed(precision: Precision | undefined, ...tensors: Tensor[]): void {
  if (precision === 'mixed') for (const t of tensors) t.release();
}

/** The blocks' GEMMs' operand type under a run's precision: bf16 under 'mixed'. */
export const gemmCompute = (precision: Precision | undefined): GemmCompute => (precision === 'mixed' ? 'bf16' : 'f32');
