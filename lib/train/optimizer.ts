// AdamW over a model's named parameters, in parameter groups: no weight decay on 1-D
// parameters (biases, LayerNorm) nor on cls_token / pos_embed (SPEC §1), and an optional
// per-parameter lr scale (MAE fine-tuning's layer-wise lr decay, SPEC §3). The update itself
// is the native adamwStep, in place on param, m and v.
import { native } from '../native.js';
import { adamwStep, gradNorm } from '../ops/optim.js';
import { copyOf, keep, Tensor, zeros } from '../tensor.js';
import { Module } from '../nn/module.js';

export interface AdamWOptions {
  weightDecay?: number;                 // 0.05; SPEC §1 recipe 0.3
  betas?: readonly [number, number];    // (0.9, 0.999); SPEC §1 recipe (0.9, 0.95)
  eps?: number;                         // 1e-8
  /** lr multiplier per parameter name, e.g. layer decay; 1 for every name by default. */
  lrScale?: (name: string) => number;
  /** Last name segments exempt from decay besides every 1-D parameter. */
  noDecayNames?: readonly string[];     // ['cls_token', 'pos_embed']
}

export interface ParamGroup {
  readonly names: readonly string[];
  readonly weightDecay: number;
  readonly lrScale: number;
}

/** What a checkpoint needs to resume: the shared step and m, v by parameter name. */
export interface OptimizerState {
  step: number;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
}

/** SPEC §1: every 1-D parameter, plus the named tokens/tables, takes no weight decay. */
export function excludedFromDecay(name: string, param: Tensor, noDecayNames: readonly string[] = ['cls_token', 'pos_embed']): boolean {
  return param.shape.length <= 1 || noDecayNames.includes(name.slice(name.lastIndexOf('.') + 1));
}

interface Slot {
  name: string;
  param: Tensor;
  m: Tensor;
  v: Tensor;
  weightDecay: number;
  lrScale: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly groups: readonly ParamGroup[];
  /** Steps taken so far; the next step() uses stepCount + 1 for the bias corrections. */
  stepCount = 0;
  readonly #slots: Slot[];

