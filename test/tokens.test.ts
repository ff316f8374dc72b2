// Token-axis ops: gatherTokens (and its scatter-add backward, duplicate ids included),
// concatTokens (with a shared cls token), sliceTokens and permute. These move values
// without arithmetic (except the backward sums), so forward results must be exact; the
// gradients are checked against float64 references and finite differences.
import test from 'ava';
import { concatTokens, gatherTokens, noGrad, permute, sliceTokens, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, rng, t32 } from './helpers.js';

/** Forward under noGrad: values and shape. */
function forward(fn: () => Tensor): { values: Float32Array; shape: number[] } {
  return tidy(() => noGrad(() => {
    const r = fn();
    return { values: r.toArray() as Float32Array, shape: [...r.shape] };
  }));
}

function randomIds(B: number, K: number, L: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: B * K }, () => Math.floor(r() * L));
}

// ---- gatherTokens ----------------------------------------------------------------------
function gatherRef(x: Float64Array, ids: Int32Array, B: number, L: number, K: number, C: number): Float64Array {
  const out = new Float64Array(B * K * C);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++)
      for (let c = 0; c < C; c++) out[(b * K + k) * C + c] = x[(b * L + ids[b * K + k]!) * C + c]!;
  return out;
}

/** The scatter-add backward: dx[b, ids[b, k]] += g[b, k] (repeated ids add up). */
function scatterRef(g: Float64Array, ids: Int32Array, B: number, L: number, K: number, C: number): Float64Array {
  const dx = new Float64Array(B * L * C);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < K; k++)
      for (let c = 0; c < C; c++) dx[(b * L + ids[b * K + k]!) * C + c] += g[(b * K + k) * C + c]!;
  return dx;
}

const gatherCases = [
  { B: 1, L: 1, K: 1, C: 1 },
  { B: 2, L: 97, K: 25, C: 16 },   // MAE keeps a quarter of the tokens
  { B: 3, L: 1025, K: 256, C: 3 },
  { B: 2, L: 5, K: 12, C: 193 },   // more ids than tokens: many repeats
  { B: 1, L: 64, K: 1024, C: 8 },  // batch 1, K >> L: scatter-add must not race on repeats
];

for (const { B, L, K, C } of gatherCases) {
  test(`gatherTokens (${B}, ${L}, ${C}) by ${K} ids: forward exact, scatter-add backward with repeated ids`, (t) => {
    const x = randomF32(B * L * C);
    const ids = randomIds(B, K, L, B * L + K);
    if (K > 1) ids[1] = ids[0]!;  // a repeat within sample 0, always
    const { values, shape } = forward(() => gatherTokens(t32(x, [B, L, C]), tensor(ids, [B, K])));
    t.deepEqual(shape, [B, K, C]);
    assertClose(t, values, gatherRef(x, ids, B, L, K, C), { rtol: 0, atol: 0, label: 'out' });

    const { grads, weights } = gradientsOf((v: Tensor) => gatherTokens(v, tensor(ids, [B, K])), [{ values: x, shape: [B, L, C] }]);
    assertClose(t, grads[0]!, scatterRef(weights, ids, B, L, K, C), { rtol: 1e-6, atol: 1e-6, label: 'dx' });
    const objective = ([v]: Float64Array[]) => gatherRef(v!, ids, B, L, K, C).reduce((s, e, i) => s + e * weights[i]!, 0);
    const [fd] = finiteDifferences(objective, [Float64Array.from(x)], 1e-3, 16);
    assertClose(t, grads[0]!, fd!, { rtol: 1e-4, atol: 1e-6, label: 'dx vs finite differences', probedOnly: true });
  });
}

test('gatherTokens rejects bad ids and shapes with errors naming them', (t) => {
  tidy(() => {
    t.throws(() => gatherTokens(zeros([2, 4, 8]), tensor(Int32Array.from([0, 1, 4, 2]), [2, 2])),
      { instanceOf: RangeError, message: /gatherTokens: 'ids\[1, 0\]' must be a token index in \[0, 4\), got 4/ });
    t.throws(() => gatherTokens(zeros([2, 4, 8]), zeros([2, 2])), { instanceOf: TypeError, message: /gatherTokens: 'ids' must be i32, got f32/ });
    t.throws(() => gatherTokens(zeros([2, 4, 8]), tensor(Int32Array.from([0, 1, 2]), [3, 1])),
      { instanceOf: RangeError, message: /gatherTokens: 'ids' must have B = 2 rows, got shape \[3, 1\]/ });
    t.throws(() => gatherTokens(zeros([2, 4, 8]), tensor(Int32Array.from([0, 1]), [2])),
      { instanceOf: RangeError, message: /gatherTokens: 'ids' must be \(B, K\), got shape \[2\]/ });
    t.throws(() => gatherTokens(zeros([8, 4]), tensor(Int32Array.from([0]), [1, 1])),
      { instanceOf: RangeError, message: /gatherTokens: 'x' must be \(B, L, C\), got shape \[8, 4\]/ });
  });
});

