// adaLN pieces: modulate(x, shift, scale) = x·(1 + scale) + shift and the gated residual
// x + gate·y, both per sample: x, y (B, L, C); shift, scale, gate (B, C).
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyLike, expectTensors, gradBufferFor, handleOrNull } from './util.js';

export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  expectTensors('modulate', { x, shift, scale });
  const out = emptyLike(x);
  native().modulateForward(out.handle, x.handle, shift.handle, scale.handle);
  return record(out, 'modulate', [x, shift, scale], (g) => {
    const dx = gradBufferFor(x), dshift = gradBufferFor(shift), dscale = gradBufferFor(scale);
    native().modulateBackward(handleOrNull(dx), handleOrNull(dshift), handleOrNull(dscale), g.handle, x.handle, scale.handle);
    return [dx, dshift, dscale];
  });
}

export function gatedResidual(x: Tensor, y: Tensor, gate: Tensor): Tensor {
  expectTensors('gatedResidual', { x, y, gate });
  const out = emptyLike(x);
  native().gatedResidualForward(out.handle, x.handle, y.handle, gate.handle);
  return record(out, 'gatedResidual', [x, y, gate], (g) => {
    const dy = gradBufferFor(y), dgate = gradBufferFor(gate);
    native().gatedResidualBackward(handleOrNull(dy), handleOrNull(dgate), g.handle, y.handle, gate.handle);
    return [x.requiresGrad ? g.detach() : null, dy, dgate];
  });
}
