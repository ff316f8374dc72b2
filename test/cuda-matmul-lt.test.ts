// The GPU GEMM paths (native/cuda/matmul.cu, gemm_lt.cu) against the CPU op on the same
// inputs: cuBLASLt with bf16 operands (out bf16 or f32, with and without the BIAS epilogue; the
// backward's bias gradient fused by BGRADB, required for bf16 weight gradients and logged for
// f32 ones, or summed apart when dbias and dW differ in dtype), cuBLASLt with f32
// operands (CUBLAS_COMPUTE_32F), our bf16 tensor-core kernel forced with PIT_MATMUL=mma (and
// taken by "auto" without cuBLASLt), and our SIMT kernel forced with PIT_MATMUL=simt, both
// with deterministic split-K on the weight gradients, at the PiT-T/S/B shapes of `pit bench kernels` (widths d = 192, 384, 768; (n, k) = (3d, d), (4d, d),
// (d, 4d); M = 4096 rows, and the benchmark's full 65,536 at PiT-T's qkv), then every transpose,
// batched and shared B, accumulate and odd sizes, and bitwise repeatability.
//
// Each case selects its path with PIT_MATMUL (read by the backend at every GEMM): "cublaslt"
// and "mma" make a GEMM that engine cannot run an error instead of a silent fallback, and the
// counts of matmulInfo() must show the path taken ("cublasLt/BIAS", "cublasLt/BGRADB", "mma",
// "mma/split-K", "simt", "simt/split-K", "colsum"...). Which GEMMs split K depends on the GPU's
// SM count (cuda/split_k.h): the weight gradients of PiT-T at 4096 rows (10 tensor-core tiles,
// 27 SIMT tiles) must split on a GPU with at least twice as many SMs.
//
// Tolerances. Inputs are unit normals rounded to bf16 (the CPU reference, the f32 op, gets the
// same values), so every product is exact in fp32 and the only errors are in the sums and the
// final rounding:
//   accumulationTolerance(K) = 2^-23 · (K / 8) · √K: a sum of K unit-variance products is ~√k
//     after k of them; allow one fp32 ulp of it (2^-23·√K) per 8 products, which covers twice
//     over tensor cores' one truncating addition per 16-product MMA (their fp32 adder may round
//     toward zero, so those errors need not cancel as the CPU's round-to-nearest ones do;
//     test/cuda-ops.test.ts's reductionTolerance, 4·2^-24·K, assumes they do), plus the CPU
//     reference's own rounding. K is the reduction length: k forward, n for dx, M for dW and
//     dbias. A wrong kernel (a lost k-slice, a transposed operand, a missing bias) is off by
//     O(1) or more: for K = 3072, 2.5e-3 against values of ~55.
//   The epilogue's additions (bias, and the prior output when accumulating: O(1) values) are
//     taken in another order than the CPU's: 2^-21·(|x| + 1), a few f32 ulps.
//   bf16 outputs add the final rounding, half an ulp: 2^-8·|x|; and, as DESIGN.md asks of bf16
//     ops, the largest error must be at most twice that of the naive bf16 computation (the
//     fp32 result rounded once to bf16) plus accumulationTolerance(K).
// Runs only where the CUDA addon sees a GPU, and the cuBLASLt cases only where cuBLASLt loaded
// (bench/gpu-session.sh sets PIT_EXPECT_CUBLASLT=1: then its absence fails instead).
import test, { type ExecutionContext } from 'ava';
import { native, selectBackend, type Device, type DType, type NativeTensor } from '../lib/native.js';
import { prod, randomNormal, roundBf16 as bf16 } from './helpers.js';

const selection = selectBackend();
const gpu = selection.backend === 'cuda';
const ltInfo = gpu ? native().matmulInfo().cublasLt : null;
const gpuTest = gpu ? test : test.skip;
const ltTest = gpu && ltInfo!.loaded ? test : test.skip;
if (!gpu) console.log(`cuBLASLt matmul GPU tests skipped: ${selection.reasons.join('; ')}`);
else if (!ltInfo!.loaded) console.log(`cuBLASLt matmul tests skipped (GPU present, no cuBLASLt): ${ltInfo!.reason}`);

