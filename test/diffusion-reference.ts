// Float64 references for Gaussian diffusion (SPEC §4): openai/guided-diffusion's schedule,
// losses and sampling step transcribed literally (gaussian_diffusion.py, losses.py), and the
// derivatives of the hybrid loss, written from those formulas. Shared by test/diffusion.test.ts
// (values, and the derivatives against finite differences of the loss) and
// test/nonfinite-cases.ts (where non-finite inputs must and must not reach the outputs); the
// references compute literally, so NaN stays NaN and a clamp that absorbs ±Inf absorbs it here too.
import { randomF32, rng } from './helpers.js';

export interface RefSchedule {
  betas: number[];
  ac: number[];
  acPrev: number[];
  postVar: number[];
  postLogVarClipped: number[];
  coef1: number[];
  coef2: number[];
}

/** gaussian_diffusion.py's arrays from its betas. */
export function refSchedule(betas: readonly number[]): RefSchedule {
  const ac: number[] = [];
  betas.forEach((b, i) => ac.push((i ? ac[i - 1]! : 1) * (1 - b)));
  const acPrev = [1, ...ac.slice(0, -1)];
  const postVar = betas.map((b, i) => (b * (1 - acPrev[i]!)) / (1 - ac[i]!));
  const postLogVarClipped = postVar.map((v, i) => Math.log(i === 0 ? postVar[1]! : v));
  const coef1 = betas.map((b, i) => (b * Math.sqrt(acPrev[i]!)) / (1 - ac[i]!));
  const coef2 = betas.map((b, i) => ((1 - acPrev[i]!) * Math.sqrt(1 - b)) / (1 - ac[i]!));
  return { betas: [...betas], ac, acPrev, postVar, postLogVarClipped, coef1, coef2 };
}

/** numpy.linspace(1e-4, 0.02, 1000). */
export const numpyBetas = Array.from({ length: 1000 }, (_, i) => (i === 999 ? 0.02 : i * ((0.02 - 0.0001) / 999) + 0.0001));

export const approxCdf = (x: number) => 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** losses.py's discretized_gaussian_log_likelihood for one element. */
export function refDiscretizedLogLikelihood(x: number, mean: number, logScale: number): number {
  const centered = x - mean, inv = Math.exp(-logScale);
  const cdfPlus = approxCdf(inv * (centered + 1 / 255)), cdfMin = approxCdf(inv * (centered - 1 / 255));
  const logCdfPlus = Math.log(Math.max(cdfPlus, 1e-12));
  const logOneMinusCdfMin = Math.log(Math.max(1 - cdfMin, 1e-12));
  const logDelta = Math.log(Math.max(cdfPlus - cdfMin, 1e-12));
  return x < -0.999 ? logCdfPlus : x > 0.999 ? logOneMinusCdfMin : logDelta;
}

/** losses.py's normal_kl for one element. */
export const refNormalKl = (mean1: number, logvar1: number, mean2: number, logvar2: number) =>
  0.5 * (-1 + logvar2 - logvar1 + Math.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * Math.exp(-logvar2));

/** The model's and the posterior's means and log variances for one element at t (ε̂ and v the model's outputs). */
function vbParts(s: RefSchedule, t: number, epsHat: number, v: number, x0: number, xt: number) {
  const predX0 = Math.sqrt(1 / s.ac[t]!) * xt - Math.sqrt(1 / s.ac[t]! - 1) * epsHat;
  const modelMean = s.coef1[t]! * predX0 + s.coef2[t]! * xt;
  const trueMean = s.coef1[t]! * x0 + s.coef2[t]! * xt;
  const minLog = s.postLogVarClipped[t]!, maxLog = Math.log(s.betas[t]!);
  const frac = (v + 1) / 2;
  return { modelMean, trueMean, minLog, maxLog, modelLogVar: frac * maxLog + (1 - frac) * minLog };
}

/** _vb_terms_bpd for one element (bits): KL for t > 0, the decoder NLL at t = 0. */
export function refVb(s: RefSchedule, t: number, epsHat: number, v: number, x0: number, xt: number): number {
  const { modelMean, trueMean, minLog, modelLogVar } = vbParts(s, t, epsHat, v, x0, xt);
  if (t === 0) return -refDiscretizedLogLikelihood(x0, modelMean, 0.5 * modelLogVar) / Math.LN2;
  return refNormalKl(trueMean, minLog, modelMean, modelLogVar) / Math.LN2;
}

