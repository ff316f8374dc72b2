// Losses: softmax cross-entropy (with and without label smoothing) and the (masked) mean
// squared error. Forward against float64 references, gradients through autograd against
// the analytic float64 gradient and central finite differences of the float64 loss, bad
// input against the documented errors, and mse's thread-count determinism.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { mse, noGrad, softmaxCrossEntropy, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { assertClose, finiteDifferences, gradientsOf, prod, randomF32, rng, run, t32 } from './helpers.js';

// ---- softmax cross-entropy ------------------------------------------------------------
function randomTargets(N: number, K: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, () => Math.floor(r() * K));
}

/** Mean over rows of logsumexp(x) − Σ_k t_k x_k, t = (1 − s)·onehot + s/K, in float64. */
function crossEntropyRef(x: Float64Array, targets: Int32Array, K: number, s: number): number {
  const N = targets.length;
  let total = 0;
  for (let i = 0; i < N; i++) {
    const row = x.subarray(i * K, (i + 1) * K);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    let dot = 0;
    for (let k = 0; k < K; k++) dot += ((1 - s) * (k === targets[i] ? 1 : 0) + s / K) * row[k]!;
    total += lse - dot;
  }
  return total / N;
}

/** ∂(mean loss)/∂x = (softmax(x) − t) / N, in float64. */
function crossEntropyGradRef(x: Float64Array, targets: Int32Array, K: number, s: number): Float64Array {
  const N = targets.length;
  const g = new Float64Array(x.length);
  for (let i = 0; i < N; i++) {
    const row = x.subarray(i * K, (i + 1) * K);
    const m = Math.max(...row);
    const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
    for (let k = 0; k < K; k++) g[i * K + k] = (Math.exp(row[k]! - m) / z - ((1 - s) * (k === targets[i] ? 1 : 0) + s / K)) / N;
  }
  return g;
}

const ceCases = [
  { N: 1, K: 1 },     // a single class: loss 0, gradient 0
  { N: 1, K: 10 },
  { N: 97, K: 10 },   // CIFAR-10 with an awkward batch
  { N: 7, K: 1000 },  // ImageNet classes
  { N: 3, K: 1025 },  // one past a vector multiple
];

for (const { N, K } of ceCases) {
  for (const smoothing of [0, 0.1]) {
    test(`softmaxCrossEntropy N=${N} K=${K} smoothing=${smoothing}: forward, backward, finite differences`, (t) => {
      const x = randomF32(N * K, 3);
      const targets = randomTargets(N, K, 17 * N + K);
      const loss = run(() => softmaxCrossEntropy(t32(x, [N, K]), tensor(targets), { labelSmoothing: smoothing }));
      t.is(loss.length, 1);
      assertClose(t, loss, [crossEntropyRef(x, targets, K, smoothing)], { rtol: 2e-6, atol: 2e-6, label: 'loss' });

      const { grads, weights, output } = gradientsOf(
        (logits: Tensor) => softmaxCrossEntropy(logits, tensor(targets), { labelSmoothing: smoothing }), [{ values: x, shape: [N, K] }]);
      assertClose(t, output, loss, { rtol: 0, atol: 0, label: 'loss with the gradient pass' });
      const w = weights[0]!;
      const ref = crossEntropyGradRef(x, targets, K, smoothing).map((g) => w * g);
      // Error: a few ulp of w·softmax/N per entry, not of the (possibly cancelling) difference.
      assertClose(t, grads[0]!, ref, { rtol: 1e-5, atol: (4e-7 * Math.abs(w)) / N, label: 'dlogits vs analytic' });
      const [fd] = finiteDifferences(([v]) => w * crossEntropyRef(v!, targets, K, smoothing), [Float64Array.from(x)], 1e-4, 24);
      assertClose(t, grads[0]!, fd!, { rtol: 1e-4, atol: 1e-7, label: 'dlogits vs finite differences', probedOnly: true });
    });
  }
}

test('softmaxCrossEntropy is stable for large and very negative logits', (t) => {
  const N = 4, K = 33;
  const x = randomF32(N * K);
  x[0] = 90; x[K + 3] = 200; x[2 * K + 5] = -1e4; x[3 * K] = -88;  // exp would overflow / underflow in float32
  const targets = Int32Array.from([0, 4, 5, 1]);
  const loss = run(() => softmaxCrossEntropy(t32(x, [N, K]), tensor(targets), { labelSmoothing: 0.2 }));
  t.true(Number.isFinite(loss[0]!));
  // Row 2's label logit is −1e4: a loss near 1e4 / 4 that float32 holds to ~1e-7 relative.
  assertClose(t, loss, [crossEntropyRef(x, targets, K, 0.2)], { rtol: 2e-6, atol: 0 });
  const { grads, weights } = gradientsOf((l: Tensor) => softmaxCrossEntropy(l, tensor(targets), { labelSmoothing: 0.2 }), [{ values: x, shape: [N, K] }]);
  const ref = crossEntropyGradRef(x, targets, K, 0.2).map((g) => weights[0]! * g);
  assertClose(t, grads[0]!, ref, { rtol: 1e-5, atol: (4e-7 * Math.abs(weights[0]!)) / N, label: 'dlogits' });
});