// ---- inputs, references, comparison -----------------------------------------------------------

/** Unit normals already rounded to bf16: the same values in every dtype. */
const values = (shape: number[]) => Float32Array.from(randomNormal(prod(shape)), bf16);
/** NaN-filled, so an element the op does not write fails. */
const poison = (shape: number[]) => new Float32Array(prod(shape)).fill(Number.NaN);

function tensorOf(v: Float32Array, shape: number[], dtype: DType, device: Device): NativeTensor {
  return native().fromArray(v, shape, dtype, device);
}

const accumulationTolerance = (K: number) => 2 ** -23 * (K / 8) * Math.sqrt(K);

/** Every element within accumulationTolerance(K) (+ half a bf16 ulp for bf16), and the bf16 rule of DESIGN.md. */
function expectClose(t: ExecutionContext, label: string, got: Float32Array, ref: Float32Array, K: number, dtype: DType): void {
  const acc = accumulationTolerance(K);
  let worst = -1, worstErr = 0, naive = 0, maxErr = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!, err = Math.abs(got[i]! - r);
    const f32 = acc + 2 ** -21 * (Math.abs(r) + 1);
    const tol = dtype === 'bf16' ? f32 * (1 + 2 ** -8) + 2 ** -8 * Math.abs(r) : f32;
    if (!(err <= tol) && (worst < 0 || !(err <= worstErr))) (worst = i), (worstErr = err);
    maxErr = Math.max(maxErr, err);
    if (dtype === 'bf16') naive = Math.max(naive, Math.abs(bf16(r) - r));
  }
  t.is(worst, -1, `${label}: element ${worst} is ${got[worst]}, the CPU's ${ref[worst]} (error ${worstErr}, K = ${K})`);
  if (dtype === 'bf16')
    t.true(maxErr <= 2 * naive + acc, `${label}: largest error ${maxErr} > 2 × the naive bf16 computation's ${naive} + ${acc}`);
}

/** Runs fn with PIT_MATMUL=mode; returns the per-path GEMM counts it added. */
function withMode<T>(mode: 'cublaslt' | 'simt' | 'mma' | 'auto', fn: () => T): { result: T; paths: Record<string, number> } {
  const saved = process.env.PIT_MATMUL;
  const before = native().matmulInfo().calls;
  process.env.PIT_MATMUL = mode;
  try {
    const result = fn();
    native().synchronize('cuda');
    const after = native().matmulInfo().calls;
    const paths: Record<string, number> = {};
    for (const [k, n] of Object.entries(after)) if (n > (before[k] ?? 0)) paths[k] = n - (before[k] ?? 0);
    return { result, paths };
  } finally {
    if (saved === undefined) delete process.env.PIT_MATMUL;
    else process.env.PIT_MATMUL = saved;
  }
}

/** The counts per engine: "mma/split-K" counts as "mma", "simt/split-K" as "simt". */
function engines(paths: Record<string, number>): Record<string, number> {
  const merged: Record<string, number> = {};
  for (const [k, n] of Object.entries(paths)) {
    const engine = k.replace(/\/split-K$/, '');
    merged[engine] = (merged[engine] ?? 0) + n;
  }
  return merged;
}

const multiprocessors = gpu ? (native().buildInfo().cuda?.devices[0]?.multiprocessors ?? 0) : 0;

// ---- a linear layer, the models' GEMM: out = x (m, k) · Wᵀ (W (n, k)) + bias ------------------

interface Linear {
  m: number;
  n: number;
  k: number;
  x: Float32Array;
  w: Float32Array;
  bias: Float32Array;
  dout: Float32Array;
  ref: { out: Float32Array; outNoBias: Float32Array; dx: Float32Array; dw: Float32Array; dbias: Float32Array };
}

