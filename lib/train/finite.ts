// A checkpoint is a promise that training can go on from it: weights (or optimizer moments)
// holding NaN or ±Inf break that promise whatever the loss said, so they are refused on save
// and named on load.

/** The first non-finite value among `tensors` (in their order), or null when all are finite. */
export function firstNonFinite(tensors: Iterable<[string, Float32Array]>): { name: string; index: number; value: number } | null {
  for (const [name, data] of tensors)
    for (let i = 0; i < data.length; i++) {
      // x - x is 0 for every finite x and NaN for NaN and ±Inf: one test, no branch per kind.
      const x = data[i]!;
      if (x - x !== 0) return { name, index: i, value: x };
    }
  return null;
}

/** Weights or moments that are not finite. */
export class NonFiniteError extends RangeError {}

/** Throws `${context}: tensor "<name>" holds <value> at element <i>` + `consequence`, if any is not finite. */
export function checkFinite(tensors: Iterable<[string, Float32Array]>, context: string, consequence: string): void {
  const bad = firstNonFinite(tensors);
  if (bad) throw new NonFiniteError(`${context}: tensor "${bad.name}" holds ${bad.value} at element ${bad.index}; ${consequence}`);
}
