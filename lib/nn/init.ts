// Deterministic initialisation: every parameter is drawn from the library's Philox stream
// with the model's seed and a fresh offset per draw, so the same seed and construction order
// give bit-identical weights on every backend. The generator also names the device the
// model's parameters are made on, so a model is built where it will run.
import { noGrad, randn, tidy, type Device, type Shape } from '../tensor.js';

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

  #standardNormal(n: number): Float32Array {
    const offset = this.#offset++;
    return tidy(() => noGrad(() => randn([n], { seed: this.seed, offset }).toArray() as Float32Array));
  }

  /** N(0, std²) values for a tensor of `shape`. */
  normal(shape: Shape, std: number): Float32Array {
    const values = this.#standardNormal(size(shape));
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
    const values = this.#standardNormal(size(shape));
    const outside = (v: number) => v < lo || v > hi;
    let redo = [...values.keys()].filter((i) => outside(values[i]!));
    while (redo.length) {
      const redraw = this.#standardNormal(redo.length);
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
