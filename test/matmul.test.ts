// matmul and linear through the public API: forward against a float64 reference, backward
// against the float64 analytic gradient and central finite differences, for every
// transpose combination, 2-D / batched / shared B, with and without bias, at awkward sizes.
// Then the native entry points directly: NaN-poisoned outputs, accumulate, K = 0.
import test, { type ExecutionContext } from 'ava';
import { copyOf, linear, matmul, native, poisoned, tidy, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, roundBf16, run, t32 } from './helpers.js';

interface Case {
  batch: number[]; // leading dims of a (and of b unless shared)
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  shared: boolean; // b is 2-D, one matrix for every batch entry
  bias: boolean;
}

const aShape = (c: Case) => [...c.batch, c.transA ? c.K : c.M, c.transA ? c.M : c.K];
const bShape = (c: Case) => [...(c.shared ? [] : c.batch), c.transB ? c.N : c.K, c.transB ? c.K : c.N];
const outShape = (c: Case) => [...c.batch, c.M, c.N];
const label = (c: Case) =>
  `a [${aShape(c)}]${c.transA ? 'ᵀ' : ''} · b [${bShape(c)}]${c.transB ? 'ᵀ' : ''}${c.bias ? ' + bias' : ''}`;

// Element accessors of op(A) and op(B) for batch entry i, in the stored layouts.
function accessors(c: Case, a: ArrayLike<number>, b: ArrayLike<number>) {
  const { M, N, K } = c;
  const opA = (i: number, m: number, k: number) => a[i * M * K + (c.transA ? k * M + m : m * K + k)]!;
  const opB = (i: number, k: number, n: number) => b[(c.shared ? 0 : i * K * N) + (c.transB ? n * K + k : k * N + n)]!;
  return { opA, opB };
}

/** out = op(A)·op(B) + bias in float64, and Σ|terms| per element (the scale of its rounding). */
function reference(c: Case, a: ArrayLike<number>, b: ArrayLike<number>, bias: ArrayLike<number> | null) {
  const { M, N, K } = c, B = prod(c.batch);
  const { opA, opB } = accessors(c, a, b);
  const out = new Float64Array(B * M * N), scale = new Float64Array(B * M * N);
  for (let i = 0; i < B; i++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = bias ? bias[n]! : 0, mag = bias ? Math.abs(bias[n]!) : 0;
        for (let k = 0; k < K; k++) {
          const p = opA(i, m, k) * opB(i, k, n);
          s += p;
          mag += Math.abs(p);
        }
        out[(i * M + m) * N + n] = s;
        scale[(i * M + m) * N + n] = mag;
      }
  return { out, scale };
}

/**
 * Gradients of Σ w ∘ out in float64, in the stored layouts of a, b and bias, with the
 * largest Σ|terms| of any element of each (the scale of its fp32 rounding).
 */
function referenceGradients(c: Case, a: ArrayLike<number>, b: ArrayLike<number>, w: ArrayLike<number>) {
  const { M, N, K } = c, B = prod(c.batch);
  const { opA, opB } = accessors(c, a, b);
  const da = new Float64Array(B * M * K), db = new Float64Array(prod(bShape(c))), dbias = new Float64Array(N);
  const daMag = new Float64Array(da.length), dbMag = new Float64Array(db.length), dbiasMag = new Float64Array(N);
  for (let i = 0; i < B; i++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        const g = w[(i * M + m) * N + n]!;
        dbias[n] += g;
        dbiasMag[n] += Math.abs(g);
        for (let k = 0; k < K; k++) {
          const ia = i * M * K + (c.transA ? k * M + m : m * K + k);
          const ib = (c.shared ? 0 : i * K * N) + (c.transB ? n * K + k : k * N + n);
          da[ia] += g * opB(i, k, n);
          daMag[ia] += Math.abs(g * opB(i, k, n));
          db[ib] += g * opA(i, m, k);
          dbMag[ib] += Math.abs(g * opA(i, m, k));
        }
      }
  return { da, db, dbias, scales: { da: maxOf(daMag), db: maxOf(dbMag), dbias: maxOf(dbiasMag) } };
}

