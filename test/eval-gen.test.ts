// Generation metrics (lib/eval, SPEC §6): the eigensolver and the Fréchet distance against
// analytic values, k-NN precision / recall, the .npy reader and writer (numpy's own bytes and
// every error path), and the whole evaluation on real 8×8 MNIST digits in the feature space of
// a small PiT trained here for one epoch, through the library and through `pit eval-gen`.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  classifierFeatures, classifierFromCheckpoint, classifyTask, decodeNpy, encodeNpy, evaluate, evaluateGeneration, featureStatistics, floatToHalf,
  frechetDistance, halfToFloat, kthNeighbourRadii, labelAgreement, loadImageData, makeRecipe, memory, mean, nearestImages, noGrad, npyFloat32, npyInt32,
  pairwiseDistances, precisionRecall, readNpy, runTraining, selectExamples, sliceTokens, symmetricEigen, tensor, tidy, writeNpy,
  type Dataset, type LoadedClassifier,
} from '../lib/index.js';
import { randomNormal, rng, runPit } from './helpers.js';

// ---------------------------------------------------------------- the eigensolver

/** A random symmetric n×n matrix with entries in [−1, 1). */
function randomSymmetric(n: number, seed: number): Float64Array {
  const r = rng(seed), a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = 2 * r() - 1;
  return a;
}

/** max |V·diag(λ)·Vᵀ − A| and max |VᵀV − I|. */
function eigenErrors(a: Float64Array, n: number): { reconstruction: number; orthogonality: number; ascending: boolean } {
  const { values, vectors: V } = symmetricEigen(a, n);
  let reconstruction = 0, orthogonality = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0, o = 0;
      for (let k = 0; k < n; k++) {
        s += V[i * n + k]! * values[k]! * V[j * n + k]!;
        o += V[k * n + i]! * V[k * n + j]!;
      }
      reconstruction = Math.max(reconstruction, Math.abs(s - a[i * n + j]!));
      orthogonality = Math.max(orthogonality, Math.abs(o - (i === j ? 1 : 0)));
    }
  return { reconstruction, orthogonality, ascending: values.every((v, i) => i === 0 || values[i - 1]! <= v) };
}

test('symmetricEigen: random symmetric matrices are rebuilt from their eigenpairs, with orthonormal vectors, ascending', (t) => {
  for (const [n, seed] of [[1, 1], [2, 2], [3, 3], [7, 4], [50, 5], [130, 6]] as const) {
    const e = eigenErrors(randomSymmetric(n, seed), n);
    // Householder + QL is backward stable: errors of a few ulps times n of an O(√n)-norm matrix.
    t.true(e.reconstruction < 1e-13 * n, `n = ${n}: reconstruction error ${e.reconstruction.toExponential(2)}`);
    t.true(e.orthogonality < 1e-13 * n, `n = ${n}: |VᵀV − I| ${e.orthogonality.toExponential(2)}`);
    t.true(e.ascending, `n = ${n}: eigenvalues ascending`);
  }
});

test('symmetricEigen: known spectra (2×2, repeated, rank-deficient, diagonal) and only the lower triangle read', (t) => {
  // [[2, 1], [1, 2]]: 1 and 3, vectors (1, −1)/√2 and (1, 1)/√2.
  const two = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
  t.true(Math.abs(two.values[0]! - 1) < 1e-15 && Math.abs(two.values[1]! - 3) < 1e-15, `${two.values}`);
  t.true(Math.abs(Math.abs(two.vectors[1]!) - Math.SQRT1_2) < 1e-15 && Math.abs(two.vectors[1]! - two.vectors[3]!) < 1e-15, 'eigenvector of 3 is (1, 1)/√2');
  // The identity: every eigenvalue 1 (a fully repeated spectrum), vectors still orthonormal.
  const n = 6, identity = new Float64Array(n * n);
  for (let i = 0; i < n; i++) identity[i * n + i] = 1;
  t.deepEqual([...symmetricEigen(identity, n).values], Array(n).fill(1));
  t.true(eigenErrors(identity, n).orthogonality < 1e-15);
  // uuᵀ: rank one, eigenvalues 0 (×4) and |u|² = 55.
  const u = [1, 2, 3, 4, 5], rank1 = new Float64Array(25);
  for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) rank1[i * 5 + j] = u[i]! * u[j]!;
  const r1 = symmetricEigen(rank1, 5);
  t.true(Math.abs(r1.values[4]! - 55) < 1e-13 && r1.values.subarray(0, 4).every((v) => Math.abs(v) < 1e-13), `${r1.values}`);
  // A diagonal matrix: its diagonal, sorted.
  t.deepEqual([...symmetricEigen(Float64Array.from([3, 0, 0, 0, -1, 0, 0, 0, 2]), 3).values], [-1, 2, 3]);
  // The upper triangle is ignored: garbage there changes nothing.
  const lower = Float64Array.from([2, 99, 1, 2]);
  t.deepEqual([...symmetricEigen(lower, 2).values], [...two.values]);
  t.throws(() => symmetricEigen(Float64Array.from([1, 0, NaN, 1]), 2), { instanceOf: RangeError, message: /symmetricEigen: the matrix holds NaN at \(1, 0\)/ });
  t.throws(() => symmetricEigen(new Float64Array(5), 2), { instanceOf: RangeError, message: /n·n = 4 values, got 5/ });
});

