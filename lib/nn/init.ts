// Deterministic initialisation: every parameter is drawn from the library's Philox stream
// with the model's seed and a fresh offset per draw, so the same seed and construction order
// give bit-identical weights on every backend.
import { noGrad, randn, tidy, type Shape } from '../tensor.js';

const size = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);

export class InitRng {
  readonly seed: number;
  /** The next Philox offset; each draw takes one, so draws are independent streams. */
  #offset = 0;

  constructor(seed: number) {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0)
      throw new TypeError(`InitRng: 'seed' must be a non-negative integer, got ${String(seed)}`);
    this.seed = seed;
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
   * N(0, std²) truncated to ±2·std: values outside are redrawn (from further offsets) until
   * every one lies inside, which is exact rejection sampling of the truncated normal.
   */
  truncNormal(shape: Shape, std: number): Float32Array {
    const values = this.#standardNormal(size(shape));
    let outside = [...values.keys()].filter((i) => Math.abs(values[i]!) > 2);
    while (outside.length) {
      const redraw = this.#standardNormal(outside.length);
      outside = outside.filter((i, k) => {
        values[i] = redraw[k]!;
        return Math.abs(redraw[k]!) > 2;
      });
    }
    for (let i = 0; i < values.length; i++) values[i]! *= std;
    return values;
  }
}

/** A seed, or a generator shared by the modules of one model. */
export type Init = InitRng | number;

export const initRng = (init: Init): InitRng => (init instanceof InitRng ? init : new InitRng(init));
