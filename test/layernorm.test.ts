// layerNorm: forward against a float64 reference, backward (through autograd) against the
// analytic float64 gradient and central finite differences, NaN-poisoned outputs, bad input.
import test from 'ava';
import { empty, poisoned, layerNorm, native, randn, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, run, t32 } from './helpers.js';


const EPS = 1e-5;

// Rows of x (N, C) normalised in float64; weight / bias null for the plain form.
function layerNormRef(x: Float64Array, C: number, weight: Float64Array | null, bias: Float64Array | null) {
  const N = x.length / C;
  const out = new Float64Array(x.length), xhat = new Float64Array(x.length), rstd = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    let mean = 0, variance = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c]!;
    mean /= C;
    for (let c = 0; c < C; c++) variance += (x[r * C + c]! - mean) ** 2;
    rstd[r] = 1 / Math.sqrt(variance / C + EPS);
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      xhat[i] = (x[i]! - mean) * rstd[r]!;
      out[i] = xhat[i]! * (weight ? weight[c]! : 1) + (bias ? bias[c]! : 0);
    }
  }
  return { out, xhat, rstd };
}

// Gradients of Σ w·out: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = w·weight,
// dweight = Σ_rows w·x̂, dbias = Σ_rows w.
function layerNormGradRef(x: Float64Array, C: number, weight: Float64Array | null, w: Float64Array) {
  const { xhat, rstd } = layerNormRef(x, C, null, null);
  const N = x.length / C;
  const dx = new Float64Array(x.length), dweight = new Float64Array(C), dbias = new Float64Array(C);
  for (let r = 0; r < N; r++) {
    let meanG = 0, meanGx = 0;
    for (let c = 0; c < C; c++) {
      const i = r * C + c, g = w[i]! * (weight ? weight[c]! : 1);
      meanG += g / C;
      meanGx += (g * xhat[i]!) / C;
      dweight[c] += w[i]! * xhat[i]!;
      dbias[c] += w[i]!;
    }
    for (let c = 0; c < C; c++) {
      const i = r * C + c, g = w[i]! * (weight ? weight[c]! : 1);
      dx[i] = rstd[r]! * (g - meanG - xhat[i]! * meanGx);
    }
  }
  return { dx, dweight, dbias };
}

// (B, L, C): L = 1, 97, 1025, batch 1, C from 16 to 192 with odd ones (masked vector tails).
const shapes = [[1, 1, 16], [1, 97, 192], [2, 1025, 16], [1, 1025, 64], [3, 97, 31], [2, 7, 193]];

for (const shape of shapes) {
  const C = shape[2]!, N = prod(shape) / C;
  for (const affine of [true, false]) {
    test(`layerNorm ${affine ? 'affine' : 'plain'} (${shape}): forward and backward`, (t) => {
      const x = randomF32(prod(shape), 1.5);
      const weight = affine ? randomF32(C).map((v) => 1 + 0.3 * v) : null;
      const bias = affine ? randomF32(C) : null;

      const out = run(() => layerNorm(t32(x, shape), weight && t32(weight, [C]), bias && t32(bias, [C]), EPS));
      assertClose(t, out, layerNormRef(x, C, weight, bias).out, { atol: 2e-6, rtol: 2e-6, label: 'forward' });

      const inputs = [{ values: x, shape }];
      if (affine) inputs.push({ values: weight!, shape: [C] }, { values: bias!, shape: [C] });
      const { grads, weights: w } = gradientsOf((...ts: Tensor[]) => layerNorm(ts[0]!, ts[1] ?? null, ts[2] ?? null, EPS), inputs);
      const ref = layerNormGradRef(x, C, weight, w);
      // dweight and dbias sum N rows: their rounding grows like √N.
      const sumTol = 2e-6 * Math.sqrt(N);
      assertClose(t, grads[0]!, ref.dx, { atol: 1e-5, rtol: 1e-5, label: 'dx' });
      if (affine) {
        assertClose(t, grads[1]!, ref.dweight, { atol: sumTol, rtol: 1e-5, label: 'dweight' });
        assertClose(t, grads[2]!, ref.dbias, { atol: sumTol, rtol: 1e-5, label: 'dbias' });
      }

      // Central differences of the float64 objective Σ w·out at a few entries of each input:
      // the curvature term (h² · f''') stays below 1e-4 for rows of spread ~1.5.
      const objective = ([xs, ws, bs]: Float64Array[]) =>
        layerNormRef(xs!, C, ws ?? null, bs ?? null).out.reduce((s, v, i) => s + v * w[i]!, 0);
      const fd = finiteDifferences(objective, inputs.map((i) => Float64Array.from(i.values)), 1e-3, 16);
      assertClose(t, grads[0]!, fd[0]!, { atol: 2e-4, rtol: 1e-3, label: 'dx vs finite differences', probedOnly: true });
      if (affine) {
        assertClose(t, grads[1]!, fd[1]!, { atol: sumTol * 10, rtol: 1e-3, label: 'dweight vs finite differences', probedOnly: true });
        assertClose(t, grads[2]!, fd[2]!, { atol: sumTol * 10, rtol: 1e-3, label: 'dbias vs finite differences', probedOnly: true });
      }
    });
  }
}

