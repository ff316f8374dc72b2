// `pit bench kernels`: every op at the shapes PiT uses, one BenchResult (bench/schema.ts) per
// (op, dtype, shape).
//
// Compute-bound ops report GFLOP/s:
//   matmul_forward 2·m·n·k; matmul_backward 4·m·n·k (dA and dB);
//   linear_forward 2·m·n·k (x (m, k) · Wᵀ (W (n, k)) + bias: the bias add is not counted);
//   linear_backward 4·m·n·k (dx and dW; dbias, m·n adds, not counted);
//   attention_forward 4·B·H·L²·D, backward 2.5× that, forward + backward 3.5× (the
//   FlashAttention convention, which counts the backward's recomputation of the scores as part
//   of its 2.5×).
// CPU GEMMs also report the fraction of this CPU's multiply-add peak of their dtype, measured
// in the same run by native cpuPeak (op "cpu_peak": register-only chains on every thread, no
// memory: f32 16 independent vfmadd231ps zmm chains, 2 FLOP per lane each; bf16 16 vdpbf16ps
// chains, 4 FLOP per f32 lane each: two bf16 multiply-adds). A bf16 GEMM that runs widened to
// f32 (buildInfo().cpuBf16Gemm 'f32-widened') is set against the f32 peak. On AMX tiles
// (cpuBf16Gemm 'amx') the bf16 GEMM is still set against the vdpbf16ps peak, which the tiles
// can exceed: there the fraction reads as a ratio to AVX512-BF16, not a share of a peak.
//
// Memory-bound ops report GB/s (1e9 bytes/s) of the bytes they must move, s = element size,
// and the fraction of the device-to-device copy bandwidth measured in the same run:
//   copy 2·n·s; layernorm_forward 2·n·c·s + 8·n + 2·c·s (x in, out and mean/rstd out, weight
//   and bias in); layernorm_backward 3·n·c·s + 8·n + 3·c·s; gelu_forward 2·n·s; gelu_backward
//   3·n·s; add 3·n·s; softmax_cross_entropy 2·n·k·s + 8·n (logits in, dlogits out, targets in,
//   losses out); adamw 7·P·4 (param, grad, m, v in; param, m, v out).
//
// GEMMs on the GPU also record the path they took (`path`: "cublasLt/BIAS", "mma",
// "simt/split-K", ...: the counts of matmulInfo() that moved while the case was timed), since
// which engine ran them depends on the machine (cuBLASLt loaded or not) and on PIT_MATMUL.
//
// bf16 attention on the GPU records its kernel variant (`variant`: "v1" or "v2"), the
// PIT_ATTENTION_VARIANT that native/cuda/attention_bf16.cu reads on every call (it rejects
// any other value; unset means v1 there), so an A/B run's lines say which kernel they timed.
//
// Attention shapes follow one rule, shared with bench/pytorch/attention.py: H heads (12),
// B = max(1, ⌊tokens / L⌋) so that each shape does about the same work per L.
import { native, type DType } from '../lib/native.js';
import { randn, tidy, type Device, type Tensor } from '../lib/index.js';
import { copyOf, empty, tensor } from '../lib/tensor.js';
import { benchEnv } from './env.js';
import type { BenchResult, ResultUnit } from './schema.js';
import { rotationCount, timeIt } from './timing.js';

export interface KernelCase {
  op: string;
  dtype: DType;
  shape: Record<string, number>;
  unit: ResultUnit;
  formula: string;
  /** FLOPs or bytes of one call. */
  work: number;
  /** Allocates inputs on `device` (inside tidy()) and returns the timed call for repeat i. */
  setup(device: Device): (i: number) => void;
}

