// A run's memory, checked before anything is loaded or built: a task estimates what its run
// will hold (Task.estimate), the runner compares it with what the machine has and refuses,
// naming the flags that drive each part, what cannot fit. Without it `--depth 1000000000`
// ran for 453 s before V8 died of "heap out of memory", and `--image-size 600` ended in
// "Array buffer allocation failed".
import { totalmem } from 'node:os';
import { native } from '../native.js';
import type { Recompute } from '../nn/forward.js';
import type { Device } from '../tensor.js';
import { imageDataBytes, type ImageDataSize } from './data.js';

/** One thing a run holds: what it is, its bytes and the recipe keys that make it grow. */
export interface MemoryPart {
  what: string;
  bytes: number;
  keys: readonly string[];
  /** Another way to make it smaller than lowering `keys`, said after them. */
  hint?: string;
}

/** A count for a memory message: 12,345, or 1.23e+12 past a trillion. */
export const formatCount = (n: number): string => (n < 1e12 ? n.toLocaleString('en-US') : n.toExponential(2));

/** The training state every task's run holds: weights, their gradients, AdamW's moments and the EMA. */
export function trainingStatePart(
  train: { parameterCount: number; parameters: number; gradients: number; optimizer: number; ema: number },
  ema: boolean, keys: readonly string[],
): MemoryPart {
  return {
    what: `${formatCount(train.parameterCount)} parameters with their gradients, AdamW moments${ema ? ' and EMA' : ''}`,
    bytes: train.parameters + train.gradients + train.optimizer + train.ema, keys,
  };
}

/**
 * The larger of a training step's activations (with the gradients in flight) and an evaluation
 * batch's, as one part: `describe(evaluation)` says what the larger is, `keys` the recipe keys
 * that make it grow besides its batch size (batchSize or evalBatchSize, added here).
 */
export function activationsPart(train: { activations: number; backward: number }, evaluation: number,
  describe: (evaluation: boolean) => string, keys: readonly string[], recompute: Recompute = 'none'): MemoryPart {
  const evalWins = evaluation > train.activations + train.backward;
  return {
    what: describe(evalWins), bytes: evalWins ? evaluation : train.activations + train.backward, keys: [evalWins ? 'evalBatchSize' : 'batchSize', ...keys],
    ...(!evalWins && recompute !== 'block' ? { hint: `--recompute ${recompute === 'none' ? 'mlp or block' : 'block'} keeps fewer activations for the same gradients` } : {}),
  };
}

/** The host part of an image-data run: its loaded images (lib/train/data.ts). */
export function imagesPart(data: ImageDataSize): MemoryPart {
  return { what: `${formatCount(data.trainImages + data.testImages)} images of ${data.channels}×${data.height}×${data.width}`, bytes: imageDataBytes(data), keys: ['imageSize'] };
}

/** A run's estimated peak: on its device (model, optimizer, activations) and on the host (the images). */
export interface RunMemory {
  device: MemoryPart[];
  host: MemoryPart[];
}

/** Bytes as "1.5 GiB" ("8.0e+12 TiB" past the units). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n >= 1e6 ? n.toExponential(1) : n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/**
 * The memory a run on `device` may use: the GPU's total on cuda (unknown: no limit, rather than
 * refusing every run), on cpu the machine's RAM or the container's limit (cgroup), the smaller.
 */
export function memoryLimit(device: Device): number {
  if (device === 'cuda') return native().memory().cuda?.total || Infinity;
  return hostMemory();
}

export function hostMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  return constrained > 0 ? Math.min(constrained, totalmem()) : totalmem();
}

const sum = (parts: readonly MemoryPart[]) => parts.reduce((s, p) => s + p.bytes, 0);

/**
 * Throws a RangeError when `estimate` cannot fit: the device parts in the device's memory, the
 * host parts (plus the device parts on cpu, where they share the RAM) in the machine's.
 * `flag(key)` names a recipe key as the user typed it (the CLI flag).
 */
export function checkRunMemory(estimate: RunMemory, device: Device, flag: (key: string) => string, limits = { device: memoryLimit(device), host: hostMemory() }): void {
  const onHost = device === 'cpu' ? [...estimate.device, ...estimate.host] : estimate.host;
  const checks = device === 'cpu'
    ? [{ where: 'cpu memory (RAM)', parts: onHost, limit: limits.host }]
    : [{ where: `${device} memory`, parts: estimate.device, limit: limits.device }, { where: 'host memory (RAM)', parts: onHost, limit: limits.host }];
  for (const { where, parts, limit } of checks) {
    const total = sum(parts);
    if (total <= limit) continue;
    const detail = [...parts].sort((a, b) => b.bytes - a.bytes).filter((p) => p.bytes > 0)
      .map((p) => `${formatBytes(p.bytes)} for ${p.what} (${[...new Set(p.keys.map(flag))].join(', ')})`).join('; ');
    const hints = parts.flatMap((p) => (p.hint ? [` (${p.hint})`] : [])).join('');
    throw new RangeError(`memory: this run needs an estimated ${formatBytes(total)} of ${where}, more than the ${formatBytes(limit)} there is: ${detail}. Lower the flags named${hints}.`);
  }
}