/** Inputs and the CPU's f32 results (forward with and without bias, dx, dW, dbias). */
function linear(m: number, n: number, k: number): Linear {
  const x = values([m, k]), w = values([n, k]), bias = values([n]), dout = values([m, n]);
  const a = native();
  const c = (v: Float32Array, s: number[]) => tensorOf(v, s, 'f32', 'cpu');
  const [tx, tw, tb, tg] = [c(x, [m, k]), c(w, [n, k]), c(bias, [n]), c(dout, [m, n])];
  const out = c(poison([m, n]), [m, n]), outNoBias = c(poison([m, n]), [m, n]);
  const dx = c(poison([m, k]), [m, k]), dw = c(poison([n, k]), [n, k]), dbias = c(poison([n]), [n]);
  a.matmulForward(out, tx, tw, tb, false, true, false);
  a.matmulForward(outNoBias, tx, tw, null, false, true, false);
  a.matmulBackward(dx, dw, dbias, tg, tx, tw, false, true);
  const ref = { out: out.toArray() as Float32Array, outNoBias: outNoBias.toArray() as Float32Array, dx: dx.toArray() as Float32Array,
    dw: dw.toArray() as Float32Array, dbias: dbias.toArray() as Float32Array };
  for (const x of [tx, tw, tb, tg, out, outNoBias, dx, dw, dbias]) x.dispose();
  return { m, n, k, x, w, bias, dout, ref };
}

/** The forward on the GPU: operands in `dtype`, out (and bias) in outDtype. */
function linearForward(L: Linear, dtype: DType, outDtype: DType, withBias: boolean): Float32Array {
  const { m, n, k } = L;
  const x = tensorOf(L.x, [m, k], dtype, 'cuda'), w = tensorOf(L.w, [n, k], dtype, 'cuda');
  const bias = withBias ? tensorOf(L.bias, [n], outDtype, 'cuda') : null;
  const out = tensorOf(poison([m, n]), [m, n], outDtype, 'cuda');
  native().matmulForward(out, x, w, bias, false, true, false);
  const r = out.toArray() as Float32Array;
  for (const t of [x, w, bias, out]) t?.dispose();
  return r;
}

/** The backward on the GPU: dx in `dtype`, dW in dwDtype, dbias in dbiasDtype. */
function linearBackward(L: Linear, dtype: DType, dwDtype: DType, dbiasDtype: DType) {
  const { m, n, k } = L;
  const x = tensorOf(L.x, [m, k], dtype, 'cuda'), w = tensorOf(L.w, [n, k], dtype, 'cuda'), g = tensorOf(L.dout, [m, n], dtype, 'cuda');
  const dx = tensorOf(poison([m, k]), [m, k], dtype, 'cuda'), dw = tensorOf(poison([n, k]), [n, k], dwDtype, 'cuda');
  const dbias = tensorOf(poison([n]), [n], dbiasDtype, 'cuda');
  native().matmulBackward(dx, dw, dbias, g, x, w, false, true);
  const r = { dx: dx.toArray() as Float32Array, dw: dw.toArray() as Float32Array, dbias: dbias.toArray() as Float32Array };
  for (const t of [x, w, g, dx, dw, dbias]) t.dispose();
  return r;
}

/** The backward's paths when the bias gradient may be fused (BGRADB) or not (summed apart): logged either way. */
function expectFusedOrApart(t: ExecutionContext, paths: Record<string, number>, label: string): void {
  const fused = { cublasLt: 1, 'cublasLt/BGRADB': 1 }, apart = { cublasLt: 2, colsum: 1 };
  const same = (x: Record<string, number>) => JSON.stringify(Object.entries(paths).sort()) === JSON.stringify(Object.entries(x).sort());
  t.true(same(fused) || same(apart), `${label}: ${JSON.stringify(paths)}`);
  t.log(`${label}: dbias ${same(fused) ? 'fused (BGRADB)' : 'summed apart (no BGRADB algorithm for these types)'}`);
}

function checkBackward(t: ExecutionContext, label: string, L: Linear, got: ReturnType<typeof linearBackward>,
  dtypes: { dx: DType; dw: DType; dbias: DType }): void {
  expectClose(t, `${label} dx`, got.dx, L.ref.dx, L.n, dtypes.dx);
  expectClose(t, `${label} dW`, got.dw, L.ref.dw, L.m, dtypes.dw);
  expectClose(t, `${label} dbias`, got.dbias, L.ref.dbias, L.m, dtypes.dbias);
}

