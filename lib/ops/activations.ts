// GELU (exact erf, or the tanh approximation DiT uses) and SiLU.
import { native, type GeluApproximate } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyLike, expectTensor } from './util.js';

export function gelu(x: Tensor, approximate: GeluApproximate = 'none'): Tensor {
  expectTensor('gelu', 'x', x);
  const out = emptyLike(x);
  native().geluForward(out.handle, x.handle, approximate);
  return record(out, 'gelu', [x], (g) => {
    const dx = emptyLike(x);
    native().geluBackward(dx.handle, g.handle, x.handle, approximate);
    return [dx];
  });
}

export function silu(x: Tensor): Tensor {
  expectTensor('silu', 'x', x);
  const out = emptyLike(x);
  native().siluForward(out.handle, x.handle);
  return record(out, 'silu', [x], (g) => {
    const dx = emptyLike(x);
    native().siluBackward(dx.handle, g.handle, x.handle);
    return [dx];
  });
}
