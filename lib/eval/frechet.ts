// The Fréchet distance between two Gaussians fitted to feature sets (the formula of FID,
// Heusel et al. 2017), in float64:
//   d² = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2·tr √(√Σ₁ Σ₂ √Σ₁)
// The last trace is that of (Σ₁Σ₂)^½ written in a symmetric positive semi-definite form, so two
// symmetric eigendecompositions give it (eigenvalues clamped at 0: rounding makes the zero
// ones of a rank-deficient covariance slightly negative, or positive), where the usual
// scipy.linalg.sqrtm of the non-symmetric product goes complex and needs an ε on the diagonal.
import { eigenFunction, matmul64, symmetricEigen } from './linalg.js';

/** Mean and covariance of a feature set, float64. */
export interface FeatureStatistics {
  /** (d) */
  mean: Float64Array;
  /** (d, d), row-major; unbiased (divided by n − 1), as numpy.cov. */
  cov: Float64Array;
  dim: number;
  /** Feature vectors the statistics came from. */
  n: number;
}

/** The statistics of n feature vectors of length dim, row-major in `features` (n·dim values). */
export function featureStatistics(features: ArrayLike<number>, n: number, dim: number): FeatureStatistics {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`featureStatistics: 'n' must be an integer ≥ 2 (a covariance needs two vectors), got ${String(n)}`);
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`featureStatistics: 'dim' must be a positive integer, got ${String(dim)}`);
  if (features.length !== n * dim) throw new RangeError(`featureStatistics: n·dim = ${n}·${dim} = ${n * dim} values expected, got ${features.length}`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) mean[j]! += features[i * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const centred = new Float64Array(dim), cov = new Float64Array(dim * dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) {
      const v = features[i * dim + j]!;
      if (!Number.isFinite(v)) throw new RangeError(`featureStatistics: feature ${j} of vector ${i} is ${v}`);
      centred[j] = v - mean[j]!;
    }
    // Lower triangle only; mirrored below.
    for (let a = 0; a < dim; a++) {
      const ca = centred[a]!, row = a * dim;
      for (let b = 0; b <= a; b++) cov[row + b]! += ca * centred[b]!;
    }
  }
  for (let a = 0; a < dim; a++)
    for (let b = 0; b <= a; b++) {
      const v = cov[a * dim + b]! / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  return { mean, cov, dim, n };
}

export interface FrechetDistance {
  /** d² = meanTerm + covarianceTerm (what FID reports, under the name "distance"). */
  distance: number;
  /** |μ₁ − μ₂|² */
  meanTerm: number;
  /** tr Σ₁ + tr Σ₂ − 2·tr √(√Σ₁ Σ₂ √Σ₁) */
  covarianceTerm: number;
}

/**
 * Eigenvalues at or below this are rounding noise, taken as 0: a computed eigenvalue is only
 * known to about d·ε·max|λ|, and the square root would turn noise of 1e-16 into 1e-8 (a
 * rank-deficient covariance, n ≤ d, against itself would then be −1e-8 instead of 0).
 */
function noiseLevel(values: Float64Array, d: number): number {
  let largest = 0;
  for (const v of values) largest = Math.max(largest, Math.abs(v));
  return d * 2 ** -52 * largest;
}

/** The Fréchet distance between the Gaussians of two feature sets' statistics. */
export function frechetDistance(a: Pick<FeatureStatistics, 'mean' | 'cov' | 'dim'>, b: Pick<FeatureStatistics, 'mean' | 'cov' | 'dim'>): FrechetDistance {
  if (a.dim !== b.dim) throw new RangeError(`frechetDistance: the feature sets have ${a.dim} and ${b.dim} dimensions`);
  const d = a.dim;
  let meanTerm = 0, traces = 0;
  for (let j = 0; j < d; j++) {
    meanTerm += (a.mean[j]! - b.mean[j]!) ** 2;
    traces += a.cov[j * d + j]! + b.cov[j * d + j]!;
  }
  const eigA = symmetricEigen(a.cov, d);
  const floorA = noiseLevel(eigA.values, d);
  const sqrtA = eigenFunction(eigA, (v) => (v > floorA ? Math.sqrt(v) : 0));
  const product = matmul64(matmul64(sqrtA, b.cov, d), sqrtA, d);
  // Symmetric up to rounding; the eigensolver reads its lower triangle.
  const { values } = symmetricEigen(product, d);
  const floor = noiseLevel(values, d);
  let traceSqrt = 0;
  for (const v of values) if (v > floor) traceSqrt += Math.sqrt(v);
  const covarianceTerm = traces - 2 * traceSqrt;
  return { distance: meanTerm + covarianceTerm, meanTerm, covarianceTerm };
}