// ---------------------------------------------------------------- the Fréchet distance

/** n × d Gaussian features with per-dimension std `scales` (and an optional rotation-free mix). */
function gaussianFeatures(n: number, d: number, seed: number, scales: number[] = Array(d).fill(1)): Float64Array {
  const z = randomNormal(n * d, 1, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) z[i * d + j]! *= scales[j]!;
  return z;
}

test('featureStatistics: mean and unbiased covariance (numpy.cov) in float64', (t) => {
  // Vectors (1, 2), (3, 6), (5, 7): mean (3, 5); covariance [[4, 5], [5, 7]] (divided by n − 1 = 2).
  const s = featureStatistics([1, 2, 3, 6, 5, 7], 3, 2);
  t.deepEqual([...s.mean], [3, 5]);
  t.deepEqual([...s.cov], [4, 5, 5, 7]);
  t.throws(() => featureStatistics([1, 2], 1, 2), { message: /'n' must be an integer ≥ 2/ });
  t.throws(() => featureStatistics([1, 2, 3], 2, 2), { message: /n·dim = 2·2 = 4 values expected, got 3/ });
  t.throws(() => featureStatistics([1, NaN, 3, 4], 2, 2), { message: /feature 1 of vector 0 is NaN/ });
});

test('frechetDistance: a shifted copy gives |Δμ|² exactly; same statistics give 0', (t) => {
  const n = 400, d = 12;
  const x = gaussianFeatures(n, d, 11, Array.from({ length: d }, (_, j) => 0.5 + j / 4));
  const shift = Array.from({ length: d }, (_, j) => (j % 3) - 0.7);
  const shifted = x.map((v, i) => v + shift[i % d]!);
  const a = featureStatistics(x, n, d), b = featureStatistics(shifted, n, d);
  const expected = shift.reduce((s, v) => s + v * v, 0);
  const r = frechetDistance(a, b);
  const traceA = Array.from({ length: d }, (_, j) => a.cov[j * d + j]!).reduce((p, q) => p + q);
  // The covariance term is tr Σ + tr Σ − 2·tr Σ = 0 up to the rounding of two eigendecompositions.
  t.true(Math.abs(r.covarianceTerm) < 1e-10 * traceA, `covariance term ${r.covarianceTerm} (tr Σ = ${traceA})`);
  t.true(Math.abs(r.distance - expected) < 1e-10 * expected + 1e-10 * traceA, `distance ${r.distance}, |Δμ|² = ${expected}`);
  t.true(Math.abs(r.meanTerm - expected) < 1e-12 * expected);
  t.true(Math.abs(frechetDistance(a, a).distance) < 1e-10 * traceA);
});

test('frechetDistance: diagonal covariances give |Δμ|² + Σ(√a − √b)²; a non-diagonal 2×2 case its closed form', (t) => {
  const a = [4, 1, 0.25, 9, 2], b = [1, 1, 4, 0.5, 3];
  const diag = (v: number[]) => {
    const m = new Float64Array(v.length * v.length);
    v.forEach((x, i) => (m[i * v.length + i] = x));
    return m;
  };
  const ma = Float64Array.from([1, 0, -1, 2, 0.5]), mb = Float64Array.from([0, 0, 1, 2, -0.5]);
  const r = frechetDistance({ mean: ma, cov: diag(a), dim: 5 }, { mean: mb, cov: diag(b), dim: 5 });
  const expected = 1 + 0 + 4 + 0 + 1 + a.reduce((s, x, i) => s + (Math.sqrt(x) - Math.sqrt(b[i]!)) ** 2, 0);
  t.true(Math.abs(r.distance - expected) < 1e-13 * expected, `${r.distance} vs ${expected}`);
  // 2×2, not commuting: tr √M for M = √A B √A (PSD, 2×2) is √(tr M + 2√det M), with tr M = tr AB
  // and det M = det A · det B.
  const A = Float64Array.from([2, 0.8, 0.8, 1]), B = Float64Array.from([0.5, -0.3, -0.3, 3]);
  const trAB = A[0]! * B[0]! + A[1]! * B[2]! + A[2]! * B[1]! + A[3]! * B[3]!;
  const det = (m: Float64Array) => m[0]! * m[3]! - m[1]! * m[2]!;
  const closed = 1 + (2 + 1) + (0.5 + 3) - 2 * Math.sqrt(trAB + 2 * Math.sqrt(det(A) * det(B)));
  const zero = new Float64Array(2);
  const r2 = frechetDistance({ mean: Float64Array.from([1, 0]), cov: A, dim: 2 }, { mean: zero, cov: B, dim: 2 });
  t.true(Math.abs(r2.distance - closed) < 1e-14 * 10, `${r2.distance} vs ${closed}`);
  // Symmetric in its arguments.
  const r3 = frechetDistance({ mean: zero, cov: B, dim: 2 }, { mean: Float64Array.from([1, 0]), cov: A, dim: 2 });
  t.true(Math.abs(r3.distance - closed) < 1e-13, `${r3.distance} vs ${closed}`);
  t.throws(() => frechetDistance({ mean: zero, cov: A, dim: 2 }, { mean: ma, cov: diag(a), dim: 5 }), { message: /2 and 5 dimensions/ });
});

