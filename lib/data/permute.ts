// The pixel permutation of the paper's locality study (§6, Fig. 4–5; SPEC §5): one fixed
// permutation of an image's H·W pixels, shared by every image of a run (train and test),
// made of T swaps of disjoint pixel pairs, so each pixel moves at most once.
//
// Distance δ: the paper's "within the 2×2 neighbourhood for δ = 2" is read as |Δrow| ≤ δ − 1
// and |Δcol| ≤ δ − 1, so δ = 2 pairs a pixel with one of its 8 neighbours (diagonals count),
// δ = 3 with one of the 24 of its 5×5 window; δ = ∞ (null) pairs any two pixels. δ = 1 allows
// no pair and is refused.
//
// Construction, in three steps (each driven by one seeded Rng, so a seed gives one permutation):
//   1. A random maximal matching: pixels in a random order, each still unpaired pixel paired
//      with a partner drawn uniformly from the unpaired pixels of its window. δ = ∞ (and any
//      δ ≥ max(H, W), whose window is the whole image: the same permutation as δ = ∞) is a
//      shuffle of all pixels paired off two by two, a uniform perfect matching.
//   2. Repair (finite δ): from each pixel left unpaired, a breadth-first search for an
//      augmenting path (unpaired – paired = paired – … – unpaired); flipping it pairs two more
//      pixels. Step 1 alone pairs 89–94% of the pixels at δ = 2, 95–98% at δ = 3, 98–99.7% at
//      δ = 8 (measured on 14×14, 28×28 and 224×224, 5 seeds). After the repair every pixel was
//      paired (one left over for odd H·W) in every case measured: 14×14, 28×28, 32×32 over 20
//      seeds and 224×224, 223×225 over 2, at δ = 2, 3, 8, 32, 100 (≤ 0.2 s at 224×224; a δ
//      just below max(H, W) took 1.4 s, its near-whole-image window listed for the last pixels). A
//      king-move grid of even H·W always has a perfect matching. The search marks each pixel
//      once (it is not Edmonds' blossom algorithm), so it can in principle miss a path through
//      an odd cycle: when fewer than T pairs result, the error says how many were placed.
//   3. T pairs drawn uniformly from the matching (a seeded shuffle of its pairs, the first T).
// The matching does not depend on T, so for one (seed, H, W, δ) the permutation at T ⊂ the
// one at T' > T: a sweep over T adds swaps rather than drawing unrelated permutations.
import { mixSeed, Rng, shuffleInPlace } from './random.js';

export interface PermutationOptions {
  /** T: disjoint pixel pairs swapped (0: the identity); at most ⌊H·W / 2⌋. */
  swaps: number;
  /** δ: each pair within |Δrow| ≤ δ − 1 and |Δcol| ≤ δ − 1; an integer ≥ 2, or null / Infinity for any pair. */
  delta: number | null;
  /** Seeds the permutation (not a run's seed: one permutation is shared by the seeds of a study). */
  seed: number;
}

/** Draws of a random window offset before the window is listed whole (it is nearly used up). */
const OFFSET_DRAWS = 16;
/** Separates the permutation's stream from the data order's at the same seed. */
const PERMUTATION_STREAM = 0x7065726d;  // 'perm'

const isInfinite = (delta: number | null) => delta === null || delta === Infinity;

function checkOptions(height: number, width: number, o: PermutationOptions): void {
  const bad = (name: string, expected: string, value: unknown): never => {
    throw new RangeError(`pixelPermutation: '${name}' must be ${expected}, got ${typeof value === 'number' ? String(value) : JSON.stringify(value)}`);
  };
  if (!Number.isInteger(height) || height < 1) bad('height', 'an integer ≥ 1', height);
  if (!Number.isInteger(width) || width < 1) bad('width', 'an integer ≥ 1', width);
  if (!o || typeof o !== 'object') throw new TypeError(`pixelPermutation: the options { swaps, delta, seed } are required, got ${String(o)}`);
  if (!Number.isInteger(o.swaps) || o.swaps < 0) bad('swaps', 'an integer ≥ 0', o.swaps);
  if (!isInfinite(o.delta) && !(Number.isInteger(o.delta) && o.delta! >= 2))
    bad('delta', 'an integer ≥ 2 (pairs within |Δrow|, |Δcol| ≤ δ − 1; δ = 1 allows no pair) or null for any pair', o.delta);
  if (!Number.isInteger(o.seed)) bad('seed', 'an integer', o.seed);
  const most = Math.floor((height * width) / 2);
  if (o.swaps > most)
    throw new RangeError(`pixelPermutation: 'swaps' must be at most ⌊H·W / 2⌋ = ${most} for ${height}×${width} images (disjoint pairs), got ${o.swaps}`);
}

