// Tensor: a typed handle to native storage, plus the autograd graph.
//
// Memory is freed deterministically: dispose(), `using`, or tidy(fn), which disposes
// every tensor made inside fn except what fn returns or keep()s. A FinalizationRegistry
// (inside the addon) is only a safety net. A tensor used after dispose() throws.
//
// Autograd: an op whose inputs require gradients records a GradNode on its output: the
// inputs and a closure computing their gradients from the output's. backward(loss) walks
// the graph in reverse topological order, accumulating into each leaf's .grad.
import { native, type Device, type DType, type NativeTensor } from './native.js';

export type { Device, DType } from './native.js';
export type Shape = readonly number[];

export interface GradNode {
  /** The op's name, for error messages and debugging. */
  readonly op: string;
  readonly inputs: readonly (Tensor | null)[];
  /**
   * Gradients for each input (null where the input needs none), given the output's. Each
   * must be a new tensor (a view such as gradOutput.detach() is fine), never gradOutput.
   */
  backward(gradOutput: Tensor): (Tensor | null)[];
  /** Tensors kept only for the backward, disposed once it has run. */
  readonly saved: readonly Tensor[];
  /**
   * When the node was recorded: nodes recorded later have larger numbers. A tensor read by
   * several ops sums their gradients in this order, whatever order the backward meets them in.
   */
  readonly seq: number;
}

// ---- scopes (tidy) -------------------------------------------------------------------
const scopes: Set<Tensor>[] = [];

function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Keeps t alive past the enclosing tidy() scopes. Returns t. */
export function keep<X extends Tensor | null | undefined>(t: X): X {
  if (t) for (const scope of scopes) scope.delete(t);
  return t;
}

