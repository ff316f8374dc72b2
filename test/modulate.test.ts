// modulate (x·(1 + scale) + shift) and gatedResidual (x + gate·y), per sample, x and y
// (B, L, C), shift / scale / gate (B, C): forward against float64, backward (through
// autograd) against the analytic float64 gradients and central finite differences, partial
// gradients, NaN-poisoned outputs, bad input.
import test from 'ava';
import { backward, empty, poisoned, gatedResidual, modulate, native, randn, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, run, t32 } from './helpers.js';


type BLC = [number, number, number];

// out[b, l, c] = f(x[b, l, c], y[b, l, c], row[b, c]) in float64
function perSample(shape: BLC, f: (i: number, j: number) => number): Float64Array {
  const [B, L, C] = shape;
  const out = new Float64Array(B * L * C);
  for (let b = 0; b < B; b++)
    for (let l = 0; l < L; l++)
      for (let c = 0; c < C; c++) out[(b * L + l) * C + c] = f((b * L + l) * C + c, b * C + c);
  return out;
}
// Σ over L of v[b, l, c] -> (B, C)
function sumOverTokens(shape: BLC, v: Float64Array): Float64Array {
  const [B, L, C] = shape;
  const out = new Float64Array(B * C);
  for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let c = 0; c < C; c++) out[b * C + c] += v[(b * L + l) * C + c]!;
  return out;
}
const modulateRef = (shape: BLC, x: Float64Array, shift: Float64Array, scale: Float64Array) =>
  perSample(shape, (i, j) => x[i]! * (1 + scale[j]!) + shift[j]!);
const gatedRef = (shape: BLC, x: Float64Array, y: Float64Array, gate: Float64Array) =>
  perSample(shape, (i, j) => x[i]! + gate[j]! * y[i]!);

// L = 1, 97, 1025; batch 1; C from 16 to 192, odd ones included.
const shapes: BLC[] = [[1, 1, 16], [1, 97, 192], [2, 1025, 16], [1, 1025, 64], [3, 97, 31], [8, 1, 17]];

for (const shape of shapes) {
  const [B, , C] = shape, n = prod(shape);
  // The reductions over L sum up to 1025 products of O(1) values: rounding grows like √L.
  const sumTol = 2e-6 * Math.sqrt(shape[1]);

  test(`modulate (${shape}): forward and backward`, (t) => {
    const x = randomF32(n), shift = randomF32(B * C), scale = randomF32(B * C, 0.5);
    const out = run(() => modulate(t32(x, shape), t32(shift, [B, C]), t32(scale, [B, C])));
    assertClose(t, out, modulateRef(shape, x, shift, scale), { atol: 1e-6, rtol: 1e-6, label: 'forward' });

    const { grads, weights: w } = gradientsOf(modulate, [{ values: x, shape }, { values: shift, shape: [B, C] }, { values: scale, shape: [B, C] }]);
    assertClose(t, grads[0]!, perSample(shape, (i, j) => w[i]! * (1 + scale[j]!)), { atol: 1e-6, rtol: 1e-6, label: 'dx' });
    assertClose(t, grads[1]!, sumOverTokens(shape, w), { atol: sumTol, rtol: 1e-5, label: 'dshift' });
    assertClose(t, grads[2]!, sumOverTokens(shape, perSample(shape, (i) => w[i]! * x[i]!)), { atol: sumTol, rtol: 1e-5, label: 'dscale' });

    // The objective is bilinear, so central differences are exact up to float64 rounding.
    const objective = ([xs, sh, sc]: Float64Array[]) => modulateRef(shape, xs!, sh!, sc!).reduce((s, v, i) => s + v * w[i]!, 0);
    const fd = finiteDifferences(objective, [Float64Array.from(x), Float64Array.from(shift), Float64Array.from(scale)], 1e-2, 16);
    ['dx', 'dshift', 'dscale'].forEach((label, k) =>
      assertClose(t, grads[k]!, fd[k]!, { atol: 10 * sumTol, rtol: 1e-4, label: `${label} vs finite differences`, probedOnly: true }));
  });

  test(`gatedResidual (${shape}): forward and backward`, (t) => {
    const x = randomF32(n), y = randomF32(n), gate = randomF32(B * C);
    const out = run(() => gatedResidual(t32(x, shape), t32(y, shape), t32(gate, [B, C])));
    assertClose(t, out, gatedRef(shape, x, y, gate), { atol: 1e-6, rtol: 1e-6, label: 'forward' });

    const { grads, weights: w } = gradientsOf(gatedResidual, [{ values: x, shape }, { values: y, shape }, { values: gate, shape: [B, C] }]);
    assertClose(t, grads[0]!, w, { atol: 0, rtol: 0, label: 'dx = dout' });
    assertClose(t, grads[1]!, perSample(shape, (i, j) => w[i]! * gate[j]!), { atol: 1e-6, rtol: 1e-6, label: 'dy' });
    assertClose(t, grads[2]!, sumOverTokens(shape, perSample(shape, (i) => w[i]! * y[i]!)), { atol: sumTol, rtol: 1e-5, label: 'dgate' });

    const objective = ([xs, ys, gs]: Float64Array[]) => gatedRef(shape, xs!, ys!, gs!).reduce((s, v, i) => s + v * w[i]!, 0);
    const fd = finiteDifferences(objective, [Float64Array.from(x), Float64Array.from(y), Float64Array.from(gate)], 1e-2, 16);
    ['dx', 'dy', 'dgate'].forEach((label, k) =>
      assertClose(t, grads[k]!, fd[k]!, { atol: 10 * sumTol, rtol: 1e-4, label: `${label} vs finite differences`, probedOnly: true }));
  });
}

