// add, sub, mul (b broadcast over a's leading dims, or a one-element b) and scale.
import { native } from '../native.js';
import { record, Tensor } from '../tensor.js';
import { sum } from './reduce.js';
import { emptyLike, expectTensor } from './util.js';

function broadcastCheck(op: string, a: Tensor, b: Tensor): void {
  if (b.size === 1) return;
  const suffix = a.shape.slice(a.shape.length - b.shape.length);
  if (b.shape.length > a.shape.length || suffix.join() !== b.shape.join())
    throw new RangeError(`${op}: 'b' of shape [${b.shape.join(', ')}] must match the trailing dims of 'a' [${a.shape.join(', ')}] or hold one element`);
}

/** The gradient of a broadcast operand: g summed over the dims b was repeated along. */
function reduceToShape(g: Tensor, shape: readonly number[]): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  if (n === g.size) return g.reshape(shape).detach();
  return sum(g.reshape([g.size / n, n]), 0).reshape(shape).detach();
}

export function add(a: Tensor, b: Tensor): Tensor {
  expectTensor('add', 'a', a);
  expectTensor('add', 'b', b);
  broadcastCheck('add', a, b);
  const out = emptyLike(a);
  native().add(out.handle, a.handle, b.handle);
  return record(out, 'add', [a, b], (g) => [
    a.requiresGrad ? g.detach() : null,
    b.requiresGrad ? reduceToShape(g, b.shape) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  expectTensor('mul', 'a', a);
  expectTensor('mul', 'b', b);
  broadcastCheck('mul', a, b);
  const out = emptyLike(a);
  native().mul(out.handle, a.handle, b.handle);
  return record(out, 'mul', [a, b], (g) => {
    let da: Tensor | null = null, db: Tensor | null = null;
    if (a.requiresGrad) {
      da = emptyLike(a);
      native().mul(da.handle, g.handle, b.handle);
    }
    if (b.requiresGrad) {
      const full = emptyLike(a);
      native().mul(full.handle, g.handle, a.handle);
      db = reduceToShape(full, b.shape);
      if (db.size !== full.size) full.dispose();
    }
    return [da, db];
  });
}

/** alpha · x */
export function scale(x: Tensor, alpha: number): Tensor {
  expectTensor('scale', 'x', x);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new TypeError(`scale: 'alpha' must be a finite number, got ${String(alpha)}`);
  const out = emptyLike(x);
  native().scale(out.handle, x.handle, alpha);
  return record(out, 'scale', [x], (g) => {
    const dx = emptyLike(x);
    native().scale(dx.handle, g.handle, alpha);
    return [dx];
  });
}

/** a − b (b broadcast like add). */
export function sub(a: Tensor, b: Tensor): Tensor {
  return add(a, scale(b, -1));
}