// ---- derivatives of the vb term by v (ε̂ detached: it gets the MSE's gradient only) --------

/**
 * d approxCdf/dx = ½(1 − tanh²g)·√(2/π)(1 + 3·0.044715x²), g = √(2/π)(x + 0.044715x³): the
 * chain rule, literally (0·∞ = NaN at x = ±∞).
 */
export function approxCdfDerivative(x: number): number {
  const k = Math.sqrt(2 / Math.PI), th = Math.tanh(k * (x + 0.044715 * x ** 3));
  return 0.5 * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x);
}

/**
 * d refDiscretizedLogLikelihood/d logScale: d log p = dp/p with dΦ(u)/d logScale = −u·Φ'(u)
 * (u = e^{−logScale}(x − mean ± 1/255)) in the branch x selects; 0 where p < 1e-12 (the clamp
 * holds log p at log 1e-12 there); NaN where p is NaN.
 */
export function refDiscretizedLogLikelihoodDLogScale(x: number, mean: number, logScale: number): number {
  const centered = x - mean, inv = Math.exp(-logScale);
  const plusIn = inv * (centered + 1 / 255), minIn = inv * (centered - 1 / 255);
  const cdfPlus = approxCdf(plusIn), cdfMin = approxCdf(minIn);
  const dCdfPlus = -plusIn * approxCdfDerivative(plusIn), dCdfMin = -minIn * approxCdfDerivative(minIn);
  const dLog = (p: number, dp: number) => (p < 1e-12 ? 0 : dp / p);
  return x < -0.999 ? dLog(cdfPlus, dCdfPlus) : x > 0.999 ? dLog(1 - cdfMin, -dCdfMin) : dLog(cdfPlus - cdfMin, dCdfPlus - dCdfMin);
}

/** d refNormalKl/d logvar2 = ½(1 − e^{logvar1 − logvar2} − (mean1 − mean2)²·e^{−logvar2}). */
export const refNormalKlDLogvar2 = (mean1: number, logvar1: number, mean2: number, logvar2: number) =>
  0.5 * (1 - Math.exp(logvar1 - logvar2) - (mean1 - mean2) ** 2 * Math.exp(-logvar2));

/**
 * d refVb/dv (bits per unit v), ε̂ held fixed: the model's log variance L = f·log β_t + (1 − f)·
 * log β̃_t, f = (v + 1)/2, has dL/dv = (log β_t − log β̃_t)/2; t > 0: dKL/dL·dL/dv / ln 2;
 * t = 0: −d log p/d logScale·½·dL/dv / ln 2 (logScale = L/2).
 */
export function refVbDv(s: RefSchedule, t: number, epsHat: number, v: number, x0: number, xt: number): number {
  const { modelMean, trueMean, minLog, maxLog, modelLogVar } = vbParts(s, t, epsHat, v, x0, xt);
  const dLogVarDv = (maxLog - minLog) / 2;
  if (t === 0) return (-refDiscretizedLogLikelihoodDLogScale(x0, modelMean, 0.5 * modelLogVar) * 0.5 * dLogVarDv) / Math.LN2;
  return (refNormalKlDLogvar2(trueMean, minLog, modelMean, modelLogVar) * dLogVarDv) / Math.LN2;
}

/** A tiny loss case: x0, noise, ε̂, v (B, C, H, W) with sample b at ts[b]. */
export interface LossCase {
  shape: [number, number, number, number];
  ts: number[];
  x0: Float64Array;
  noise: Float64Array;
  epsHat: Float64Array;
  v: Float64Array;
}

export function lossCase(ts: number[], C: number, side: number, seed: number): LossCase {
  const B = ts.length, n = B * C * side * side;
  const r = rng(seed);
  // x0 on the 8-bit grid of [−1, 1], with both edges present (the NLL's three branches).
  const x0 = Float64Array.from({ length: n }, (_, i) => (i % 5 === 0 ? -1 : i % 5 === 1 ? 1 : Math.round(r() * 255) / 127.5 - 1));
  const noise = randomF32(n);
  const epsHat = Float64Array.from(Float32Array.from(noise.map((e) => e + 0.5 * (r() - 0.5))));
  const v = Float64Array.from(Float32Array.from({ length: n }, () => 1.8 * r() - 0.9));
  return { shape: [B, C, side, side], ts, x0, noise, epsHat, v };
}

