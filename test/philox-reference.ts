// An independent Philox 4x32-10 in JS (BigInt for the 32x32 products), following the
// stream layout documented in native/core/rng.h.
const M0 = 0xd2511f53n, M1 = 0xcd9e8d57n, W0 = 0x9e3779b9n, W1 = 0xbb67ae85n, MASK = 0xffffffffn;

export function philox(block: bigint, offset: bigint, seed: bigint): number[] {
  let c0 = block & MASK, c1 = (block >> 32n) & MASK, c2 = offset & MASK, c3 = (offset >> 32n) & MASK;
  let k0 = seed & MASK, k1 = (seed >> 32n) & MASK;
  for (let r = 0; r < 10; r++) {
    const p0 = M0 * c0, p1 = M1 * c2;
    const n0 = ((p1 >> 32n) ^ c1 ^ k0) & MASK;
    const n2 = ((p0 >> 32n) ^ c3 ^ k1) & MASK;
    c0 = n0;
    c1 = p1 & MASK;
    c2 = n2;
    c3 = p0 & MASK;
    k0 = (k0 + W0) & MASK;
    k1 = (k1 + W1) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

export function philoxReference(seed: number, offset: number, n: number): { uniform: Float32Array; normal: Float64Array } {
  const uniform = new Float32Array(n), normal = new Float64Array(n);
  for (let blk = 0; blk * 4 < n; blk++) {
    const x = philox(BigInt(blk), BigInt(offset), BigInt(seed));
    const v: number[] = [];
    for (let pair = 0; pair < 2; pair++) {
      const u1 = ((x[2 * pair]! >>> 8) + 1) / 16777216;
      const u2 = (x[2 * pair + 1]! >>> 8) / 16777216;
      const r = Math.sqrt(-2 * Math.log(u1));
      v.push(r * Math.cos(2 * Math.PI * u2), r * Math.sin(2 * Math.PI * u2));
    }
    for (let lane = 0; lane < 4 && blk * 4 + lane < n; lane++) {
      uniform[blk * 4 + lane] = (x[lane]! >>> 8) / 16777216;
      normal[blk * 4 + lane] = v[lane]!;
    }
  }
  return { uniform, normal };
}