export interface KernelSweep {
  ops?: string[];
  dtypes: DType[];
  /** Attention's dtypes, when not `dtypes` (the CPU times f32 and bf16 attention by default, its other ops in f32). */
  attentionDtypes?: DType[];
  lens: number[];
  headDims: number[];
  heads: number;
  tokens: number;
  /** Rows of the memory-bound ops (tokens in a batch). */
  rows: number;
  channels: number[];
  /** Matmul and linear M (tokens) and model widths d: (M, 3d, d), (M, 4d, d), (M, d, 4d). matmul_* run in f32, linear_* in gemmDtypes. */
  matmulRows: number;
  /** The dtypes of the linear_* cases (default: dtypes). */
  gemmDtypes?: DType[];
  widths: number[];
  /** Parameter counts for AdamW. */
  params: number[];
}

/** The default sweep per device; `quick` is a smoke test at tiny sizes, not a measurement. */
export function defaultSweep(device: Device, quick = false): KernelSweep {
  if (quick)
    return { dtypes: ['f32'], lens: [1, 97], headDims: [16, 64], heads: 2, tokens: 128, rows: 256, channels: [48],
      matmulRows: 97, widths: [16], params: [4096] };
  if (device === 'cuda')
    return { dtypes: ['bf16', 'f32'], lens: [256, 1024, 4096, 16384, 65536], headDims: [16, 32, 64, 128], heads: 12, tokens: 16384,
      rows: 262144, channels: [192, 384, 768], matmulRows: 65536, widths: [192, 384, 768], params: [5_555_812, 86_415_460] };
  // CPU GEMMs at PiT-T/S's shapes (d = 192, 384) for a batch of 8 32x32 images: M = 8·(32·32 + 1) = 8200 tokens.
  return { dtypes: ['f32'], attentionDtypes: ['f32', 'bf16'], gemmDtypes: ['f32', 'bf16'], lens: [256, 1024], headDims: [16, 32, 64, 128], heads: 12, tokens: 2048,
    rows: 16384, channels: [192, 384, 768], matmulRows: 8200, widths: [192, 384], params: [5_555_812] };
}

const elementSize = (dtype: DType) => (dtype === 'bf16' ? 2 : 4);
let seed = 1;

function input(shape: number[], device: Device, dtype: DType = 'f32'): Tensor {
  const t = randn(shape, { seed: seed++, device });
  if (dtype === 'f32') return t;
  const cast = copyOf(t, { dtype });
  t.dispose();  // not held for the whole case: memory for the rotated copies instead
  return cast;
}

function bytesOf(shapes: number[][], dtype: DType): number {
  return shapes.reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0) * elementSize(dtype);
}

/** Enough independent random input sets (f32 drawn, then cast) to rotate through; set i % count. */
function rotated(device: Device, dtype: DType, shapes: number[][]): (i: number) => Tensor[] {
  const count = rotationCount(bytesOf(shapes, dtype), device);
  const sets = Array.from({ length: count }, () => shapes.map((s) => input(s, device, dtype)));
  return (i) => sets[i % sets.length]!;
}

function attentionCases(B: number, H: number, L: number, D: number, dtype: DType): KernelCase[] {
  const shape = { B, H, L, D };
  const fwd = 4 * B * H * L * L * D;
  const prepare = (device: Device) => {
    const sets = rotated(device, dtype, [[B, L, 3, H, D], [B, L, H, D]]);
    const out = empty([B, L, H, D], { device, dtype }), lse = empty([B, H, L], { device });
    const dqkv = empty([B, L, 3, H, D], { device, dtype });
    return { sets, out, lse, dqkv };
  };
  const a = native();
  return [
    { op: 'attention_forward', dtype, shape, unit: 'GFLOP/s', formula: '4*B*H*L^2*D', work: fwd,
      setup(device) {
        const { sets, out, lse } = prepare(device);
        return (i) => a.attentionForward(out.handle, lse.handle, sets(i)[0]!.handle);
      } },
    { op: 'attention_backward', dtype, shape, unit: 'GFLOP/s', formula: '2.5*4*B*H*L^2*D', work: 2.5 * fwd,
      setup(device) {
        const { sets, out, lse, dqkv } = prepare(device);
        a.attentionForward(out.handle, lse.handle, sets(0)[0]!.handle);  // a real (out, lse) pair
        return (i) => a.attentionBackward(dqkv.handle, sets(i)[1]!.handle, sets(0)[0]!.handle, out.handle, lse.handle);
      } },
    { op: 'attention_forward_backward', dtype, shape, unit: 'GFLOP/s', formula: '3.5*4*B*H*L^2*D', work: 3.5 * fwd,
      setup(device) {
        const { sets, out, lse, dqkv } = prepare(device);
        return (i) => {
          const [qkv, dout] = sets(i) as [Tensor, Tensor];
          a.attentionForward(out.handle, lse.handle, qkv.handle);
          a.attentionBackward(dqkv.handle, dout.handle, qkv.handle, out.handle, lse.handle);
        };
      } },
  ];
}

