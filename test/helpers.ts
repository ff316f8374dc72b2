// Shared test helpers: seeded random data, float64 comparison, finite differences.
// Tests compare native ops with float64 references written in the test files.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { AdamW, backward, memory, noGrad, resetPeakMemory, tensor, tidy, type Dataset, type Module, type Tensor } from '../lib/index.js';

/** A small seeded generator (mulberry32) for test inputs; separate from the library's Philox. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let nextSeed = 1234;
/** Fresh normal(0, std) values in a Float64Array (a new seed each call, so inputs differ). */
export function randomNormal(n: number, std = 1, seed = nextSeed++): Float64Array {
  const r = rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = 1 - r(), u2 = r();
    const radius = Math.sqrt(-2 * Math.log(u1));
    out[i] = std * radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = std * radius * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/** Random values rounded to f32, so the float64 reference sees exactly the tensor's inputs. */
export function randomF32(n: number, std = 1): Float64Array {
  return Float64Array.from(Float32Array.from(randomNormal(n, std)));
}

const bf16F32 = new Float32Array(1);
const bf16U32 = new Uint32Array(bf16F32.buffer);
/** x rounded to bf16 (through f32, to nearest even; NaN stays NaN), as a number: what a bf16 tensor holds. */
export function roundBf16(x: number): number {
  bf16F32[0] = x;
  const bits = bf16U32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return Number.NaN;
  bf16U32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0) & 0xffff0000;
  return bf16F32[0]!;
}

/** An f32 tensor from float64 values (rounded once). */
export function t32(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false): Tensor {
  return tensor(Float32Array.from(values), shape, { requiresGrad });
}

export const prod = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  label?: string;
  /** Skip entries whose expectation is NaN (finite differences probed only some). */
  probedOnly?: boolean;
}

/**
 * Passes when every |actual − expected| ≤ atol + rtol·|expected| (and no NaN appears).
 * Reports the first mismatches (at most ten) and the worst error.
 */
export function assertClose(t: ExecutionContext, actual: ArrayLike<number>, expected: ArrayLike<number>, options: CloseOptions = {}): void {
  const { atol = 1e-5, rtol = 1e-5, label = 'values', probedOnly = false } = options;
  if (actual.length !== expected.length) {
    t.fail(`${label}: length ${actual.length}, expected ${expected.length}`);
    return;
  }
  const bad: string[] = [];
  let worst = 0, worstAt = -1, failures = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (probedOnly && Number.isNaN(e)) continue;
    const err = Math.abs(a - e);
    const ok = err <= atol + rtol * Math.abs(e) && !Number.isNaN(a) === !Number.isNaN(e);
    if (!(err <= worst) || Number.isNaN(err)) {
      worst = err;
      worstAt = i;
    }
    if (!ok) {
      failures++;
      if (bad.length < 10) bad.push(`  [${i}] got ${a}, expected ${e} (err ${err.toExponential(2)})`);
    }
  }
  if (failures) t.fail(`${label}: ${failures}/${actual.length} outside atol ${atol} + rtol ${rtol}; worst ${worst} at ${worstAt}\n${bad.join('\n')}`);
  else t.pass();
}

/** max |a − b| / max |b|: a scale-free error summary. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < expected.length; i++) {
    num = Math.max(num, Math.abs(actual[i]! - expected[i]!));
    den = Math.max(den, Math.abs(expected[i]!));
  }
  return den === 0 ? num : num / den;
}

/**
 * `steps` AdamW steps (default 5; lr 1e-3, wd 0.05, β 0.9, 0.95) of `model` on `lossAt(step)`: the
 * losses and the last step's gradients, for CPU-vs-GPU parity. The model is disposed afterwards.
 */
export function adamWSteps(model: Module, lossAt: (step: number) => Tensor, steps = 5): { losses: number[]; grads: Map<string, Float32Array> } {
  const optimizer = new AdamW(model, { weightDecay: 0.05, betas: [0.9, 0.95] });
  const losses: number[] = [];
  const grads = new Map<string, Float32Array>();
  for (let step = 0; step < steps; step++) {
    tidy(() => {
      const loss = lossAt(step);
      losses.push(loss.item());
      backward(loss);
      if (step === steps - 1) for (const [name, p] of model.namedParameters()) grads.set(name, p.grad!.toArray() as Float32Array);
      optimizer.step(1e-3);
      optimizer.zeroGrad();
    });
  }
  optimizer.dispose();
  model.dispose();
  return { losses, grads };
}

/**
 * CPU-vs-GPU parity of fiveAdamWSteps' results: each GPU loss within lossTol of the CPU's
 * (relative), each gradient within gradTol of the CPU's in relativeGradientDifference (a number,
 * or one per parameter name).
 */