/**
 * A permutation of the height·width pixel indices (row-major): `swaps` swaps of disjoint pixel
 * pairs, each within |Δrow| ≤ δ − 1 and |Δcol| ≤ δ − 1 (delta null or Infinity: any pair),
 * seeded. out[i] is the source pixel shown at position i; the permutation is its own inverse.
 * A RangeError names `swaps` when fewer disjoint pairs could be placed than asked.
 */
export function pixelPermutation(height: number, width: number, options: PermutationOptions): Int32Array {
  checkOptions(height, width, options);
  const { swaps, delta, seed } = options;
  const n = height * width;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  if (swaps === 0) return out;
  // A window of reach ≥ max(H, W) − 1 holds the whole image: that δ is ∞, the same permutation.
  const anyPair = isInfinite(delta) || delta! >= Math.max(height, width);
  const rng = new Rng(mixSeed(PERMUTATION_STREAM, seed, height, width, anyPair ? 0 : delta!));
  const mate = anyPair ? anyPairs(n, rng) : windowPairs(height, width, delta! - 1, rng);
  const pairs: number[] = [];
  for (let i = 0; i < n; i++) if (mate[i]! > i) pairs.push(i);
  if (pairs.length < swaps)
    throw new RangeError(`pixelPermutation: 'swaps' ${swaps} cannot be placed: only ${pairs.length} disjoint pairs within δ = ${delta} ` +
      `(|Δrow|, |Δcol| ≤ ${delta! - 1}) were found in ${height}×${width} images; ask for at most ${pairs.length}, or a larger delta`);
  shuffleInPlace(pairs, rng);
  for (let k = 0; k < swaps; k++) {
    const a = pairs[k]!, b = mate[a]!;
    out[a] = b;
    out[b] = a;
  }
  return out;
}

/** δ = ∞: a uniform perfect matching of n pixels (one left out when n is odd); mate[i] or −1. */
function anyPairs(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, rng);
  const mate = new Int32Array(n).fill(-1);
  for (let k = 0; k + 1 < n; k += 2) {
    mate[order[k]!] = order[k + 1]!;
    mate[order[k + 1]!] = order[k]!;
  }
  return mate;
}

/** Finite δ (reach r = δ − 1): a random maximal matching, then augmenting-path repair; mate[i] or −1. */
function windowPairs(height: number, width: number, reach: number, rng: Rng): Int32Array {
  const n = height * width;
  const mate = new Int32Array(n).fill(-1);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  shuffleInPlace(order, rng);
  const side = 2 * reach + 1;
  const listed: number[] = [];
  for (const i of order) {
    if (mate[i] !== -1) continue;
    const r = Math.floor(i / width), c = i % width;
    // Uniform over the unpaired pixels of the window: draws of a uniform offset, each rejected
    // when outside the image, the pixel itself or paired; the window listed once draws fail.
    let partner = -1;
    for (let k = 0; k < OFFSET_DRAWS && partner < 0; k++) {
      const rr = r + rng.int(side) - reach, cc = c + rng.int(side) - reach;
      if (rr < 0 || rr >= height || cc < 0 || cc >= width) continue;
      const j = rr * width + cc;
      if (j !== i && mate[j] === -1) partner = j;
    }
    if (partner < 0) {
      listed.length = 0;
      for (let rr = Math.max(0, r - reach); rr <= Math.min(height - 1, r + reach); rr++)
        for (let cc = Math.max(0, c - reach); cc <= Math.min(width - 1, c + reach); cc++) {
          const j = rr * width + cc;
          if (j !== i && mate[j] === -1) listed.push(j);
        }
      if (listed.length) partner = listed[rng.int(listed.length)]!;
    }
    if (partner >= 0) {
      mate[i] = partner;
      mate[partner] = i;
    }
  }
  repair(mate, height, width, reach, order);
  return mate;
}

