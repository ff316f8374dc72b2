// Timing for benchmarks: warm-up, then repeats until a time budget or a count is reached;
// the median is reported. CPU ops are synchronous, so a host clock brackets them exactly.
export interface Timing {
  medianMs: number;
  minMs: number;
  repeats: number;
}

export function timeIt(fn: () => void, options: { warmup?: number; minRepeats?: number; maxRepeats?: number; budgetMs?: number } = {}): Timing {
  const { warmup = 2, minRepeats = 5, maxRepeats = 200, budgetMs = 1500 } = options;
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < minRepeats || (samples.length < maxRepeats && performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  const medianMs = samples.length % 2 ? samples[mid]! : (samples[mid - 1]! + samples[mid]!) / 2;
  return { medianMs, minMs: samples[0]!, repeats: samples.length };
}
