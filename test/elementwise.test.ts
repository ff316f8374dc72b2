// add, sub, mul, scale with broadcasting: forward against float64, backward against the
// analytic float64 gradient and finite differences.
import test from 'ava';
import { add, mul, scale, sub, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, run, t32 } from './helpers.js';

const cases: { a: number[]; b: number[] }[] = [
  { a: [97], b: [97] },
  { a: [3, 5, 16], b: [16] },        // bias over channels
  { a: [2, 97, 8], b: [97, 8] },     // position embedding over tokens
  { a: [4, 7], b: [1] },             // scalar
  { a: [1025], b: [] },              // 0-d scalar
];

function broadcastRef(a: Float64Array, b: Float64Array, f: (x: number, y: number) => number): Float64Array {
  return a.map((x, i) => f(x, b[i % b.length]!));
}

for (const { a: sa, b: sb } of cases) {
  for (const [name, op, f] of [
    ['add', add, (x: number, y: number) => x + y],
    ['sub', sub, (x: number, y: number) => x - y],
    ['mul', mul, (x: number, y: number) => x * y],
  ] as const) {
    test(`${name} forward and backward, a [${sa}] with b [${sb}]`, (t) => {
      const a = randomF32(prod(sa)), b = randomF32(prod(sb));
      const out = run(() => op(t32(a, sa), t32(b, sb)));
      assertClose(t, out, broadcastRef(a, b, f), { rtol: 1e-6, atol: 1e-6, label: 'forward' });

      const { grads, weights } = gradientsOf((x: Tensor, y: Tensor) => op(x, y), [{ values: a, shape: sa }, { values: b, shape: sb }]);
      const objective = ([x, y]: Float64Array[]) => broadcastRef(x!, y!, f).reduce((s, v, i) => s + v * weights[i]!, 0);
      const [da, db] = finiteDifferences(objective, [Float64Array.from(a), Float64Array.from(b)], 1e-3, 24);
      // The objective is at most quadratic, so central differences are exact up to rounding.
      assertClose(t, grads[0]!, da!, { rtol: 1e-3, atol: 1e-3, label: 'da', probedOnly: true });
      assertClose(t, grads[1]!, db!, { rtol: 1e-3, atol: 1e-3 * Math.sqrt(prod(sa)), label: 'db', probedOnly: true });
    });
  }
}

test('scale forward and backward', (t) => {
  const x = randomF32(1025);
  assertClose(t, run(() => scale(t32(x, [1025]), -2.5)), x.map((v) => -2.5 * v), { rtol: 1e-7, atol: 0 });
  const { grads, weights } = gradientsOf((v: Tensor) => scale(v, 3), [{ values: x, shape: [1025] }]);
  assertClose(t, grads[0]!, weights.map((w) => 3 * w), { rtol: 1e-6, atol: 0 });
});

test('broadcast shapes that do not line up are a RangeError naming b', (t) => {
  t.throws(() => add(t32([1, 2, 3, 4, 5, 6], [2, 3]), t32([1, 2], [2])), { instanceOf: RangeError, message: /add: 'b' of shape \[2\] must match the trailing dims of 'a' \[2, 3\]/ });
  t.throws(() => mul(t32([1, 2], [2]), t32([1, 2, 3, 4], [2, 2])), { instanceOf: RangeError, message: /mul: 'b'/ });
});