test('frechetDistance: agrees with pytorch-fid\'s formula (scipy.linalg.sqrtm of Σ₁Σ₂) on fixed correlated features', (t) => {
  // The features written to .npy and measured by numpy 2.4.6 / scipy 1.17.1 as pytorch-fid does:
  // |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2·tr Re sqrtm(Σ₁Σ₂), np.cov(rowvar=False) → 17.71446380628059.
  const n = 300, d = 16;
  const a = randomNormal(n * d, 1, 41), b = randomNormal(n * d, 1, 42);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) b[i * d + j] = 0.3 + 1.5 * b[i * d + j]! + 0.5 * (j > 0 ? b[i * d + j - 1]! : 0);
  const r = frechetDistance(featureStatistics(Float32Array.from(a), n, d), featureStatistics(Float32Array.from(b), n, d));
  t.true(Math.abs(r.distance - 17.71446380628059) < 1e-11, `${r.distance}`);
});

test('frechetDistance: two samples of one distribution give ≈ 0 relative to its scale; a rank-deficient covariance stays finite', (t) => {
  const n = 4000, d = 8, scales = [3, 2, 2, 1, 1, 1, 0.5, 0.1];
  const a = featureStatistics(gaussianFeatures(n, d, 21, scales), n, d), b = featureStatistics(gaussianFeatures(n, d, 22, scales), n, d);
  const scale = scales.reduce((s, x) => s + x * x, 0);   // tr Σ = 20.26
  const r = frechetDistance(a, b);
  // Estimator noise: about d²/n·(scale/d) ≈ 0.04 here; against a scale of 20.
  t.true(r.distance >= -1e-12 && r.distance < 0.01 * scale, `d² = ${r.distance} against tr Σ = ${scale}`);
  // Fewer vectors than dimensions: a singular covariance (eigenvalues ~ −1e-16 clamped).
  const few = featureStatistics(gaussianFeatures(5, d, 23), 5, d);
  const s = frechetDistance(few, b);
  t.true(Number.isFinite(s.distance) && s.distance > 0, `${s.distance}`);
  t.true(Math.abs(frechetDistance(few, few).distance) < 1e-12, `a singular covariance against itself is ${frechetDistance(few, few).distance}, not 0`);
});

// ---------------------------------------------------------------- k-NN precision and recall

test('precision and recall (k = 3): a set against itself is 1 and 1; disjoint sets 0 and 0; radii by hand', (t) => {
  const d = 5, n = 60;
  const x = gaussianFeatures(n, d, 31);
  t.deepEqual(precisionRecall(x, n, x, n, d), { precision: 1, recall: 1, k: 3 });
  const far = x.map((v) => v + 100);
  t.deepEqual(precisionRecall(x, n, far, n, d), { precision: 0, recall: 0, k: 3 });
  // A subset of the real set is all realistic (precision 1) but covers little of it.
  const half = x.subarray(0, 10 * d);
  const pr = precisionRecall(x, n, half, 10, d);
  t.is(pr.precision, 1);
  t.true(pr.recall < 1, `recall ${pr.recall}`);
  // Points on a line at 0, 1, 3, 6, 10: third neighbours (excluding self) at 6, 5, 3, 5, 9.
  const line = [0, 1, 3, 6, 10];
  t.deepEqual([...kthNeighbourRadii(pairwiseDistances(line, 5, line, 5, 1), 5, 3)], [6, 5, 3, 5, 9]);
  t.throws(() => kthNeighbourRadii(new Float64Array(9), 3, 3), { message: /'k' must be an integer in \[1, n − 1\] = \[1, 2\], got 3/ });
});