// ---- concatTokens ----------------------------------------------------------------------
const concatCases = [
  { B: 3, La: 1, Lb: 97, C: 16, shared: true },   // the cls token, one for the batch
  { B: 2, La: 3, Lb: 5, C: 7, shared: false },
  { B: 1, La: 2, Lb: 1025, C: 3, shared: true },  // batch 1: shared and per-sample coincide
];

for (const { B, La, Lb, C, shared } of concatCases) {
  test(`concatTokens a (${shared ? 1 : B}, ${La}, ${C}) with b (${B}, ${Lb}, ${C}): forward exact, backward`, (t) => {
    const Ba = shared ? 1 : B, L = La + Lb;
    const a = randomF32(Ba * La * C), b = randomF32(B * Lb * C);
    const ref = new Float64Array(B * L * C);
    for (let s = 0; s < B; s++)
      for (let l = 0; l < L; l++)
        for (let c = 0; c < C; c++)
          ref[(s * L + l) * C + c] = l < La ? a[((shared ? 0 : s) * La + l) * C + c]! : b[(s * Lb + l - La) * C + c]!;
    const { values, shape } = forward(() => concatTokens(t32(a, [Ba, La, C]), t32(b, [B, Lb, C])));
    t.deepEqual(shape, [B, L, C]);
    assertClose(t, values, ref, { rtol: 0, atol: 0, label: 'out' });

    const { grads, weights: w } = gradientsOf((x: Tensor, y: Tensor) => concatTokens(x, y), [
      { values: a, shape: [Ba, La, C] }, { values: b, shape: [B, Lb, C] },
    ]);
    const da = new Float64Array(Ba * La * C), db = new Float64Array(B * Lb * C);
    for (let s = 0; s < B; s++)
      for (let l = 0; l < L; l++)
        for (let c = 0; c < C; c++) {
          const g = w[(s * L + l) * C + c]!;
          if (l < La) da[((shared ? 0 : s) * La + l) * C + c] += g;  // a shared cls token sums over the batch
          else db[(s * Lb + l - La) * C + c] = g;
        }
    assertClose(t, grads[0]!, da, { rtol: 1e-6, atol: 1e-6, label: 'da' });
    assertClose(t, grads[1]!, db, { rtol: 0, atol: 0, label: 'db' });
  });
}

test('concatTokens rejects mismatched batches and channels', (t) => {
  tidy(() => {
    t.throws(() => concatTokens(zeros([3, 1, 8]), zeros([2, 4, 8])), { instanceOf: RangeError, message: /concatTokens: 'a' must have batch 2 or 1/ });
    t.throws(() => concatTokens(zeros([1, 1, 4]), zeros([2, 4, 8])), { instanceOf: RangeError, message: /concatTokens: 'a' .* and 'b' .* differ in channels/ });
    t.throws(() => concatTokens(zeros([1, 4]), zeros([2, 4, 8])), { instanceOf: RangeError, message: /concatTokens: 'a' must be \(B, L, C\)/ });
  });
});

// ---- sliceTokens -----------------------------------------------------------------------
for (const [start, length] of [[1, 96], [0, 1], [96, 1], [30, 40], [0, 97]] as const) {
  test(`sliceTokens (2, 97, 8) tokens [${start}, ${start + length}): forward exact, backward zero outside`, (t) => {
    const B = 2, L = 97, C = 8;
    const x = randomF32(B * L * C);
    const ref = new Float64Array(B * length * C);
    for (let s = 0; s < B; s++)
      for (let l = 0; l < length; l++)
        for (let c = 0; c < C; c++) ref[(s * length + l) * C + c] = x[(s * L + start + l) * C + c]!;
    const { values, shape } = forward(() => sliceTokens(t32(x, [B, L, C]), start, length));
    t.deepEqual(shape, [B, length, C]);
    assertClose(t, values, ref, { rtol: 0, atol: 0, label: 'out' });

    const { grads, weights } = gradientsOf((v: Tensor) => sliceTokens(v, start, length), [{ values: x, shape: [B, L, C] }]);
    const dx = new Float64Array(B * L * C);
    for (let s = 0; s < B; s++)
      for (let l = 0; l < length; l++)
        for (let c = 0; c < C; c++) dx[(s * L + start + l) * C + c] = weights[(s * length + l) * C + c]!;
    assertClose(t, grads[0]!, dx, { rtol: 0, atol: 0, label: 'dx' });
  });
}