/** The PiT-T/S/B GEMMs of `pit bench kernels` (bench/kernels.ts), at M rows. */
const pitShapes = (M: number) => [192, 384, 768].flatMap((d) => [[3 * d, d], [4 * d, d], [d, 4 * d]].map(([n, k]) => [M, n!, k!] as const));
const label = (m: number, n: number, k: number) => `m=${m} n=${n} k=${k}`;

// One set of inputs and CPU results per shape, shared by every path's test.
const linears = new Map<string, Linear>();
function linearAt(m: number, n: number, k: number): Linear {
  const key = label(m, n, k);
  if (!linears.has(key)) linears.set(key, linear(m, n, k));
  return linears.get(key)!;
}

// ---- the tests ------------------------------------------------------------------------------------

gpuTest('cuBLASLt: loaded on this GPU host, or said why (PIT_EXPECT_CUBLASLT=1 makes its absence a failure)', (t) => {
  const info = native().matmulInfo();
  t.log(info.cublasLt.loaded ? `cuBLASLt ${info.cublasLt.version} from ${info.cublasLt.path} (${info.cublasLt.source}); ${info.cublasLt.declarations}`
    : `no cuBLASLt: ${info.cublasLt.reason}`);
  if (process.env.PIT_EXPECT_CUBLASLT === '1') t.true(info.cublasLt.loaded, info.cublasLt.reason);
  else t.pass();
});

ltTest('cuBLASLt bf16: linear forward at the PiT-T/S/B shapes, bf16 out with the BIAS epilogue and without, f32 out', (t) => {
  for (const [m, n, k] of pitShapes(4096)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    let r = withMode('cublaslt', () => linearForward(L, 'bf16', 'bf16', true));
    t.deepEqual(r.paths, { 'cublasLt/BIAS': 1 }, s);
    expectClose(t, `bf16 + bias ${s}`, r.result, L.ref.out, k, 'bf16');
    r = withMode('cublaslt', () => linearForward(L, 'bf16', 'bf16', false));
    t.deepEqual(r.paths, { cublasLt: 1 }, s);
    expectClose(t, `bf16 ${s}`, r.result, L.ref.outNoBias, k, 'bf16');
    r = withMode('cublaslt', () => linearForward(L, 'bf16', 'f32', true));
    t.deepEqual(r.paths, { 'cublasLt/BIAS': 1 }, s);
    expectClose(t, `bf16 -> f32 + bias ${s}`, r.result, L.ref.out, k, 'f32');
  }
});

ltTest('cuBLASLt bf16: linear backward at the PiT-T/S/B shapes, dbias fused by BGRADB (bf16 and f32 dW) or summed apart', (t) => {
  for (const [m, n, k] of pitShapes(4096)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    let r = withMode('cublaslt', () => linearBackward(L, 'bf16', 'bf16', 'bf16'));
    t.deepEqual(r.paths, { cublasLt: 1, 'cublasLt/BGRADB': 1 }, `dx plain, dW with BGRADB: ${s}`);
    checkBackward(t, `bf16 ${s}`, L, r.result, { dx: 'bf16', dw: 'bf16', dbias: 'bf16' });
    // bf16 operands into an f32 dW: BGRADB if cuBLASLt has it for these types, else summed apart.
    r = withMode('cublaslt', () => linearBackward(L, 'bf16', 'f32', 'f32'));
    expectFusedOrApart(t, r.paths, `f32 dW and dbias: ${s}`);
    checkBackward(t, `bf16, f32 dW ${s}`, L, r.result, { dx: 'bf16', dw: 'f32', dbias: 'f32' });
    r = withMode('cublaslt', () => linearBackward(L, 'bf16', 'bf16', 'f32'));
    t.deepEqual(r.paths, { cublasLt: 2, colsum: 1 }, `dbias of another dtype than dW is summed apart: ${s}`);
    checkBackward(t, `bf16, f32 dbias ${s}`, L, r.result, { dx: 'bf16', dw: 'bf16', dbias: 'f32' });
  }
});