export function assertStepsClose(t: ExecutionContext, cpu: { losses: number[]; grads: Map<string, Float32Array> }, gpu: { losses: number[]; grads: Map<string, Float32Array> },
  lossTol: number, gradTol: number | ((name: string) => number)): void {
  cpu.losses.forEach((l, i) => t.true(Math.abs(gpu.losses[i]! - l) <= lossTol * Math.abs(l), `step ${i}: loss ${gpu.losses[i]} vs ${l}`));
  for (const [name, g] of cpu.grads) {
    const r = relativeGradientDifference(g, gpu.grads.get(name)!);
    t.true(r <= (typeof gradTol === 'number' ? gradTol : gradTol(name)), `${name}: relative gradient difference ${r}`);
  }
}

/** ‖h − g‖ / ‖g‖ (Euclidean): how far a gradient computed another way is from the reference g. */
export function relativeGradientDifference(g: ArrayLike<number>, h: ArrayLike<number>): number {
  let diff = 0, norm = 0;
  for (let i = 0; i < g.length; i++) {
    diff += (h[i]! - g[i]!) ** 2;
    norm += g[i]! ** 2;
  }
  return Math.sqrt(diff) / (Math.sqrt(norm) + 1e-30);
}

/** Up to `max` indices spread evenly over [0, n), always including the first and last. */
export function probeIndices(n: number, max: number): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  return [...new Set(Array.from({ length: max }, (_, k) => Math.round((k * (n - 1)) / (max - 1))))];
}

/**
 * Central finite differences of a scalar function of several float64 inputs, evaluated in
 * float64 by `f`. Returns ∂f/∂input for each input; with `maxProbes`, only that many entries
 * per input are probed and the rest are NaN (assertClose skips NaN expectations with
 * `probedOnly`).
 */
export function finiteDifferences(f: (inputs: Float64Array[]) => number, inputs: Float64Array[], h = 1e-3, maxProbes = Infinity): Float64Array[] {
  return inputs.map((x) => {
    const g = new Float64Array(x.length).fill(Number.NaN);
    for (const i of probeIndices(x.length, maxProbes)) {
      const saved = x[i]!;
      x[i] = saved + h;
      const up = f(inputs);
      x[i] = saved - h;
      const down = f(inputs);
      x[i] = saved;
      g[i] = (up - down) / (2 * h);
    }
    return g;
  });
}

/**
 * Gradients through the library's autograd of Σ (w ∘ f(inputs)) with fixed random weights w,
 * a scalar whose gradient exercises every output element. Returns the output and the grads.
 */
export function gradientsOf(
  f: (...inputs: Tensor[]) => Tensor,
  inputs: { values: ArrayLike<number>; shape: readonly number[] }[],
  weights?: Float64Array,
): { output: Float32Array; weights: Float64Array; grads: Float32Array[] } {
  return tidy(() => {
    const ts = inputs.map((x) => t32(x.values, x.shape, true));
    const out = f(...ts);
    const w = weights ?? randomF32(out.size);
    const output = out.toArray() as Float32Array;
    backward(out, t32(w, out.shape));
    return { output, weights: w, grads: ts.map((x) => x.grad!.toArray() as Float32Array) };
  });
}

/** Runs fn under noGrad and tidy, returning a plain array copy of its tensor result. */
export function run(fn: () => Tensor): Float32Array {
  return tidy(() => noGrad(() => fn().toArray() as Float32Array));
}

/** Attention sizes: batch, tokens, heads, head dim. */
export interface AttentionDims {
  B: number;
  L: number;
  H: number;
  D: number;
}
export const attentionLabel = ({ B, L, H, D }: AttentionDims) => `B=${B} L=${L} H=${H} D=${D}`;
/** Packed qkv (B, L, 3, H, D). */
export const qkvShape = ({ B, L, H, D }: AttentionDims) => [B, L, 3, H, D];

/**
 * Float64 attention on packed qkv (B, L, 3, H, D): out (B, L, H, D), lse (B, H, L) and, given
 * weights w on out, the gradient of Σ w ∘ out with respect to qkv.
 */