test('layerNorm keeps its accuracy when the mean dwarfs the spread (two-pass statistics)', (t) => {
  const C = 192, shape = [64, C];
  const x = randomF32(prod(shape)).map((v) => Math.fround(300 + v));
  const out = run(() => layerNorm(t32(x, shape), null, null, EPS));
  // Rounding x − mean costs ~eps·300 per element before the ×rstd (~1): 1e-4 is 3 ulp of 300.
  assertClose(t, out, layerNormRef(x, C, null, null).out, { atol: 1e-4, rtol: 0, label: 'forward, mean 300' });
});

test('layerNorm parameter gradients are deterministic from call to call', (t) => {
  const shape = [1, 1025, 48];
  const x = randomF32(prod(shape)), w = randomF32(48), b = randomF32(48);
  const first = gradientsOf((a, c, d) => layerNorm(a, c, d, EPS), [{ values: x, shape }, { values: w, shape: [48] }, { values: b, shape: [48] }]);
  const again = gradientsOf((a, c, d) => layerNorm(a, c, d, EPS), [{ values: x, shape }, { values: w, shape: [48] }, { values: b, shape: [48] }], first.weights);
  first.grads.forEach((g, i) => t.deepEqual(Array.from(again.grads[i]!), Array.from(g), `grad ${i} bit for bit`));
});

test('layernormForward / layernormBackward write every element of NaN-poisoned outputs', (t) => {
  tidy(() => {
    const [N, C] = [97, 193];
    const x = randn([N, C], { seed: 7 }), weight = randn([C], { seed: 8 }), bias = randn([C], { seed: 9 });
    const out = poisoned([N, C]), mean = poisoned([N]), rstd = poisoned([N]);
    t.true(Number.isNaN(out.toArray()[0]!), 'the poison is there before the call');
    native().layernormForward(out.handle, mean.handle, rstd.handle, x.handle, weight.handle, bias.handle, EPS);
    for (const [name, v] of [['out', out], ['mean', mean], ['rstd', rstd]] as const)
      t.false(Array.from(v.toArray()).some(Number.isNaN), `${name} fully written`);
    const dout = randn([N, C], { seed: 10 });
    const dx = poisoned([N, C]), dweight = poisoned([C]), dbias = poisoned([C]);
    native().layernormBackward(dx.handle, dweight.handle, dbias.handle, dout.handle, x.handle, weight.handle, mean.handle, rstd.handle);
    for (const [name, v] of [['dx', dx], ['dweight', dweight], ['dbias', dbias]] as const)
      t.false(Array.from(v.toArray()).some(Number.isNaN), `${name} fully written`);
  });
});

test('layerNorm bad input: the error type names the parameter', (t) => {
  tidy(() => {
    t.throws(() => layerNorm(zeros([3, 8]), zeros([7]), zeros([8])), { instanceOf: RangeError, message: /layernormForward: 'weight' must have shape \[8\], got \[7\]/ });
    t.throws(() => layerNorm(zeros([3, 8]), zeros([8]), zeros([2, 4])), { instanceOf: RangeError, message: /layernormForward: 'bias' must have shape \[8\], got \[2, 4\]/ });
    // weight without bias is allowed: the missing bias acts as zeros.
    const x = randn([3, 8], { seed: 5 }), w = randn([8], { seed: 6 });
    t.deepEqual(Array.from(layerNorm(x, w, null).toArray()), Array.from(layerNorm(x, w, zeros([8])).toArray()));
    t.throws(() => layerNorm(zeros([3, 0])), { instanceOf: RangeError, message: /layernormForward: 'x' must be \(\.\.\., C\) with C >= 1, got shape \[3, 0\]/ });
    t.throws(() => layerNorm(zeros([3, 8]), null, null, 0), { instanceOf: RangeError, message: /layernormForward: 'eps' must be positive, got 0/ });
    t.throws(() => layerNorm(empty([3, 8], { dtype: 'bf16' })), { instanceOf: TypeError, message: /layernormForward: 'x' must be f32, got bf16/ });
    t.throws(() => layerNorm(zeros([3, 8]), empty([8], { dtype: 'i32' }), zeros([8])), { instanceOf: TypeError, message: /layernormForward: 'weight' must be f32, got i32/ });
    t.throws(() => layerNorm([1, 2, 3] as never), { instanceOf: TypeError, message: /layerNorm: 'x' must be a Tensor, got an array/ });
    t.throws(() => layerNorm(zeros([3, 8]), 'w' as never), { instanceOf: TypeError, message: /layerNorm: 'weight' must be a Tensor, got string/ });
  });
});
