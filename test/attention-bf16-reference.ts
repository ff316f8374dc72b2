// The naive bf16 attention and the error checks shared by the bf16 attention tests of both
// devices (test/cuda-attention-bf16.test.ts, test/cpu-attention-bf16.test.ts): DESIGN.md's
// testing pattern 2, a bf16 kernel passes when its error is at most twice that of a naive bf16
// computation. Not a test file.
import type { ExecutionContext } from 'ava';
import { prod, qkvShape, roundBf16 as bf16, type AttentionDims } from './helpers.js';

const outShape = ({ B, L, H, D }: AttentionDims) => [B, L, H, D];

/** One head's q, k, v (L, D) (or dout, out rows) copied out of the packed layouts. */
export function headRows(x: ArrayLike<number>, dims: AttentionDims, b: number, h: number, part: number | null): Float64Array {
  const { L, H, D } = dims;
  const rows = new Float64Array(L * D);
  for (let l = 0; l < L; l++) {
    const at = part === null ? ((b * L + l) * H + h) * D : ((b * L + l) * 3 + part) * H * D + h * D;
    for (let d = 0; d < D; d++) rows[l * D + d] = x[at + d]!;
  }
  return rows;
}

/**
 * The naive bf16 computation, in float64 with bf16 rounding after every matmul and of P:
 * S = bf16(Q·Kᵀ), P = bf16(softmax(S·scale)), out = bf16(P·V); dP = bf16(dO·Vᵀ),
 * dS = bf16(P ∘ (dP − Di)) with Di = rowsum(dO ∘ out), dQ = bf16(dS·K·scale),
 * dK = bf16(dSᵀ·Q·scale), dV = bf16(Pᵀ·dO).
 */
export function naiveBf16(dims: AttentionDims, qkv: ArrayLike<number>, dout: ArrayLike<number>) {
  const { B, L, H, D } = dims;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(prod(outShape(dims))), lse = new Float64Array(B * H * L);
  const dqkv = new Float64Array(prod(qkvShape(dims)));
  const s = new Float64Array(L), p = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const q = headRows(qkv, dims, b, h, 0), k = headRows(qkv, dims, b, h, 1), v = headRows(qkv, dims, b, h, 2);
      const g = headRows(dout, dims, b, h, null);
      const o = new Float64Array(L * D), rowLse = new Float64Array(L);
      const dq = new Float64Array(L * D), dk = new Float64Array(L * D), dv = new Float64Array(L * D);
      const scores = (i: number) => {
        let max = -Infinity;
        for (let j = 0; j < L; j++) {
          let acc = 0;
          for (let d = 0; d < D; d++) acc += q[i * D + d]! * k[j * D + d]!;
          s[j] = bf16(acc) * scale;
          max = Math.max(max, s[j]!);
        }
        return max;
      };
      for (let i = 0; i < L; i++) {
        const max = scores(i);
        let sum = 0;
        for (let j = 0; j < L; j++) sum += Math.exp(s[j]! - max);
        rowLse[i] = max + Math.log(sum);
        for (let j = 0; j < L; j++) p[j] = bf16(Math.exp(s[j]! - max) / sum);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += p[j]! * v[j * D + d]!;
          o[i * D + d] = bf16(acc);
        }
      }
      for (let i = 0; i < L; i++) {
        scores(i);
        let di = 0;
        for (let d = 0; d < D; d++) di += g[i * D + d]! * o[i * D + d]!;
        for (let j = 0; j < L; j++) {
          const pj = bf16(Math.exp(s[j]! - rowLse[i]!));
          let dp = 0;
          for (let d = 0; d < D; d++) dp += g[i * D + d]! * v[j * D + d]!;
          const ds = bf16(pj * (bf16(dp) - di));
          for (let d = 0; d < D; d++) {
            dq[i * D + d] += ds * k[j * D + d]!;
            dk[j * D + d] += ds * q[i * D + d]!;
            dv[j * D + d] += pj * g[i * D + d]!;
          }
        }
      }
      for (let l = 0; l < L; l++) {
        lse[(b * H + h) * L + l] = rowLse[l]!;
        for (let d = 0; d < D; d++) {
          out[((b * L + l) * H + h) * D + d] = o[l * D + d]!;
          const at = (part: number) => ((b * L + l) * 3 + part) * H * D + h * D + d;
          dqkv[at(0)] = bf16(dq[l * D + d]! * scale);
          dqkv[at(1)] = bf16(dk[l * D + d]! * scale);
          dqkv[at(2)] = bf16(dv[l * D + d]!);
        }
      }
    }
  return { out, lse, dqkv };
}

/** Largest |x − ref| (Infinity if any x is NaN) and max |ref|. */
export function maxError(x: ArrayLike<number>, ref: ArrayLike<number>): { error: number; at: number; scale: number } {
  let error = 0, at = -1, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(x[i]! - ref[i]!);
    scale = Math.max(scale, Math.abs(ref[i]!));
    if (Number.isNaN(e)) return { error: Infinity, at: i, scale };
    if (e > error) (error = e), (at = i);
  }
  return { error, at, scale };
}

/** A kernel's error against the reference ≤ 2 × the naive bf16 error + 1e-3·max|ref|. */
export function withinTwiceNaive(t: ExecutionContext, what: string, got: ArrayLike<number>, naive: ArrayLike<number>,
  ref: ArrayLike<number>): void {
  const g = maxError(got, ref), n = maxError(naive, ref);
  const bound = 2 * n.error + 1e-3 * g.scale;
  t.true(g.error <= bound, `${what}: max error ${g.error.toExponential(3)} at ${g.at} (got ${got[g.at]}, ref ${ref[g.at]}) ` +
    `> 2 × naive bf16 ${n.error.toExponential(3)} + 1e-3 × ${g.scale.toExponential(3)}`);
}

export function checkLse(t: ExecutionContext, what: string, got: ArrayLike<number>, ref: ArrayLike<number>): void {
  let worst = 0, at = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i]! - ref[i]!) / Math.max(1, Math.abs(ref[i]!));
    if (!(e <= worst)) (worst = Number.isNaN(e) ? Infinity : e), (at = i);
  }
  t.true(worst <= 1e-3, `${what}: lse relative error ${worst} at ${at} (got ${got[at]}, ref ${ref[at]})`);
}
