// Module: named parameters and child modules, with timm's dotted names
// (`blocks.0.attn.qkv.weight`), the device they live on, a train/eval flag, state dicts
// (whole or partial) and dispose().
import { native } from '../native.js';
import { keep, tensor, type Device, type Shape, type Tensor } from '../tensor.js';

export type StateDict = Map<string, Tensor>;

export interface LoadStateOptions {
  /** true (default): every name must match both ways. false: load the names both have. */
  strict?: boolean;
}

/** What loadStateDict did: the names loaded, the model's names not given, the given names unused. */
export interface LoadStateReport {
  loaded: string[];
  missing: string[];
  unexpected: string[];
}

export class Module {
  /** Train mode (the default) turns on stochastic layers such as drop path. */
  training = true;
  /** Every parameter, buffer and child of this module lives here. */
  readonly device: Device;
  readonly #parameters = new Map<string, Tensor>();
  /** Fixed tensors the module owns (a sin-cos table): not trained, not in the state dict. */
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  constructor(device: Device = 'cpu') {
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`Module: 'device' must be "cpu" or "cuda", got ${JSON.stringify(device)}`);
    this.device = device;
  }

  /** Registers a trainable leaf holding `values` on this module's device; it outlives any enclosing tidy(). */
  protected parameter(name: string, values: Float32Array, shape: Shape): Tensor {
    this.#checkName(name);
    const t = keep(tensor(values, shape, { requiresGrad: true, device: this.device }));
    this.#parameters.set(name, t);
    return t;
  }

  /** Registers a fixed tensor holding `values` on this module's device. */
  protected buffer(name: string, values: Float32Array, shape: Shape): Tensor {
    this.#checkName(name);
    const t = keep(tensor(values, shape, { device: this.device }));
    this.#buffers.set(name, t);
    return t;
  }

  protected child<M extends Module>(name: string, module: M): M {
    this.#checkName(name);
    if (module.device !== this.device)
      throw new TypeError(`Module: child "${name}" (${module.constructor.name}) is on ${module.device} but its parent ${this.constructor.name} is on ${this.device}; build a model's parts on one device`);
    this.#children.set(name, module);
    return module;
  }

  /** Throws a TypeError naming both devices when input `name` is not on this module's device. */
  protected expectDevice(name: string, x: Tensor): void {
    if (x.device !== this.device)
      throw new TypeError(`${this.constructor.name}: '${name}' is on ${x.device} but the model is on ${this.device}; move it with copyOf(x, { device: '${this.device}' })`);
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
    // One push per entry: spreading a deep model's list (millions of names) as call arguments
    // overflows the stack ("Maximum call stack size exceeded" at depth 100,000).
    for (const [name, m] of this.#children) for (const entry of m.namedParameters(`${prefix}${name}.`)) out.push(entry);
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
   * Copies the values of `state` into the matching parameters. Strict (the default): the names
   * must match both ways. With { strict: false } (a pre-trained encoder into a fine-tuning
   * model): the names both have are loaded and the rest reported. Shapes and dtypes are
   * checked first either way, so a failed load changes nothing.
   */
  loadStateDict(state: StateDict | Record<string, Tensor>, options: LoadStateOptions = {}): LoadStateReport {
    const entries = state instanceof Map ? state : new Map(Object.entries(state));
    const strict = options.strict ?? true;
    const own = this.stateDict();
    const missing = [...own.keys()].filter((n) => !entries.has(n));
    const unexpected = [...entries.keys()].filter((n) => !own.has(n));
    if (strict && (missing.length || unexpected.length)) {
      const parts = [];
      if (missing.length) parts.push(`missing ${missing.map((n) => `"${n}"`).join(', ')}`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.map((n) => `"${n}"`).join(', ')}`);
      throw new RangeError(`loadStateDict: names do not match the model: ${parts.join('; ')}`);
    }
    const loaded = [...own.keys()].filter((n) => entries.has(n));
    for (const name of loaded) {
      const src = entries.get(name)!, dst = own.get(name)!;
      if (src.shape.join() !== dst.shape.join())
        throw new RangeError(`loadStateDict: "${name}" must have shape [${dst.shape.join(', ')}], got [${src.shape.join(', ')}]`);
      if (src.dtype === 'i32') throw new TypeError(`loadStateDict: "${name}" must be a float tensor, got i32`);
    }
    for (const name of loaded) native().copy(own.get(name)!.handle, entries.get(name)!.handle);
    return { loaded, missing, unexpected };
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