test('sliceTokens rejects a range outside the tokens', (t) => {
  tidy(() => {
    t.throws(() => sliceTokens(zeros([2, 5, 3]), 2, 4), { instanceOf: RangeError, message: /sliceTokens: tokens \[2, 6\) exceed L = 5/ });
    t.throws(() => sliceTokens(zeros([2, 5, 3]), -1, 2), { message: /sliceTokens: 'start'/ });
    t.throws(() => sliceTokens(zeros([2, 5, 3]), 0, 1.5), { instanceOf: RangeError, message: /sliceTokens: 'length' must be a non-negative integer, got 1.5/ });
    t.throws(() => sliceTokens(zeros([5, 3]), 0, 1), { instanceOf: RangeError, message: /sliceTokens: 'x' must be \(B, L, C\)/ });
  });
});

// ---- permute ---------------------------------------------------------------------------
function permuteRef(x: Float64Array, shape: readonly number[], perm: readonly number[]): Float64Array {
  const nd = shape.length, strides = new Array<number>(nd);
  for (let d = nd - 1, s = 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const out = new Float64Array(x.length);
  for (let o = 0; o < x.length; o++) {
    let rest = o, offset = 0;
    for (let d = nd - 1; d >= 0; d--) {
      offset += (rest % outShape[d]!) * strides[perm[d]!]!;
      rest = Math.floor(rest / outShape[d]!);
    }
    out[o] = x[offset]!;
  }
  return out;
}

const permuteCases: { shape: number[]; perm: number[]; what: string }[] = [
  { shape: [2, 3, 32, 32], perm: [0, 2, 3, 1], what: '(B, C, H, W) -> (B, H, W, C)' },
  { shape: [2, 32, 32, 3], perm: [0, 3, 1, 2], what: '(B, H, W, C) -> (B, C, H, W)' },
  { shape: [2, 97, 3, 2, 16], perm: [2, 0, 3, 1, 4], what: '(B, L, 3, H, D) -> (3, B, H, L, D)' },
  { shape: [3, 2, 2, 97, 16], perm: [1, 3, 0, 2, 4], what: '(3, B, H, L, D) -> (B, L, 3, H, D)' },
  { shape: [2, 4, 1025, 8], perm: [0, 2, 1, 3], what: '(B, H, L, D) -> (B, L, H, D)' },
  { shape: [97, 33], perm: [1, 0], what: 'a matrix transpose' },
  { shape: [3, 1, 5, 1, 2, 4, 3, 2], perm: [7, 2, 0, 5, 1, 6, 3, 4], what: '8 axes with size-1 ones' },
  { shape: [5, 7, 3, 2, 3, 4], perm: [4, 1, 5, 0, 3, 2], what: '6 axes' },
  { shape: [1025], perm: [0], what: 'one axis' },
  { shape: [1, 1, 1], perm: [2, 1, 0], what: 'one element' },
];

for (const { shape, perm, what } of permuteCases) {
  test(`permute [${shape}] by [${perm}] (${what}): forward exact, backward the inverse permute`, (t) => {
    const x = randomF32(prod(shape));
    const { values, shape: outShape } = forward(() => permute(t32(x, shape), perm));
    t.deepEqual(outShape, perm.map((p) => shape[p]!));
    assertClose(t, values, permuteRef(x, shape, perm), { rtol: 0, atol: 0, label: 'out' });
    const { grads, weights } = gradientsOf((v: Tensor) => permute(v, perm), [{ values: x, shape }]);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    assertClose(t, grads[0]!, permuteRef(weights, outShape, inverse), { rtol: 0, atol: 0, label: 'dx' });
  });
}

test('permute rejects a perm that is not a permutation of the axes', (t) => {
  tidy(() => {
    t.throws(() => permute(zeros([2, 3, 4]), [0, 1]), { instanceOf: RangeError, message: /permute: 'perm' must be a permutation of 0..2, got \[0, 1\]/ });
    t.throws(() => permute(zeros([2, 3, 4]), [0, 1, 1]), { instanceOf: RangeError, message: /permute: 'perm' must be a permutation of 0..2, got \[0, 1, 1\]/ });
  });
});

test('permute names \'perm\' when an axis is out of range', (t) => {
  tidy(() => {
    t.throws(() => permute(zeros([2, 3, 4]), [0, 1, 3]), { instanceOf: RangeError, message: /permute: 'perm' must be a permutation of 0..2/ });
    t.throws(() => permute(zeros([2, 3, 4]), [0, -1, 2]), { instanceOf: RangeError, message: /permute: 'perm' must be a permutation of 0..2/ });
  });
});
