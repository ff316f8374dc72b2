// attention through the public API: the forward (out and lse) against a float64 reference at
// L = 1, 97, 1025 and head dims 16, 32, 64, 128 (plus awkward ones), the backward against the
// float64 analytic gradient, and both against central finite differences at a tiny size.
// Sizes cover one key/query tile, several with a ragged last tile, one head split over many
// work items (its dQ summed from partials) and many heads; inputs x3 stress the softmax.
// Then the native entry points directly: NaN-poisoned outputs, bitwise repeatability.
import test, { type ExecutionContext } from 'ava';
import { attention, attentionWithLse, checkPrecision, native, noGrad, poisoned, randn, tidy, type Tensor } from '../lib/index.js';
import { assertClose, attentionLabel, attentionReference as reference, finiteDifferences, gradientsOf, qkvShape, randomF32, t32, type AttentionDims } from './helpers.js';


const qkvSize = ({ B, L, H, D }: AttentionDims) => B * L * 3 * H * D;

const maxAbs = (x: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
};

// fp32 bounds, from a float64 comparison of the native kernels over L = 1..4097, D = 8..128 and
// inputs x1 and x3 (worst seen: out 3.8e-6, dqkv 5.9e-6 of the largest element; lse 1.6e-6
// relative): ~4x that, far below what a wrong index, tile edge or softmax rescale produces.
const outTolerance = (ref: ArrayLike<number>) => 1.5e-5 * maxAbs(ref);
const gradTolerance = (ref: ArrayLike<number>) => 2.5e-5 * maxAbs(ref);
const lseTolerance = { atol: 1e-5, rtol: 6e-6 };

function forwardOf(dims: AttentionDims, qkv: Float64Array): { out: Float32Array; lse: Float32Array } {
  return tidy(() =>
    noGrad(() => {
      const r = attentionWithLse(t32(qkv, qkvShape(dims)));
      return { out: r.out.toArray() as Float32Array, lse: r.lse.toArray() as Float32Array };
    }),
  );
}

function checkForward(t: ExecutionContext, dims: AttentionDims, std = 1) {
  const qkv = randomF32(qkvSize(dims), std);
  const got = forwardOf(dims, qkv);
  const ref = reference(dims, qkv);
  assertClose(t, got.out, ref.out, { atol: outTolerance(ref.out), rtol: 0, label: 'out' });
  assertClose(t, got.lse, ref.lse, { ...lseTolerance, label: 'lse' });
}

function checkBackward(t: ExecutionContext, dims: AttentionDims, std = 1) {
  const qkv = randomF32(qkvSize(dims), std);
  const { output, grads, weights } = gradientsOf((x: Tensor) => attention(x), [{ values: qkv, shape: qkvShape(dims) }]);
  const ref = reference(dims, qkv, weights);
  assertClose(t, output, ref.out, { atol: outTolerance(ref.out), rtol: 0, label: 'out (graph)' });
  assertClose(t, grads[0]!, ref.dqkv!, { atol: gradTolerance(ref.dqkv!), rtol: 0, label: 'dqkv' });
}

// The sweep the design asks for: batch 1, L = 1, 97, 1025, head dims 16/32/64/128. L = 1025
// runs one head to stay quick; it is still 17 key tiles and 17 (or 33) query tiles.
for (const D of [16, 32, 64, 128]) {
  for (const L of [1, 97, 1025]) {
    const dims = { B: 1, L, H: L > 97 ? 1 : 2, D };
    test(`attention forward (out, lse) vs float64, ${attentionLabel(dims)}`, (t) => checkForward(t, dims));
  }
}

test('attention forward vs float64 at awkward head dims (8, 24, 100) and a batch', (t) => {
  for (const dims of [
    { B: 1, L: 97, H: 2, D: 8 },
    { B: 2, L: 65, H: 3, D: 24 },
    { B: 1, L: 130, H: 1, D: 100 },
  ])
    checkForward(t, dims);
});

test('attention forward vs float64 with peaked softmaxes (inputs x3)', (t) => {
  checkForward(t, { B: 1, L: 97, H: 2, D: 64 }, 3);
  checkForward(t, { B: 1, L: 300, H: 1, D: 16 }, 3);
});

for (const dims of [
  { B: 1, L: 1, H: 2, D: 16 },    // a single key: dq = dk = 0 exactly
  { B: 1, L: 97, H: 2, D: 16 },   // 2 key tiles; dQ summed from per-item partials
  { B: 1, L: 97, H: 2, D: 32 },
  { B: 1, L: 97, H: 2, D: 64 },   // the narrower query tile used above D = 32
  { B: 1, L: 97, H: 1, D: 128 },
  { B: 2, L: 70, H: 5, D: 16 },   // 10 heads: each item a whole head, dQ written directly
  { B: 1, L: 1025, H: 1, D: 16 }, // 17 key tiles over 8 items
]) {
  test(`attention backward vs float64, ${attentionLabel(dims)}`, (t) => checkBackward(t, dims));
}