ltTest('cuBLASLt bf16: the benchmark\'s full M = 65,536 at PiT-T\'s qkv shape, forward and backward', (t) => {
  for (const [n, k] of [[576, 192]] as const) {
    const L = linearAt(65536, n, k), s = label(65536, n, k);
    const f = withMode('cublaslt', () => linearForward(L, 'bf16', 'bf16', true));
    expectClose(t, `forward ${s}`, f.result, L.ref.out, k, 'bf16');
    const b = withMode('cublaslt', () => linearBackward(L, 'bf16', 'bf16', 'bf16'));
    checkBackward(t, `backward ${s}`, L, b.result, { dx: 'bf16', dw: 'bf16', dbias: 'bf16' });
    linears.delete(label(65536, n, k));
  }
});

ltTest('cuBLASLt f32 (CUBLAS_COMPUTE_32F, no TF32): linear forward and backward at the PiT-T/S/B shapes', (t) => {
  for (const [m, n, k] of pitShapes(4096)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    const f = withMode('cublaslt', () => linearForward(L, 'f32', 'f32', true));
    t.deepEqual(f.paths, { 'cublasLt/BIAS': 1 }, s);
    expectClose(t, `f32 forward ${s}`, f.result, L.ref.out, k, 'f32');
    const b = withMode('cublaslt', () => linearBackward(L, 'f32', 'f32', 'f32'));
    expectFusedOrApart(t, b.paths, s);
    checkBackward(t, `f32 backward ${s}`, L, b.result, { dx: 'f32', dw: 'f32', dbias: 'f32' });
  }
});

// Our bf16 tensor-core kernel (gemm_bf16.cu): forward with the bias epilogue into bf16 and
// f32, backward with dW in bf16 and f32 (split-K where the tiles would not fill the GPU) and
// dbias summed apart. f32 operands under PIT_MATMUL=mma are an error (they keep f32 arithmetic).
gpuTest('Own tensor-core GEMM (PIT_MATMUL=mma): bf16 linear forward and backward at the PiT-T/S/B shapes, split-K on the weight gradients', (t) => {
  t.log(`${multiprocessors} SMs`);
  for (const [m, n, k] of pitShapes(4096)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    for (const outDtype of ['bf16', 'f32'] as const) {
      const f = withMode('mma', () => linearForward(L, 'bf16', outDtype, true));
      t.deepEqual(engines(f.paths), { mma: 1 }, s);
      expectClose(t, `mma bf16 -> ${outDtype} forward ${s}`, f.result, L.ref.out, k, outDtype);
      const b = withMode('mma', () => linearBackward(L, 'bf16', outDtype, outDtype));
      t.deepEqual(engines(b.paths), { mma: 2, colsum: 1 }, s);
      checkBackward(t, `mma bf16, ${outDtype} dW ${s}`, L, b.result, { dx: 'bf16', dw: outDtype, dbias: outDtype });
      t.log(`mma ${s} ${outDtype}: forward ${JSON.stringify(f.paths)}, backward ${JSON.stringify(b.paths)}`);
      // dW (k, n) over m rows: 128 × 128 tiles; split when twice that many SMs are there to fill.
      const dwTiles = Math.ceil(k / 128) * Math.ceil(n / 128);
      if (multiprocessors >= 2 * dwTiles) t.truthy(b.paths['mma/split-K'], `dW ${k} x ${n} over ${m} rows (${dwTiles} tiles) splits K on ${multiprocessors} SMs`);
    }
  }
});

gpuTest('SIMT fallback (PIT_MATMUL=simt): bf16 and f32 linear forward and backward at the PiT-T/S/B shapes, split-K on the weight gradients', (t) => {
  for (const [m, n, k] of pitShapes(4096)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    for (const dtype of ['bf16', 'f32'] as const) {
      const f = withMode('simt', () => linearForward(L, dtype, dtype, true));
      t.deepEqual(engines(f.paths), { simt: 1 }, s);
      expectClose(t, `simt ${dtype} forward ${s}`, f.result, L.ref.out, k, dtype);
      const b = withMode('simt', () => linearBackward(L, dtype, dtype, dtype));
      t.deepEqual(engines(b.paths), { simt: 2, colsum: 1 }, s);
      checkBackward(t, `simt ${dtype} backward ${s}`, L, b.result, { dx: dtype, dw: dtype, dbias: dtype });
      const dwTiles = Math.ceil(k / 64) * Math.ceil(n / 64);  // the SIMT kernel's 64 × 64 tiles
      if (multiprocessors >= 2 * dwTiles) t.truthy(b.paths['simt/split-K'], `dW ${k} x ${n} (${dwTiles} tiles) splits K on ${multiprocessors} SMs`);
    }
  }
});

