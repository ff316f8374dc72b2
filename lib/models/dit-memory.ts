// The peak memory of a DiT training step (the diffusion loss included) and of an evaluation
// batch, from the config alone: the DiT counterpart of vit-memory.ts, with the same terms. What
// differs from a classifier: N tokens without cls, two modulations per block, each block's
// per-sample adaLN chunks, and the diffusion's own images (noise and x_t) around the model.
//
// Per image, in f32 values, with N tokens, width d, MLP ratio r, H heads, P = p²·C_out output
// values per token and C·H·W = I values per image:
//   block     per token: norm1 d + its mean and rstd 2, modulated d, qkv 3d, attention out
//             d + its log-sum-exp H, proj d, gated residual d, norm2 d + 2, modulated d,
//             fc1 r·d, gelu r·d, fc2 d, gated residual d  =  (12 + 2r)·d + 4 + H;
//             per image: SiLU(c) d, the Linear's 6d and its six chunks 6d  =  13d
//   trunk     the images, ε and x_t 3I; patchified N·p²C, embedded N·d, position sum N·d;
//             frequencies 256, the time MLP 3d, the label row d, c d; final layer: SiLU(c) d,
//             its Linear 2d and chunks 2d, norm N·(d + 2), modulated N·d, Linear N·P, unpatchified N·P
//   backward  one block's gradients in flight, as vit-memory.ts counts them
// Mixed precision also keeps the bf16 copies vit-memory.ts counts: (7 + r)·d·2 bytes a token.
// Recomputation as vit-memory.ts counts it (blockBytes), where 'mlp' also drops the two modulated
// copies (2d) and 'block' the per-image adaLN values, which the backward rebuilds one block at a time.
import type { Recompute } from '../nn/forward.js';
import { checkDitConfig, ditOutputChannels, ditParameterCount, timestepFrequencyDim, type DitConfig } from './dit.js';
import { activationsPerToken, blockBytes, checkBatch, mlpSegmentBytes, stepMemory, weightCopyBytes, type TrainingMemory, type TrainingMemoryOptions } from './vit-memory.js';

const F32 = 4;

/** Bytes one adaLN block keeps per token for the backward: a ViT block's and the two modulations. */
export function ditActivationsPerToken(config: Pick<DitConfig, 'dim' | 'heads' | 'mlpRatio'>, precision: 'f32' | 'mixed' = 'f32'): number {
  return activationsPerToken(config, precision) + 2 * config.dim * F32;
}

/** The trunk's f32 values per image (see the header). */
function trunkValues(config: DitConfig): number {
  const [h, w] = checkDitConfig(config);
  const { dim: d, patch: p, channels: C } = config;
  const N = h * w, I = C * N * p * p, P = p * p * ditOutputChannels(config);
  return 3 * I + N * p * p * C + 2 * N * d + timestepFrequencyDim + 5 * d + 5 * d + N * (d + 2) + N * d + 2 * N * P;
}

/** The per-image adaLN values of the blocks: SiLU(c), the Linear's 6d and its six chunks, each block. */
const adaLNValues = (config: DitConfig) => config.depth * 13 * config.dim;

/** An adaLN block's blockBytes per token. */
function ditBlockBytes(config: DitConfig, precision: 'f32' | 'mixed', recompute: Recompute) {
  return blockBytes(recompute, ditActivationsPerToken(config, precision), mlpSegmentBytes(config, precision, true), config.dim * F32);
}

/** A DiT training step's peak for `config` at `batch` images (tokens: N, no cls). */
export function estimateDitTrainingMemory(config: DitConfig, options: TrainingMemoryOptions): TrainingMemory {
  const { batch: B, precision = 'f32', ema = false, recompute = 'none' } = options;
  checkBatch('estimateDitTrainingMemory', B);
  const [h, w] = checkDitConfig(config);
  const N = h * w, d = config.dim;
  const block = ditBlockBytes(config, precision, recompute);
  // 'block' keeps no adaLN values: the backward rebuilds one block's.
  const adaLN = recompute === 'block' ? (config.depth ? 13 * d : 0) : adaLNValues(config);
  const weights = weightCopyBytes(config, precision, recompute);
  const activations = B * (N * (config.depth * block.kept + (config.depth ? block.rebuilt : 0)) + (adaLN + trunkValues(config)) * F32)
    + config.depth * weights.kept + (config.depth ? weights.rebuilt : 0);
  const backward = B * N * (2 * Math.round(d * config.mlpRatio) + 6 * d) * F32;
  return stepMemory(ditParameterCount(config), { activations, backward, ema, tokens: N });
}

/**
 * An evaluation batch's activations (the held-out diffusion loss, no gradients): the trunk, and
 * one block's tensors with the stream it read (runBlocks frees each block's once its output exists).
 */
export function estimateDitInferenceMemory(config: DitConfig, options: Omit<TrainingMemoryOptions, 'ema'>): number {
  const { batch: B, precision = 'f32' } = options;
  checkBatch('estimateDitInferenceMemory', B);
  const [h, w] = checkDitConfig(config);
  return B * (h * w * (ditActivationsPerToken(config, precision) + config.dim * F32) + (13 * config.dim + trunkValues(config)) * F32);
}
