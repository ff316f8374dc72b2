// gelu (erf and tanh forms) and silu: forward against float64 references, backward (through
// autograd) against the analytic float64 derivative and central finite differences, the left
// tail judged relative to itself, NaN-poisoned outputs, bad input.
import test from 'ava';
import { empty, poisoned, gelu, native, silu, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, run, t32 } from './helpers.js';


// ---- float64 references ---------------------------------------------------------------
// erfc(z) to ~1e-13 relative for z ≥ 0: the Maclaurin series of erf below 2.5 (its terms
// peak near e^{z²} ≈ 500, costing ~3 of 16 digits), Lentz's continued fraction above.
function erfcNonNegative(z: number): number {
  if (z < 2.5) {
    let term = z, sum = z;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))
  const tiny = 1e-300;
  let f = z, c = z, d = 0;
  for (let n = 1; n < 300; n++) {
    const a = n / 2;
    d = z + a * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = z + a / c;
    if (Math.abs(c) < tiny) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
}
/** Φ(x), the standard normal CDF, accurate in both tails. */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2, half = 0.5 * erfcNonNegative(z);
  return x < 0 ? half : 1 - half;
}
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const K0 = 2 * Math.sqrt(2 / Math.PI), K1 = K0 * 0.044715; // 2u = x·(K0 + K1·x²)

interface Activation {
  name: string;
  apply(x: Tensor): Tensor;
  f(x: number): number;
  df(x: number): number;
  forward(out: Tensor, x: Tensor): void;
  backward(dx: Tensor, dout: Tensor, x: Tensor): void;
}

const activations: Activation[] = [
  {
    name: 'gelu (erf)',
    apply: (x) => gelu(x),
    f: (x) => x * normalCdf(x),
    df: (x) => normalCdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
    forward: (out, x) => native().geluForward(out.handle, x.handle, 'none'),
    backward: (dx, dout, x) => native().geluBackward(dx.handle, dout.handle, x.handle, 'none'),
  },
  {
    name: 'gelu (tanh)',
    apply: (x) => gelu(x, 'tanh'),
    // 0.5x(1 + tanh u) = x·σ(2u): this way the float64 reference does not cancel in the left tail.
    f: (x) => x * sigmoid(x * (K0 + K1 * x * x)),
    df: (x) => {
      const s = sigmoid(x * (K0 + K1 * x * x));
      return s + x * s * (1 - s) * (K0 + 3 * K1 * x * x);
    },
    forward: (out, x) => native().geluForward(out.handle, x.handle, 'tanh'),
    backward: (dx, dout, x) => native().geluBackward(dx.handle, dout.handle, x.handle, 'tanh'),
  },
  {
    name: 'silu',
    apply: (x) => silu(x),
    f: (x) => x * sigmoid(x),
    df: (x) => {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    },
    forward: (out, x) => native().siluForward(out.handle, x.handle),
    backward: (dx, dout, x) => native().siluBackward(dx.handle, dout.handle, x.handle),
  },
];

// Sizes: one element, L = 97 and 1025 rows of awkward widths, a (B, L, C) block.
const shapes = [[1], [97], [1025, 3], [1, 97, 192], [2, 1025, 16]];
// Values every test sees besides the random ones: zero, tiny, past the exp caps, the tails.
const special = [0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 3.7, -3.7, -5.1, -8, -12, 20, -20, 50, -50, 100, -100, 1e4, -1e4];

function inputs(n: number): Float64Array {
  const x = randomF32(n, 3);
  special.forEach((v, k) => {
    if (k * 7 < n) x[k * 7] = Math.fround(v);
  });
  return x;
}