// "auto": cuBLASLt when loaded; without it, bf16 operands take our tensor-core kernel and f32
// operands the SIMT kernel (f32 arithmetic kept).
gpuTest('auto: bf16 GEMMs take cuBLASLt, else our tensor-core kernel; f32 GEMMs cuBLASLt, else SIMT', (t) => {
  const loaded = native().matmulInfo().cublasLt.loaded;
  for (const [m, n, k] of pitShapes(4096).slice(0, 3)) {
    const L = linearAt(m, n, k), s = label(m, n, k);
    const bf = withMode('auto', () => ({ f: linearForward(L, 'bf16', 'bf16', true), b: linearBackward(L, 'bf16', 'bf16', 'bf16') }));
    const f32 = withMode('auto', () => ({ f: linearForward(L, 'f32', 'f32', true), b: linearBackward(L, 'f32', 'f32', 'f32') }));
    t.log(`auto ${s}: bf16 ${JSON.stringify(bf.paths)}, f32 ${JSON.stringify(f32.paths)}`);
    if (!loaded) {
      t.deepEqual(engines(bf.paths), { mma: 3, colsum: 1 }, `bf16 ${s}`);
      t.deepEqual(engines(f32.paths), { simt: 3, colsum: 1 }, `f32 ${s}`);
    } else {
      t.false(Object.keys(bf.paths).some((p) => p.startsWith('simt')), `bf16 never on SIMT: ${JSON.stringify(bf.paths)}`);
    }
    expectClose(t, `auto bf16 forward ${s}`, bf.result.f, L.ref.out, k, 'bf16');
    checkBackward(t, `auto bf16 ${s}`, L, bf.result.b, { dx: 'bf16', dw: 'bf16', dbias: 'bf16' });
    expectClose(t, `auto f32 forward ${s}`, f32.result.f, L.ref.out, k, 'f32');
    checkBackward(t, `auto f32 ${s}`, L, f32.result.b, { dx: 'f32', dw: 'f32', dbias: 'f32' });
  }
  linears.clear();
});

gpuTest('our kernels repeat bit for bit: split-K weight gradients (mma, simt) and forwards', (t) => {
  const L = linear(4096, 576, 192);
  for (const [mode, dtype] of [['mma', 'bf16'], ['simt', 'bf16'], ['simt', 'f32']] as const) {
    const runs = [0, 1, 2].map(() => withMode(mode, () => ({ f: linearForward(L, dtype, dtype, true), b: linearBackward(L, dtype, dtype, dtype) })));
    t.log(`${mode} ${dtype}: ${JSON.stringify(runs[0]!.paths)}`);
    for (const r of runs.slice(1)) {
      t.deepEqual(Buffer.from(r.result.f.buffer), Buffer.from(runs[0]!.result.f.buffer), `${mode} ${dtype} forward`);
      for (const key of ['dx', 'dw', 'dbias'] as const)
        t.deepEqual(Buffer.from(r.result.b[key].buffer), Buffer.from(runs[0]!.result.b[key].buffer), `${mode} ${dtype} ${key}`);
    }
  }
});

