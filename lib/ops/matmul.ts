// matmul and linear: out = op(a) · op(b) (+ bias), one native GEMM forward and one backward.
// f32 operands on every device; bf16 operands (fp32 accumulation) on the GPU, where the output
// and every gradient keep their tensor's dtype (bf16 out, bias bf16). The full mixed-precision
// policy (f32 master weights cast per step, f32 gradients) is a later part of issue 15.
import { native } from '../native.js';
import { empty, record, Tensor } from '../tensor.js';
import { expectTensor, handleOrNull } from './util.js';

/** A gradient buffer of t's dtype and device when t takes part in the graph, else null. */
const gradOf = (t: Tensor | null): Tensor | null => (t?.requiresGrad ? empty(t.shape, { dtype: t.dtype, device: t.device }) : null);

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
  const out = empty([...a.shape.slice(0, -2), M, N], { dtype: a.dtype, device: a.device });
  native().matmulForward(out.handle, a.handle, b.handle, handleOrNull(bias), transA, transB, false);
  return record(out, 'matmul', [a, b, bias], (g) => {
    const da = gradOf(a), db = gradOf(b), dbias = gradOf(bias);
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
