// Optimizer kernels: adamwStep against a float64 AdamW over several steps (bias correction,
// decoupled weight decay, a zero and a tiny gradient on the way), and gradNorm against a
// float64 sum of squares, bit-identical across thread counts. Plus the documented errors.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { adamwStep, gradNorm, tidy, zeros, type AdamwHyper } from '../lib/index.js';
import { randomF32, relativeError, t32 } from './helpers.js';

const f32 = Math.fround;

/**
 * The textbook AdamW in float64, with the hyper-parameters rounded to float32 as the kernel
 * receives them: m = b1 m + (1−b1) g; v = b2 v + (1−b2) g²; m̂ = m/(1−b1^t); v̂ = v/(1−b2^t);
 * p −= lr (m̂ / (√v̂ + eps) + wd p).
 */
function adamwRef(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, h: AdamwHyper): void {
  const lr = f32(h.lr), b1 = f32(h.beta1), b2 = f32(h.beta2), eps = f32(h.eps), wd = f32(h.weightDecay);
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    const mHat = m[i]! / (1 - b1 ** h.step), vHat = v[i]! / (1 - b2 ** h.step);
    p[i] = p[i]! - lr * (mHat / (Math.sqrt(vHat) + eps) + wd * p[i]!);
  }
}

for (const n of [1, 17, 1025, 70001]) {
  for (const weightDecay of [0, 0.1]) {
    test(`adamwStep n=${n} weightDecay=${weightDecay}: 6 steps against float64 AdamW`, (t) => {
      const hyper = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay };
      const p0 = randomF32(n);
      const P = Float64Array.from(p0), M = new Float64Array(n), V = new Float64Array(n);
      const result = tidy(() => {
        const param = t32(p0, [n]), m = zeros([n]), v = zeros([n]);
        for (let step = 1; step <= 6; step++) {
          // Step 3's gradient is tiny (eps matters); step 4 zeroes one entry (m decays alone).
          const g = randomF32(n, step === 3 ? 1e-6 : 1);
          if (step === 4) g[0] = 0;
          adamwStep(param, t32(g, [n]), m, v, { ...hyper, step });
          adamwRef(P, g, M, V, { ...hyper, step });
        }
        return { p: param.toArray(), m: m.toArray(), v: v.toArray() };
      });
      // Each step moves p by at most ~lr; the float32 state rounds each step: a few ulp.
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(result.p[i]! - P[i]!) / Math.max(1, Math.abs(P[i]!)));
      t.true(worst < 1e-6, `param error ${worst}`);
      t.true(relativeError(result.m, M) < 1e-5, `m error ${relativeError(result.m, M)}`);
      t.true(relativeError(result.v, V) < 1e-5, `v error ${relativeError(result.v, V)}`);
      // The update really happened, and by about lr per step (Adam's normalised step).
      t.true(relativeError(result.p, p0) > 1e-4);
    });
  }
}

test('adamwStep with zero gradient only decays the weights', (t) => {
  const n = 33;
  const p0 = randomF32(n);
  const out = tidy(() => {
    const param = t32(p0, [n]);
    adamwStep(param, zeros([n]), zeros([n]), zeros([n]), { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, step: 1 });
    return param.toArray();
  });
  const ref = p0.map((p) => p * (1 - f32(0.01) * 0.5));
  t.true(relativeError(out, ref) < 1e-7, `error ${relativeError(out, ref)}`);
});

test('adamwStep rejects mismatched state and bad hyper-parameters, naming them', (t) => {
  tidy(() => {
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    t.throws(() => adamwStep(zeros([4]), zeros([4]), zeros([5]), zeros([4]), h), { instanceOf: RangeError, message: /adamw: 'm' must have shape \[4\], got \[5\]/ });
    t.throws(() => adamwStep(zeros([4]), zeros([2, 2]), zeros([4]), zeros([4]), h), { instanceOf: RangeError, message: /adamw: 'grad' must have shape \[4\], got \[2, 2\]/ });
    t.throws(() => adamwStep(zeros([4]), zeros([4]), zeros([4]), zeros([4]), { ...h, step: 0 }), { instanceOf: RangeError, message: /adamw: 'step'/ });
    t.throws(() => adamwStep(zeros([4]), zeros([4]), zeros([4]), zeros([4]), { ...h, eps: 0 }), { instanceOf: RangeError, message: /adamw: 'eps' must be positive, got 0/ });
    t.throws(() => adamwStep(zeros([4]), zeros([4]), zeros([4]), zeros([4]), { ...h, lr: -1 }), { instanceOf: RangeError, message: /adamw: 'lr' must be >= 0, got -1/ });
    t.throws(() => adamwStep(zeros([4]), null as never, zeros([4]), zeros([4]), h), { instanceOf: TypeError, message: /adamwStep: 'grad' must be a Tensor, got null/ });
  });
});

// ---- gradNorm --------------------------------------------------------------------------
test('gradNorm is the float64 norm over all tensors', (t) => {
  const sizes = [1, 97, 16384, 16385, 70001, 0];
  const values = sizes.map((n) => randomF32(n, 0.5));
  let ref = 0;
  for (const v of values) for (const x of v) ref += x * x;
  const got = tidy(() => gradNorm(values.map((v, i) => t32(v, [sizes[i]!]))));
  t.true(Math.abs(got - Math.sqrt(ref)) <= 1e-12 * Math.sqrt(ref), `got ${got}, expected ${Math.sqrt(ref)}`);
  t.is(gradNorm([]), 0);
  // A value whose square is not representable in float32 stays exact in float64.
  const big = tidy(() => gradNorm([t32([3e20, 4e20], [2])]));
  const bigRef = Math.sqrt(f32(3e20) ** 2 + f32(4e20) ** 2);
  t.true(Math.abs(big - bigRef) <= 1e-15 * bigRef, `got ${big}, expected ${bigRef}`);
});

test('gradNorm rejects non-tensors, naming the entry', (t) => {
  tidy(() => {
    t.throws(() => gradNorm([zeros([2]), 3 as never]), { instanceOf: TypeError, message: /gradNorm: 'tensors\[1\]' must be a Tensor, got number/ });
    t.throws(() => gradNorm(zeros([2]) as never), { instanceOf: TypeError, message: /gradNorm: 'tensors' must be an array of tensors/ });
  });
});

// Chunks of fixed size combined in order: the norm must not depend on the thread count
// (the pool size is read when the addon loads, hence a child process per setting).
test('gradNorm is bit-identical under PIT_NUM_THREADS=1 and 2', (t) => {
  const lib = fileURLToPath(new URL('../lib/index.js', import.meta.url));
  const script = `
    import { gradNorm, randn } from ${JSON.stringify(lib)};
    const ts = [randn([1000003], { seed: 7 }), randn([3, 40000], { seed: 8 }), randn([5], { seed: 9 })];
    process.stdout.write(JSON.stringify(gradNorm(ts)));`;
  const results = ['1', '2'].map((threads) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, PIT_NUM_THREADS: threads }, encoding: 'utf8' });
    if (r.status !== 0) t.fail(r.stderr);
    return r.stdout;
  });
  t.is(results[0], results[1]);
  t.true(Number.isFinite(JSON.parse(results[0]!)));
});