test('attention backward vs float64 with peaked softmaxes (inputs x3)', (t) => {
  checkBackward(t, { B: 1, L: 97, H: 2, D: 32 }, 3);
});

test('attention backward vs central finite differences of the float64 forward', (t) => {
  const dims = { B: 2, L: 5, H: 2, D: 8 };
  const qkv = randomF32(qkvSize(dims));
  const { grads, weights } = gradientsOf((x: Tensor) => attention(x), [{ values: qkv, shape: qkvShape(dims) }]);
  const objective = ([x]: Float64Array[]) => reference(dims, x!).out.reduce((s, v, i) => s + v * weights[i]!, 0);
  const [fd] = finiteDifferences(objective, [Float64Array.from(qkv)], 1e-3);
  // Truncation error h²/6·f''' is ~1e-7 here; the rest is the kernel's fp32 rounding.
  assertClose(t, grads[0]!, fd!, { atol: 1e-4 * maxAbs(fd!), rtol: 1e-4, label: 'dqkv vs finite differences' });
});

const NAN_FREE = (x: ArrayLike<number>) => !Array.prototype.some.call(x, (v: number) => Number.isNaN(v));

test('attentionForward / attentionBackward write every element of NaN-poisoned outputs', (t) => {
  for (const dims of [
    { B: 1, L: 1, H: 3, D: 16 },
    { B: 3, L: 197, H: 4, D: 24 },  // 12 heads: whole-head items; D not a multiple of 16
    { B: 1, L: 130, H: 1, D: 64 },  // one head over several items, dQ from partials
    { B: 2, L: 33, H: 2, D: 128 },
  ]) {
    tidy(() => {
      const { B, L, H, D } = dims;
      const qkv = randn(qkvShape(dims), { seed: 11 }), dout = randn([B, L, H, D], { seed: 12 });
      const out = poisoned([B, L, H, D]), lse = poisoned([B, H, L]), dqkv = poisoned(qkvShape(dims));
      t.false(NAN_FREE(out.toArray()), 'the poison is there before the call');
      native().attentionForward(out.handle, lse.handle, qkv.handle);
      t.true(NAN_FREE(out.toArray()), `${attentionLabel(dims)}: out fully written`);
      t.true(NAN_FREE(lse.toArray()), `${attentionLabel(dims)}: lse fully written`);
      native().attentionBackward(dqkv.handle, dout.handle, qkv.handle, out.handle, lse.handle);
      t.true(NAN_FREE(dqkv.toArray()), `${attentionLabel(dims)}: dqkv fully written`);
    });
  }
});

test('attention gradients are bitwise repeatable from call to call', (t) => {
  // Work splits depend on the shape only, and every sum runs in a fixed order.
  for (const dims of [{ B: 1, L: 300, H: 1, D: 32 }, { B: 2, L: 97, H: 6, D: 16 }]) {
    const qkv = randomF32(qkvSize(dims));
    const first = gradientsOf((x: Tensor) => attention(x), [{ values: qkv, shape: qkvShape(dims) }]);
    const again = gradientsOf((x: Tensor) => attention(x), [{ values: qkv, shape: qkvShape(dims) }], first.weights);
    t.deepEqual(Array.from(again.output), Array.from(first.output), `${attentionLabel(dims)}: out bit for bit`);
    t.deepEqual(Array.from(again.grads[0]!), Array.from(first.grads[0]!), `${attentionLabel(dims)}: dqkv bit for bit`);
  }
});

test('attention precision: bf16 runs on the cpu too (close to f32); a run\'s precision is f32 or mixed', (t) => {
  const qkv = randn([1, 4, 3, 2, 16], { seed: 5 });
  const [mixed, full] = [attention(qkv, { precision: 'bf16' }), attention(qkv)];
  t.is(mixed.dtype, 'f32');
  assertClose(t, mixed.toArray(), full.toArray(), { atol: 2e-2, rtol: 2e-2 });
  mixed.dispose();
  full.dispose();
  t.throws(() => attention(qkv, { precision: 'f16' as never }), { instanceOf: TypeError, message: /'precision' must be "f32" or "bf16", got "f16"/ });
  t.throws(() => checkPrecision('bf16'), { instanceOf: TypeError, message: /precision must be "f32" or "mixed", got "bf16"/ });
  t.is(checkPrecision('mixed'), 'mixed');
  t.is(checkPrecision('f32'), 'f32');
  qkv.dispose();
});