for (const act of activations) {
  for (const shape of shapes) {
    test(`${act.name} (${shape}): forward and backward`, (t) => {
      const n = prod(shape), x = inputs(n);
      // Errors are a few float ulps of the result, and of x·(something ≤ 1) where it is small.
      const out = run(() => act.apply(t32(x, shape)));
      assertClose(t, out, x.map(act.f), { atol: 5e-7, rtol: 3e-7, label: 'forward' });

      const { grads, weights: w } = gradientsOf((v: Tensor) => act.apply(v), [{ values: x, shape }]);
      assertClose(t, grads[0]!, x.map((v, i) => w[i]! * act.df(v)), { atol: 1e-6, rtol: 1e-6, label: 'dx' });

      // Central differences of the float64 objective Σ w·f(x): h = 1e-3 leaves a truncation
      // error ~h²·f''' ≲ 1e-6·|w|.
      const objective = ([v]: Float64Array[]) => v!.reduce((s, xi, i) => s + w[i]! * act.f(xi), 0);
      const [fd] = finiteDifferences(objective, [Float64Array.from(x)], 1e-3, 32);
      assertClose(t, grads[0]!, fd!, { atol: 2e-5, rtol: 1e-4, label: 'dx vs finite differences', probedOnly: true });
    });
  }

  test(`${act.name}: the left tail is accurate relative to its own tiny values`, (t) => {
    // x·F(x) with F = e^{-a} far below 1: an implementation through 1 + erf(...) or 1 − σ
    // would lose every digit here. Rounding the exponent a in float still costs ~eps·a.
    const x = Float64Array.from({ length: 401 }, (_, i) => Math.fround(-1 - (i * 8) / 400));
    const out = run(() => act.apply(t32(x, [x.length])));
    const ref = x.map(act.f);
    const scaled = Array.from(out, (v, i) => (v - ref[i]!) / (ref[i]! * (4 + 3 * Math.max(0, -Math.log(ref[i]! / x[i]!)))));
    assertClose(t, scaled, new Float64Array(x.length), { atol: 2e-7, rtol: 0, label: 'relative error / (4 + 3a)' });
  });

  test(`${act.name}: native entry points write every element of NaN-poisoned outputs`, (t) => {
    tidy(() => {
      const shape = [3, 97, 17], n = prod(shape);
      const x = t32(inputs(n), shape), dout = t32(randomF32(n), shape);
      const out = poisoned(shape), dx = poisoned(shape);
      t.true(Number.isNaN(out.toArray()[0]!), 'the poison is there before the call');
      act.forward(out, x);
      act.backward(dx, dout, x);
      t.false(Array.from(out.toArray()).some(Number.isNaN), 'out fully written');
      t.false(Array.from(dx.toArray()).some(Number.isNaN), 'dx fully written');
    });
  });

  test(`${act.name}: NaN in, NaN out`, (t) => {
    const x = Float64Array.from([1, NaN, -2, NaN]);
    const out = run(() => act.apply(t32(x, [4])));
    t.deepEqual(Array.from(out, Number.isNaN), [false, true, false, true]);
    const { grads } = gradientsOf((v: Tensor) => act.apply(v), [{ values: x, shape: [4] }], Float64Array.from([1, 1, 1, 1]));
    t.deepEqual(Array.from(grads[0]!, Number.isNaN), [false, true, false, true]);
  });
}

test('activations bad input: the error type names the parameter', (t) => {
  tidy(() => {
    const bf = empty([4], { dtype: 'bf16' });
    t.throws(() => gelu(bf), { instanceOf: TypeError, message: /geluForward: 'x' must be f32, got bf16/ });
    t.throws(() => gelu(bf, 'tanh'), { instanceOf: TypeError, message: /geluForward: 'x' must be f32, got bf16/ });
    t.throws(() => silu(empty([4], { dtype: 'i32' })), { instanceOf: TypeError, message: /siluForward: 'x' must be f32, got i32/ });
    t.throws(() => gelu(zeros([4]), 'fast' as never), { instanceOf: TypeError, message: /geluForward: 'approximate' must be "none" \(erf\) or "tanh", got "fast"/ });
    t.throws(() => gelu(3 as never), { instanceOf: TypeError, message: /gelu: 'x' must be a Tensor, got number/ });
    t.throws(() => silu(null as never), { instanceOf: TypeError, message: /silu: 'x' must be a Tensor, got null/ });
    t.throws(() => native().geluForward(zeros([5]).handle, zeros([4]).handle, 'none'), { instanceOf: RangeError, message: /geluForward: 'out' must have shape \[4\], got \[5\]/ });
    t.throws(() => native().geluBackward(zeros([4]).handle, zeros([2, 2]).handle, zeros([4]).handle, 'tanh'), { instanceOf: RangeError, message: /geluBackward: 'dout' must have shape \[4\], got \[2, 2\]/ });
    t.throws(() => native().siluBackward(zeros([3]).handle, zeros([4]).handle, zeros([4]).handle), { instanceOf: RangeError, message: /siluBackward: 'dx' must have shape \[4\], got \[3\]/ });
  });
});