/** The model output (B, 2C, H, W) = [ε̂; v] per sample. */
export function modelOutput(c: LossCase, epsHat = c.epsHat, v = c.v): Float64Array {
  const [B, C, H, W] = c.shape, per = C * H * W;
  const out = new Float64Array(2 * B * per);
  for (let b = 0; b < B; b++) {
    out.set(epsHat.subarray(b * per, (b + 1) * per), 2 * b * per);
    out.set(v.subarray(b * per, (b + 1) * per), 2 * b * per + per);
  }
  return out;
}

/** The ε̂ and v halves (B, C, H, W) of a model output (B, 2C, H, W): modelOutput's inverse. */
export function splitModelOutput(out: Float64Array, shape: readonly [number, number, number, number]): { epsHat: Float64Array; v: Float64Array } {
  const [B, C, H, W] = shape, per = C * H * W;
  const epsHat = new Float64Array(B * per), v = new Float64Array(B * per);
  for (let b = 0; b < B; b++) {
    epsHat.set(out.subarray(2 * b * per, 2 * b * per + per), b * per);
    v.set(out.subarray(2 * b * per + per, 2 * (b + 1) * per), b * per);
  }
  return { epsHat, v };
}

/** x_t in float64 from f32-rounded x0 and noise, rounded to f32 (the op's input), under schedule s. */
export function refXt(s: RefSchedule, c: LossCase): Float64Array {
  const per = c.x0.length / c.ts.length;
  return Float64Array.from(Float32Array.from(c.x0, (x, i) => {
    const t = c.ts[Math.floor(i / per)]!;
    return Math.sqrt(s.ac[t]!) * x + Math.sqrt(1 - s.ac[t]!) * c.noise[i]!;
  }));
}

/** MSE + mean vb under schedule s, with ε̂ in the MSE and `epsHatVb` in the vb term (ε̂ itself: not detached). */
export function refLoss(s: RefSchedule, c: LossCase, xt: Float64Array, epsHat: Float64Array, v: Float64Array, epsHatVb: Float64Array) {
  const per = c.x0.length / c.ts.length, n = c.x0.length;
  let mse = 0, vb = 0;
  const vbs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    mse += (epsHat[i]! - c.noise[i]!) ** 2;
    vbs[i] = refVb(s, c.ts[Math.floor(i / per)]!, epsHatVb[i]!, v[i]!, c.x0[i]!, xt[i]!);
    vb += vbs[i]!;
  }
  return { mse: mse / n, vb: vb / n, vbs };
}

/**
 * The gradient of dloss·(refLoss's MSE + vb) with ε̂ detached in the vb term, per element of
 * (B, C, ...): dε̂ = dloss·2(ε̂ − ε)/n (the MSE's only), dv = dloss·refVbDv/n (the vb term's only).
 */
export function refLossGradient(s: RefSchedule, c: LossCase, xt: Float64Array, dloss: number): { dEpsHat: Float64Array; dv: Float64Array } {
  const per = c.x0.length / c.ts.length, n = c.x0.length;
  return {
    dEpsHat: Float64Array.from(c.epsHat, (e, i) => (dloss * 2 * (e - c.noise[i]!)) / n),
    dv: Float64Array.from(c.v, (v, i) => (dloss * refVbDv(s, c.ts[Math.floor(i / per)]!, c.epsHat[i]!, v, c.x0[i]!, xt[i]!)) / n),
  };
}

/** guided-diffusion's p_sample (and ddim_sample, η = 0) for one element, float64. */
export function refStep(s: RefSchedule, i: number, eps: number, v: number | null, x: number, z: number | null, clip: boolean, ddim: boolean): number {
  let pred = Math.sqrt(1 / s.ac[i]!) * x - Math.sqrt(1 / s.ac[i]! - 1) * eps;
  if (clip) pred = Math.max(-1, Math.min(1, pred));
  if (ddim) {
    const e = (Math.sqrt(1 / s.ac[i]!) * x - pred) / Math.sqrt(1 / s.ac[i]! - 1);
    return pred * Math.sqrt(s.acPrev[i]!) + Math.sqrt(1 - s.acPrev[i]!) * e;
  }
  const mean = s.coef1[i]! * pred + s.coef2[i]! * x;
  if (z === null) return mean;
  const frac = (v! + 1) / 2;
  const logVar = v === null ? Math.log(i ? s.betas[i]! : s.postVar[1]!) : frac * Math.log(s.betas[i]!) + (1 - frac) * s.postLogVarClipped[i]!;
  return mean + Math.exp(0.5 * logVar) * z;
}
