// The memorisation check: for each generated image, its nearest training image in pixel space.
// A generator that copies its training set puts samples far closer to a training image than
// held-out real images ever are. The search is a GEMM on the device (|a − b|² = |a|² + |b|² −
// 2a·b, f32), which ranks candidates; the best few of each query are then measured again
// exactly (float64 differences), so the distance reported is exact for the image chosen and
// the choice can only differ from the exact nearest among images within f32 rounding of it.
import { matmul } from '../ops/matmul.js';
import { noGrad, tensor, tidy, type Device } from '../tensor.js';

export interface NearestImages {
  /** (queries) index of the nearest training image. */
  index: Int32Array;
  /** (queries) root-mean-square pixel difference to it: √(|a − b|² / pixels), in the data's units. */
  distance: Float64Array;
}

export interface NearestOptions {
  /** Where the GEMM runs; default 'cpu'. */
  device?: Device;
  /** Training images per GEMM; default 4096. */
  chunk?: number;
}

/** Candidates per query re-measured exactly. */
const RESCORED = 4;

function squaredNorms(images: Float32Array, n: number, pixels: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let p = i * pixels; p < (i + 1) * pixels; p++) s += images[p]! * images[p]!;
    out[i] = s;
  }
  return out;
}

/**
 * For each of the `queries` images (queries × pixels values), the nearest of the training
 * images (n × pixels) by Euclidean distance.
 */
export function nearestImages(queries: Float32Array, train: Float32Array, pixels: number, options: NearestOptions = {}): NearestImages {
  const { device = 'cpu', chunk = 4096 } = options;
  if (!Number.isInteger(pixels) || pixels < 1) throw new RangeError(`nearestImages: 'pixels' must be a positive integer, got ${String(pixels)}`);
  if (queries.length % pixels || train.length % pixels) throw new RangeError(`nearestImages: the image arrays (${queries.length} and ${train.length} values) must be multiples of ${pixels} pixels`);
  const q = queries.length / pixels, n = train.length / pixels;
  if (n < 1) throw new RangeError('nearestImages: there are no training images');
  const qNorms = squaredNorms(queries, q, pixels), tNorms = squaredNorms(train, n, pixels);
  const keep = Math.min(RESCORED, n);
  // Per query, the `keep` best candidates by the GEMM's estimate, sorted ascending.
  const bestValue = new Float64Array(q * keep).fill(Infinity), bestIndex = new Int32Array(q * keep).fill(-1);
  noGrad(() => tidy(() => {
    const a = tensor(queries, [q, pixels], { device });   // uploaded once, for every chunk
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      tidy(() => {
        const b = tensor(train.subarray(start * pixels, (start + m) * pixels), [m, pixels], { device });
        const dots = matmul(a, b, { transB: true }).toArray() as Float32Array;   // (q, m)
        for (let i = 0; i < q; i++) {
          const values = bestValue.subarray(i * keep, (i + 1) * keep), indices = bestIndex.subarray(i * keep, (i + 1) * keep);
          for (let j = 0; j < m; j++) {
            const estimate = qNorms[i]! + tNorms[start + j]! - 2 * dots[i * m + j]!;
            if (!(estimate < values[keep - 1]!)) continue;
            let at = keep - 1;
            while (at > 0 && values[at - 1]! > estimate) {
              values[at] = values[at - 1]!;
              indices[at] = indices[at - 1]!;
              at--;
            }
            values[at] = estimate;
            indices[at] = start + j;
          }
        }
      });
    }
  }));
  const index = new Int32Array(q), distance = new Float64Array(q);
  for (let i = 0; i < q; i++) {
    let best = Infinity, bestAt = -1;
    for (let c = 0; c < keep; c++) {
      const j = bestIndex[i * keep + c]!;
      if (j < 0) continue;
      let s = 0;
      for (let p = 0; p < pixels; p++) {
        const t = queries[i * pixels + p]! - train[j * pixels + p]!;
        s += t * t;
      }
      if (s < best) {
        best = s;
        bestAt = j;
      }
    }
    if (bestAt < 0) throw new RangeError(`nearestImages: query ${i} has no finite distance to any training image (does it hold NaN?)`);
    index[i] = bestAt;
    distance[i] = Math.sqrt(best / pixels);
  }
  return { index, distance };
}
