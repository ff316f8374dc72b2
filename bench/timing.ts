// Timing for benchmarks: warm-up, then repeats until a time budget or a count is reached;
// the median is reported. CPU ops are synchronous, so the host clock brackets them exactly;
// on the GPU each sample is bracketed by device events on the stream (the launches are queued,
// the events measure the GPU's time). A call shorter than a millisecond is repeated k times
// per sample (k ≤ 1000, enough for ~1 ms) and the sample divided by k, so the clock's and the
// launch's fixed costs (microseconds) do not weigh on short kernels. The timed function
// receives the call index, so a benchmark can rotate through several input sets and keep
// caches from flattering it.
import { native } from '../lib/native.js';
import type { Device } from '../lib/tensor.js';

export interface Timing {
  medianMs: number;
  minMs: number;
  repeats: number;
}

export interface TimingOptions {
  device?: Device;
  warmup?: number;
  minRepeats?: number;
  maxRepeats?: number;
  /** Wall-clock budget for the repeats (after warm-up), ms. */
  budgetMs?: number;
}

export function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function timeIt(fn: (i: number) => void, options: TimingOptions = {}): Timing {
  const { device = 'cpu', warmup = 2, minRepeats = 5, maxRepeats = 200, budgetMs = 1500 } = options;
  const addon = native();
  let i = 0;
  for (; i < warmup; i++) fn(i);
  if (device === 'cuda') addon.synchronize('cuda');
  const sample = (k: number): number => {
    if (device === 'cuda') {
      addon.deviceTimerStart();
      for (let j = 0; j < k; j++) fn(i++);
      return addon.deviceTimerStop() / k;
    }
    const t0 = performance.now();
    for (let j = 0; j < k; j++) fn(i++);
    return (performance.now() - t0) / k;
  };
  const first = sample(1);
  const k = first >= 1 ? 1 : Math.min(1000, Math.ceil(1 / Math.max(first, 1e-3)));
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < minRepeats || (samples.length < maxRepeats && performance.now() - start < budgetMs)) samples.push(sample(k));
  samples.sort((a, b) => a - b);
  return { medianMs: median(samples), minMs: samples[0]!, repeats: samples.length };
}

/**
 * How many input sets to rotate through so that together they exceed what the caches hold:
 * twice the last-level cache (taken as 64 MiB on CPU, 128 MiB on GPU: an H100's L2 is 50 MB),
 * at most `max` sets, and at least one.
 */
export function rotationCount(bytesPerSet: number, device: Device, max = 4): number {
  const cache = (device === 'cuda' ? 128 : 64) * 2 ** 20;
  return Math.max(1, Math.min(max, Math.ceil((2 * cache) / Math.max(1, bytesPerSet))));
}