function matmulCases(m: number, n: number, k: number): KernelCase[] {
  const shape = { m, n, k };
  const a = native();
  return [
    { op: 'matmul_forward', dtype: 'f32', shape, unit: 'GFLOP/s', formula: '2*m*n*k', work: 2 * m * n * k,
      setup(device) {
        const sets = rotated(device, 'f32', [[m, k], [k, n]]);
        const out = empty([m, n], { device });
        return (i) => a.matmulForward(out.handle, sets(i)[0]!.handle, sets(i)[1]!.handle, null, false, false, false);
      } },
    { op: 'matmul_backward', dtype: 'f32', shape, unit: 'GFLOP/s', formula: '4*m*n*k', work: 4 * m * n * k,
      setup(device) {
        const sets = rotated(device, 'f32', [[m, k], [k, n], [m, n]]);
        const da = empty([m, k], { device }), db = empty([k, n], { device });
        return (i) => {
          const [x, w, dout] = sets(i) as [Tensor, Tensor, Tensor];
          a.matmulBackward(da.handle, db.handle, null, dout.handle, x.handle, w.handle, false, false);
        };
      } },
  ];
}

/** A linear layer as the models run it: out (m, n) = x (m, k) · Wᵀ + bias, W (n, k); backward dx, dW, dbias. */
function linearCases(m: number, n: number, k: number, dtype: DType): KernelCase[] {
  const shape = { m, n, k };
  const a = native();
  return [
    { op: 'linear_forward', dtype, shape, unit: 'GFLOP/s', formula: '2*m*n*k', work: 2 * m * n * k,
      setup(device) {
        const sets = rotated(device, dtype, [[m, k], [n, k], [n]]);
        const out = empty([m, n], { device, dtype });
        return (i) => {
          const [x, w, bias] = sets(i) as [Tensor, Tensor, Tensor];
          a.matmulForward(out.handle, x.handle, w.handle, bias.handle, false, true, false);
        };
      } },
    { op: 'linear_backward', dtype, shape, unit: 'GFLOP/s', formula: '4*m*n*k', work: 4 * m * n * k,
      setup(device) {
        const sets = rotated(device, dtype, [[m, k], [n, k], [m, n]]);
        const dx = empty([m, k], { device, dtype }), dw = empty([n, k], { device, dtype }), dbias = empty([n], { device, dtype });
        return (i) => {
          const [x, w, dout] = sets(i) as [Tensor, Tensor, Tensor];
          a.matmulBackward(dx.handle, dw.handle, dbias.handle, dout.handle, x.handle, w.handle, false, true);
        };
      } },
  ];
}