// ---------------------------------------------------------------- .npy

// np.save of these arrays (numpy 2.4.6), base64: the bytes our writer must produce and reader read.
const numpyFiles = {
  f4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAA/AACgvwAAQEBvEoM6AOB/RwAAgDM=',
  f2: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGYyJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAOAC9AEIZFP97AQA=',
  i4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAACQAAAP3///////9/',
  i8: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDQsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAkAAAAAAAAA/f////////8AAAAAAAEAAA==',
  f4x4d: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDEsIDIsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==',
};
const numpy = (name: keyof typeof numpyFiles) => Buffer.from(numpyFiles[name], 'base64');

test('npy: numpy\'s files read as written, and our writer gives numpy\'s bytes (float32, float16, int32, int64, 4-D)', (t) => {
  const values = [0.5, -1.25, 3, 1e-3, 65504, 2 ** -24];
  const f4 = decodeNpy(numpy('f4'));
  t.deepEqual(f4.shape, [2, 3]);
  t.is(f4.dtype, 'float32');
  t.deepEqual([...f4.data as Float32Array], values.map(Math.fround));
  t.true(encodeNpy({ dtype: 'float32', shape: [2, 3], data: values }).equals(numpy('f4')));
  // float16: 1e-3 is 0x1419 = 0.0010004043579101562 in half precision.
  const f2 = decodeNpy(numpy('f2'));
  t.is(f2.dtype, 'float16');
  t.deepEqual([...npyFloat32(f2, 'x')], [0.5, -1.25, 3, 0.0010004043579101562, 65504, 2 ** -24]);
  t.true(encodeNpy({ dtype: 'float16', shape: [2, 3], data: values }).equals(numpy('f2')));
  const i4 = decodeNpy(numpy('i4'));
  t.deepEqual([...npyInt32(i4, 'x')], [0, 9, -3, 2 ** 31 - 1]);
  t.true(encodeNpy({ dtype: 'int32', shape: [4], data: [0, 9, -3, 2 ** 31 - 1] }).equals(numpy('i4')));
  const i8 = decodeNpy(numpy('i8'));
  t.deepEqual([...i8.data as BigInt64Array], [0n, 9n, -3n, 2n ** 40n]);
  t.true(encodeNpy({ dtype: 'int64', shape: [4], data: [0, 9, -3, 2 ** 40] }).equals(numpy('i8')));
  t.throws(() => npyInt32(i8, 'labels.npy'), { instanceOf: RangeError, message: /labels.npy: value 1099511627776 at index 3 does not fit in int32/ });
  t.deepEqual([...npyInt32(decodeNpy(encodeNpy({ dtype: 'int64', shape: [2], data: [7, -1] })), 'x')], [7, -1]);
  const four = decodeNpy(numpy('f4x4d'));
  t.deepEqual(four.shape, [2, 1, 2, 2]);
  t.true(encodeNpy({ dtype: 'float32', shape: [2, 1, 2, 2], data: new Float32Array(8) }).equals(numpy('f4x4d')));
  t.throws(() => npyFloat32(i4, 'samples.npy'), { message: /samples.npy: expected a float array \(float32 or float16\), got int32/ });
  t.throws(() => npyInt32(f4, 'labels.npy'), { message: /labels.npy: expected an integer array \(int32 or int64\), got float32/ });
});

test('npy: float16 conversion rounds to nearest even, with subnormals, overflow to ∞ and NaN', (t) => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1 / 3, 0x3555], [1e-3, 0x1419],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400], [2 ** -14 - 2 ** -25, 0x0400],
    [2049, 0x6800], [2051, 0x6802], [-0, 0x8000], [Infinity, 0x7c00], [-Infinity, 0xfc00],
  ];
  for (const [value, bits] of cases) t.is(floatToHalf(value), bits, `${value} → 0x${bits.toString(16)}`);
  t.true(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  // Every finite half survives half → float → half.
  const changed: number[] = [];
  for (let h = 0; h < 0x10000; h++) if ((h & 0x7c00) !== 0x7c00 && floatToHalf(halfToFloat(h)) !== h) changed.push(h);
  t.deepEqual(changed, []);
});