export function attentionReference({ B, L, H, D }: AttentionDims, qkv: ArrayLike<number>, w?: ArrayLike<number>) {
  const at = (b: number, l: number, part: number, h: number) => ((b * L + l) * 3 + part) * H * D + h * D;
  const row = (b: number, l: number, h: number) => ((b * L + l) * H + h) * D;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(B * L * H * D), lse = new Float64Array(B * H * L);
  const dqkv = w ? new Float64Array(B * L * 3 * H * D) : null;
  const p = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L; i++) {
        const q = at(b, i, 0, h);
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          const k = at(b, j, 1, h);
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[q + d]! * qkv[k + d]!;
          p[j] = s * scale;
          max = Math.max(max, p[j]!);
        }
        let sum = 0;
        for (let j = 0; j < L; j++) sum += Math.exp(p[j]! - max);
        lse[(b * H + h) * L + i] = max + Math.log(sum);
        for (let j = 0; j < L; j++) p[j] = Math.exp(p[j]! - max) / sum;
        const o = row(b, i, h);
        for (let j = 0; j < L; j++) {
          const v = at(b, j, 2, h);
          for (let d = 0; d < D; d++) out[o + d] += p[j]! * qkv[v + d]!;
        }
        if (!w || !dqkv) continue;
        // dS_j = P_j (dP_j - Σ_j' P_j' dP_j'), dP_j = w_i · v_j; dq += scale Σ dS_j k_j, etc.
        let di = 0;
        for (let d = 0; d < D; d++) di += w[o + d]! * out[o + d]!;
        for (let j = 0; j < L; j++) {
          const k = at(b, j, 1, h), v = at(b, j, 2, h);
          let dp = 0;
          for (let d = 0; d < D; d++) dp += w[o + d]! * qkv[v + d]!;
          const ds = p[j]! * (dp - di) * scale;
          for (let d = 0; d < D; d++) {
            dqkv[q + d] += ds * qkv[k + d]!;
            dqkv[k + d] += ds * qkv[q + d]!;
            dqkv[v + d] += p[j]! * w[o + d]!;
          }
        }
      }
  return { out, lse, dqkv };
}

/**
 * Where `actual` and a float64 reference disagree on finiteness (NaN and ±Inf alike): the
 * count and the first ten, described. Non-finite inputs must give non-finite outputs exactly
 * where the reference's math does (NaN in, NaN out), and finite values everywhere else.
 */
export function finitenessMismatches(actual: ArrayLike<number>, expected: ArrayLike<number>): { count: number; first: string[] } {
  if (actual.length !== expected.length) return { count: 1, first: [`length ${actual.length}, expected ${expected.length}`] };
  const first: string[] = [];
  let count = 0;
  for (let i = 0; i < actual.length; i++) {
    if (Number.isFinite(actual[i]!) === Number.isFinite(expected[i]!)) continue;
    count++;
    if (first.length < 10) first.push(`[${i}] got ${actual[i]}, reference ${expected[i]}`);
  }
  return { count, first };
}

/** Passes when `actual` is non-finite exactly where `expected` is (see finitenessMismatches). */
export function assertSameFiniteness(t: ExecutionContext, actual: ArrayLike<number>, expected: ArrayLike<number>, label = 'values'): void {
  const { count, first } = finitenessMismatches(actual, expected);
  if (count) t.fail(`${label}: ${count}/${actual.length} differ in finiteness from the float64 reference\n  ${first.join('\n  ')}`);
  else t.pass();
}

/** The non-finite values every op is fed: one of each, and all three at once. */
export const NON_FINITE = [Number.NaN, Infinity, -Infinity] as const;

/**
 * Checks a memory estimate against the measured peak: within [0.85, 1.25]× (never more than a
 * quarter too cautious, and a term left out shows). Adds the row to `rows` for the test's log.
 */
export function expectEstimateWithin(t: ExecutionContext, rows: string[], label: string, measured: number, estimate: number): void {
  const ratio = estimate / measured;
  rows.push(`${label}: measured ${measured}, estimated ${estimate}, ratio ${ratio.toFixed(3)}`);
  t.true(ratio >= 0.85 && ratio <= 1.25, rows.at(-1));
}

/** Bytes at the CPU's peak while `fn` runs, above what was live before it. */
export function cpuPeakOf(fn: () => void): number {
  const before = memory().cpu.bytes;
  resetPeakMemory();
  fn();
  return memory().cpu.peakBytes - before;
}

/** n synthetic images (sin of the index) with labels i % classes, mean 0 and std 1 per channel. */
export function syntheticImages(n: number, channels: number, side: number, classes: number): Dataset {
  return {
    images: Float32Array.from({ length: n * channels * side * side }, (_, i) => Math.sin(i)), labels: Int32Array.from({ length: n }, (_, i) => i % classes),
    n, channels, height: side, width: side, classes, name: 'synthetic', mean: new Float32Array(channels), std: new Float32Array(channels).fill(1),
  };
}

/** The built `pit` CLI (dist/cli/pit.js). */
export const pitCli = fileURLToPath(new URL('../cli/pit.js', import.meta.url));

/** Runs `pit args…` in a child process to the end (5 min at most: only a hang gets there). */
export const runPit = (...args: string[]) => spawnSync(process.execPath, [pitCli, ...args], { encoding: 'utf8', timeout: 300_000 });
