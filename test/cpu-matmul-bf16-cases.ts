// The CPU's bf16 GEMM (matmul_forward_bf16 / matmul_backward_bf16) against a float64 reference
// computed from the same bf16 values. Each output's largest error must be at most 2× that of a
// naive bf16 computation (the products, exact in f32, summed in f32 in k order, plus the bias
// and the prior output; rounded to bf16 once where the output is bf16), plus a floor of 2^-24
// of the output's Σ|terms| for sums that are exact both ways. Awkward shapes (tails in M, N
// and K, K = 1, odd K, K over several K slices, more rows than one packed A block), every
// transposition, batched and shared B, bias, accumulate, f32 and bf16 outputs.
// The f32-widened path (cpuBf16Gemm 'f32-widened') must moreover equal the f32 GEMM of the
// widened operands bit for bit: that is what it was before the bf16 kernels existed.
//
// Not a test file: test/cpu-matmul-bf16.test.ts runs it in child processes under each
// PIT_CPU_ISA (the ISA is fixed when the addon loads); run directly it prints a JSON report.
// Values are normal: vdpbf16ps flushes denormals (native/cpu/gemm_bf16.cc).
import { pathToFileURL } from 'node:url';
import { native, type NativeAddon, type NativeTensor } from '../lib/native.js';
import { prod, randomNormal, roundBf16 } from './helpers.js';

type F64 = Float64Array;
type OutDtype = 'f32' | 'bf16';

export interface GemmCase {
  batch: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  shared: boolean;
  bias: boolean;
  accumulate: boolean;
  /** forward: out's dtype (and the bias's); backward: db's and dbias's (da is always bf16). */
  out: OutDtype;
}

export interface Bf16GemmReport {
  cpuIsa: string;
  cpuIsaNote: string;
  cpuBf16Gemm: string;
  cases: number;
  /** Largest ratio of our error to the naive one over all outputs (floor included). */
  worstRatio: number;
  failures: string[];
}

export const label = (c: GemmCase) =>
  `batch ${c.batch}${c.shared ? ' (B shared)' : ''} M ${c.M} N ${c.N} K ${c.K}${c.transA ? ' Aᵀ' : ''}${c.transB ? ' Bᵀ' : ''}` +
  `${c.bias ? ' +bias' : ''}${c.accumulate ? ' accumulate' : ''} ${c.out}`;

/** The sweep: every transposition at awkward shapes, then batching, outputs and epilogues. */
export function gemmCases(): GemmCase[] {
  const base = { batch: 1, shared: false, bias: false, accumulate: false, out: 'f32' as OutDtype };
  const cases: GemmCase[] = [];
  const shapes: [number, number, number][] = [
    [1, 1, 1], [7, 17, 1], [17, 49, 3], [49, 97, 131], [97, 7, 49], [131, 49, 17], [1, 131, 97], [300, 100, 97], [33, 50, 769],
  ];
  for (const [M, N, K] of shapes)
    for (const transA of [false, true])
      for (const transB of [false, true]) cases.push({ ...base, M, N, K, transA, transB, bias: (M + K) % 2 === 0 });
  cases.push({ ...base, M: 67, N: 131, K: 1600, transA: false, transB: true, bias: true });  // several K slices, both threads
  for (const transA of [false, true])
    for (const shared of [false, true]) {
      cases.push({ ...base, batch: 3, M: 17, N: 49, K: 97, transA, transB: true, shared, bias: true });
      cases.push({ ...base, batch: 2, M: 49, N: 7, K: 33, transA, transB: false, shared, out: 'bf16' });
    }
  cases.push({ ...base, M: 49, N: 97, K: 131, transA: false, transB: true, bias: true, accumulate: true });
  cases.push({ ...base, M: 97, N: 49, K: 17, transA: true, transB: false, bias: true, accumulate: true, out: 'bf16' });
  cases.push({ ...base, M: 131, N: 97, K: 49, transA: false, transB: true, bias: true, out: 'bf16' });
  // bf16 outputs whose sums span several K slices (staged in f32): the forward's K, da's N.
  cases.push({ ...base, M: 67, N: 131, K: 1600, transA: false, transB: true, bias: true, accumulate: true, out: 'bf16' });
  cases.push({ ...base, M: 41, N: 800, K: 37, transA: true, transB: true, bias: true, out: 'bf16' });
  return cases;
}