test('npy: files round-trip through writeNpy / readNpy, and each damaged file is a clear error', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-npy-'));
  const file = join(dir, 'x.npy');
  const data = Float32Array.from(randomNormal(3 * 2 * 4 * 5));
  writeNpy(file, { dtype: 'float32', shape: [3, 2, 4, 5], data });
  t.deepEqual(readNpy(file), { dtype: 'float32', shape: [3, 2, 4, 5], data });
  writeNpy(file, { dtype: 'int64', shape: [], data: [42] });
  t.deepEqual(readNpy(file), { dtype: 'int64', shape: [], data: BigInt64Array.of(42n) });
  writeNpy(file, { dtype: 'int32', shape: [0, 3], data: [] });
  t.deepEqual(readNpy(file), { dtype: 'int32', shape: [0, 3], data: new Int32Array(0) });
  const good = encodeNpy({ dtype: 'float32', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] });
  const header = (text: string, version = 1) => {
    const body = Buffer.from(text.padEnd(117) + '\n', 'latin1');
    const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0, 0, 0]);
    prefix.writeUInt16LE(body.length, 8);
    return Buffer.concat([prefix, body, Buffer.alloc(24)]);
  };
  const bad: [string, Uint8Array, RegExp][] = [
    ['not npy', Buffer.from('hello world, not an array'), /not an .npy file \(it must begin with "\\x93NUMPY"; found "hello "\)/],
    ['too short', good.subarray(0, 5), /not an .npy file .*the file has only 5 bytes/],
    ['a zip', Buffer.from('PK\x03\x04rest'), /this is a zip archive \(an .npz\?\), not a single .npy array/],
    ['version 9', Buffer.concat([good.subarray(0, 6), Buffer.from([9, 0]), good.subarray(8)]), /format version 9.0 is not supported/],
    ['header cut', good.subarray(0, 40), /truncated: the header is 118 bytes but the file ends 88 bytes before its end/],
    ['data cut', good.subarray(0, good.length - 5), /truncated: shape \(2, 3\) of float32 needs 24 bytes of data, the file holds 19/],
    ['bytes after', Buffer.concat([good, Buffer.alloc(3)]), /3 bytes follow the data of shape \(2, 3\) float32/],
    ['not a dict', header("'descr': '<f4'"), /the header is not a Python dict literal/],
    ['no descr', header("{'fortran_order': False, 'shape': (2, 3), }"), /the header has no 'descr'/],
    ['no shape', header("{'descr': '<f4', 'fortran_order': False, }"), /the header has no 'shape' tuple/],
    ['float64', header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"), /dtype '<f8' is not supported; supported: '<f4' \(float32\)/],
    ['big-endian', header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }"), /dtype '>f4' is not supported \(big-endian/],
    ['Fortran', header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"), /the array is in Fortran \(column-major\) order; save it in C order/],
    ['bad shape', header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }"), /the shape \(2, -3\) must be non-negative integers/],
  ];
  for (const [what, bytes, message] of bad) {
    t.throws(() => decodeNpy(bytes, 'x.npy'), { instanceOf: RangeError, message: new RegExp(`^npy: x.npy: ${message.source}`) }, what);
    writeFileSync(file, bytes);
    t.throws(() => readNpy(file), { message: new RegExp(`^npy: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `) }, `${what} (from a file)`);
  }
  mkdirSync(join(dir, 'folder.npy'));
  t.throws(() => readNpy(join(dir, 'folder.npy')), { message: /expected an .npy file, found a folder/ });
  t.throws(() => encodeNpy({ dtype: 'float32', shape: [2, 2], data: [1, 2, 3] }), { message: /shape \[2, 2\] holds 4 values, 'data' has 3/ });
  t.throws(() => encodeNpy({ dtype: 'int32', shape: [1], data: [1.5] }), { message: /data\[0\] = 1.5 is not an int32/ });
  rmSync(dir, { recursive: true });
});

// ---------------------------------------------------------------- on real digits, with a trained classifier

// A PiT of depth 2, width 32 on the 8×8 digits, one epoch (125 steps): trained once for the
// tests below (a few seconds), through the same runner and checkpoint `pit train` writes.
const recipe = { imageSize: 8, depth: 2, dim: 32, heads: 2, epochs: 1, batchSize: 64, warmupEpochs: 0.2 };
let run = '';
let loaded: LoadedClassifier;
let real: { train: Dataset; test: Dataset };

test.before(async () => {
  run = mkdtempSync(join(tmpdir(), 'pit-eval-gen-'));
  const result = await runTraining(classifyTask, { recipe, out: join(run, 'classifier'), device: 'cpu' });
  result.model.dispose();
  loaded = classifierFromCheckpoint(join(run, 'classifier'));
  real = loadImageData(makeRecipe(classifyTask.recipe, recipe));
});

test.after.always(() => {
  loaded?.model.dispose();
  if (run) rmSync(run, { recursive: true, force: true });
});