function collectTensors(value: unknown, into: Set<Tensor>, depth = 0): void {
  if (value instanceof Tensor) into.add(value);
  else if (depth < 4 && Array.isArray(value)) for (const v of value) collectTensors(v, into, depth + 1);
  else if (depth < 4 && value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collectTensors(v, into, depth + 1);
}

/**
 * Runs fn and disposes every tensor it created, except those in its result (a tensor, or
 * arrays/plain objects of them) and those passed to keep(). Returned tensors move to the
 * enclosing scope. When fn throws, everything it created (and did not keep) is disposed
 * before the error propagates: an out-of-memory step leaves nothing behind.
 */
export function tidy<R>(fn: () => R): R {
  if (typeof fn !== 'function') throw new TypeError(`tidy: 'fn' must be a function, got ${typeof fn}`);
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } catch (err) {
    for (const t of scope) t.dispose();
    throw err;
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new TypeError('tidy: fn must be synchronous (it returned a Promise)');
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

// ---- grad mode -----------------------------------------------------------------------
let gradEnabled = true;

/** Runs fn without recording gradients. */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn);
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with grad mode `enabled` (a recomputation records inside a backward, which runs without). */
function withGradMode<R>(enabled: boolean, fn: () => R): R {
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

// ---- Tensor --------------------------------------------------------------------------
function describeValue(v: unknown): string {
  if (v instanceof Tensor) return `a tensor ${v}`;
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v === null) return 'null';
  return `${typeof v} (${String(v)})`;
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly device: Device;
  /** Leaf tensors that require gradients collect them in .grad after backward(). */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** The op that produced this tensor when it is part of a recorded graph. */
  gradNode: GradNode | null = null;
  readonly #handle: NativeTensor;

  /** Wraps a native handle. Library code only: use the creation functions. */
  constructor(handle: NativeTensor) {
    this.#handle = handle;
    this.shape = Object.freeze(handle.shape.slice());
    this.dtype = handle.dtype;
    this.device = handle.device;
    track(this);
  }

  /** The native handle, for ops. Passing a disposed one lets the addon name the parameter. */
  get handle(): NativeTensor {
    return this.#handle;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return this.#handle.disposed;
  }

  dispose(): void {
    this.#handle.dispose();
    this.gradNode = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Frees this handle's storage but keeps its place in the graph: for an activation no backward
   * reads (mixed precision's GEMMs and attention keep bf16 copies of their inputs and read those),
   * so that its bytes go when its last reader has run rather than at the step's end. The bytes go
   * once every view sharing them is released or disposed. Reading it afterwards fails as reading
   * a disposed tensor does.
   */
  release(): void {
    this.#handle.dispose();
  }

  /** Copies the values to JS: Float32Array for f32 and bf16, Int32Array for i32. */
  toArray(): Float32Array | Int32Array {
    return this.#handle.toArray();
  }

  /** The only element of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item: tensor must hold exactly one element, got shape [${this.shape.join(', ')}]`);
    return this.toArray()[0]!;
  }

  /** A view with another shape (shares storage; -1 infers one dim). Differentiable. */
  reshape(shape: Shape): Tensor {
    const resolved = resolveShape(shape, this.shape, this.size, 'reshape');
    const view = new Tensor(this.#handle.reshape(resolved));
    return record(view, 'reshape', [this], (g) => [g.reshape(this.shape)]);
  }

  /** A view of the same storage outside the graph. */
  detach(): Tensor {
    return new Tensor(this.#handle.reshape(this.shape.slice()));
  }

  toString(): string {
    return `[${this.shape.join(', ')}] ${this.dtype} ${this.device}${this.disposed ? ' (disposed)' : ''}`;
  }
}

// The size check repeats the addon's on purpose: there an overflowing product reads
// "(-1 elements)"; here it is the number the caller asked for.
function resolveShape(shape: Shape, from: Shape, size: number, op: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: 'shape' must be an array of integers, got ${describeValue(shape)}`);
  // The shape as the caller wrote it, for messages only (built when one is thrown: reshape is hot).
  const text = () => `[${shape.map((d) => (typeof d === 'number' ? String(d) : JSON.stringify(d))).join(', ')}]`;
  // Every entry is checked before -1 is inferred: inferring first turned [-1, -1] into
  // "got -6", a number the caller never wrote.
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < -1)
      throw new (typeof d === 'number' && Number.isInteger(d) ? RangeError : TypeError)(`${op}: 'shape[${i}]' must be a non-negative integer (or -1, inferred), got ${describeValue(d)} in ${text()}`);
  });
  const infer = shape.indexOf(-1);
  if (infer !== shape.lastIndexOf(-1)) throw new RangeError(`${op}: 'shape' ${text()} may hold at most one -1 (the dim to infer), got ${shape.filter((d) => d === -1).length}`);
  const out = shape.slice();
  const known = out.reduce((a, b, i) => (i === infer ? a : a * b), 1);
  if (infer >= 0) {
    if (known === 0 || size % known !== 0)
      throw new RangeError(`${op}: cannot infer dim ${infer} of ${text()}: the other dims hold ${known} elements, which does not divide the tensor's ${size}`);
    out[infer] = size / known;
  } else if (known !== size) {
    throw new RangeError(`${op}: cannot reshape [${from.join(', ')}] (${size} elements) to ${text()} (${known} elements)`);
  }
  return out;
}

// ---- creation ------------------------------------------------------------------------
export interface CreateOptions {
  dtype?: DType;
  /** Default 'cpu'. There is no process-wide default: code that makes tensors for a model
   * passes the model's device. */
  device?: Device;
  requiresGrad?: boolean;
}

function checkShape(shape: Shape, op: string): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: 'shape' must be an array of non-negative integers, got ${describeValue(shape)}`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
      throw new TypeError(`${op}: 'shape[${i}]' must be a non-negative integer, got ${describeValue(d)}`);
  });
  return shape.slice();
}

function finish(t: Tensor, options: CreateOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

/** Uninitialised storage. */
export function empty(shape: Shape, options: CreateOptions = {}): Tensor {
  const s = checkShape(shape, 'empty');
  return finish(new Tensor(native().empty(s, options.dtype ?? 'f32', options.device ?? 'cpu')), options);
}

export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  if (typeof value !== 'number') throw new TypeError(`full: 'value' must be a number, got ${describeValue(value)}`);
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32') {
    const n = checkShape(shape, 'full').reduce((a, b) => a * b, 1);
    const data = dtype === 'i32' ? new Int32Array(n).fill(value) : new Float32Array(n).fill(value);
    return tensor(data, shape, options);
  }
  const t = empty(shape, options);
  native().fill(t.handle, value);
  return t;
}

export const zeros = (shape: Shape, options: CreateOptions = {}): Tensor => full(shape, 0, options);
export const ones = (shape: Shape, options: CreateOptions = {}): Tensor => full(shape, 1, options);

/** NaN-filled f32: outputs poisoned before an op, so unwritten elements show in tests. */
export const poisoned = (shape: Shape, options: CreateOptions = {}): Tensor => full(shape, Number.NaN, options);

/**
 * A tensor from JS values (Float32Array, Int32Array or a number array). The shape
 * defaults to 1-D. dtype defaults to i32 for an Int32Array, else f32.
 */
export function tensor(data: Float32Array | Int32Array | readonly number[], shape?: Shape, options: CreateOptions = {}): Tensor {
  const dtype = options.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  let array: Float32Array | Int32Array;
  if (data instanceof Float32Array || data instanceof Int32Array) array = data;
  else if (Array.isArray(data)) array = dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data);
  else throw new TypeError(`tensor: 'data' must be a Float32Array, Int32Array or number[], got ${describeValue(data)}`);
  if (dtype === 'i32' && !(array instanceof Int32Array)) array = Int32Array.from(array);
  if (dtype !== 'i32' && !(array instanceof Float32Array)) array = Float32Array.from(array);
  const s = checkShape(shape ?? [array.length], 'tensor');
  return finish(new Tensor(native().fromArray(array, s, dtype, options.device ?? 'cpu')), options);
}

export interface RandomOptions extends CreateOptions {
  /** Philox key; the same (seed, offset) gives the same numbers on every backend. */
  seed?: number;
  /** Philox stream offset: use distinct offsets for independent draws with one seed. */
  offset?: number;
}

function random(kind: 'normal' | 'uniform', shape: Shape, options: RandomOptions): Tensor {
  const t = empty(shape, { ...options, dtype: 'f32' });
  native().randomFill(t.handle, kind, options.seed ?? 0, options.offset ?? 0);
  return t;
}

/** Standard normal samples (Philox 4x32-10 + Box-Muller). */
export const randn = (shape: Shape, options: RandomOptions = {}): Tensor => random('normal', shape, options);
/** Uniform samples in [0, 1). */
export const rand = (shape: Shape, options: RandomOptions = {}): Tensor => random('uniform', shape, options);

/** A copy, optionally to another dtype (f32 <-> bf16) or device. */
export function copyOf(src: Tensor, options: { dtype?: DType; device?: Device } = {}): Tensor {
  const dtype = options.dtype ?? src.dtype, device = options.device ?? src.device;
  if (dtype !== src.dtype && device !== src.device) {
    // The addon converts on one device: convert where the data is, then move it.
    const converted = copyOf(src, { dtype });
    try {
      return copyOf(converted, { device });
    } finally {
      converted.dispose();
    }
  }
  const out = empty(src.shape, { dtype, device });
  native().copy(out.handle, src.handle);
  return out;
}

/** Live tensors and bytes per device, as the addon counts them, and the peak since the last reset. */
export function memory() {
  return native().memory();
}

/** Restarts memory().<device>.peakBytes from the bytes live now (on every device). */
export function resetPeakMemory(): void {
  native().resetPeakMemory();
}

/**
 * Caps the tensor bytes live on `device` at `bytes` (null: no cap): an allocation past it throws
 * the RangeError "out of <device> memory" before allocating, as a full GPU does, so a step that
 * would not fit a budget stops at once and tidy() frees what it made.
 */
export function setMemoryCap(device: Device, bytes: number | null): void {
  if (bytes !== null && !(Number.isSafeInteger(bytes) && bytes > 0)) throw new RangeError(`setMemoryCap: 'bytes' must be a positive integer or null, got ${String(bytes)}`);
  native().setMemoryCap(device, bytes ?? 0);
}

// ---- autograd ------------------------------------------------------------------------
/** GradNode.seq of the next node recorded. */
let nodeSeq = 0;

/**
 * Attaches a GradNode to an op's output when grad mode is on and an input requires
 * gradients; otherwise disposes `saved` at once. Returns out.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly (Tensor | null)[],
  backward: (gradOutput: Tensor) => (Tensor | null)[],
  saved: readonly Tensor[] = [],
): Tensor {
  if (gradEnabled && inputs.some((t) => t?.requiresGrad)) {
    out.requiresGrad = true;
    out.gradNode = { op, inputs, backward, saved, seq: nodeSeq++ };
  } else {
    for (const t of saved) t.dispose();
  }
  return out;
}

/**
 * Activation recomputation (torch.utils.checkpoint): fn(...inputs) runs without recording, so
 * nothing it makes outlives it but its output, and the output gets one GradNode that keeps only
 * `inputs`. The backward runs fn again on detached views of them, this time recording, and
 * back-propagates through that graph: the parameters fn reads get their .grad there, and the
 * inputs' gradients flow on. The gradients are exactly those without recomputation as long as
 * fn is deterministic (the kernels are, at a fixed thread count, and random draws come from
 * explicit Philox streams) and reads no tensor of the graph except its inputs and leaves: a
 * tensor of the graph captured from outside would be back-propagated into twice.
 * `trainable` says whether fn reads parameters that require gradients; when neither they nor
 * any input do, nothing is recorded. Without grad mode fn just runs.
 */
export function checkpoint(op: string, inputs: readonly Tensor[], trainable: boolean, fn: (...inputs: Tensor[]) => Tensor): Tensor {
  if (!gradEnabled) return fn(...inputs);
  const out = tidy(() => noGrad(() => fn(...inputs)));
  if (!trainable && !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradNode = {
    op, inputs, saved: [], seq: nodeSeq++,
    backward: (g) => tidy(() => withGradMode(true, () => {
      const views = inputs.map((t) => {
        const view = t.detach();
        view.requiresGrad = t.requiresGrad;
        return view;
      });
      const replay = fn(...views);
      if (replay.requiresGrad) backward(replay, g);
      // Each view's .grad is its own tensor, kept out of every scope: the caller disposes it.
      return views.map((v) => (v.requiresGrad ? v.grad : null));
    })),
  };
  return out;
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: graphs of deep models would overflow a recursive one.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (visited.has(t)) continue;
    visited.add(t);
    stack.push([t, true]);
    for (const input of t.gradNode?.inputs ?? []) if (input?.requiresGrad && !visited.has(input)) stack.push([input, false]);
  }
  return order.reverse();
}

/** The gradient one op (recorded as number `seq`) sends to one of its inputs. */
interface Contribution {
  seq: number;
  g: Tensor;
}

/**
 * The sum of a tensor's gradient contributions, in the order their ops were recorded, so that
 * the sum does not depend on the order the backward visits them in: a recomputed block
 * (checkpoint), one node in place of many, changes that order but not the gradients. They may be
 * views of one another (an identity backward returns a view of its input gradient), so they are
 * summed out of place, never in place.
 */
function total(contributions: Contribution[]): Tensor {
  contributions.sort((a, b) => a.seq - b.seq);
  let sum = contributions[0]!.g;
  for (const { g } of contributions.slice(1)) {
    const next = empty(sum.shape, { dtype: sum.dtype, device: sum.device });
    native().add(next.handle, sum.handle, g.handle);
    sum.dispose();
    g.dispose();
    sum = next;
  }
  return sum;
}

/**
 * Back-propagates from `root` (a one-element tensor, or any tensor with `gradient` given)
 * and adds the result to the .grad of every leaf that requires gradients. The graph is
 * consumed: its saved tensors are freed as it goes.
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  if (!(root instanceof Tensor)) throw new TypeError(`backward: 'root' must be a tensor, got ${describeValue(root)}`);
  if (!root.requiresGrad) throw new TypeError(`backward: 'root' ${root} does not require gradients (no input of its graph does)`);
  if (!gradient && root.size !== 1)
    throw new RangeError(`backward: 'root' must hold one element when no gradient is given, got shape [${root.shape.join(', ')}]`);
  if (gradient && gradient.shape.join() !== root.shape.join())
    throw new RangeError(`backward: 'gradient' must have the root's shape [${root.shape.join(', ')}], got [${gradient.shape.join(', ')}]`);
  noGrad(() => {
    const grads = new Map<Tensor, Contribution[]>();
    grads.set(root, [{ seq: 0, g: gradient ? copyOf(gradient) : full(root.shape, 1, { device: root.device }) }]);
    for (const t of topologicalOrder(root)) {
      const contributions = grads.get(t);
      if (!contributions) continue;
      grads.delete(t);
      const g = total(contributions);
      const node = t.gradNode;
      if (!node) {
        // A leaf: .grad is its own copy (g may be a view of other gradients), so later
        // accumulation, clipping or zeroing in place touches nothing else. It outlives tidy().
        if (t.grad) native().add(t.grad.handle, t.grad.handle, g.handle);
        else t.grad = keep(copyOf(g));
        g.dispose();
        continue;
      }
      const inputGrads = node.backward(g);
      g.dispose();
      node.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (!gi) return;
        if (input?.requiresGrad) {
          const pending = grads.get(input);
          if (pending) pending.push({ seq: node.seq, g: gi });
          else grads.set(input, [{ seq: node.seq, g: gi }]);
        } else gi.dispose();
      });
      for (const s of node.saved) s.dispose();
      t.gradNode = null;
    }
  });
}
