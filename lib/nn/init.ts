// Deterministic initialisation: every parameter is drawn from the library's Philox stream
// with the model's seed and a fresh offset per draw, so the same seed and construction order
// give bit-identical weights on every backend. The generator also names the device the
// model's parameters are made on, so a model is built where it will run.
import { noGrad, rand, randn, tensor, tidy, type Device, type Shape, type Tensor } from '../tensor.js';
import type { Module } from './module.js';

const size = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);

export class InitRng {
  readonly seed: number;
  /** Where the parameters drawn from this generator live. */
  readonly device: Device;
  /** The next Philox offset; each draw takes one, so draws are independent streams. */
  #offset = 0;

  constructor(seed: number, device: Device = 'cpu') {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0)
      throw new TypeError(`InitRng: 'seed' must be a non-negative integer, got ${String(seed)}`);
    if (device !== 'cpu' && device !== 'cuda') throw new TypeError(`InitRng: 'device' must be "cpu" or "cuda", got ${JSON.stringify(device)}`);
    this.seed = seed;
    this.device = device;
  }

  /** One draw of n standard normal (randn) or U[0, 1) (rand) values at the next offset. */
  #draw(fill: typeof randn, n: number): Float32Array {
    const offset = this.#offset++;
    return tidy(() => noGrad(() => fill([n], { seed: this.seed, offset }).toArray() as Float32Array));
  }

  /**
   * torch's xavier_uniform_: U(−a, a) with a = √(6 / (fan_in + fan_out)), for a weight
   * (fan_out, ...) whose trailing dims multiply to fan_in (a (d, C, p, p) patch embedding is
   * its flattened (d, C·p²) view, as MAE and DiT initialise it). One draw.
   */
  xavierUniform(shape: Shape): Float32Array {
    if (shape.length < 2) throw new RangeError(`xavierUniform: 'shape' must have at least 2 dims (fan_out, fan_in...), got [${shape.join(', ')}]`);
    const fanOut = shape[0]!, fanIn = size(shape) / fanOut;
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    const values = this.#draw(rand, size(shape));
    for (let i = 0; i < values.length; i++) values[i] = (2 * values[i]! - 1) * bound;
    return values;
  }

  /** N(0, std²) values for a tensor of `shape`. */
  normal(shape: Shape, std: number): Float32Array {
    const values = this.#draw(randn, size(shape));
    for (let i = 0; i < values.length; i++) values[i]! *= std;
    return values;
  }

  /**
   * timm's trunc_normal_(std, a = −2, b = 2): N(0, std²) with values outside the absolute
   * bounds [a, b] redrawn (from further offsets) until all lie inside, which is exact
   * rejection sampling. The bounds are absolute, not multiples of std, as in timm: at
   * std 0.02 they are 100σ away and nothing is ever redrawn, so the weights are N(0, 0.02²).
   */
  truncNormal(shape: Shape, std: number, a = -2, b = 2): Float32Array {
    if (!(a < b)) throw new RangeError(`truncNormal: 'a' (${a}) must be less than 'b' (${b})`);
    if (!(std > 0)) throw new RangeError(`truncNormal: 'std' must be > 0, got ${std}`);
    const lo = a / std, hi = b / std; // bounds in units of the standard normal
    const values = this.#draw(randn, size(shape));
    const outside = (v: number) => v < lo || v > hi;
    let redo = [...values.keys()].filter((i) => outside(values[i]!));
    while (redo.length) {
      const redraw = this.#draw(randn, redo.length);
      redo = redo.filter((i, k) => {
        values[i] = redraw[k]!;
        return outside(redraw[k]!);
      });
    }
    for (let i = 0; i < values.length; i++) values[i]! *= std;
    return values;
  }
}

/** A seed (parameters on the CPU), or a generator shared by the modules of one model. */
export type Init = InitRng | number;

export const initRng = (init: Init): InitRng => (init instanceof InitRng ? init : new InitRng(init));

/** The device a module built from `init` lives on. */
export const initDevice = (init: Init): Device => (init instanceof InitRng ? init.device : 'cpu');

/**
 * Redraws, in parameter order, every parameter of `module` for which `draw` returns values
 * (the rest keep theirs): the initialize_weights pass MAE and DiT run after construction.
 */
export function redrawParameters(module: Module, draw: (name: string, param: Tensor) => Float32Array | null): void {
  tidy(() => {
    const fresh = new Map<string, Tensor>();
    for (const [name, param] of module.namedParameters()) {
      const values = draw(name, param);
      if (values) fresh.set(name, tensor(values, param.shape, { device: module.device }));
    }
    module.loadStateDict(fresh, { strict: false });
  });
}

/** A Linear's (or the patch embedding's) weight: named `weight`, with ≥ 2 dims (LayerNorm's has 1). */
export const isLinearWeight = (name: string, param: Tensor): boolean => param.shape.length >= 2 && (name === 'weight' || name.endsWith('.weight'));