function memoryBoundCases(n: number, c: number, dtype: DType): KernelCase[] {
  const s = elementSize(dtype), a = native();
  const copy: KernelCase = { op: 'copy', dtype, shape: { n: n * c }, unit: 'GB/s', formula: '2*n*s', work: 2 * n * c * s,
    setup(device) {
      const sets = rotated(device, dtype, [[n, c]]);
      const dst = empty([n, c], { device, dtype });
      return (i) => a.copy(dst.handle, sets(i)[0]!.handle);
    } };
  if (dtype !== 'f32') return [copy];
  const shape = { n, c };
  return [copy,
    { op: 'layernorm_forward', dtype, shape, unit: 'GB/s', formula: '2*n*c*s + 8*n + 2*c*s', work: 2 * n * c * s + 8 * n + 2 * c * s,
      setup(device) {
        const sets = rotated(device, dtype, [[n, c]]);
        const w = input([c], device), b = input([c], device);
        const out = empty([n, c], { device }), mean = empty([n], { device }), rstd = empty([n], { device });
        return (i) => a.layernormForward(out.handle, mean.handle, rstd.handle, sets(i)[0]!.handle, w.handle, b.handle, 1e-6);
      } },
    { op: 'layernorm_backward', dtype, shape, unit: 'GB/s', formula: '3*n*c*s + 8*n + 3*c*s', work: 3 * n * c * s + 8 * n + 3 * c * s,
      setup(device) {
        const sets = rotated(device, dtype, [[n, c], [n, c]]);
        const w = input([c], device), b = input([c], device);
        const out = empty([n, c], { device }), mean = empty([n], { device }), rstd = empty([n], { device });
        a.layernormForward(out.handle, mean.handle, rstd.handle, sets(0)[0]!.handle, w.handle, b.handle, 1e-6);
        const dx = empty([n, c], { device }), dw = empty([c], { device }), db = empty([c], { device });
        return (i) => a.layernormBackward(dx.handle, dw.handle, db.handle, sets(i)[1]!.handle, sets(0)[0]!.handle, w.handle, mean.handle, rstd.handle);
      } },
  ];
}

function elementwiseCases(n: number): KernelCase[] {
  const s = 4, a = native(), shape = { n };
  return [
    { op: 'gelu_forward', dtype: 'f32', shape, unit: 'GB/s', formula: '2*n*s', work: 2 * n * s,
      setup(device) {
        const sets = rotated(device, 'f32', [[n]]), out = empty([n], { device });
        return (i) => a.geluForward(out.handle, sets(i)[0]!.handle, 'none');
      } },
    { op: 'gelu_backward', dtype: 'f32', shape, unit: 'GB/s', formula: '3*n*s', work: 3 * n * s,
      setup(device) {
        const sets = rotated(device, 'f32', [[n], [n]]), dx = empty([n], { device });
        return (i) => a.geluBackward(dx.handle, sets(i)[1]!.handle, sets(i)[0]!.handle, 'none');
      } },
    { op: 'add', dtype: 'f32', shape, unit: 'GB/s', formula: '3*n*s', work: 3 * n * s,
      setup(device) {
        const sets = rotated(device, 'f32', [[n], [n]]), out = empty([n], { device });
        return (i) => a.add(out.handle, sets(i)[0]!.handle, sets(i)[1]!.handle);
      } },
  ];
}

function crossEntropyCase(n: number, k: number): KernelCase {
  return { op: 'softmax_cross_entropy', dtype: 'f32', shape: { n, k }, unit: 'GB/s', formula: '2*n*k*s + 8*n', work: 2 * n * k * 4 + 8 * n,
    setup(device) {
      const sets = rotated(device, 'f32', [[n, k]]);
      const targets = tensor(Int32Array.from({ length: n }, (_, i) => (i * 7919) % k), [n], { device });
      const losses = empty([n], { device }), dlogits = empty([n, k], { device });
      return (i) => native().softmaxCrossEntropy(losses.handle, dlogits.handle, sets(i)[0]!.handle, targets.handle, 0.1, 1 / n);
    } };
}

function adamwCase(P: number): KernelCase {
  return { op: 'adamw', dtype: 'f32', shape: { P }, unit: 'GB/s', formula: '7*P*4', work: 7 * P * 4,
    setup(device) {
      const sets = rotated(device, 'f32', [[P], [P], [P], [P]]);
      return (i) => {
        const [p, g, m, v] = sets(i) as Tensor[];
        native().adamw(p!.handle, g!.handle, m!.handle, v!.handle, 1e-9, 0.9, 0.95, 1e-8, 0.05, 1 + i);
      };
    } };
}

