// The Gaussian diffusion process of DiT (SPEC §4; openai/guided-diffusion's
// gaussian_diffusion.py and respace.py), written once in float64 on the host and shared by
// training and every sampler: β, ᾱ, the posterior q(x_{t−1} | x_t, x₀), and respacing. The
// device sees only f32 coefficients taken from these arrays (lib/ops/diffusion.ts).
export interface DiffusionOptions {
  /**
   * Diffusion steps T (default 1000) of guided-diffusion's "linear" schedule: β = linspace(s·1e-4,
   * s·0.02, T) with s = 1000/T, so T = 1000 is linspace(1e-4, 0.02) (DiT's).
   */
  timesteps?: number;
  /** Explicit β_t (each in (0, 1)) instead of the linear schedule; timesteps is then their count. */
  betas?: ArrayLike<number>;
}

/** Posterior q(x_{t−1} | x_t, x₀) = N(meanX0·x₀ + meanXt·x_t, variance) at one t. */
export interface Posterior {
  meanX0: number;
  meanXt: number;
  /** β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t); 0 at t = 0. */
  variance: number;
  /** log β̃_t, with t = 0 clipped to log β̃₁ (the variance there is 0). */
  logVarianceClipped: number;
}

/** numpy.linspace(start, stop, n) in float64, element for element (the last is `stop` exactly). */
export function linspace(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = (stop - start) / (n - 1);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  if (n > 1) out[n - 1] = stop;
  else if (n === 1) out[0] = start;
  return out;
}

/** guided-diffusion's linear β schedule for T steps: linspace(s·1e-4, s·0.02, T), s = 1000/T. */
export function linearBetas(timesteps: number): Float64Array {
  checkSteps('linearBetas', 'timesteps', timesteps, Number.MAX_SAFE_INTEGER);
  const scale = 1000 / timesteps;
  return linspace(scale * 0.0001, scale * 0.02, timesteps);
}