/**
 * Pairs more pixels by augmenting paths: from each unpaired pixel u (in the matching's random
 * order), a breadth-first search over "outer" pixels (u, then the mates of pixels reached) for
 * an unpaired window neighbour; the path u – m1 = o1 – m2 = o2 … – free is flipped, pairing u
 * and the free pixel. Each pixel is marked once per search (no blossoms); the searches stop
 * once at most one pixel (odd H·W) is unpaired.
 */
function repair(mate: Int32Array, height: number, width: number, reach: number, order: Int32Array): void {
  const n = height * width;
  let unpaired = 0;
  for (let i = 0; i < n; i++) if (mate[i] === -1) unpaired++;
  const seen = new Int32Array(n);        // search id that marked the pixel (0: none yet)
  const parent = new Int32Array(n);      // inner pixel → the outer pixel it was reached from
  const queue = new Int32Array(n);
  let search = 0;
  for (const u of order) {
    if (unpaired <= n % 2) return;  // perfect (or one pixel short of it for odd H·W)
    if (mate[u] !== -1) continue;
    search++;
    seen[u] = search;
    let head = 0, tail = 0;
    queue[tail++] = u;
    let from = -1, free = -1;
    scan: while (head < tail) {
      const a = queue[head++]!;
      const r = Math.floor(a / width), c = a % width;
      for (let rr = Math.max(0, r - reach); rr <= Math.min(height - 1, r + reach); rr++)
        for (let cc = Math.max(0, c - reach); cc <= Math.min(width - 1, c + reach); cc++) {
          const b = rr * width + cc;
          if (b === a || seen[b] === search) continue;
          if (mate[b] === -1) {
            from = a;
            free = b;
            break scan;
          }
          const o = mate[b]!;
          if (seen[o] === search) continue;
          seen[b] = seen[o] = search;
          parent[b] = a;
          queue[tail++] = o;
        }
    }
    if (free !== -1) unpaired -= 2;
    // Flip the path back to u: a takes b, a's old mate takes the outer pixel it was reached from.
    for (let a = from, b = free; a !== -1;) {
      const old = a === u ? -1 : mate[a]!;
      mate[a] = b;
      mate[b] = a;
      if (old === -1) break;
      b = old;
      a = parent[old]!;
    }
  }
}

/** The inverse permutation q (q[p[i]] = i); a RangeError when p is not a permutation of 0..n−1. */
export function inversePermutation(p: ArrayLike<number>): Int32Array {
  const n = p.length;
  const q = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const j = p[i]!;
    if (!Number.isInteger(j) || j < 0 || j >= n || q[j] !== -1)
      throw new RangeError(`inversePermutation: 'p' must be a permutation of 0..${n - 1}, but p[${i}] = ${j} ${Number.isInteger(j) && j >= 0 && j < n ? `repeats p[${q[j]}]` : 'is out of range'}`);
    q[j] = i;
  }
  return q;
}

/**
 * Permutes the pixels of every image and channel of an NCHW batch (N, C, H, W) in place:
 * out(n, c, i) = in(n, c, permutation[i]), i the row-major pixel index.
 */
export function permutePixels(images: Float32Array, channels: number, height: number, width: number, permutation: ArrayLike<number>): void {
  for (const [name, v] of [['channels', channels], ['height', height], ['width', width]] as const)
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`permutePixels: '${name}' must be an integer ≥ 1, got ${String(v)}`);
  const plane = height * width;
  if (permutation.length !== plane)
    throw new RangeError(`permutePixels: 'permutation' must have H·W = ${plane} entries for ${height}×${width} images, got ${permutation.length}`);
  if (images.length % (channels * plane) !== 0)
    throw new RangeError(`permutePixels: 'images' has ${images.length} values, not a multiple of ${channels}·${height}·${width}`);
  const scratch = new Float32Array(plane);
  for (let start = 0; start < images.length; start += plane) {
    const p = images.subarray(start, start + plane);
    scratch.set(p);
    for (let i = 0; i < plane; i++) p[i] = scratch[permutation[i]!]!;
  }
}
