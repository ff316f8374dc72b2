// An exponential moving average of a model's weights: shadow = decay·shadow + (1 − decay)·param
// after each optimizer step; evaluate or save the shadow instead of the raw weights.
import { native } from '../native.js';
import { copyOf, empty, keep, type Tensor } from '../tensor.js';
import type { Module, StateDict } from '../nn/module.js';

export class Ema {
  readonly decay: number;
  readonly #shadow = new Map<string, Tensor>();

  /** Starts from a copy of the module's current weights. */
  constructor(module: Module, decay = 0.9999) {
    if (typeof decay !== 'number' || !(decay >= 0 && decay <= 1)) throw new RangeError(`Ema: 'decay' must be in [0, 1], got ${String(decay)}`);
    this.decay = decay;
    for (const [name, p] of module.namedParameters()) this.#shadow.set(name, keep(copyOf(p)));
  }

  /** shadow ← decay·shadow + (1 − decay)·param for every parameter of `module`. */
  update(module: Module): void {
    const params = module.namedParameters();
    for (const [name, p] of params) {
      const s = this.#shadow.get(name);
      if (!s || s.shape.join() !== p.shape.join()) throw new RangeError(`Ema.update: parameter "${name}" [${p.shape.join(', ')}] does not match the averaged model`);
    }
    if (params.length !== this.#shadow.size) throw new RangeError(`Ema.update: the module has ${params.length} parameters, the average ${this.#shadow.size}`);
    for (const [name, p] of params) {
      const s = this.#shadow.get(name)!;
      const scaled = empty(p.shape, { device: p.device });
      native().scale(scaled.handle, p.handle, 1 - this.decay);
      native().scale(s.handle, s.handle, this.decay);
      native().add(s.handle, s.handle, scaled.handle);
      scaled.dispose();
    }
  }

  /** The averaged weights by name (live tensors: copy to keep them past dispose()). */
  stateDict(): StateDict {
    return new Map(this.#shadow);
  }

  /** Replaces the averaged weights (a checkpoint's); every name and shape is checked first. */
  loadStateDict(state: StateDict): void {
    for (const [name, s] of this.#shadow) {
      const t = state.get(name);
      if (!t || t.shape.join() !== s.shape.join()) throw new RangeError(`Ema.loadStateDict: "${name}" must be given with shape [${s.shape.join(', ')}], got ${t ? `[${t.shape.join(', ')}]` : 'nothing'}`);
    }
    if (state.size !== this.#shadow.size) throw new RangeError(`Ema.loadStateDict: expected ${this.#shadow.size} tensors, got ${state.size}`);
    for (const [name, s] of this.#shadow) native().copy(s.handle, state.get(name)!.handle);
  }

  /** Copies the averaged weights into `module` (all checked first; see loadStateDict). */
  copyTo(module: Module): void {
    module.loadStateDict(this.#shadow);
  }

  dispose(): void {
    for (const t of this.#shadow.values()) t.dispose();
    this.#shadow.clear();
  }
}