  constructor(params: Module | readonly [string, Tensor][], options: AdamWOptions = {}) {
    const named = params instanceof Module ? params.namedParameters() : params;
    if (!Array.isArray(named)) throw new TypeError(`AdamW: 'params' must be a Module or [name, tensor][] pairs, got ${typeof params}`);
    const weightDecay = options.weightDecay ?? 0.05;
    const [beta1, beta2] = options.betas ?? [0.9, 0.999];
    const eps = options.eps ?? 1e-8;
    const number = (name: string, v: number, lo: number, hi: number) => {
      if (typeof v !== 'number' || !(v >= lo && v < hi)) throw new RangeError(`AdamW: '${name}' must be in [${lo}, ${hi}), got ${String(v)}`);
    };
    number('weightDecay', weightDecay, 0, Infinity);
    number('betas[0]', beta1, 0, 1);
    number('betas[1]', beta2, 0, 1);
    number('eps', eps, 0, Infinity);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    const seen = new Set<string>();
    this.#slots = named.map(([name, param]) => {
      if (!(param instanceof Tensor)) throw new TypeError(`AdamW: parameter "${name}" must be a Tensor, got ${typeof param}`);
      if (seen.has(name)) throw new TypeError(`AdamW: parameter name "${name}" appears twice`);
      seen.add(name);
      const lrScale = options.lrScale ? options.lrScale(name) : 1;
      number(`lrScale("${name}")`, lrScale, 0, Infinity);
      const decay = excludedFromDecay(name, param, options.noDecayNames) ? 0 : weightDecay;
      // m, v outlive any tidy() around construction: they live as long as the optimizer.
      const m = keep(zeros(param.shape, { device: param.device }));
      const v = keep(zeros(param.shape, { device: param.device }));
      return { name, param, m, v, weightDecay: decay, lrScale };
    });
    const groups = new Map<string, { names: string[]; weightDecay: number; lrScale: number }>();
    for (const s of this.#slots) {
      const key = `${s.weightDecay}/${s.lrScale}`;
      if (!groups.has(key)) groups.set(key, { names: [], weightDecay: s.weightDecay, lrScale: s.lrScale });
      groups.get(key)!.names.push(s.name);
    }
    this.groups = [...groups.values()];
  }

  /** The parameter names in order. */
  get names(): string[] {
    return this.#slots.map((s) => s.name);
  }

  /** One AdamW step at learning rate `lr` (× each group's scale) for every param with a grad. */
  step(lr: number): void {
    if (typeof lr !== 'number' || !(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`AdamW.step: 'lr' must be a finite number ≥ 0, got ${String(lr)}`);
    const step = ++this.stepCount;
    for (const s of this.#slots) {
      if (!s.param.grad) continue;
      adamwStep(s.param, s.param.grad, s.m, s.v, { lr: lr * s.lrScale, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: s.weightDecay, step });
    }
  }

  /** Frees every gradient (the next backward() allocates fresh ones). */
  zeroGrad(): void {
    for (const s of this.#slots) {
      s.param.grad?.dispose();
      s.param.grad = null;
    }
  }

  /**
   * The global L2 norm of all gradients; when it exceeds maxNorm, every gradient is scaled
   * in place by maxNorm/(norm + 1e-6) (torch's clip_grad_norm_). Returns the norm before.
   */
  clipGradNorm(maxNorm: number): number {
    if (typeof maxNorm !== 'number' || !(maxNorm > 0)) throw new RangeError(`AdamW.clipGradNorm: 'maxNorm' must be a number > 0, got ${String(maxNorm)}`);
    const grads = this.#slots.flatMap((s) => (s.param.grad ? [s.param.grad] : []));
    const norm = gradNorm(grads);
    if (norm > maxNorm) {
      const factor = maxNorm / (norm + 1e-6);
      for (const g of grads) native().scale(g.handle, g.handle, factor);
    }
    return norm;
  }

  /** The live state (not copies): step and m, v by parameter name. */
  state(): OptimizerState {
    return {
      step: this.stepCount,
      m: new Map(this.#slots.map((s) => [s.name, s.m])),
      v: new Map(this.#slots.map((s) => [s.name, s.v])),
    };
  }

  /** Throws (naming the entry) unless `state` fits this optimizer exactly; changes nothing. */
  checkState(state: OptimizerState): void {
    if (typeof state?.step !== 'number' || !Number.isInteger(state.step) || state.step < 0)
      throw new TypeError(`AdamW.loadState: 'step' must be a non-negative integer, got ${String(state?.step)}`);
    for (const key of ['m', 'v'] as const) {
      const map = state[key];
      if (!(map instanceof Map)) throw new TypeError(`AdamW.loadState: '${key}' must be a Map of name → tensor`);
      const missing = this.#slots.filter((s) => !map.has(s.name)).map((s) => `"${s.name}"`);
      const own = new Set(this.names);
      const unexpected = [...map.keys()].filter((n) => !own.has(n)).map((n) => `"${n}"`);
      if (missing.length || unexpected.length)
        throw new RangeError(`AdamW.loadState: '${key}' names do not match the parameters:${missing.length ? ` missing ${missing.join(', ')}` : ''}${unexpected.length ? ` unexpected ${unexpected.join(', ')}` : ''}`);
      for (const s of this.#slots) {
        const t = map.get(s.name)!;
        if (!(t instanceof Tensor) || t.shape.join() !== s.param.shape.join() || t.dtype === 'i32')
          throw new RangeError(`AdamW.loadState: '${key}' of "${s.name}" must be a float tensor of shape [${s.param.shape.join(', ')}], got ${String(t)}`);
      }
    }
  }

  /** Copies step, m and v in; checks everything first so a failed load changes nothing. */
  loadState(state: OptimizerState): void {
    this.checkState(state);
    for (const s of this.#slots) {
      native().copy(s.m.handle, state.m.get(s.name)!.handle);
      native().copy(s.v.handle, state.v.get(s.name)!.handle);
    }
    this.stepCount = state.step;
  }

  /** A snapshot of the state (copies that the caller disposes). */
  stateCopy(): OptimizerState {
    return {
      step: this.stepCount,
      m: new Map(this.#slots.map((s) => [s.name, copyOf(s.m)])),
      v: new Map(this.#slots.map((s) => [s.name, copyOf(s.v)])),
    };
  }

  /** Frees m and v (not the parameters or their grads). */
  dispose(): void {
    for (const s of this.#slots) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}