test('modulate and gatedResidual: gradients of a subset of inputs match the full backward', (t) => {
  const shape: BLC = [2, 97, 24], [B, , C] = shape, n = prod(shape);
  const x = randomF32(n), y = randomF32(n), row = randomF32(B * C), row2 = randomF32(B * C), w = randomF32(n);
  const full3 = gradientsOf(modulate, [{ values: x, shape }, { values: row, shape: [B, C] }, { values: row2, shape: [B, C] }], w);
  const fullG = gradientsOf(gatedResidual, [{ values: x, shape }, { values: y, shape }, { values: row, shape: [B, C] }], w);
  tidy(() => {
    // Only the per-sample rows want gradients: the native backward gets null for dx / dy.
    const xs = t32(x, shape), ys = t32(y, shape), shift = t32(row, [B, C], true), scale = t32(row2, [B, C], true), gate = t32(row, [B, C], true);
    backward(modulate(xs, shift, scale), t32(w, shape));
    backward(gatedResidual(xs, ys, gate), t32(w, shape));
    t.is(xs.grad, null);
    t.deepEqual(Array.from(shift.grad!.toArray()), Array.from(full3.grads[1]!), 'dshift without dx');
    t.deepEqual(Array.from(scale.grad!.toArray()), Array.from(full3.grads[2]!), 'dscale without dx');
    t.deepEqual(Array.from(gate.grad!.toArray()), Array.from(fullG.grads[2]!), 'dgate without dy');
    // And only x / y: no per-sample reductions at all.
    const x2 = t32(x, shape, true), y2 = t32(y, shape, true);
    backward(modulate(x2, t32(row, [B, C]), t32(row2, [B, C])), t32(w, shape));
    backward(gatedResidual(t32(x, shape), y2, t32(row, [B, C])), t32(w, shape));
    t.deepEqual(Array.from(x2.grad!.toArray()), Array.from(full3.grads[0]!), 'dx without dshift / dscale');
    t.deepEqual(Array.from(y2.grad!.toArray()), Array.from(fullG.grads[1]!), 'dy without dgate');
  });
});