function maxOf(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

// fp32 rounding grows like √(terms) for random data; 1e-6·(4 + √terms) is ~8× the typical
// error at these sizes, far below what a wrong index, stride or edge tile produces.
const tolerance = (terms: number, scale: number) => 1e-6 * (4 + Math.sqrt(terms)) * scale;

function inputs(c: Case) {
  return { a: randomF32(prod(aShape(c))), b: randomF32(prod(bShape(c))), bias: c.bias ? randomF32(c.N) : null };
}

function apply(c: Case) {
  return (a: Tensor, b: Tensor, bias?: Tensor) => matmul(a, b, { transA: c.transA, transB: c.transB, bias: bias ?? null });
}

function checkForward(t: ExecutionContext, c: Case) {
  const { a, b, bias } = inputs(c);
  const got = run(() => matmul(t32(a, aShape(c)), t32(b, bShape(c)), { transA: c.transA, transB: c.transB, bias: bias ? t32(bias, [c.N]) : null }));
  t.deepEqual(got.length, prod(outShape(c)));
  const { out, scale } = reference(c, a, b, bias);
  assertClose(t, got, out, { atol: tolerance(c.K, maxOf(scale)), rtol: 0, label: 'forward' });
}

function checkBackward(t: ExecutionContext, c: Case, finite: boolean) {
  const { a, b, bias } = inputs(c);
  const given = [{ values: a, shape: aShape(c) }, { values: b, shape: bShape(c) }];
  if (bias) given.push({ values: bias, shape: [c.N] });
  const { output, grads, weights } = gradientsOf(apply(c), given);
  const { out, scale } = reference(c, a, b, bias);
  assertClose(t, output, out, { atol: tolerance(c.K, maxOf(scale)), rtol: 0, label: 'forward (graph)' });

  const ref = referenceGradients(c, a, b, weights);
  // da sums N terms per element; db sums M (times the batch when b is shared); dbias all rows.
  const rows = prod(c.batch) * c.M, dbTerms = c.shared ? rows : c.M;
  const tol = { da: tolerance(c.N, ref.scales.da), db: tolerance(dbTerms, ref.scales.db), dbias: tolerance(rows, ref.scales.dbias) };
  assertClose(t, grads[0]!, ref.da, { atol: tol.da, rtol: 0, label: 'da' });
  assertClose(t, grads[1]!, ref.db, { atol: tol.db, rtol: 0, label: 'db' });
  if (bias) assertClose(t, grads[2]!, ref.dbias, { atol: tol.dbias, rtol: 0, label: 'dbias' });

  if (!finite) return;
  // Σ w ∘ out is bilinear in (a, b) and linear in bias, so central differences of the float64
  // reference are exact up to float64 rounding (~1e-12 here); what remains is the fp32
  // rounding of the native gradient, bounded as above.
  const objective = ([x, y, z]: Float64Array[]) => reference(c, x!, y!, z ?? null).out.reduce((s, v, i) => s + v * weights[i]!, 0);
  const fd = finiteDifferences(objective, given.map((g) => Float64Array.from(g.values)), 1e-2, 24);
  const fdOptions = (atol: number, what: string) => ({ atol: atol + 1e-9, rtol: 0, label: `${what} vs finite differences`, probedOnly: true });
  assertClose(t, grads[0]!, fd[0]!, fdOptions(tol.da, 'da'));
  assertClose(t, grads[1]!, fd[1]!, fdOptions(tol.db, 'db'));
  if (bias) assertClose(t, grads[2]!, fd[2]!, fdOptions(tol.dbias, 'dbias'));
}

const transposes = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

for (const [transA, transB] of transposes) {
  const at = (p: Omit<Case, 'transA' | 'transB'>): Case => ({ ...p, transA, transB });
  // Small enough for finite differences: 1, 7, 97 and edge tiles in every dimension.
  const small: Case[] = [
    at({ batch: [], M: 7, N: 97, K: 5, shared: false, bias: true }),
    at({ batch: [], M: 97, N: 1, K: 7, shared: false, bias: false }),
    at({ batch: [], M: 1, N: 7, K: 97, shared: false, bias: true }),
    at({ batch: [], M: 1, N: 1, K: 1, shared: false, bias: false }),
    at({ batch: [3], M: 13, N: 17, K: 9, shared: false, bias: true }),    // batched b
    at({ batch: [2, 3], M: 5, N: 16, K: 11, shared: true, bias: true }),  // one b for 6 entries
    at({ batch: [1], M: 33, N: 3, K: 4, shared: true, bias: false }),     // batch 1
  ];
  for (const c of small) test(`matmul forward and backward (with finite differences), ${label(c)}`, (t) => checkBackward(t, c, true));

  // Larger: several register tiles, cache blocks and K slices, awkward in every dimension.
  const large: Case[] = [
    at({ batch: [], M: 1025, N: 33, K: 17, shared: false, bias: true }),
    at({ batch: [], M: 17, N: 1025, K: 19, shared: false, bias: true }),
    at({ batch: [], M: 19, N: 23, K: 1025, shared: false, bias: false }),
    at({ batch: [2], M: 97, N: 67, K: 300, shared: true, bias: true }),
    at({ batch: [3], M: 61, N: 97, K: 43, shared: false, bias: false }),
  ];
  for (const c of large) {
    test(`matmul forward, ${label(c)}`, (t) => checkForward(t, c));
    test(`matmul backward vs float64, ${label(c)}`, (t) => checkBackward(t, c, false));
  }
}

test('matmul forward at a multi-threaded, multi-block size (300 x 600 x 257, shared b)', (t) => {
  const c: Case = { batch: [2], M: 300, N: 600, K: 257, transA: false, transB: true, shared: true, bias: true };
  checkForward(t, c);
});

test('linear: x (..., in) · weightᵀ + bias, for 3-D and 1-D x', (t) => {
  const [B, L, IN, OUT] = [2, 9, 13, 7];
  const x = randomF32(B * L * IN), w = randomF32(OUT * IN), bias = randomF32(OUT);
  const c: Case = { batch: [B], M: L, N: OUT, K: IN, transA: false, transB: true, shared: true, bias: true };
  const { out, scale } = reference(c, x, w, bias);
  const got = run(() => linear(t32(x, [B, L, IN]), t32(w, [OUT, IN]), t32(bias, [OUT])));
  t.deepEqual(got.length, B * L * OUT);
  assertClose(t, got, out, { atol: tolerance(IN, maxOf(scale)), rtol: 0, label: 'linear 3-D' });

  const one = run(() => linear(t32(x.subarray(0, IN), [IN]), t32(w, [OUT, IN]), t32(bias, [OUT])));
  assertClose(t, one, out.subarray(0, OUT), { atol: tolerance(IN, maxOf(scale)), rtol: 0, label: 'linear 1-D' });

  const { grads, weights } = gradientsOf((xt: Tensor, wt: Tensor, bt: Tensor) => linear(xt, wt, bt), [
    { values: x, shape: [B, L, IN] },
    { values: w, shape: [OUT, IN] },
    { values: bias, shape: [OUT] },
  ]);
  const ref = referenceGradients(c, x, w, weights);
  assertClose(t, grads[0]!, ref.da, { atol: tolerance(OUT, ref.scales.da), rtol: 0, label: 'dx' });
  assertClose(t, grads[1]!, ref.db, { atol: tolerance(B * L, ref.scales.db), rtol: 0, label: 'dweight' });
  assertClose(t, grads[2]!, ref.dbias, { atol: tolerance(B * L, ref.scales.dbias), rtol: 0, label: 'dbias' });
});

test('matmul with mismatched inner sizes is a RangeError naming both shapes', (t) => {
  t.throws(() => run(() => matmul(t32(randomF32(6), [2, 3]), t32(randomF32(8), [4, 2]))), { instanceOf: RangeError, message: /inner sizes differ/ });
});

const NAN_FREE = (x: ArrayLike<number>) => !Array.prototype.some.call(x, (v: number) => Number.isNaN(v));

for (const [transA, transB] of transposes) {
  test(`matmulForward / matmulBackward write every element of NaN-poisoned outputs (transA ${transA}, transB ${transB})`, (t) => {
    for (const c of [
      { batch: [2], M: 97, N: 61, K: 33, transA, transB, shared: true, bias: true },
      { batch: [3], M: 17, N: 97, K: 5, transA, transB, shared: false, bias: true },
      { batch: [], M: 1, N: 1, K: 1025, transA, transB, shared: false, bias: true },
    ] satisfies Case[]) {
      tidy(() => {
        const { a, b, bias } = inputs(c);
        const [ta, tb, tbias] = [t32(a, aShape(c)), t32(b, bShape(c)), t32(bias!, [c.N])];
        const out = poisoned(outShape(c));
        native().matmulForward(out.handle, ta.handle, tb.handle, tbias.handle, transA, transB, false);
        t.true(NAN_FREE(out.toArray()), `${label(c)}: out fully written`);
        const dout = t32(randomF32(prod(outShape(c))), outShape(c));
        const da = poisoned(aShape(c)), db = poisoned(bShape(c)), dbias = poisoned([c.N]);
        native().matmulBackward(da.handle, db.handle, dbias.handle, dout.handle, ta.handle, tb.handle, transA, transB);
        for (const [name, v] of [['da', da], ['db', db], ['dbias', dbias]] as const)
          t.true(NAN_FREE(v.toArray()), `${label(c)}: ${name} fully written`);
        // Each gradient alone (the others null) gives the same values.
        const alone = poisoned(aShape(c));
        native().matmulBackward(alone.handle, null, null, dout.handle, ta.handle, tb.handle, transA, transB);
        t.deepEqual(Array.from(alone.toArray()), Array.from(da.toArray()), `${label(c)}: da alone`);
      });
    }
  });

  test(`matmulForward with accumulate adds to out (transA ${transA}, transB ${transB})`, (t) => {
    const c: Case = { batch: [2], M: 67, N: 97, K: 130, transA, transB, shared: false, bias: true };
    const { a, b, bias } = inputs(c);
    const before = randomF32(prod(outShape(c)));
    const got = tidy(() => {
      const out = t32(before, outShape(c));
      native().matmulForward(out.handle, t32(a, aShape(c)).handle, t32(b, bShape(c)).handle, t32(bias!, [c.N]).handle, transA, transB, true);
      return out.toArray();
    });
    const { out, scale } = reference(c, a, b, bias);
    assertClose(t, got, out.map((v, i) => v + before[i]!), { atol: tolerance(c.K, maxOf(scale) + 4), rtol: 0, label: 'out + op(a)·op(b) + bias' });
  });
}

test('matmul with K = 0 gives the bias (or zeros), and dbias still sums dout', (t) => {
  tidy(() => {
    const bias = randomF32(7);
    const a = t32([], [5, 0], true), b = t32([], [0, 7], true), tbias = t32(bias, [7], true);
    const out = matmul(a, b, { bias: tbias });
    t.deepEqual(out.shape, [5, 7]);
    assertClose(t, out.toArray(), Array.from({ length: 35 }, (_, i) => bias[i % 7]!), { atol: 0, rtol: 0, label: 'out = bias' });
    assertClose(t, matmul(a, b).toArray(), new Float64Array(35), { atol: 0, rtol: 0, label: 'out = 0' });
    const dout = t32(randomF32(35), [5, 7]);
    const da = poisoned([5, 0]), db = poisoned([0, 7]), dbias = poisoned([7]);
    native().matmulBackward(da.handle, db.handle, dbias.handle, dout.handle, a.handle, b.handle, false, false);
    const d = dout.toArray();
    assertClose(t, dbias.toArray(), Array.from({ length: 7 }, (_, j) => [0, 1, 2, 3, 4].reduce((s, i) => s + d[i * 7 + j]!, 0)), { atol: 1e-6, rtol: 1e-6, label: 'dbias' });
  });
});

test('matmul with M = 0 rows gives an empty output and a zero db', (t) => {
  tidy(() => {
    const a = t32([], [0, 4]), b = t32(randomF32(12), [4, 3]);
    t.deepEqual(matmul(a, b).shape, [0, 3]);
    const db = poisoned([4, 3]);
    native().matmulBackward(null, db.handle, null, t32([], [0, 3]).handle, a.handle, b.handle, false, false);
    t.deepEqual(Array.from(db.toArray()), new Array(12).fill(0));
  });
});

// ---- bf16 operands and mixed precision (compute: 'bf16') --------------------------------------
// The CPU's bf16 GEMM (packed bf16 with vdpbf16ps, or operands widened to f32 exactly) forms
// every product exactly, so it equals the float64 product of the bf16-rounded operands up to
// fp32 summation: the same tolerance as f32 (test/cpu-matmul-bf16.test.ts has the sweep). Inputs are not
// bf16-representable, so a path that skipped the rounding is off by ~2^-9 relative, far outside it.
const roundAll = (x: ArrayLike<number>) => Float64Array.from(x, roundBf16);

for (const [transA, transB] of transposes) {
  const cases: Case[] = [
    { batch: [], M: 7, N: 97, K: 5, shared: false, bias: true, transA, transB },
    { batch: [3], M: 13, N: 17, K: 33, shared: false, bias: false, transA, transB },
    { batch: [2, 3], M: 5, N: 16, K: 11, shared: true, bias: true, transA, transB },
  ];
  for (const c of cases)
    test(`matmul compute bf16 (mixed precision): f32 in and out, the GEMM on bf16 copies, ${label(c)}`, (t) => {
      const { a, b, bias } = inputs(c);
      const given = [{ values: a, shape: aShape(c) }, { values: b, shape: bShape(c) }];
      if (bias) given.push({ values: bias, shape: [c.N] });
      const mixed = (x: Tensor, y: Tensor, z?: Tensor) => {
        const out = matmul(x, y, { transA: c.transA, transB: c.transB, bias: z ?? null, compute: 'bf16' });
        t.is(out.dtype, 'f32');
        return out;
      };
      const { output, grads, weights } = gradientsOf(mixed, given);
      const { out, scale } = reference(c, roundAll(a), roundAll(b), bias);
      assertClose(t, output, out, { atol: tolerance(c.K, maxOf(scale)), rtol: 0, label: 'forward' });
      // The backward reads bf16 copies of a, b and the output's gradient; da is a bf16 GEMM
      // output (rounded once, then widened), db and dbias stay f32.
      const ref = referenceGradients(c, roundAll(a), roundAll(b), roundAll(weights));
      const rows = prod(c.batch) * c.M;
      const daBound = Float64Array.from(ref.da, (v) => Math.abs(v) * 2 ** -8 + tolerance(c.N, ref.scales.da));
      t.true(Array.from(grads[0]!).every((g, i) => Math.abs(g - ref.da[i]!) <= daBound[i]!), 'da within half a bf16 ulp of the rounded-operand reference');
      t.true(Array.from(grads[0]!).every((g) => g === roundBf16(g)), 'da is bf16-rounded');
      assertClose(t, grads[1]!, ref.db, { atol: tolerance(c.shared ? rows : c.M, ref.scales.db), rtol: 0, label: 'db' });
      if (bias) assertClose(t, grads[2]!, ref.dbias, { atol: tolerance(rows, ref.scales.dbias), rtol: 0, label: 'dbias' });
    });
}

test('matmul on bf16 tensors (CPU): bf16 or f32 out, bias and accumulate, as the GPU kernels define them', (t) => {
  const c: Case = { batch: [2], M: 9, N: 21, K: 37, shared: true, bias: true, transA: false, transB: true };
  const { a, b, bias } = inputs(c);
  const bf = (x: ArrayLike<number>, shape: number[]) => copyOf(t32(x, shape), { dtype: 'bf16' });
  const { out } = reference(c, roundAll(a), roundAll(b), roundAll(bias!));
  tidy(() => {
    const a16 = bf(a, aShape(c)), b16 = bf(b, bShape(c));
    const out16 = matmul(a16, b16, { transB: true, bias: bf(bias!, [c.N]) });
    t.is(out16.dtype, 'bf16');
    // One rounding of an fp32 result: within half a bf16 ulp (plus the fp32 sums' error).
    const got = out16.toArray();
    t.true(Array.from(got).every((g, i) => Math.abs(g - out[i]!) <= Math.abs(out[i]!) * 2 ** -8 + 1e-5), 'bf16 out');
    // f32 out accumulating onto what is there: out = prior + a·b + bias.
    const prior = randomF32(out.length);
    const out32 = t32(prior, outShape(c));
    native().matmulForward(out32.handle, a16.handle, b16.handle, t32(bias!.map(roundBf16), [c.N]).handle, false, true, true);
    assertClose(t, out32.toArray(), out.map((v, i) => v + prior[i]!), { atol: 1e-5, rtol: 0, label: 'f32 out, accumulate' });
  });
});