test('softmaxCrossEntropy without a gradient pass gives the same loss', (t) => {
  const N = 97, K = 100;
  const x = randomF32(N * K, 2);
  const targets = randomTargets(N, K, 5);
  const plain = run(() => softmaxCrossEntropy(t32(x, [N, K]), tensor(targets)));
  const withGrad = tidy(() => softmaxCrossEntropy(t32(x, [N, K], true), tensor(targets)).toArray());
  assertClose(t, plain, withGrad, { rtol: 1e-6, atol: 0 });
  assertClose(t, plain, [crossEntropyRef(x, targets, K, 0)], { rtol: 2e-6, atol: 0 });
});

test('softmaxCrossEntropy rejects bad targets, shapes and smoothing with errors naming them', (t) => {
  tidy(() => {
    t.throws(() => softmaxCrossEntropy(zeros([3, 4]), tensor(Int32Array.from([0, 4, 1]))),
      { instanceOf: RangeError, message: /softmaxCrossEntropy: 'targets\[1\]' must be a class in \[0, 4\), got 4/ });
    t.throws(() => softmaxCrossEntropy(zeros([3, 4]), tensor(Int32Array.from([0, 1, -1]))),
      { instanceOf: RangeError, message: /'targets\[2\]' must be a class in \[0, 4\), got -1/ });
    t.throws(() => softmaxCrossEntropy(zeros([3, 4]), zeros([3])), { instanceOf: TypeError, message: /'targets' must be i32, got f32/ });
    t.throws(() => softmaxCrossEntropy(zeros([3, 4]), tensor(Int32Array.from([0, 1]))),
      { instanceOf: RangeError, message: /'targets' must have shape \[3\], got \[2\]/ });
    t.throws(() => softmaxCrossEntropy(zeros([2, 3, 4]), tensor(Int32Array.from([0, 1]))),
      { instanceOf: RangeError, message: /softmaxCrossEntropy: 'logits' must be \(N, K\), got shape \[2, 3, 4\]/ });
    t.throws(() => softmaxCrossEntropy(zeros([3, 4]), tensor(Int32Array.from([0, 1, 2])), { labelSmoothing: 1 }),
      { instanceOf: RangeError, message: /'smoothing' must be in \[0, 1\), got 1/ });
    t.throws(() => softmaxCrossEntropy([1, 2] as never, tensor(Int32Array.from([0]))),
      { instanceOf: TypeError, message: /softmaxCrossEntropy: 'logits' must be a Tensor, got an array/ });
  });
});

// ---- mse -------------------------------------------------------------------------------
type MaskKind = 'none' | 'binary' | 'weights' | 'zero';

function makeMask(kind: MaskKind, n: number, seed: number): Float64Array | null {
  if (kind === 'none') return null;
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => (kind === 'binary' ? (r() < 0.75 ? 1 : 0) : kind === 'weights' ? Math.fround(2 * r()) : 0));
}

/** Σ_t mask_t e_t / Σ_t mask_t with e_t the mean over P of (pred − target)²; 0 when Σ mask = 0. */
function mseRef(pred: Float64Array, target: Float64Array, mask: Float64Array | null, P: number): number {
  const tokens = pred.length / P;
  let num = 0, den = 0;
  for (let i = 0; i < tokens; i++) {
    const w = mask ? mask[i]! : 1;
    let e = 0;
    for (let p = 0; p < P; p++) e += (pred[i * P + p]! - target[i * P + p]!) ** 2;
    num += (w * e) / P;
    den += w;
  }
  return den === 0 ? 0 : num / den;
}

function mseGradRef(pred: Float64Array, target: Float64Array, mask: Float64Array | null, P: number): Float64Array {
  const tokens = pred.length / P;
  const den = mask ? mask.reduce((a, b) => a + b, 0) : tokens;
  return pred.map((v, i) => (den === 0 ? 0 : (2 * (v - target[i]!) * (mask ? mask[Math.floor(i / P)]! : 1)) / (P * den)));
}

const mseShapes = [[1, 1, 1], [2, 97, 3], [3, 33, 48], [1, 1025, 5]] as const;

