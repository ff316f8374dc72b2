// The peak memory of an MAE training step and of an evaluation batch, from the config alone
// (the MAE counterpart of vit-memory.ts, with the same per-block terms). What differs from a
// classifier is where the tokens go: the encoder's blocks see only the K + 1 kept tokens
// (K = int(N·(1 − r)), cls included), the decoder's blocks all N + 1, at their own width.
//
// Per image, in f32 values, with N tokens of P = p²·C values, encoder width d, decoder width dd:
//   trunk     images and their patchify N·P each, patch embed and position sum 2N·d, the kept
//             tokens K·d, [cls; kept] (K + 1)·d, encoder norm (K + 1)·(d + 2);
//             decoder embed (K + 1)·dd, [mask token; cls; kept] (K + 2)·dd, un-shuffled and
//             position sum 2(N + 1)·dd, cls dropped N·dd, decoder norm N·(dd + 2),
//             prediction and the loss's difference 2N·P, the mask N
//   blocks    (K + 1)·depth·perToken(d) + (N + 1)·decoderDepth·perToken(dd), where with
//             recomputation perToken is what a block keeps (vit-memory.ts, blockBytes), plus what
//             the backward rebuilds for one block of the larger stack
//   backward  one block's gradients in flight, of the larger of the two stacks
import { maeParameterCount, keptTokens, checkMaeConfig, type MaeConfig } from './mae.js';
import { activationsPerToken, checkBatch, stepMemory, vitBlockBytes, weightCopyBytes, type TrainingMemory, type TrainingMemoryOptions } from './vit-memory.js';

const F32 = 4;

/** Tokens the two halves run on: the encoder's K + 1, the decoder's N + 1. */
export function maeTokens(config: MaeConfig): { encoder: number; decoder: number } {
  const [h, w] = checkMaeConfig(config);
  const N = h * w;
  return { encoder: keptTokens(N, config.maskRatio) + 1, decoder: N + 1 };
}

/** The trunk's f32 values per image (see the header). */
function trunkValues(config: MaeConfig): number {
  const { dim: d, decoderDim: dd, patch: p, channels: C } = config;
  const { encoder: Le, decoder: Ld } = maeTokens(config);
  const N = Ld - 1, K = Le - 1, P = p * p * C;
  return 2 * N * P + 2 * N * d + K * d + Le * d + Le * (d + 2)
    + Le * dd + (K + 2) * dd + 2 * Ld * dd + N * dd + N * (dd + 2) + 2 * N * P + N;
}

const decoderShape = (c: MaeConfig) => ({ dim: c.decoderDim, heads: c.decoderHeads, mlpRatio: c.mlpRatio });

/** An MAE training step's peak for `config` at `batch` images; `tokens` is the decoder's N + 1. */
export function estimateMaeTrainingMemory(config: MaeConfig, options: TrainingMemoryOptions): TrainingMemory {
  const { batch: B, precision = 'f32', ema = false, recompute = 'none' } = options;
  checkBatch('estimateMaeTrainingMemory', B);
  const { encoder: Le, decoder: Ld } = maeTokens(config);
  const encoder = vitBlockBytes(config, precision, recompute), decoder = vitBlockBytes(decoderShape(config), precision, recompute);
  const blocks = Le * config.depth * encoder.kept + Ld * config.decoderDepth * decoder.kept
    + Math.max(config.depth ? Le * encoder.rebuilt : 0, config.decoderDepth ? Ld * decoder.rebuilt : 0);
  const ew = weightCopyBytes(config, precision, recompute), dw = weightCopyBytes(decoderShape(config), precision, recompute);
  const weights = config.depth * ew.kept + config.decoderDepth * dw.kept + Math.max(config.depth ? ew.rebuilt : 0, config.decoderDepth ? dw.rebuilt : 0);
  const activations = B * (blocks + trunkValues(config) * F32) + weights;
  const inFlight = (L: number, d: number) => L * (2 * Math.round(d * config.mlpRatio) + 6 * d) * F32;
  const backward = B * Math.max(inFlight(Le, config.dim), inFlight(Ld, config.decoderDim));
  return stepMemory(maeParameterCount(config), { activations, backward, ema, tokens: Ld });
}

/**
 * An evaluation batch's activations (no gradients): the trunk, and the larger of one encoder
 * block and one decoder block with the stream it read (BlockStack frees each block's tensors).
 */
export function estimateMaeInferenceMemory(config: MaeConfig, options: Omit<TrainingMemoryOptions, 'ema'>): number {
  const { batch: B, precision = 'f32' } = options;
  checkBatch('estimateMaeInferenceMemory', B);
  const { encoder: Le, decoder: Ld } = maeTokens(config);
  const block = Math.max(Le * (activationsPerToken(config, precision) + config.dim * F32),
    Ld * (activationsPerToken(decoderShape(config), precision) + config.decoderDim * F32));
  return B * (block + trunkValues(config) * F32);
}