// Every layout the op allows, in bf16 with f32 and bf16 outputs, on the paths that `auto` picks
// (odd sizes may have no cuBLASLt algorithm: then our tensor-core kernel, and the test logs
// which ran), on SIMT and on our tensor-core kernel (M = 1, K = 1, odd N and K: its guarded
// loads for leading dimensions that are not whole 16-byte units).
gpuTest('bf16 matmul: every transpose, batched and shared B, accumulate, odd sizes; auto, SIMT and tensor-core paths', (t) => {
  const a = native();
  const cases: { batch: number; bShared: boolean; M: number; N: number; K: number }[] = [
    { batch: 1, bShared: true, M: 1, N: 48, K: 16 }, { batch: 1, bShared: true, M: 97, N: 96, K: 33 },
    { batch: 3, bShared: true, M: 97, N: 64, K: 32 }, { batch: 4, bShared: false, M: 97, N: 48, K: 32 },
    { batch: 2, bShared: false, M: 130, N: 200, K: 1 }, { batch: 1, bShared: true, M: 1025, N: 128, K: 256 },
  ];
  for (const mode of ['auto', 'simt', 'mma'] as const) {
    for (const { batch, bShared, M, N, K } of cases) {
      for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        const aShape = [batch, ...(transA ? [K, M] : [M, K])];
        const bShape = [...(bShared ? [] : [batch]), ...(transB ? [N, K] : [K, N])];
        const oShape = [batch, M, N];
        const av = values(aShape), bv = values(bShape), bias = values([N]), g = values(oShape), prior = values(oShape);
        const s = `${mode} batch=${batch}${bShared ? ' shared B' : ''} M=${M} N=${N} K=${K} tA=${transA} tB=${transB}`;
        // CPU f32 references: out = prior + op(a)·op(b) + bias (accumulate), and the gradients.
        const cpu = (v: Float32Array, shape: number[]) => tensorOf(v, shape, 'f32', 'cpu');
        const [ca, cb, cbias, cg] = [cpu(av, aShape), cpu(bv, bShape), cpu(bias, [N]), cpu(g, oShape)];
        const [cda, cdb, cdbias] = [cpu(poison(aShape), aShape), cpu(poison(bShape), bShape), cpu(poison([N]), [N])];
        a.matmulBackward(cda, cdb, cdbias, cg, ca, cb, transA, transB);
        for (const outDtype of ['f32', 'bf16'] as const) {
          const gpuT = (v: Float32Array, shape: number[], dtype: DType) => tensorOf(v, shape, dtype, 'cuda');
          // bf16 accumulate reads the bf16-rounded prior: the reference adds the same values.
          const priorIn = outDtype === 'bf16' ? Float32Array.from(prior, bf16) : prior;
          const ref = cpu(priorIn, oShape);
          a.matmulForward(ref, ca, cb, cbias, transA, transB, true);
          const [ga, gb, gbias, gg, go] = [gpuT(av, aShape, 'bf16'), gpuT(bv, bShape, 'bf16'), gpuT(bias, [N], outDtype),
            gpuT(g, oShape, 'bf16'), gpuT(priorIn, oShape, outDtype)];
          const [gda, gdb, gdbias] = [gpuT(poison(aShape), aShape, 'bf16'), gpuT(poison(bShape), bShape, outDtype), gpuT(poison([N]), [N], outDtype)];
          const { paths } = withMode(mode, () => {
            a.matmulForward(go, ga, gb, gbias, transA, transB, true);
            a.matmulBackward(gda, gdb, gdbias, gg, ga, gb, transA, transB);
          });
          t.log(`${s} out ${outDtype}: ${JSON.stringify(paths)}`);
          if (mode === 'simt') t.false(Object.keys(paths).some((p) => p.startsWith('cublasLt')), `${s}: ${JSON.stringify(paths)}`);
          if (mode === 'mma') t.true(Object.keys(paths).every((p) => p.startsWith('mma') || p === 'colsum'), `${s}: ${JSON.stringify(paths)}`);
          const rows = batch * M;
          expectClose(t, `${s} out ${outDtype}`, go.toArray() as Float32Array, ref.toArray() as Float32Array, K, outDtype);
          expectClose(t, `${s} da`, gda.toArray() as Float32Array, cda.toArray() as Float32Array, N, 'bf16');
          expectClose(t, `${s} db ${outDtype}`, gdb.toArray() as Float32Array, cdb.toArray() as Float32Array, bShared ? rows : M, outDtype);
          expectClose(t, `${s} dbias ${outDtype}`, gdbias.toArray() as Float32Array, cdbias.toArray() as Float32Array, rows, outDtype);
          for (const x of [ref, ga, gb, gbias, gg, go, gda, gdb, gdbias]) x.dispose();
        }
        for (const x of [ca, cb, cbias, cg, cda, cdb, cdbias]) x.dispose();
      }
    }
  }
});

