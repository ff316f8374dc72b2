// matmul and linear: out = op(a) · op(b) (+ bias), one native GEMM forward and one backward.
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyOn, expectTensor, gradBufferFor, handleOrNull } from './util.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
}

/**
 * a (..., M, K) [or (..., K, M) with transA] times b (K, N) [or (N, K) with transB], where b is
 * 2-D (shared by every leading index of a) or batched like a. Returns (..., M, N).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  expectTensor('matmul', 'a', a);
  expectTensor('matmul', 'b', b);
  const { transA = false, transB = false, bias = null } = options;
  if (bias !== null) expectTensor('matmul', 'bias', bias);
  if (a.shape.length < 2) throw new RangeError(`matmul: 'a' must have at least 2 dims (..., M, K), got shape [${a.shape.join(', ')}]`);
  if (b.shape.length < 2) throw new RangeError(`matmul: 'b' must have at least 2 dims (K, N), got shape [${b.shape.join(', ')}]`);
  const M = transA ? a.shape.at(-1)! : a.shape.at(-2)!;
  const N = transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  const out = emptyOn(a, [...a.shape.slice(0, -2), M, N]);
  native().matmulForward(out.handle, a.handle, b.handle, handleOrNull(bias), transA, transB, false);
  return record(out, 'matmul', [a, b, bias], (g) => {
    const da = gradBufferFor(a), db = gradBufferFor(b), dbias = gradBufferFor(bias);
    native().matmulBackward(handleOrNull(da), handleOrNull(db), handleOrNull(dbias), g.handle, a.handle, b.handle, transA, transB);
    return [da, db, dbias];
  });
}

/** x (..., in) · weightᵀ + bias, with weight (out, in) as in timm/PyTorch. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  expectTensor('linear', 'x', x);
  expectTensor('linear', 'weight', weight);
  if (x.shape.length === 1) return matmul(x.reshape([1, x.shape[0]!]), weight, { transB: true, bias }).reshape([weight.shape[0]!]);
  return matmul(x, weight, { transB: true, bias });
}
