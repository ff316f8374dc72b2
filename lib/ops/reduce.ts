// sum and mean over one axis, or over everything.
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { emptyLike, emptyOn, expectTensor } from './util.js';

function reduce(op: string, x: Tensor, axis: number, mean: boolean): Tensor {
  expectTensor(op, 'x', x);
  const rank = x.shape.length;
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank)
    throw new RangeError(`${op}: 'axis' must be an integer in [${-rank}, ${rank}) for shape [${x.shape.join(', ')}], got ${axis}`);
  const a = axis < 0 ? axis + rank : axis;
  const out = emptyOn(x, x.shape.filter((_, i) => i !== a));
  native().sumForward(out.handle, x.handle, a, mean);
  return record(out, op, [x], (g) => {
    const dx = emptyLike(x);
    native().sumBackward(dx.handle, g.handle, a, mean);
    return [dx];
  });
}

/** Sum over `axis`, or over all elements (shape []) when axis is omitted. */
export function sum(x: Tensor, axis?: number): Tensor {
  return axis === undefined ? reduce('sum', x.reshape([x.size]), 0, false) : reduce('sum', x, axis, false);
}

/** Mean over `axis`, or over all elements (shape []) when axis is omitted. */
export function mean(x: Tensor, axis?: number): Tensor {
  return axis === undefined ? reduce('mean', x.reshape([x.size]), 0, true) : reduce('mean', x, axis, true);
}
