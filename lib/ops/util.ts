// Helpers shared by the differentiable ops.
import type { NativeTensor } from '../native.js';
import { empty, Tensor, type Shape } from '../tensor.js';

/** Uninitialised f32 tensor on x's device. */
export function emptyOn(x: Tensor, shape: Shape): Tensor {
  return empty(shape, { dtype: 'f32', device: x.device });
}

export const emptyLike = (x: Tensor): Tensor => emptyOn(x, x.shape);

/** The native handle, or null. */
export const handleOrNull = (t: Tensor | null | undefined): NativeTensor | null => (t ? t.handle : null);

/** A gradient buffer for t when t takes part in the graph, else null. */
export const gradBufferFor = (t: Tensor | null | undefined): Tensor | null => (t?.requiresGrad ? emptyLike(t) : null);

export function expectTensor(op: string, name: string, value: unknown): asserts value is Tensor {
  if (!(value instanceof Tensor)) {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new TypeError(`${op}: '${name}' must be a Tensor, got ${got}`);
  }
}

/** expectTensor for each named argument, in order: expectTensors('modulate', { x, shift, scale }). */
export function expectTensors(op: string, args: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(args)) expectTensor(op, name, value);
}