ltTest('cuBLASLt: the same call gives the same bits every time (one cached algorithm per shape)', (t) => {
  const [m, n, k] = [4096, 1152, 384];
  const L = linear(m, n, k);
  for (const dtype of ['bf16', 'f32'] as const) {
    const runs = [0, 1, 2].map(() => withMode('cublaslt', () => ({ f: linearForward(L, dtype, dtype, true), b: linearBackward(L, dtype, dtype, dtype) })).result);
    for (const r of runs.slice(1)) {
      t.deepEqual(Buffer.from(r.f.buffer), Buffer.from(runs[0]!.f.buffer), `${dtype} forward repeats bit for bit`);
      for (const key of ['dx', 'dw', 'dbias'] as const)
        t.deepEqual(Buffer.from(r.b[key].buffer), Buffer.from(runs[0]!.b[key].buffer), `${dtype} ${key} repeats bit for bit`);
    }
  }
});

gpuTest('PIT_MATMUL: an unknown value is a TypeError naming it; "cublaslt" without cuBLASLt and "mma" on f32 are errors, not fallbacks', (t) => {
  const a = native();
  const x = tensorOf(values([64, 64]), [64, 64], 'bf16', 'cuda'), out = tensorOf(poison([64, 64]), [64, 64], 'bf16', 'cuda');
  const saved = process.env.PIT_MATMUL;
  try {
    process.env.PIT_MATMUL = 'fast';
    t.throws(() => a.matmulForward(out, x, x, null, false, false, false), { instanceOf: TypeError, message: /PIT_MATMUL must be "auto", "simt", "mma" or "cublaslt", got "fast"/ });
    process.env.PIT_MATMUL = 'mma';
    t.notThrows(() => a.matmulForward(out, x, x, null, false, false, false));
    const xf = tensorOf(values([64, 64]), [64, 64], 'f32', 'cuda'), outf = tensorOf(poison([64, 64]), [64, 64], 'f32', 'cuda');
    t.throws(() => a.matmulForward(outf, xf, xf, null, false, false, false),
      { instanceOf: TypeError, message: /PIT_MATMUL=mma, but the bf16 tensor-core GEMM cannot run this GEMM: f32 operands/ });
    xf.dispose();
    outf.dispose();
    process.env.PIT_MATMUL = 'cublaslt';
    if (a.matmulInfo().cublasLt.loaded) t.notThrows(() => a.matmulForward(out, x, x, null, false, false, false));
    else t.throws(() => a.matmulForward(out, x, x, null, false, false, false), { message: /PIT_MATMUL=cublaslt, but cuBLASLt cannot run this GEMM: cuBLASLt not loaded/ });
  } finally {
    if (saved === undefined) delete process.env.PIT_MATMUL;
    else process.env.PIT_MATMUL = saved;
    x.dispose();
    out.dispose();
  }
});

// On every machine: the binding's dtype checks for bf16 operands, and bf16 refused on the CPU.
test('bf16 matmul: dtype errors name the tensor (the CPU runs bf16 GEMMs by widening them: test/matmul.test.ts)', (t) => {
  const a = native();
  const bf = (s: number[]) => tensorOf(values(s), s, 'bf16', 'cpu');
  const f = (s: number[]) => tensorOf(values(s), s, 'f32', 'cpu');
  t.throws(() => a.matmulForward(f([4, 3]), bf([4, 5]), f([5, 3]), null, false, false, false), { instanceOf: TypeError, message: "matmulForward: 'b' must be bf16, got f32" });
  t.throws(() => a.matmulForward(bf([4, 3]), bf([4, 5]), bf([5, 3]), f([3]), false, false, false),
    { instanceOf: TypeError, message: "matmulForward: 'bias' must have the dtype of 'out' (bf16), got f32" });
  t.throws(() => a.matmulBackward(f([4, 5]), null, null, bf([4, 3]), bf([4, 5]), bf([5, 3]), false, false),
    { instanceOf: TypeError, message: "matmulBackward: 'da' must be bf16, got f32" });
});
