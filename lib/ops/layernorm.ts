// LayerNorm over the last dim, affine (weight, bias) or not; mean and rstd are saved.
// eps defaults to 1e-6, the value every model in SPEC.md uses (PyTorch's default is 1e-5).
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyLike, emptyOn, expectTensor, gradBufferFor, handleOrNull } from './util.js';

export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-6): Tensor {
  expectTensor('layerNorm', 'x', x);
  if (weight !== null) expectTensor('layerNorm', 'weight', weight);
  if (bias !== null) expectTensor('layerNorm', 'bias', bias);
  const out = emptyLike(x);
  const stats = x.shape.slice(0, -1);
  const mean = emptyOn(x, stats), rstd = emptyOn(x, stats);
  native().layernormForward(out.handle, mean.handle, rstd.handle, x.handle, handleOrNull(weight), handleOrNull(bias), eps);
  return record(out, 'layerNorm', [x, weight, bias], (g) => {
    const dx = emptyLike(x), dweight = gradBufferFor(weight), dbias = gradBufferFor(bias);
    native().layernormBackward(dx.handle, handleOrNull(dweight), handleOrNull(dbias), g.handle, x.handle,
      handleOrNull(weight), mean.handle, rstd.handle);
    return [dx, dweight, dbias];
  }, [mean, rstd]);
}
