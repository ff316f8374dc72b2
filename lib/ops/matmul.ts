// matmul and linear: out = op(a) · op(b) (+ bias), one native GEMM forward and one backward.
// f32 operands on every device; bf16 operands (fp32 accumulation), where the output and every
// gradient keep their tensor's dtype (bf16 out, bias bf16). Mixed precision is `compute: 'bf16'`
// on f32 tensors: the GEMM runs on bf16 copies and everything around it stays f32.
import { native } from '../native.js';
import { copyOf, empty, record, tidy, Tensor } from '../tensor.js';
import { expectTensor, handleOrNull } from './util.js';

/** A gradient buffer of t's dtype and device when t takes part in the graph, else null. */
const gradOf = (t: Tensor | null): Tensor | null => (t?.requiresGrad ? empty(t.shape, { dtype: t.dtype, device: t.device }) : null);

/** The GEMM's operand type: 'f32', or 'bf16' (mixed precision; see matmul). */
export type GemmCompute = 'f32' | 'bf16';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  /**
   * 'bf16' on f32 a and b is torch.autocast's bf16 GEMM: a, b and, in the backward, the output's
   * gradient are rounded to bf16, the GEMM accumulates in fp32 and writes f32, so the output,
   * the bias and every gradient stay f32 (the f32 weights are the master copy AdamW updates).
   * The bf16 copies are what the backward reads. Default 'f32'.
   */
  compute?: GemmCompute;
}

/**
 * a (..., M, K) [or (..., K, M) with transA] times b (K, N) [or (N, K) with transB], where b is
 * 2-D (shared by every leading index of a) or batched like a. Returns (..., M, N).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  expectTensor('matmul', 'a', a);
  expectTensor('matmul', 'b', b);
  const { transA = false, transB = false, bias = null, compute = 'f32' } = options;
  if (bias !== null) expectTensor('matmul', 'bias', bias);
  if (compute !== 'f32' && compute !== 'bf16') throw new TypeError(`matmul: 'compute' must be "f32" or "bf16", got ${JSON.stringify(compute)}`);
  if (a.shape.length < 2) throw new RangeError(`matmul: 'a' must have at least 2 dims (..., M, K), got shape [${a.shape.join(', ')}]`);
  if (b.shape.length < 2) throw new RangeError(`matmul: 'b' must have at least 2 dims (K, N), got shape [${b.shape.join(', ')}]`);
  const M = transA ? a.shape.at(-1)! : a.shape.at(-2)!;
  const N = transB ? b.shape.at(-2)! : b.shape.at(-1)!;
  if (compute === 'bf16' && a.dtype === 'f32') return mixedMatmul(a, b, [...a.shape.slice(0, -2), M, N], transA, transB, bias);
  const out = empty([...a.shape.slice(0, -2), M, N], { dtype: a.dtype, device: a.device });
  native().matmulForward(out.handle, a.handle, b.handle, handleOrNull(bias), transA, transB, false);
  return record(out, 'matmul', [a, b, bias], (g) => {
    const da = gradOf(a), db = gradOf(b), dbias = gradOf(bias);
    native().matmulBackward(handleOrNull(da), handleOrNull(db), handleOrNull(dbias), g.handle, a.handle, b.handle, transA, transB);
    return [da, db, dbias];
  });
}

/** f32 in and out, a bf16 GEMM between: keeps the bf16 copies of a and b for the backward. */
function mixedMatmul(a: Tensor, b: Tensor, shape: number[], transA: boolean, transB: boolean, bias: Tensor | null): Tensor {
  if (b.dtype !== 'f32') throw new TypeError(`matmul: 'b' must be f32 like 'a' under compute "bf16", got ${b.dtype}`);
  // Inside tidy: on an error (out of memory, say) nothing made here outlives the call.
  const { out, saved } = tidy(() => {
    const a16 = copyOf(a, { dtype: 'bf16' }), b16 = copyOf(b, { dtype: 'bf16' });
    const out = empty(shape, { dtype: 'f32', device: a.device });
    native().matmulForward(out.handle, a16.handle, b16.handle, handleOrNull(bias), transA, transB, false);
    return { out, saved: [a16, b16] as const };
  });
  const [a16, b16] = saved;
  return record(out, 'matmul', [a, b, bias], (g) => tidy(() => {
    const da16 = a.requiresGrad ? empty(a.shape, { dtype: 'bf16', device: a.device }) : null;
    const db = gradOf(b), dbias = gradOf(bias);
    native().matmulBackward(handleOrNull(da16), handleOrNull(db), handleOrNull(dbias), copyOf(g, { dtype: 'bf16' }).handle, a16.handle, b16.handle, transA, transB);
    return [da16 && copyOf(da16, { dtype: 'f32' }), db, dbias];
  }), [a16, b16]);
}

/** x (..., in) · weightᵀ + bias, with weight (out, in) as in timm/PyTorch; `compute` as matmul's. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: { compute?: GemmCompute } = {}): Tensor {
  expectTensor('linear', 'x', x);
  expectTensor('linear', 'weight', weight);
  const { compute } = options;
  if (x.shape.length === 1) return matmul(x.reshape([1, x.shape[0]!]), weight, { transB: true, bias, compute }).reshape([weight.shape[0]!]);
  return matmul(x, weight, { transB: true, bias, compute });
}
