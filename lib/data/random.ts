// Seeded randomness for data handling (shuffles, crops, flips), in plain JS.
//
// mulberry32 (Tommy Ettinger, public domain): a 32-bit state advanced by a Weyl step
// (+0x6d2b79f5) and mixed by two multiply-xorshift rounds. Period 2^32, fast, and its
// whole state is one uint32, so a loader's position can be saved and restored exactly.
// It is for data order only; tensor initialisation uses the library's Philox generator.

export class Rng {
  /** The whole generator state: one uint32. */
  state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new TypeError(`Rng: 'seed' must be an integer, got ${String(seed)}`);
    this.state = seed >>> 0;
  }

  /** A uint32, uniform over [0, 2^32). */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float, uniform over [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer, uniform over [0, n) (n ≤ 2^32; the modulo bias is below 2^-32·n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Mixes several integers into one 32-bit seed (a murmur3-style finaliser per word), so that
 * (seed, epoch, batch) give unrelated streams.
 */
export function mixSeed(...words: number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    let k = Math.imul(w >>> 0, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Fisher–Yates shuffle in place, driven by rng. Returns the array. */
export function shuffleInPlace<A extends { length: number; [i: number]: number }>(a: A, rng: Rng): A {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const x = a[i]!;
    a[i] = a[j]!;
    a[j] = x;
  }
  return a;
}

/** A permutation of 0..n-1, shuffled with a generator seeded by `seed`. */
export function permutation(n: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, new Rng(seed));
}