/** Python's round(): to the nearest integer, ties to even. */
function roundHalfEven(x: number): number {
  const floor = Math.floor(x), frac = x - floor;
  if (frac !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * The K of T timesteps that respacing keeps: round(k·(T−1)/(K−1)) for k = 0..K−1 (K = 250 of
 * 1000: 0, 4, 8, …, 995, 999). Computed as guided-diffusion's space_timesteps does, adding the
 * stride k times in float64 and rounding half to even, so exact ties (K = 21: 499.5) fall as
 * they fall there.
 */
export function respacedTimesteps(timesteps: number, steps: number): number[] {
  checkSteps('respacedTimesteps', 'timesteps', timesteps, Number.MAX_SAFE_INTEGER);
  checkSteps('respacedTimesteps', 'steps', steps, timesteps);
  const stride = steps <= 1 ? 1 : (timesteps - 1) / (steps - 1);
  const kept: number[] = [];
  let position = 0;
  for (let k = 0; k < steps; k++) {
    kept.push(roundHalfEven(position));
    position += stride;
  }
  return kept;
}

function checkSteps(op: string, name: string, value: unknown, max: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max)
    throw new RangeError(`${op}: '${name}' must be an integer in [1, ${max}], got ${typeof value === 'number' ? value : JSON.stringify(value)}`);
}

/** Respacing's provenance: the original process's step count and the original t of each index. */
interface Respacing {
  original: number;
  timestepMap: Int32Array;
}

export class GaussianDiffusion {
  /** Steps T of this process (K after respace(K)); indices t = 0..T−1. */
  readonly timesteps: number;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** ᾱ_{t−1}, with ᾱ_{−1} = 1. */
  readonly alphasCumprodPrev: Float64Array;
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;
  /** √(1/ᾱ_t) and √(1/ᾱ_t − 1): x̂₀ from x_t and ε̂. */
  readonly sqrtRecipAlphasCumprod: Float64Array;
  readonly sqrtRecipm1AlphasCumprod: Float64Array;
  /** β̃_t and log β̃_t clipped at t = 0 to log β̃₁ (see Posterior). */
  readonly posteriorVariance: Float64Array;
  readonly posteriorLogVarianceClipped: Float64Array;
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  /** The model's timestep at each index: t itself, or after respacing the original t kept. */
  readonly timestepMap: Int32Array;
  /** The original process's T when this one is respaced, else null. */
  readonly respacedFrom: number | null;

  /** `respacing` is respace()'s own: a process made by hand has none. */
  constructor(options: DiffusionOptions = {}, respacing?: Respacing) {
    if (options === null || typeof options !== 'object') throw new TypeError(`GaussianDiffusion: 'options' must be an object, got ${options === null ? 'null' : typeof options}`);
    let betas: Float64Array;
    if (options.betas !== undefined) {
      betas = Float64Array.from(options.betas);
      if (betas.length === 0) throw new RangeError("GaussianDiffusion: 'betas' must hold at least one value");
      betas.forEach((b, i) => {
        if (!(b > 0 && b < 1)) throw new RangeError(`GaussianDiffusion: 'betas[${i}]' must be in (0, 1), got ${b}`);
      });
      if (options.timesteps !== undefined && options.timesteps !== betas.length)
        throw new RangeError(`GaussianDiffusion: 'timesteps' (${options.timesteps}) must equal the number of 'betas' (${betas.length})`);
    } else {
      const T = options.timesteps ?? 1000;
      checkSteps('GaussianDiffusion', 'timesteps', T, Number.MAX_SAFE_INTEGER);
      betas = linearBetas(T);
    }
    const T = betas.length;
    this.timesteps = T;
    this.betas = betas;
    const map = (f: (i: number) => number) => Float64Array.from({ length: T }, (_, i) => f(i));
    const ac = new Float64Array(T);
    let product = 1;
    for (let i = 0; i < T; i++) ac[i] = product *= 1 - betas[i]!;  // numpy.cumprod's order
    this.alphasCumprod = ac;
    this.alphasCumprodPrev = map((i) => (i === 0 ? 1 : ac[i - 1]!));
    const prev = this.alphasCumprodPrev;
    this.sqrtAlphasCumprod = map((i) => Math.sqrt(ac[i]!));
    this.sqrtOneMinusAlphasCumprod = map((i) => Math.sqrt(1 - ac[i]!));
    this.sqrtRecipAlphasCumprod = map((i) => Math.sqrt(1 / ac[i]!));
    this.sqrtRecipm1AlphasCumprod = map((i) => Math.sqrt(1 / ac[i]! - 1));
    this.posteriorVariance = map((i) => (betas[i]! * (1 - prev[i]!)) / (1 - ac[i]!));
    // β̃₀ = 0: its log is clipped to β̃₁'s. A one-step process has no β̃₁; its only step adds no
    // noise when sampling, and log β₀ stands in.
    const pv = this.posteriorVariance;
    this.posteriorLogVarianceClipped = map((i) => Math.log(i > 0 ? pv[i]! : T > 1 ? pv[1]! : betas[0]!));
    this.posteriorMeanCoef1 = map((i) => (betas[i]! * Math.sqrt(prev[i]!)) / (1 - ac[i]!));
    this.posteriorMeanCoef2 = map((i) => ((1 - prev[i]!) * Math.sqrt(1 - betas[i]!)) / (1 - ac[i]!));
    this.timestepMap = respacing?.timestepMap ?? Int32Array.from({ length: T }, (_, i) => i);
    this.respacedFrom = respacing?.original ?? null;
    Object.freeze(this);
  }

  /** Throws unless t is an index of this process (an integer in [0, T)). `name` names it. */
  checkTimestep(t: unknown, name = 't', op = 'GaussianDiffusion'): asserts t is number {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= this.timesteps)
      throw new RangeError(`${op}: '${name}' must be an integer timestep in [0, ${this.timesteps}), got ${typeof t === 'number' ? t : JSON.stringify(t)}`);
  }

  /** q(x_{t−1} | x_t, x₀) at index t. */
  posterior(t: number): Posterior {
    this.checkTimestep(t, 't', 'posterior');
    return {
      meanX0: this.posteriorMeanCoef1[t]!, meanXt: this.posteriorMeanCoef2[t]!,
      variance: this.posteriorVariance[t]!, logVarianceClipped: this.posteriorLogVarianceClipped[t]!,
    };
  }

  /**
   * The learned-range log variance at index t for the model's v in [−1, 1]: f·log β_t + (1 − f)·
   * log β̃_t (clipped), f = (v + 1)/2, in float64 (the device ops compute the same in f32).
   */
  learnedLogVariance(t: number, v: number): number {
    this.checkTimestep(t, 't', 'learnedLogVariance');
    const f = (v + 1) / 2;
    return f * Math.log(this.betas[t]!) + (1 - f) * this.posteriorLogVarianceClipped[t]!;
  }

  /**
   * The process of `steps` of these timesteps (respacedTimesteps), with β'_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}
   * recomputed, so that ᾱ is kept at every kept step and β', β̃' (the learned range's ends) are
   * those of the shorter chain; the model is still called with the original t (timestepMap).
   */
  respace(steps: number): GaussianDiffusion {
    if (this.respacedFrom !== null)
      throw new TypeError(`respace: this process is already respaced (${this.timesteps} of ${this.respacedFrom} steps); respace the original`);
    checkSteps('respace', 'steps', steps, this.timesteps);
    const kept = respacedTimesteps(this.timesteps, steps);
    const betas: number[] = [];
    let last = 1;
    for (const t of kept) {
      betas.push(1 - this.alphasCumprod[t]! / last);
      last = this.alphasCumprod[t]!;
    }
    return new GaussianDiffusion({ betas }, { original: this.timesteps, timestepMap: Int32Array.from(kept) });
  }
}