test('pooledFeatures: forward is head(pooledFeatures), and the same values as before the split', (t) => {
  const { model, normalization } = loaded;
  const images = real.test.images.slice(0, 5 * 64);
  for (let i = 0; i < images.length; i++) images[i] = (images[i]! - normalization.mean[0]!) / normalization.std[0]!;
  tidy(() => noGrad(() => {
    const x = tensor(images, [5, 1, 8, 8]);
    const pooled = model.pooledFeatures(x);
    t.deepEqual(pooled.shape, [5, 32]);
    const logits = model.forward(x).toArray();
    t.deepEqual(model.head.forward(pooled).toArray(), logits);
    // What forward computed before pooledFeatures existed: mean of the non-cls tokens, fc_norm, head.
    const tokens = model.features(x);
    t.deepEqual(model.head.forward(model.norm.forward(mean(sliceTokens(tokens, 1, 64), 1))).toArray(), logits);
  }));
});

test('classifierFeatures: batched without leaks, batch size changes nothing; agreement with real labels is evaluate\'s top-1', (t) => {
  const { model, normalization } = loaded;
  const before = memory().cpu.tensors;
  const all = classifierFeatures(model, real.test, { normalization });
  t.is(memory().cpu.tensors, before, 'every batch\'s tensors freed');
  t.is(all.dim, 32);
  t.is(all.features.length, real.test.n * 32);
  const small = classifierFeatures(model, selectExamples(real.test, Int32Array.from({ length: 37 }, (_, i) => i), 'first 37'), { normalization, batchSize: 5 });
  t.deepEqual(small.logits, all.logits.slice(0, 37 * 10), 'batches of 5 give the logits of batches of 500');
  const top1 = evaluate(model, real.test, { normalization }).top1;
  t.is(labelAgreement(all.logits, real.test.labels, 10), top1);
  t.log(`classifier after one epoch: top-1 ${(100 * top1).toFixed(2)}% on the 2,000 held-out digits`);
  t.true(top1 > 0.25, `top-1 ${top1} (chance 0.1; one epoch of a PiT this small on 8×8 digits gets about 0.36)`);
  t.throws(() => labelAgreement(all.logits.subarray(0, 20), [0, 10], 10), { message: /label 1 is 10, not a class in 0..9/ });
});

/** The first `count` test digits as the reference split, the rest as "samples" (disjoint real digits). */
function splitTest(count: number): { reference: Dataset; rest: Dataset } {
  const ids = (from: number, to: number) => Int32Array.from({ length: to - from }, (_, i) => from + i);
  return {
    reference: selectExamples(real.test, ids(0, count), 'mnist-test-reference', real.test),
    rest: selectExamples(real.test, ids(count, real.test.n), 'mnist-test-rest', real.test),
  };
}