for (const shape of mseShapes) {
  for (const kind of ['none', 'binary', 'weights', 'zero'] as const) {
    test(`mse ${kind === 'none' ? 'unmasked' : `mask=${kind}`} (${shape.join(', ')}): forward, backward, finite differences`, (t) => {
      const [B, L, P] = shape;
      const n = prod(shape);
      const pred = randomF32(n), target = randomF32(n, 0.5);
      const mask = makeMask(kind, B * L, n + kind.length);
      const maskTensor = () => (mask ? t32(mask, [B, L]) : null);
      const loss = run(() => mse(t32(pred, shape), t32(target, shape), maskTensor()));
      assertClose(t, loss, [mseRef(pred, target, mask, P)], { rtol: 1e-6, atol: 0, label: 'loss' });
      if (kind === 'zero') t.is(loss[0], 0, 'Σ mask = 0 gives a loss of 0, not NaN');

      const { grads, weights } = gradientsOf((p: Tensor, q: Tensor) => mse(p, q, maskTensor()), [
        { values: pred, shape }, { values: target, shape },
      ]);
      const w = weights[0]!;
      const ref = mseGradRef(pred, target, mask, P).map((g) => w * g);
      assertClose(t, grads[0]!, ref, { rtol: 1e-5, atol: 1e-12, label: 'dpred vs analytic' });
      assertClose(t, grads[1]!, ref.map((g) => -g), { rtol: 1e-5, atol: 1e-12, label: 'dtarget vs analytic' });
      const [dp, dq] = finiteDifferences(([p, q]) => w * mseRef(p!, q!, mask, P), [Float64Array.from(pred), Float64Array.from(target)], 1e-3, 16);
      // mse is quadratic, so central differences are exact up to float64 rounding.
      assertClose(t, grads[0]!, dp!, { rtol: 1e-4, atol: 1e-9, label: 'dpred vs finite differences', probedOnly: true });
      assertClose(t, grads[1]!, dq!, { rtol: 1e-4, atol: 1e-9, label: 'dtarget vs finite differences', probedOnly: true });
    });
  }
}

test('mse rejects mismatched shapes and dtypes with errors naming the parameter', (t) => {
  tidy(() => {
    t.throws(() => mse(zeros([2, 3, 4]), zeros([2, 3, 5])), { instanceOf: RangeError, message: /mseForward: 'target' must have shape \[2, 3, 4\], got \[2, 3, 5\]/ });
    t.throws(() => mse(zeros([2, 3, 4]), zeros([2, 3, 4]), zeros([2, 4])), { instanceOf: RangeError, message: /mseForward: 'mask' must have shape \[2, 3\], got \[2, 4\]/ });
    t.throws(() => mse(zeros([6, 4]), zeros([6, 4])), { instanceOf: RangeError, message: /mseForward: 'pred' must be 3-D \(B, L, P\), got shape \[6, 4\]/ });
    t.throws(() => mse(zeros([2, 3, 4]), zeros([2, 3, 4]), tensor(new Int32Array(6), [2, 3])), { instanceOf: TypeError, message: /mseForward: 'mask' must be f32, got i32/ });
    t.throws(() => mse(zeros([2, 3, 4]), 3 as never), { instanceOf: TypeError, message: /mse: 'target' must be a Tensor, got number/ });
  });
});

// The loss is summed in float64 over chunks fixed independently of the thread count, so
// it must come out bit-identical with 1 and 2 threads (the pool size is read at load).
test('mse is bit-identical under PIT_NUM_THREADS=1 and 2', (t) => {
  const lib = fileURLToPath(new URL('../lib/index.js', import.meta.url));
  const script = `
    import { mse, randn, rand, noGrad } from ${JSON.stringify(lib)};
    const pred = randn([8, 4099, 3], { seed: 1 }), target = randn([8, 4099, 3], { seed: 2 });
    const mask = rand([8, 4099], { seed: 3 });
    const a = noGrad(() => mse(pred, target).item()), b = noGrad(() => mse(pred, target, mask).item());
    process.stdout.write(JSON.stringify([a, b]));`;
  const results = ['1', '2'].map((threads) => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, PIT_NUM_THREADS: threads }, encoding: 'utf8' });
    if (r.status !== 0) t.fail(r.stderr);
    return r.stdout;
  });
  t.is(results[0], results[1]);
  t.is(JSON.parse(results[0]!).length, 2);
});

test('mse under noGrad matches the recorded forward', (t) => {
  const shape = [2, 97, 3];
  const pred = randomF32(prod(shape)), target = randomF32(prod(shape));
  const a = run(() => mse(t32(pred, shape), t32(target, shape)));
  const b = tidy(() => noGrad(() => mse(t32(pred, shape, true), t32(target, shape)).toArray()));
  t.deepEqual([...a], [...b]);
});