/** Normal values that are exactly bf16 (so that every path reads the same numbers). */
const bf16Values = (n: number) => randomNormal(n).map(roundBf16);

/** Sums of (index, term) over k, in float64, in f32 in k order (the naive bf16 GEMM), and Σ|terms|. */
class Sums {
  readonly exact: F64;
  readonly naive: F64;
  readonly scale: F64;
  constructor(n: number) {
    this.exact = new Float64Array(n);
    this.naive = new Float64Array(n);
    this.scale = new Float64Array(n);
  }
  add(i: number, term: number): void {
    this.exact[i] += term;
    this.naive[i] = Math.fround(this.naive[i]! + term);
    this.scale[i] += Math.abs(term);
  }
}

// ---- the comparison -----------------------------------------------------------------------

/** Checks one output; returns the worst ratio of our error to the allowed one's half. */
function compare(failures: string[], what: string, got: ArrayLike<number>, sums: Sums, dtype: OutDtype, offset?: ArrayLike<number>): number {
  const round = dtype === 'bf16' ? roundBf16 : (x: number) => x;
  let ours = 0, naive = 0, floor = 0;
  for (let i = 0; i < got.length; i++) {
    const extra = offset?.[i] ?? 0;
    const exact = sums.exact[i]! + extra;
    ours = Math.max(ours, Math.abs(got[i]! - exact));
    naive = Math.max(naive, Math.abs(round(Math.fround(sums.naive[i]! + extra)) - exact));
    floor = Math.max(floor, (sums.scale[i]! + Math.abs(extra)) * 2 ** -24);
    if (Number.isNaN(got[i]!)) ours = Infinity;
  }
  const allowed = 2 * naive + floor;
  if (!(ours <= allowed)) failures.push(`${what}: error ${ours.toExponential(3)} > 2 × naive ${naive.toExponential(3)} + floor ${floor.toExponential(3)}`);
  return allowed > 0 ? ours / allowed : 0;
}

function sameBits(failures: string[], what: string, got: Float32Array, widened: Float32Array): void {
  const at = got.findIndex((v, i) => !Object.is(v, widened[i]));
  if (at >= 0) failures.push(`${what}: the f32-widened path differs from the f32 GEMM of the widened operands at ${at}: ${got[at]} vs ${widened[at]}`);
}

// ---- one case -----------------------------------------------------------------------------

