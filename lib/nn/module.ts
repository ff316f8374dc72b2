// Module: named parameters and child modules, with timm's dotted names
// (`blocks.0.attn.qkv.weight`), a train/eval flag, state dicts and dispose().
import { native } from '../native.js';
import { keep, tensor, type Shape, type Tensor } from '../tensor.js';

export type StateDict = Map<string, Tensor>;

export class Module {
  /** Train mode (the default) turns on stochastic layers such as drop path. */
  training = true;
  readonly #parameters = new Map<string, Tensor>();
  /** Fixed tensors the module owns (a sin-cos table): not trained, not in the state dict. */
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable leaf holding `values`; it outlives any enclosing tidy(). */
  protected parameter(name: string, values: Float32Array, shape: Shape): Tensor {
    this.#checkName(name);
    const t = keep(tensor(values, shape, { requiresGrad: true }));
    this.#parameters.set(name, t);
    return t;
  }

  protected buffer(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    this.#buffers.set(name, keep(t));
    return t;
  }

  protected child<M extends Module>(name: string, module: M): M {
    this.#checkName(name);
    this.#children.set(name, module);
    return module;
  }

  #checkName(name: string): void {
    if (!name || name.includes('.')) throw new TypeError(`Module: a name must be non-empty without dots, got "${name}"`);
    if (this.#parameters.has(name) || this.#buffers.has(name) || this.#children.has(name))
      throw new TypeError(`Module: "${name}" is already registered`);
  }

  /** [dotted name, parameter] in registration order, depth first. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.#parameters) out.push([prefix + name, t]);
    for (const [name, m] of this.#children) out.push(...m.namedParameters(`${prefix}${name}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable values. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  train(mode = true): this {
    this.training = mode;
    for (const m of this.#children.values()) m.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** name → the live parameter tensors (not copies; copy them to snapshot). */
  stateDict(): StateDict {
    return new Map(this.namedParameters());
  }

  /**
   * Copies every value of `state` into the matching parameter. Checks everything first, so
   * a failed load changes nothing: missing or unexpected names and wrong shapes throw.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>): void {
    const entries = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((n) => !entries.has(n));
    const unexpected = [...entries.keys()].filter((n) => !own.has(n));
    if (missing.length || unexpected.length) {
      const parts = [];
      if (missing.length) parts.push(`missing ${missing.map((n) => `"${n}"`).join(', ')}`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.map((n) => `"${n}"`).join(', ')}`);
      throw new RangeError(`loadStateDict: names do not match the model: ${parts.join('; ')}`);
    }
    for (const [name, dst] of own) {
      const src = entries.get(name)!;
      if (src.shape.join() !== dst.shape.join())
        throw new RangeError(`loadStateDict: "${name}" must have shape [${dst.shape.join(', ')}], got [${src.shape.join(', ')}]`);
      if (src.dtype === 'i32') throw new TypeError(`loadStateDict: "${name}" must be a float tensor, got i32`);
    }
    for (const [name, dst] of own) native().copy(dst.handle, entries.get(name)!.handle);
  }

  /** Frees every parameter, gradient and buffer of this module and its children. */
  dispose(): void {
    for (const t of this.#parameters.values()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
    for (const t of this.#buffers.values()) t.dispose();
    for (const m of this.#children.values()) m.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