test('modulate / gatedResidual native entry points write every element of NaN-poisoned outputs', (t) => {
  tidy(() => {
    const [B, L, C] = [3, 97, 17];
    const x = randn([B, L, C], { seed: 1 }), y = randn([B, L, C], { seed: 2 }), dout = randn([B, L, C], { seed: 3 });
    const shift = randn([B, C], { seed: 4 }), scale = randn([B, C], { seed: 5 }), gate = randn([B, C], { seed: 6 });
    const written = (name: string, v: Tensor) => t.false(Array.from(v.toArray()).some(Number.isNaN), `${name} fully written`);
    const out = poisoned([B, L, C]);
    t.true(Number.isNaN(out.toArray()[0]!), 'the poison is there before the call');
    native().modulateForward(out.handle, x.handle, shift.handle, scale.handle);
    written('modulate out', out);
    const dx = poisoned([B, L, C]), dshift = poisoned([B, C]), dscale = poisoned([B, C]);
    native().modulateBackward(dx.handle, dshift.handle, dscale.handle, dout.handle, x.handle, scale.handle);
    [['dx', dx], ['dshift', dshift], ['dscale', dscale]].forEach(([name, v]) => written(name as string, v as Tensor));
    const out2 = poisoned([B, L, C]);
    native().gatedResidualForward(out2.handle, x.handle, y.handle, gate.handle);
    written('gatedResidual out', out2);
    const dy = poisoned([B, L, C]), dgate = poisoned([B, C]);
    native().gatedResidualBackward(dy.handle, dgate.handle, dout.handle, y.handle, gate.handle);
    written('dy', dy);
    written('dgate', dgate);
  });
});

test('modulate / gatedResidual bad input: the error type names the parameter', (t) => {
  tidy(() => {
    t.throws(() => modulate(zeros([4, 8]), zeros([4, 8]), zeros([4, 8])), { instanceOf: RangeError, message: /modulateForward: 'x' must be 3-D \(B, L, C\), got shape \[4, 8\]/ });
    t.throws(() => modulate(zeros([2, 5, 8]), zeros([2, 7]), zeros([2, 8])), { instanceOf: RangeError, message: /modulateForward: 'shift' must have shape \[2, 8\], got \[2, 7\]/ });
    t.throws(() => modulate(zeros([2, 5, 8]), zeros([2, 8]), zeros([1, 8])), { instanceOf: RangeError, message: /modulateForward: 'scale' must have shape \[2, 8\], got \[1, 8\]/ });
    t.throws(() => modulate(zeros([2, 5, 8]), empty([2, 8], { dtype: 'bf16' }), zeros([2, 8])), { instanceOf: TypeError, message: /modulateForward: 'shift' must be f32, got bf16/ });
    t.throws(() => modulate(zeros([2, 5, 8]), zeros([2, 8]), 'scale' as never), { instanceOf: TypeError, message: /modulate: 'scale' must be a Tensor, got string/ });
    t.throws(() => gatedResidual(zeros([2, 5, 8]), zeros([2, 5, 7]), zeros([2, 8])), { instanceOf: RangeError, message: /gatedResidualForward: 'y' must have shape \[2, 5, 8\], got \[2, 5, 7\]/ });
    t.throws(() => gatedResidual(zeros([2, 5, 8]), zeros([2, 5, 8]), zeros([8])), { instanceOf: RangeError, message: /gatedResidualForward: 'gate' must have shape \[2, 8\], got \[8\]/ });
    t.throws(() => gatedResidual(zeros([2, 5, 8]), zeros([2, 5, 8]), empty([2, 8], { dtype: 'i32' })), { instanceOf: TypeError, message: /gatedResidualForward: 'gate' must be f32, got i32/ });
    t.throws(() => gatedResidual(zeros([2, 5, 8]), undefined as never, zeros([2, 8])), { instanceOf: TypeError, message: /gatedResidual: 'y' must be a Tensor, got undefined/ });
    t.throws(() => native().modulateBackward(null, zeros([2, 9]).handle, null, zeros([2, 5, 8]).handle, zeros([2, 5, 8]).handle, zeros([2, 8]).handle),
      { instanceOf: RangeError, message: /modulateBackward: 'dshift' must have shape \[2, 8\], got \[2, 9\]/ });
    t.throws(() => native().gatedResidualBackward(zeros([2, 5, 9]).handle, null, zeros([2, 5, 8]).handle, zeros([2, 5, 8]).handle, zeros([2, 8]).handle),
      { instanceOf: RangeError, message: /gatedResidualBackward: 'dy' must have shape \[2, 5, 8\], got \[2, 5, 9\]/ });
  });
});
