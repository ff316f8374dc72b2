// Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
// Metric for Assessing Generative Models"): each set's manifold is the union of balls around
// its points, each ball reaching the point's k-th nearest neighbour in its own set (k = 3).
//   precision = fraction of generated points inside the real manifold (are samples realistic?)
//   recall    = fraction of real points inside the generated manifold (is the data covered?)
// Distances are Euclidean in the feature space, computed in float64.

/** Euclidean distances (a.n, b.n) between the rows of a (a.n × dim) and of b (b.n × dim). */
export function pairwiseDistances(a: ArrayLike<number>, aN: number, b: ArrayLike<number>, bN: number, dim: number): Float64Array {
  if (a.length !== aN * dim || b.length !== bN * dim) throw new RangeError(`pairwiseDistances: expected ${aN}·${dim} and ${bN}·${dim} values, got ${a.length} and ${b.length}`);
  const A = Float64Array.from(a), B = Float64Array.from(b);
  const out = new Float64Array(aN * bN);
  for (let i = 0; i < aN; i++) {
    const x = A.subarray(i * dim, (i + 1) * dim);
    for (let j = 0; j < bN; j++) {
      const y = B.subarray(j * dim, (j + 1) * dim);
      let s = 0;
      for (let k = 0; k < dim; k++) {
        const t = x[k]! - y[k]!;
        s += t * t;
      }
      out[i * bN + j] = Math.sqrt(s);
    }
  }
  return out;
}

/**
 * Each point's distance to its k-th nearest neighbour within its own set, from the set's
 * (n, n) distances: the (k + 1)-th smallest of its row, since the smallest is itself (0).
 */
export function kthNeighbourRadii(selfDistances: Float64Array, n: number, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new RangeError(`kthNeighbourRadii: 'k' must be an integer in [1, n − 1] = [1, ${n - 1}], got ${String(k)}`);
  const radii = new Float64Array(n), smallest = new Float64Array(k + 1);
  for (let i = 0; i < n; i++) {
    // The k + 1 smallest of the row, kept sorted by insertion (k is small).
    smallest.fill(Infinity);
    for (let j = 0; j < n; j++) {
      const v = selfDistances[i * n + j]!;
      if (v >= smallest[k]!) continue;
      let at = k;
      while (at > 0 && smallest[at - 1]! > v) {
        smallest[at] = smallest[at - 1]!;
        at--;
      }
      smallest[at] = v;
    }
    radii[i] = smallest[k]!;
  }
  return radii;
}

/**
 * The fraction of query points inside the manifold of the reference set: within radii[j] of
 * some reference point j. `cross` holds the (queries, references) distances.
 */
export function manifoldCoverage(cross: Float64Array, queries: number, radii: Float64Array): number {
  const refs = radii.length;
  if (cross.length !== queries * refs) throw new RangeError(`manifoldCoverage: expected ${queries}·${refs} distances, got ${cross.length}`);
  let inside = 0;
  for (let i = 0; i < queries; i++)
    for (let j = 0; j < refs; j++)
      if (cross[i * refs + j]! <= radii[j]!) {
        inside++;
        break;
      }
  return inside / queries;
}

export interface PrecisionRecall {
  precision: number;
  recall: number;
  k: number;
}

/** Improved precision and recall of `generated` (nG × dim) against `real` (nR × dim). */
export function precisionRecall(real: ArrayLike<number>, realN: number, generated: ArrayLike<number>, generatedN: number, dim: number, k = 3): PrecisionRecall {
  const realRadii = kthNeighbourRadii(pairwiseDistances(real, realN, real, realN, dim), realN, k);
  const generatedRadii = kthNeighbourRadii(pairwiseDistances(generated, generatedN, generated, generatedN, dim), generatedN, k);
  const cross = pairwiseDistances(generated, generatedN, real, realN, dim);   // (generated, real)
  const transposed = new Float64Array(realN * generatedN);
  for (let i = 0; i < generatedN; i++)
    for (let j = 0; j < realN; j++) transposed[j * generatedN + i] = cross[i * realN + j]!;
  return {
    precision: manifoldCoverage(cross, generatedN, realRadii),
    recall: manifoldCoverage(transposed, realN, generatedRadii),
    k,
  };
}
