// Token-axis ops on (B, L, C): gather by per-sample ids (MAE keep / restore), concat (cls
// token), slice, and permute (explicit copy: tensors are always contiguous).
import { native } from '../native.js';
import { record, Tensor, zeros } from '../tensor.js';
import { sum } from './reduce.js';
import { emptyOn, expectTensor } from './util.js';

function expectBLC(op: string, name: string, x: Tensor): void {
  if (x.shape.length !== 3) throw new RangeError(`${op}: '${name}' must be (B, L, C), got shape [${x.shape.join(', ')}]`);
}

/** out (B, K, C) = x (B, L, C) at ids (B, K) (i32, each in [0, L)). */
export function gatherTokens(x: Tensor, ids: Tensor): Tensor {
  expectTensor('gatherTokens', 'x', x);
  expectTensor('gatherTokens', 'ids', ids);
  expectBLC('gatherTokens', 'x', x);
  if (ids.shape.length !== 2) throw new RangeError(`gatherTokens: 'ids' must be (B, K), got shape [${ids.shape.join(', ')}]`);
  const out = emptyOn(x, [x.shape[0]!, ids.shape[1]!, x.shape[2]!]);
  native().gatherTokens(out.handle, x.handle, ids.handle);
  return record(out, 'gatherTokens', [x], (g) => {
    const dx = zeros(x.shape, { device: x.device });
    native().scatterAddTokens(dx.handle, g.handle, ids.handle);
    return [dx];
  });
}

/** [a; b] along tokens: a (B, La, C) or (1, La, C) shared by the batch; b (B, Lb, C). */
export function concatTokens(a: Tensor, b: Tensor): Tensor {
  expectTensor('concatTokens', 'a', a);
  expectTensor('concatTokens', 'b', b);
  expectBLC('concatTokens', 'a', a);
  expectBLC('concatTokens', 'b', b);
  const [B, Lb, C] = b.shape as [number, number, number];
  const La = a.shape[1]!;
  const out = emptyOn(b, [B, La + Lb, C]);
  native().concatTokens(out.handle, a.handle, b.handle);
  return record(out, 'concatTokens', [a, b], (g) => {
    let da: Tensor | null = null, db: Tensor | null = null;
    if (a.requiresGrad) {
      const part = emptyOn(g, [B, La, C]);
      native().sliceTokens(part.handle, g.handle, 0);
      if (a.shape[0] === 1 && B !== 1) {
        da = sum(part, 0).reshape(a.shape).detach();
        part.dispose();
      } else da = part;
    }
    if (b.requiresGrad) {
      db = emptyOn(g, [B, Lb, C]);
      native().sliceTokens(db.handle, g.handle, La);
    }
    return [da, db];
  });
}

/** x (B, L, C) tokens [start, start + length). */
export function sliceTokens(x: Tensor, start: number, length: number): Tensor {
  expectTensor('sliceTokens', 'x', x);
  expectBLC('sliceTokens', 'x', x);
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`sliceTokens: 'length' must be a non-negative integer, got ${length}`);
  const out = emptyOn(x, [x.shape[0]!, length, x.shape[2]!]);
  native().sliceTokens(out.handle, x.handle, start);
  return record(out, 'sliceTokens', [x], (g) => {
    const dx = emptyOn(x, x.shape);
    native().sliceTokensBackward(dx.handle, g.handle, start);
    return [dx];
  });
}

/** A contiguous copy with axes reordered: output axis i is input axis perm[i]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  expectTensor('permute', 'x', x);
  const n = x.shape.length;
  if (!Array.isArray(perm) || perm.length !== n || [...perm].sort((p, q) => p - q).some((p, i) => p !== i))
    throw new RangeError(`permute: 'perm' must be a permutation of 0..${n - 1}, got ${Array.isArray(perm) ? `[${perm.join(', ')}]` : typeof perm}`);
  const out = emptyOn(x, perm.map((p) => x.shape[p]!));
  native().permute(out.handle, x.handle, perm.slice());
  const inverse = perm.map((_, i) => perm.indexOf(i));
  return record(out, 'permute', [x], (g) => {
    const dx = emptyOn(x, x.shape);
    native().permute(dx.handle, g.handle, inverse);
    return [dx];
  });
}