/** Every case of a sweep, copies first (the memory-bound ops' fraction needs them). */
export function kernelCases(sweep: KernelSweep): KernelCase[] {
  const cases: KernelCase[] = [];
  const memoryBound = sweep.dtypes.flatMap((dtype) => sweep.channels.flatMap((c) => memoryBoundCases(sweep.rows, c, dtype)));
  cases.push(...memoryBound.filter((k) => k.op === 'copy'), ...memoryBound.filter((k) => k.op !== 'copy'));
  cases.push(...elementwiseCases(sweep.rows * Math.max(...sweep.channels)));
  cases.push(crossEntropyCase(Math.max(1, sweep.rows >> 6), 1000));
  for (const P of sweep.params) cases.push(adamwCase(P));
  const gemmShapes = sweep.widths.flatMap((d) => [[3 * d, d], [4 * d, d], [d, 4 * d]] as const);
  for (const [n, k] of gemmShapes) cases.push(...matmulCases(sweep.matmulRows, n, k));
  for (const dtype of sweep.gemmDtypes ?? sweep.dtypes)
    for (const [n, k] of gemmShapes) cases.push(...linearCases(sweep.matmulRows, n, k, dtype));
  // Attention's dtypes side by side, shape by shape.
  for (const D of sweep.headDims)
    for (const L of sweep.lens)
      for (const dtype of sweep.attentionDtypes ?? sweep.dtypes)
        cases.push(...attentionCases(Math.max(1, Math.floor(sweep.tokens / L)), sweep.heads, L, D, dtype));
  return sweep.ops?.length ? cases.filter((c) => sweep.ops!.some((o) => c.op.startsWith(o) || (o === 'copy' && c.op === 'copy'))) : cases;
}

export interface KernelBenchOptions {
  device: Device;
  sweep: KernelSweep;
  budgetMs?: number;
  /** Called with each result as it is measured (long GPU sweeps print as they go). */
  onResult?: (r: BenchResult) => void;
  /** Called when a case cannot run (its dtype has no kernel on this device, or it does not fit). */
  onSkip?: (c: KernelCase, reason: string) => void;
}

export function runKernelBench(options: KernelBenchOptions): BenchResult[] {
  const { device, budgetMs = 1500 } = options;
  const env = benchEnv(device);
  const copyBandwidth = new Map<DType, number>();
  const results: BenchResult[] = [];
  const cases = kernelCases(options.sweep);
  const peakSeconds = Math.max(0.05, Math.min(1.5, budgetMs / 1000));
  const peaks = device === 'cpu' && cases.some(isGemm) ? cpuPeaks(env, peakSeconds, results, options.onResult) : new Map<string, number>();
  for (const c of cases) {
    let timing, path: string | undefined;
    try {
      timing = tidy(() => {
        const fn = c.setup(device);
        const before = gemmCalls(c, device);
        const t = timeIt(fn, { device, budgetMs, maxRepeats: 200 });
        path = gemmPath(before, gemmCalls(c, device));
        return t;
      });
    } catch (err) {
      // An op without a kernel for this dtype, head dim or device, or a shape that does not fit
      // in memory, is skipped and said so; anything else is a bug and stops the run.
      const message = err instanceof Error ? err.message : '';
      const noKernel = err instanceof TypeError && /not implemented|supports head dims/.test(message);
      const noMemory = err instanceof RangeError && /out of .*memory|too large/.test(message);
      if (!noKernel && !noMemory) throw err;
      options.onSkip?.(c, (err as Error).message);
      continue;
    }
    const value = c.work / timing.medianMs / 1e6;  // FLOPs or bytes per ms / 1e6 = GFLOP/s or GB/s
    if (c.op === 'copy') copyBandwidth.set(c.dtype, Math.max(copyBandwidth.get(c.dtype) ?? 0, value));
    const copy = copyBandwidth.get(c.dtype);
    const r: BenchResult = {
      kind: 'kernel', op: c.op, impl: 'pit', device, dtype: c.dtype, shape: c.shape,
      ms: Number(timing.medianMs.toPrecision(6)), repeats: timing.repeats, value: round(value, 2), unit: c.unit,
      formula: formulaText(c), work: c.work, ...(path ? { path } : {}), ...attentionVariant(c, device),
      ...(c.unit === 'GB/s' && c.op !== 'copy' && copy ? { fractionOfCopy: round(value / copy, 3) } : {}),
      ...(isGemm(c) && peaks.size ? { fractionOfPeak: round(value / (peaks.get(c.dtype) ?? peaks.get('f32')!), 3) } : {}),
      env,
    };
    results.push(r);
    options.onResult?.(r);
  }
  return results;
}