function runCase(a: NativeAddon, c: GemmCase, widened: boolean, failures: string[]): number {
  const { M, N, K, batch } = c;
  const aShape = [batch, c.transA ? K : M, c.transA ? M : K];
  const bShape = [...(c.shared ? [] : [batch]), c.transB ? N : K, c.transB ? K : N];
  const A = bf16Values(prod(aShape)), B = bf16Values(prod(bShape)), dout = bf16Values(batch * M * N);
  const bias = bf16Values(N), prior = bf16Values(batch * M * N);
  const opA = (i: number, m: number, k: number) => A[i * M * K + (c.transA ? k * M + m : m * K + k)]!;
  const bIndex = (i: number, k: number, n: number) => (c.shared ? 0 : i * K * N) + (c.transB ? n * K + k : k * N + n);
  const aIndex = (i: number, m: number, k: number) => i * M * K + (c.transA ? k * M + m : m * K + k);

  const out = new Sums(batch * M * N), da = new Sums(A.length), db = new Sums(B.length), dbias = new Sums(N);
  for (let i = 0; i < batch; i++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) out.add((i * M + m) * N + n, opA(i, m, k) * B[bIndex(i, k, n)]!);
  // Backward sums in the order the GEMMs run them: da over n; db over the rows (batch, m).
  for (let i = 0; i < batch; i++)
    for (let m = 0; m < M; m++)
      for (let k = 0; k < K; k++)
        for (let n = 0; n < N; n++) da.add(aIndex(i, m, k), dout[(i * M + m) * N + n]! * B[bIndex(i, k, n)]!);
  for (let k = 0; k < K; k++)
    for (let n = 0; n < N; n++)
      for (let i = 0; i < batch; i++)
        for (let m = 0; m < M; m++) db.add(bIndex(i, k, n), opA(i, m, k) * dout[(i * M + m) * N + n]!);
  for (let r = 0; r < batch * M; r++) for (let n = 0; n < N; n++) dbias.add(n, dout[r * N + n]!);

  const tensors: NativeTensor[] = [];
  const make = (values: ArrayLike<number>, shape: number[], dtype: 'f32' | 'bf16') => {
    const t = a.fromArray(Float32Array.from(values), shape, dtype, 'cpu');
    tensors.push(t);
    return t;
  };
  const poisoned = (shape: number[], dtype: 'f32' | 'bf16') => make(new Float32Array(prod(shape)).fill(Number.NaN), shape, dtype);
  const outShape = [batch, M, N];
  const what = label(c);
  let worst = 0;
  try {
    const a16 = make(A, aShape, 'bf16'), b16 = make(B, bShape, 'bf16'), dout16 = make(dout, outShape, 'bf16');
    const o = c.accumulate ? make(prior, outShape, c.out) : poisoned(outShape, c.out);
    a.matmulForward(o, a16, b16, c.bias ? make(bias, [N], c.out) : null, c.transA, c.transB, c.accumulate);
    const offset = Float64Array.from({ length: batch * M * N }, (_, e) => (c.bias ? bias[e % N]! : 0) + (c.accumulate ? prior[e]! : 0));
    worst = Math.max(worst, compare(failures, `${what}: forward`, o.toArray(), out, c.out, offset));

    const dA = poisoned(aShape, 'bf16'), dB = poisoned(bShape, c.out), dBias = poisoned([N], c.out);
    a.matmulBackward(dA, dB, dBias, dout16, a16, b16, c.transA, c.transB);
    worst = Math.max(worst, compare(failures, `${what}: da`, dA.toArray(), da, 'bf16'));
    worst = Math.max(worst, compare(failures, `${what}: db`, dB.toArray(), db, c.out));
    worst = Math.max(worst, compare(failures, `${what}: dbias`, dBias.toArray(), dbias, c.out));

    if (widened) {  // the same calls on f32 copies, then rounded as the bf16 entry points round
      const a32 = make(A, aShape, 'f32'), b32 = make(B, bShape, 'f32'), dout32 = make(dout, outShape, 'f32');
      const o32 = make(c.accumulate ? prior : new Float32Array(batch * M * N), outShape, 'f32');
      a.matmulForward(o32, a32, b32, c.bias ? make(bias, [N], 'f32') : null, c.transA, c.transB, c.accumulate);
      const narrow = (x: Float32Array, dtype: OutDtype) => (dtype === 'bf16' ? x.map(roundBf16) : x);
      sameBits(failures, `${what}: forward`, o.toArray() as Float32Array, narrow(o32.toArray() as Float32Array, c.out));
      const dA32 = poisoned(aShape, 'f32'), dB32 = poisoned(bShape, 'f32'), dBias32 = poisoned([N], 'f32');
      a.matmulBackward(dA32, dB32, dBias32, dout32, a32, b32, c.transA, c.transB);
      sameBits(failures, `${what}: da`, dA.toArray() as Float32Array, narrow(dA32.toArray() as Float32Array, 'bf16'));
      sameBits(failures, `${what}: db`, dB.toArray() as Float32Array, narrow(dB32.toArray() as Float32Array, c.out));
      sameBits(failures, `${what}: dbias`, dBias.toArray() as Float32Array, narrow(dBias32.toArray() as Float32Array, c.out));
    }
  } finally {
    for (const t of tensors) t.dispose();
  }
  return worst;
}

export function runBf16GemmCases(): Bf16GemmReport {
  const a = native();
  const info = a.buildInfo();
  const failures: string[] = [];
  let worstRatio = 0;
  const cases = gemmCases();
  for (const c of cases) worstRatio = Math.max(worstRatio, runCase(a, c, info.cpuBf16Gemm === 'f32-widened', failures));
  return { cpuIsa: info.cpuIsa, cpuIsaNote: info.cpuIsaNote, cpuBf16Gemm: info.cpuBf16Gemm, cases: cases.length, worstRatio, failures };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  process.stdout.write(JSON.stringify(runBf16GemmCases()) + '\n');