test('evaluateGeneration: held-out real digits score near the floor, noise far from it; real labels give the classifier\'s accuracy', (t) => {
  const n = 1000;
  const { reference, rest } = splitTest(n);
  const digits = evaluateGeneration({ classifier: loaded, samples: rest, labels: rest.labels, real: { train: real.train, test: reference }, n, seed: 1 });
  const r = rng(5), noise = { images: Float32Array.from({ length: n * 64 }, () => r()), n, channels: 1, height: 8, width: 8 };
  const noisy = evaluateGeneration({ classifier: loaded, samples: noise, labels: null, real: { train: real.train, test: reference }, n, seed: 1 });
  const fd = (m: typeof digits) => `${m.frechet.samples.distance.toFixed(4)} (floor ${m.frechet.floor.distance.toFixed(4)})`;
  t.log(`n = ${n}: digits ${fd(digits)}; noise ${fd(noisy)}`);
  t.log(`precision / recall: digits ${digits.precision.samples.toFixed(3)} / ${digits.recall.samples.toFixed(3)} (floor ${digits.precision.floor.toFixed(3)} / ${digits.recall.floor.toFixed(3)}); ` +
    `noise ${noisy.precision.samples.toFixed(3)} / ${noisy.recall.samples.toFixed(3)}`);
  t.log(`conditional accuracy: digits ${digits.conditionalAccuracy.samples}, floor ${digits.conditionalAccuracy.floor}`);
  t.log(`nearest training image: digits min ${digits.nearestTraining.samples.min.toFixed(4)} median ${digits.nearestTraining.samples.median.toFixed(4)}, ` +
    `real ${digits.nearestTraining.real.min.toFixed(4)} / ${digits.nearestTraining.real.median.toFixed(4)}, threshold ${digits.nearestTraining.threshold.toFixed(4)}, ` +
    `${digits.nearestTraining.nearCopies.length} flagged; noise median ${noisy.nearestTraining.samples.median.toFixed(4)}`);
  t.regex(digits.note, /^Fréchet distance in the feature space of .*classifier.*, not FID$/);
  t.is(digits.featureSpace.dim, 32);
  // Real digits the classifier never saw against other real digits: within a small factor of the floor.
  t.true(digits.frechet.samples.distance < 2 * digits.frechet.floor.distance + 0.05 * noisy.frechet.samples.distance, fd(digits));
  t.true(noisy.frechet.samples.distance > 20 * digits.frechet.floor.distance, fd(noisy));
  t.true(digits.precision.samples > 0.5 && digits.recall.samples > 0.5, 'real digits lie in each other\'s manifolds');
  t.true(noisy.precision.samples < 0.05, `noise precision ${noisy.precision.samples}`);
  t.is(noisy.conditionalAccuracy.samples, null);
  // Real digits copy nothing: about 1% of them fall under the 1% threshold of other real digits.
  t.true(digits.nearestTraining.nearCopies.length < 0.05 * n, `${digits.nearestTraining.nearCopies.length} flagged`);
  t.true(noisy.nearestTraining.samples.min > digits.nearestTraining.real.median, 'noise is far from every digit');
  // Labelled real digits: conditional accuracy is the classifier's top-1 on exactly those images.
  const chosen = selectExamples(rest, digits.subsets.samples, 'chosen', rest);
  t.is(digits.conditionalAccuracy.samples, evaluate(loaded.model, chosen, { normalization: loaded.normalization }).top1);
  const chosenReference = selectExamples(reference, digits.subsets.test, 'chosen', reference);
  t.is(digits.conditionalAccuracy.floor, evaluate(loaded.model, chosenReference, { normalization: loaded.normalization }).top1);
  // Seeded: the same seed gives the same report, another seed other subsets.
  const again = evaluateGeneration({ classifier: loaded, samples: rest, labels: rest.labels, real: { train: real.train, test: reference }, n, seed: 1 });
  t.deepEqual(again, digits);
  const other = evaluateGeneration({ classifier: loaded, samples: rest, labels: rest.labels, real: { train: real.train, test: reference }, n: 500, seed: 2 });
  t.notDeepEqual(other.subsets.train, digits.subsets.train.slice(0, 500));
});

test('evaluateGeneration: copies of training images are flagged as near-copies; a set against itself has precision and recall 1', (t) => {
  const n = 300;
  // Samples: 20 exact training digits among 280 held-out ones.
  const copies = Int32Array.from({ length: 20 }, (_, i) => 17 * i + 3);
  const { reference, rest } = splitTest(1000);
  const images = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) images.set(i < 20 ? real.train.images.subarray(copies[i]! * 64, copies[i]! * 64 + 64) : rest.images.subarray(i * 64, i * 64 + 64), i * 64);
  const samples = { images, n, channels: 1, height: 8, width: 8 };
  const m = evaluateGeneration({ classifier: loaded, samples, labels: null, real: { train: real.train, test: reference }, n, seed: 3 });
  const flagged = new Map(m.nearestTraining.nearCopies.map((c) => [c.sample, c]));
  for (let i = 0; i < 20; i++) t.like(flagged.get(i), { train: copies[i], distance: 0 }, `copy ${i} found`);
  t.true(flagged.size < 20 + 0.05 * n, `${flagged.size} flagged`);
  t.is(m.nearestTraining.samples.min, 0);
  // The same features as samples and reference: precision and recall exactly 1.
  const f = classifierFeatures(loaded.model, samples, { normalization: loaded.normalization });
  t.like(precisionRecall(f.features, n, f.features, n, f.dim), { precision: 1, recall: 1 });
  // The nearest-image search: each training digit's nearest is itself (distance 0).
  const near = nearestImages(real.train.images.subarray(0, 50 * 64), real.train.images, 64, { chunk: 1000 });
  t.true(near.distance.every((d) => d === 0));
});