export const round = (x: number, digits: number) => Number(x.toFixed(digits));

const isGemm = (c: KernelCase) => c.op.startsWith('matmul_') || c.op.startsWith('linear_');

/** The CPU's f32 and bf16 multiply-add peaks (see the header), as results and by dtype; a dtype whose loop this CPU level lacks is left out. */
function cpuPeaks(env: BenchResult['env'], seconds: number, results: BenchResult[], onResult?: (r: BenchResult) => void): Map<string, number> {
  const peaks = new Map<string, number>();
  const formulas = { f32: '16 chains*16 lanes*2 FLOP per vfmadd231ps * threads / t', bf16: '16 chains*16 lanes*4 FLOP per vdpbf16ps * threads / t' };
  for (const dtype of ['f32', 'bf16'] as const) {
    let run: { flops: number; seconds: number };
    try {
      run = native().cpuPeak(dtype, seconds);
    } catch (err) {
      if (err instanceof TypeError) continue;  // no such loop at this CPU level
      throw err;
    }
    const value = run.flops / run.seconds / 1e9;
    peaks.set(dtype, value);
    const r: BenchResult = {
      kind: 'kernel', op: 'cpu_peak', impl: 'pit', device: 'cpu', dtype, shape: { threads: native().buildInfo().threads },
      ms: Number((run.seconds * 1000).toPrecision(6)), repeats: 5, value: round(value, 2), unit: 'GFLOP/s', formula: formulas[dtype],
      work: run.flops, env,
    };
    results.push(r);
    onResult?.(r);
  }
  return peaks;
}

/** matmulInfo()'s per-path GEMM counts, for GEMM cases on the GPU; null otherwise. */
function gemmCalls(c: KernelCase, device: Device): Record<string, number> | null {
  return isGemm(c) && device === 'cuda' ? { ...native().matmulInfo().calls } : null;
}

/** The paths whose counts moved between two gemmCalls() snapshots: "cublasLt + cublasLt/BGRADB". */
export function gemmPath(before: Record<string, number> | null, after: Record<string, number> | null): string | undefined {
  if (!before || !after) return undefined;
  const moved = Object.keys(after).filter((k) => after[k]! > (before[k] ?? 0)).sort();
  return moved.length ? moved.join(' + ') : undefined;
}

/** { variant } for bf16 attention on the GPU (see the header); {} otherwise. */
function attentionVariant(c: KernelCase, device: Device): { variant?: string } {
  if (device !== 'cuda' || c.dtype !== 'bf16' || !c.op.startsWith('attention_')) return {};
  return { variant: process.env.PIT_ATTENTION_VARIANT || 'v1' };
}

/** "4*B*H*L^2*D / t", or "(2*n*s) / t, s=4" for the byte counts, with the element size given. */
function formulaText(c: KernelCase): string {
  if (c.unit !== 'GB/s') return `${c.formula} / t`;
  return `(${c.formula}) / t, s=${elementSize(c.dtype)}`;
}
