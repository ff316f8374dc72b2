// Dense float64 linear algebra the Fréchet distance needs: the symmetric eigendecomposition
// (Householder reduction to tridiagonal form, then the implicit QL iteration; the EISPACK
// tred2/tql2 pair as JAMA writes it), and small helpers. Matrices are n×n Float64Arrays,
// row-major.

export interface SymmetricEigen {
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** n×n row-major; column j is the unit eigenvector of values[j] (A = V·diag(values)·Vᵀ). */
  vectors: Float64Array;
}

function checkSquare(op: string, a: Float64Array, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${op}: 'n' must be a positive integer, got ${String(n)}`);
  if (a.length !== n * n) throw new RangeError(`${op}: the matrix must hold n·n = ${n * n} values, got ${a.length}`);
  for (let i = 0; i < a.length; i++)
    if (!Number.isFinite(a[i]!)) throw new RangeError(`${op}: the matrix holds ${a[i]} at (${Math.floor(i / n)}, ${i % n})`);
}

/**
 * Eigenvalues and eigenvectors of the symmetric n×n matrix `a` (only its lower triangle is
 * read). Float64 throughout; accurate to a few units of 2⁻⁵² relative to the largest
 * |eigenvalue|.
 */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  checkSquare('symmetricEigen', a, n);
  // V as rows: V[i][j]; the lower triangle of a, mirrored, since tred2 reads the lower part.
  const V = Array.from({ length: n }, (_, i) => {
    const row = new Float64Array(n);
    for (let j = 0; j < n; j++) row[j] = i >= j ? a[i * n + j]! : a[j * n + i]!;
    return row;
  });
  const d = new Float64Array(n), e = new Float64Array(n);
  tridiagonalize(V, d, e, n);
  // The QL sweeps rotate pairs of columns of V: work on Vᵀ so each rotation reads two rows.
  const W = transposeRows(V, n);
  tridiagonalQl(W, d, e, n);
  // Ascending order (QL leaves them nearly sorted; a stable index sort keeps it simple).
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[x]! - d[y]!);
  const values = new Float64Array(n), vectors = new Float64Array(n * n);
  order.forEach((from, j) => {
    values[j] = d[from]!;
    const column = W[from]!;
    for (let i = 0; i < n; i++) vectors[i * n + j] = column[i]!;
  });
  return { values, vectors };
}

function transposeRows(rows: Float64Array[], n: number): Float64Array[] {
  return Array.from({ length: n }, (_, j) => {
    const row = new Float64Array(n);
    for (let i = 0; i < n; i++) row[i] = rows[i]![j]!;
    return row;
  });
}

/**
 * Householder reduction of the symmetric V to tridiagonal form (EISPACK tred2): on return d is
 * the diagonal, e[1..n−1] the subdiagonal (e[0] = 0) and V the orthogonal transformation.
 */
function tridiagonalize(V: Float64Array[], d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = V[n - 1]![j]!;
  for (let i = n - 1; i > 0; i--) {
    // Scale the row to avoid under/overflow.
    let scale = 0, h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V[i - 1]![j]!;
        V[i]![j] = 0;
        V[j]![i] = 0;
      }
    } else {
      // The Householder vector.
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = f > 0 ? -Math.sqrt(h) : Math.sqrt(h);
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      // Apply the similarity transformation to the remaining columns.
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        V[j]![i] = f;
        g = e[j]! + V[j]![j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k]![j]! * d[k]!;
          e[k]! += V[k]![j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) V[k]![j]! -= f * e[k]! + g * d[k]!;
        d[j] = V[i - 1]![j]!;
        V[i]![j] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    V[n - 1]![i] = V[i]![i]!;
    V[i]![i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k]![i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k]![i + 1]! * V[k]![j]!;
        for (let k = 0; k <= i; k++) V[k]![j]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) V[k]![i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[n - 1]![j]!;
    V[n - 1]![j] = 0;
  }
  V[n - 1]![n - 1] = 1;
  e[0] = 0;
}

/**
 * Eigenvalues (into d) and eigenvectors of the symmetric tridiagonal matrix (d, e) by the
 * implicit QL method with Wilkinson-like shifts (EISPACK tql2). W holds the transformation
 * transposed: row j of W ends as the eigenvector of d[j].
 */
function tridiagonalQl(W: Float64Array[], d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0, tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    // Find a negligible subdiagonal element.
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iterations = 0;
      do {
        // 30 per eigenvalue is EISPACK's bound; convergence is cubic, so a handful is usual.
        if (++iterations > 60) throw new Error(`symmetricEigen: the QL iteration did not converge for eigenvalue ${l} of ${n}`);
        // The implicit shift.
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        // The implicit QL transformation.
        p = d[m]!;
        let c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const el1 = e[l + 1]!;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          // Rotate eigenvector columns i and i + 1 (rows of W).
          const wi = W[i]!, wi1 = W[i + 1]!;
          for (let k = 0; k < n; k++) {
            const t = wi1[k]!;
            wi1[k] = s * wi[k]! + c * t;
            wi[k] = c * wi[k]! - s * t;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/** The n×n product a·b (row-major, float64). */
export function matmul64(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * n, (i + 1) * n);
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      const bk = b.subarray(k * n, (k + 1) * n);
      for (let j = 0; j < n; j++) row[j]! += aik * bk[j]!;
    }
  }
  return out;
}

/** V·diag(f(values))·Vᵀ for a symmetric eigendecomposition: a matrix function, symmetric. */
export function eigenFunction(eig: SymmetricEigen, f: (value: number) => number): Float64Array {
  const { values, vectors: V } = eig;
  const n = values.length;
  const scaled = new Float64Array(n * n);   // V·diag(f)
  const fv = values.map(f);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) scaled[i * n + j] = V[i * n + j]! * fv[j]!;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += scaled[i * n + k]! * V[j * n + k]!;
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  return out;
}