test('evaluateGeneration: arguments are checked, naming what is wrong', (t) => {
  const base = { classifier: loaded, samples: real.test, labels: real.test.labels, real, n: 100 };
  t.throws(() => evaluateGeneration({ ...base, n: 3000 }), { message: /n = 3000 images are compared, but 'samples' has only 2000 \(the Fréchet distance is biased at small n/ });
  t.throws(() => evaluateGeneration({ ...base, labels: real.test.labels.subarray(0, 5) }), { message: /2000 samples but 5 labels/ });
  t.throws(() => evaluateGeneration({ ...base, labels: new Int32Array(2000).fill(10) }), { message: /label 0 is 10, not a class of the classifier \(0..9\)/ });
  const wrong = { images: new Float32Array(200 * 3 * 64), n: 200, channels: 3, height: 8, width: 8 };
  t.throws(() => evaluateGeneration({ ...base, samples: wrong, labels: null }), { message: /'samples' are 3×8×8 images, the classifier takes 1×8×8/ });
  t.throws(() => evaluateGeneration({ ...base, n: 1 }), { message: /'n' must be an integer ≥ 2/ });
});

test('pit eval-gen: samples and labels from .npy ([−1, 1] with --signed), the table with its floor, --json, and its errors', (t) => {
  const dir = join(run, 'cli');
  mkdirSync(dir);
  const n = 300;
  // Held-out digits in [−1, 1] (as a diffusion sampler writes them), float16, with int64 labels.
  const ids = Int32Array.from({ length: n }, (_, i) => 1000 + i);
  const digits = selectExamples(real.test, ids, 'digits', real.test);
  writeNpy(join(dir, 'samples.npy'), { dtype: 'float16', shape: [n, 1, 8, 8], data: digits.images.map((x) => 2 * x - 1) });
  writeNpy(join(dir, 'labels.npy'), { dtype: 'int64', shape: [n], data: [...digits.labels] });
  const classifier = join(run, 'classifier');
  const args = ['eval-gen', '--classifier', classifier, '--samples', join(dir, 'samples.npy'), '--labels', join(dir, 'labels.npy'), '--n', '200', '--signed', '--device', 'cpu'];
  const text = runPit(...args);
  t.is(text.status, 0, text.stderr);
  t.log(text.stdout);
  t.regex(text.stdout, /^Fréchet distance in the feature space of .*classifier.* \(pit-d2w32h2, 32 features\), not FID\n/);
  t.regex(text.stdout, /n = 200 per set \(seed 0, device cpu\): the samples, and as the floor 200 training images, each against 200 held-out images of mnist-test/);
  t.regex(text.stdout, /Fréchet distance +\d+\.\d{4} +\d+\.\d{4}/);
  t.regex(text.stdout, /conditional accuracy +\d+\.\d\d% +\d+\.\d\d% +\(floor: the classifier's top-1/);
  t.regex(text.stdout, /near-copies: \d+ of 200 samples closer than/);
  const json = runPit(...args, '--json');
  t.is(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout);
  t.like(report, { n: 200, seed: 0, k: 3, signed: true, data: 'mnist-test', weights: 'model' });
  t.regex(report.note, /not FID$/);
  // The CLI's numbers are the library's on the same images (float16 holds these digits to 2⁻¹¹).
  const samples = { ...digits, images: Float32Array.from(digits.images, (x) => (halfToFloat(floatToHalf(2 * x - 1)) + 1) / 2) };
  const lib = evaluateGeneration({ classifier: loaded, samples, labels: digits.labels, real, n: 200 });
  t.is(report.frechet.samples.distance, lib.frechet.samples.distance);
  t.is(report.conditionalAccuracy.samples, lib.conditionalAccuracy.samples);
  t.is(report.frechet.floor.distance, lib.frechet.floor.distance);
  // Without --signed the [−1, 1] samples are refused with the hint; and the other errors.
  const unsigned = runPit(...args.filter((a) => a !== '--signed'));
  t.is(unsigned.status, 1);
  t.regex(unsigned.stderr, /holds values from -1\.000 to \d\.\d{3}, not in \[0, 1\]; samples in \[−1, 1\] \(as the diffusion sampler gives them\) need --signed/);
  const tooMany = runPit(...args.map((a) => (a === '200' ? '500' : a)));
  t.is(tooMany.status, 1);
  t.regex(tooMany.stderr, /n = 500 images are compared, but 'samples' has only 300/);
  writeNpy(join(dir, 'few.npy'), { dtype: 'int32', shape: [3], data: [1, 2, 3] });
  const fewLabels = runPit(...args.map((a) => (a.endsWith('labels.npy') ? join(dir, 'few.npy') : a)));
  t.is(fewLabels.status, 1);
  t.regex(fewLabels.stderr, /--labels .*few.npy must be 1-D with one label per sample \(300\), got shape \(3\)/);
  writeFileSync(join(dir, 'cut.npy'), encodeNpy({ dtype: 'float32', shape: [n, 1, 8, 8], data: digits.images }).subarray(0, 1000));
  const cut = runPit(...args.map((a) => (a.endsWith('samples.npy') ? join(dir, 'cut.npy') : a)));
  t.is(cut.status, 1);
  t.regex(cut.stderr, /npy: .*cut.npy: truncated: shape \(300, 1, 8, 8\) of float32 needs 76800 bytes of data, the file holds 872/);
  const notClassifier = runPit('eval-gen', '--classifier', dir, '--samples', join(dir, 'samples.npy'), '--signed');
  t.is(notClassifier.status, 1);
});
