// sum and mean over one axis (or over everything): forward against float64 with an error
// bound of 2x a naive float32 running sum, backward through autograd against the
// analytic gradient (the upstream gradient broadcast along the axis) and finite differences.
import test from 'ava';
import { mean, noGrad, sum, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, run, t32 } from './helpers.js';

/** x (outer, n, inner) -> (outer, inner): float64 sums and naive float32 running sums. */
function reduceRef(x: Float64Array, shape: readonly number[], axis: number, isMean: boolean) {
  const outer = prod(shape.slice(0, axis)), n = shape[axis]!, inner = prod(shape.slice(axis + 1));
  const exact = new Float64Array(outer * inner), naive = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let s = 0, f = 0;
      for (let j = 0; j < n; j++) {
        const v = x[(o * n + j) * inner + i]!;
        s += v;
        f = Math.fround(f + v);
      }
      exact[o * inner + i] = isMean ? s / n : s;
      naive[o * inner + i] = isMean ? Math.fround(f / n) : f;
    }
  return { exact, naive, outer, n, inner };
}

const maxError = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const cases: { shape: number[]; axis: number }[] = [
  { shape: [1], axis: 0 },
  { shape: [97], axis: 0 },
  { shape: [3, 1025], axis: 1 },         // contiguous rows (inner = 1)
  { shape: [3, 1025], axis: 0 },         // columns
  { shape: [2, 5, 7], axis: 1 },
  { shape: [2, 5, 7], axis: -1 },
  { shape: [2, 20011], axis: 1 },        // long rows: several fixed blocks per row
  { shape: [40000, 3], axis: 0 },        // long and narrow: blocks of rows, inner = 3
  { shape: [1, 601, 192], axis: 1 },     // a bias gradient over (B·L) tokens
  { shape: [3, 4, 2050], axis: 1 },      // inner wider than one accumulator tile
  { shape: [4, 1, 9], axis: 1 },         // n = 1
];

for (const { shape, axis } of cases) {
  for (const isMean of [false, true]) {
    const name = isMean ? 'mean' : 'sum';
    test(`${name} of [${shape}] over axis ${axis}: forward within 2x naive float32 error, backward`, (t) => {
      const a = axis < 0 ? axis + shape.length : axis;
      const op = isMean ? mean : sum;
      const x = randomF32(prod(shape), 1);
      for (let i = 0; i < x.length; i++) x[i] = Math.fround(x[i]! + 0.25);  // a non-zero mean, so sums grow with n
      const outShape = shape.filter((_, i) => i !== a);
      const { out, gotShape } = tidy(() => noGrad(() => {
        const r = op(t32(x, shape), axis);
        return { out: r.toArray(), gotShape: [...r.shape] };
      }));
      t.deepEqual(gotShape, outShape);
      const { exact, naive, n } = reduceRef(x, shape, a, isMean);
      t.is(out.length, exact.length);
      const bound = 2 * maxError(naive, exact) + 4 * 2 ** -24 * (isMean ? 1 : Math.sqrt(n));
      const err = maxError(out, exact);
      t.true(err <= bound, `max error ${err} exceeds 2x naive float32 (${maxError(naive, exact)}) + slack`);

      const { grads, weights } = gradientsOf((v: Tensor) => op(v, axis), [{ values: x, shape }]);
      const { outer, inner } = reduceRef(x, shape, a, isMean);
      const ref = new Float64Array(x.length);
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < n; j++)
          for (let i = 0; i < inner; i++) ref[(o * n + j) * inner + i] = isMean ? weights[o * inner + i]! / n : weights[o * inner + i]!;
      assertClose(t, grads[0]!, ref, { rtol: 1e-6, atol: 0, label: 'dx' });
    });
  }
}

test('sum and mean over all elements, and finite differences of a weighted mean', (t) => {
  const shape = [2, 97, 3];
  const x = randomF32(prod(shape));
  const total = x.reduce((s, v) => s + v, 0);
  assertClose(t, run(() => sum(t32(x, shape))), [total], { rtol: 1e-5, atol: 1e-5 });
  assertClose(t, run(() => mean(t32(x, shape))), [total / x.length], { rtol: 1e-5, atol: 1e-7 });

  const { grads, weights } = gradientsOf((v: Tensor) => mean(v, 1), [{ values: x, shape }]);
  const objective = ([v]: Float64Array[]) => {
    const { exact } = reduceRef(v!, shape, 1, true);
    return exact.reduce((s, e, i) => s + e * weights[i]!, 0);
  };
  const [fd] = finiteDifferences(objective, [Float64Array.from(x)], 1e-3, 24);
  assertClose(t, grads[0]!, fd!, { rtol: 1e-4, atol: 1e-7, label: 'dx vs finite differences', probedOnly: true });
});

test('sum and mean reject a bad axis with an error naming it', (t) => {
  tidy(() => {
    t.throws(() => sum(zeros([2, 3]), 2), { instanceOf: RangeError, message: /sum: 'axis' must be an integer in \[-2, 2\) for shape \[2, 3\], got 2/ });
    t.throws(() => mean(zeros([2, 3]), -3), { instanceOf: RangeError, message: /mean: 'axis' must be an integer in \[-2, 2\)/ });
    t.throws(() => sum(zeros([2, 3]), 0.5), { instanceOf: RangeError, message: /sum: 'axis' must be an integer/ });
    t.throws(() => mean(zeros([2, 0, 3]), 1), { instanceOf: RangeError, message: /mean over an empty axis/ });
    t.throws(() => sum('x' as never, 0), { instanceOf: TypeError, message: /sum: 'x' must be a Tensor, got string/ });
  });
});

test('sum over an empty axis is zeros', (t) => {
  assertClose(t, run(() => sum(zeros([2, 0, 3]), 1)), new Float64Array(6), { rtol: 0, atol: 0 });
});
