// Gaussian diffusion (SPEC §4): the float64 schedule, q_sample, the posterior, the fused
// hybrid loss and its gradient, respacing, and the samplers, each against a float64 reference
// (guided-diffusion's formulas, transcribed literally in diffusion-reference.ts, whose loss
// derivatives are checked here against finite differences), plus CPU-vs-GPU parity of the
// device ops where a GPU is present.
import test from 'ava';
import {
  backward, checkModelOutput, diffusionLoss, diffusionStep, diffusionVbTerms, drawTimesteps, GaussianDiffusion, linearBetas,
  lossCoefficients, memory, noGrad, perSampleAxpby, qPosteriorMean, qSample, randn, respacedTimesteps, sampleDiffusion,
  selectBackend, stepScalars, tensor, tidy, trainingLosses, type Denoiser, type Device, type Tensor,
} from '../lib/index.js';
import { substream } from '../lib/nn/forward.js';
import { assertClose, finiteDifferences, randomF32 } from './helpers.js';
import {
  lossCase, modelOutput, numpyBetas, refLoss, refLossGradient, refSchedule, refStep, refXt, type LossCase,
} from './diffusion-reference.js';

const base = refSchedule(numpyBetas);
const diffusion = new GaussianDiffusion();

function lossTensors(c: LossCase, device: Device = 'cpu') {
  const [B, C, H, W] = c.shape;
  return {
    out: tensor(Float32Array.from(modelOutput(c)), [B, 2 * C, H, W], { device, requiresGrad: true }),
    x0: tensor(Float32Array.from(c.x0), c.shape, { device }),
    xt: tensor(Float32Array.from(refXt(base, c)), c.shape, { device }),
    noise: tensor(Float32Array.from(c.noise), c.shape, { device }),
    coefs: tensor(lossCoefficients(diffusion, c.ts), [B, 7], { device }),
  };
}

// ---- schedule ----------------------------------------------------------------------------
test('schedule: betas are numpy linspace(1e-4, 0.02, 1000); ᾱ, β̃, its clipped log and the mean coefficients match float64', (t) => {
  t.is(diffusion.timesteps, 1000);
  t.deepEqual(Array.from(diffusion.betas), numpyBetas, 'betas bit for bit');
  t.deepEqual(Array.from(linearBetas(1000)), numpyBetas);
  // Pinned from numpy (float64): np.linspace(1e-4, 0.02, 1000) and np.cumprod(1 - betas).
  t.is(diffusion.betas[1], 0.00011991991991991993);
  t.is(diffusion.betas[500], 0.010059959959959959);
  assertClose(t, [diffusion.alphasCumprod[999]!, diffusion.alphasCumprod[499]!], [4.035829765375676e-5, 0.07858724288177824], { atol: 0, rtol: 1e-13, label: 'ᾱ pinned' });
  // ᾱ_t = exp(Σ log(1 − β)): another summation of the same product.
  const viaLogs = numpyBetas.map((_, i) => Math.exp(numpyBetas.slice(0, i + 1).reduce((s, b) => s + Math.log1p(-b), 0)));
  assertClose(t, diffusion.alphasCumprod, viaLogs, { atol: 0, rtol: 1e-11, label: 'ᾱ' });
  assertClose(t, diffusion.posteriorVariance, base.postVar, { atol: 0, rtol: 1e-14, label: 'β̃' });
  t.is(diffusion.posteriorVariance[0], 0, 'β̃₀ = 0');
  t.is(diffusion.posteriorLogVarianceClipped[0], Math.log(diffusion.posteriorVariance[1]!), 'log β̃ clipped at t = 0 to log β̃₁');
  assertClose(t, diffusion.posteriorLogVarianceClipped.slice(1), base.postVar.slice(1).map(Math.log), { atol: 0, rtol: 1e-14, label: 'log β̃' });
  assertClose(t, diffusion.posteriorMeanCoef1, base.coef1, { atol: 0, rtol: 1e-14, label: 'coef1' });
  assertClose(t, diffusion.posteriorMeanCoef2, base.coef2, { atol: 0, rtol: 1e-14, label: 'coef2' });
  assertClose(t, diffusion.sqrtRecipm1AlphasCumprod, base.ac.map((a) => Math.sqrt(1 / a - 1)), { atol: 0, rtol: 1e-14, label: '√(1/ᾱ − 1)' });
  // At t = 0 the posterior mean is x₀: β₀/(1 − ᾱ₀) = 1 up to the rounding of 1 − (1 − β₀), as in numpy.
  t.true(Math.abs(diffusion.posterior(0).meanX0 - 1) < 1e-12, 'at t = 0 the posterior mean is x₀');
  t.is(diffusion.posterior(0).meanXt, 0);
  // Learned range: v = 1 is log β_t, v = −1 log β̃_t, linear between.
  t.is(diffusion.learnedLogVariance(10, 1), Math.log(diffusion.betas[10]!));
  t.is(diffusion.learnedLogVariance(10, -1), diffusion.posteriorLogVarianceClipped[10]);
  t.true(Math.abs(diffusion.learnedLogVariance(10, 0) - 0.5 * (Math.log(diffusion.betas[10]!) + diffusion.posteriorLogVarianceClipped[10]!)) < 1e-15);
});

test('posterior: mean and variance equal the Bayes closed form of q(x_{t−1} | x_t, x₀)', (t) => {
  // The product of q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t) and q(x_{t−1} | x₀) = N(√ᾱ_{t−1} x₀, 1 − ᾱ_{t−1}):
  // precision α_t/β_t + 1/(1 − ᾱ_{t−1}), mean β̃ (√α_t/β_t · x_t + √ᾱ_{t−1}/(1 − ᾱ_{t−1}) · x₀).
  for (const step of [1, 2, 37, 500, 999]) {
    const b = numpyBetas[step]!, a = 1 - b, prev = base.acPrev[step]!;
    const variance = 1 / (a / b + 1 / (1 - prev));
    const p = diffusion.posterior(step);
    assertClose(t, [p.variance, p.meanXt, p.meanX0], [variance, variance * Math.sqrt(a) / b, variance * Math.sqrt(prev) / (1 - prev)],
      { atol: 0, rtol: 1e-10, label: `t = ${step}` });
  }
  // On the device, per sample: qPosteriorMean against the float64 mean.
  const ts = [0, 1, 500, 999], per = 6;
  const x0 = randomF32(ts.length * per), xt = randomF32(ts.length * per);
  const got = tidy(() => qPosteriorMean(diffusion, tensor(Float32Array.from(x0), [4, 1, 2, 3]), tensor(Float32Array.from(xt), [4, 1, 2, 3]), ts).toArray());
  const expected = x0.map((x, i) => {
    const s = ts[Math.floor(i / per)]!;
    return base.coef1[s]! * x + base.coef2[s]! * xt[i]!;
  });
  assertClose(t, got, expected, { atol: 1e-6, rtol: 1e-6, label: 'posterior mean' });
  t.deepEqual(Array.from(got.slice(0, per)), Array.from(Float32Array.from(x0.slice(0, per))), 'the t = 0 posterior mean is x₀ exactly');
});

// ---- q_sample ----------------------------------------------------------------------------
test('qSample: x_t = √ᾱ x₀ + √(1 − ᾱ) ε per sample, and over many draws mean √ᾱ x₀, variance 1 − ᾱ', (t) => {
  const ts = [0, 10, 250, 999];
  const B = ts.length, per = 64 * 64;
  const x0Values = [0.9, -0.4, 0.7, 1];  // one value per sample
  const x0 = tensor(Float32Array.from({ length: B * per }, (_, i) => x0Values[Math.floor(i / per)]!), [B, 1, 64, 64]);
  const draws = 8;
  const sums = new Float64Array(B), squares = new Float64Array(B);
  for (let d = 0; d < draws; d++) {
    tidy(() => {
      const noise = randn([B, 1, 64, 64], { seed: 5, offset: d });
      const xt = qSample(diffusion, x0, ts, noise).toArray(), e = noise.toArray();
      if (d === 0) {
        const expected = Float64Array.from(xt, (_, i) => {
          const s = ts[Math.floor(i / per)]!;
          return Math.sqrt(base.ac[s]!) * x0Values[Math.floor(i / per)]! + Math.sqrt(1 - base.ac[s]!) * e[i]!;
        });
        assertClose(t, xt, expected, { atol: 2e-6, rtol: 2e-6, label: 'x_t elementwise' });
      }
      xt.forEach((x, i) => {
        sums[Math.floor(i / per)] += x;
        squares[Math.floor(i / per)] += x * x;
      });
    });
  }
  const n = draws * per;
  ts.forEach((s, b) => {
    const mean = sums[b]! / n, variance = squares[b]! / n - mean * mean;
    const wantMean = Math.sqrt(base.ac[s]!) * x0Values[b]!, wantVar = 1 - base.ac[s]!;
    // 5 standard errors: of the mean √(var/n); of the variance var·√(2/n).
    t.true(Math.abs(mean - wantMean) <= 5 * Math.sqrt(wantVar / n) + 1e-7, `t = ${s}: mean ${mean}, expected ${wantMean}`);
    t.true(Math.abs(variance - wantVar) <= 5 * wantVar * Math.sqrt(2 / n) + 1e-9, `t = ${s}: variance ${variance}, expected ${wantVar}`);
  });
  x0.dispose();
});

test('perSampleAxpby: a[b]·x + c[b]·y and a[b]·x, with gradients to x and y', (t) => {
  const x = randomF32(12), y = randomF32(12), a = [0.5, -2, 3], c = [1.5, 0.25, -1];
  const got = tidy(() => {
    const xs = tensor(Float32Array.from(x), [3, 4], { requiresGrad: true }), ys = tensor(Float32Array.from(y), [3, 4], { requiresGrad: true });
    const out = perSampleAxpby(xs, tensor(a), ys, tensor(c));
    backward(out, tensor(new Float32Array(12).fill(1), [3, 4]));
    return { out: out.toArray(), dx: xs.grad!.toArray(), dy: ys.grad!.toArray(), only: perSampleAxpby(xs, tensor(a)).toArray() };
  });
  assertClose(t, got.out, x.map((v, i) => a[Math.floor(i / 4)]! * v + c[Math.floor(i / 4)]! * y[i]!), { label: 'out' });
  assertClose(t, got.only, x.map((v, i) => a[Math.floor(i / 4)]! * v), { label: 'a·x' });
  assertClose(t, got.dx, x.map((_, i) => a[Math.floor(i / 4)]!), { label: 'dx' });
  assertClose(t, got.dy, x.map((_, i) => c[Math.floor(i / 4)]!), { label: 'dy' });
  t.throws(() => tidy(() => perSampleAxpby(tensor(new Float32Array(12), [3, 4]), tensor([1, 2]))), { message: /perSampleAxpby: 'a' must have shape \[3\]/ });
});

// ---- the loss ----------------------------------------------------------------------------
test('normal KL and discretised NLL per element (diffusionVbTerms) against float64, t > 0 and t = 0 in one batch', (t) => {
  for (const ts of [[0, 37], [999, 0, 500]]) {
    const c = lossCase(ts, 1, 2, 17 + ts.length);
    const xt = refXt(base, c);
    const got = tidy(() => {
      const { out, x0, xt: xtT, coefs } = lossTensors(c);
      return diffusionVbTerms(out, x0, xtT, coefs).toArray();
    });
    const { vbs } = refLoss(base, c, xt, c.epsHat, c.v, c.epsHat);
    // f32 against float64: x̂₀ = √(1/ᾱ)·x_t − √(1/ᾱ − 1)·ε̂ cancels at large t (√(1/ᾱ) ≈ 157 at t = 999).
    assertClose(t, got, vbs, { atol: 1e-4, rtol: 2e-4, label: `vb terms, t = [${ts.join(', ')}]` });
  }
  // The KL is 0 where the model matches the posterior: ε̂ = ε (so x̂₀ = x₀) and v = −1 (σ² = β̃).
  const c = lossCase([37, 600], 1, 2, 3);
  c.epsHat = c.noise;
  c.v = new Float64Array(c.v.length).fill(-1);
  const zero = tidy(() => {
    const { out, x0, xt, coefs } = lossTensors(c);
    return diffusionVbTerms(out, x0, xt, coefs).toArray();
  });
  assertClose(t, zero, new Float64Array(zero.length), { atol: 2e-4, rtol: 0, label: 'KL of the posterior with itself' });
});

test('the NLL at t = 0 against float64 over the edges, the bins and far tails (the 1e-12 clamp)', (t) => {
  // One sample at t = 0: x0 sweeps the three branches; ε̂ moves the mean from close to 40σ away.
  const xs = [-1, -0.999, -0.5, 0, 0.2, 0.999, 1, 1];
  const offsets = [0, 1, -2, 3, 40, -40, 0.5, -60];  // ε̂ − ε, in units: x̂₀ moves by −√(1/ᾱ₀ − 1)·offset
  const n = xs.length;
  const c: LossCase = { shape: [1, 1, 1, n], ts: [0], x0: Float64Array.from(xs), noise: randomF32(n), epsHat: new Float64Array(n), v: Float64Array.from({ length: n }, (_, i) => (i % 3) - 1) };
  c.epsHat = Float64Array.from(Float32Array.from(c.noise.map((e, i) => e + offsets[i]!)));
  const xt = refXt(base, c);
  const got = tidy(() => {
    const { out, x0, xt: xtT, coefs } = lossTensors(c);
    return diffusionVbTerms(out, x0, xtT, coefs).toArray();
  });
  const { vbs } = refLoss(base, c, xt, c.epsHat, c.v, c.epsHat);
  t.is(vbs.filter((v) => Math.abs(v - -Math.log(1e-12) / Math.LN2) < 1e-9).length > 0, true, 'the reference reaches the clamp');
  assertClose(t, got, vbs, { atol: 1e-3, rtol: 1e-4, label: 'NLL bits' });
});

test('diffusionLoss: MSE and the VLB term against float64 (B = 2, C = 1, 2×2, t = 0 and t > 0)', (t) => {
  const c = lossCase([0, 37], 1, 2, 41);
  const xt = refXt(base, c);
  const ref = refLoss(base, c, xt, c.epsHat, c.v, c.epsHat);
  const got = tidy(() => {
    const { out, x0, xt: xtT, noise, coefs } = lossTensors(c);
    const { loss, terms } = noGrad(() => diffusionLoss(out, x0, xtT, noise, coefs));
    return { loss: loss.item(), terms: terms.toArray(), shape: loss.shape };
  });
  t.deepEqual(got.shape, [], 'the loss is a scalar');
  assertClose(t, got.terms, [ref.mse, ref.vb], { atol: 1e-6, rtol: 1e-5, label: '[mse, vb]' });
  assertClose(t, [got.loss], [ref.mse + ref.vb], { atol: 1e-6, rtol: 1e-5, label: 'loss' });
});

test('diffusionLoss gradient by finite differences: ε̂ gets the MSE\'s only (no VLB gradient), v the VLB\'s', (t) => {
  const c = lossCase([0, 37], 1, 2, 43);
  const xt = refXt(base, c);
  const n = c.x0.length;
  const got = tidy(() => {
    const { out, x0, xt: xtT, noise, coefs } = lossTensors(c);
    const { loss } = diffusionLoss(out, x0, xtT, noise, coefs);
    backward(loss);
    return out.grad!.toArray();
  });
  const gotEps = new Float64Array(n), gotV = new Float64Array(n);
  const per = n / 2;
  for (let b = 0; b < 2; b++)
    for (let j = 0; j < per; j++) {
      gotEps[b * per + j] = got[2 * b * per + j]!;
      gotV[b * per + j] = got[2 * b * per + per + j]!;
    }
  // Central differences of the float64 loss with ε̂ detached in the vb term (frozen at c.epsHat).
  const h = 1e-5;
  const fd = (which: 'eps' | 'v', detached: boolean) => Float64Array.from({ length: n }, (_, i) => {
    const at = (delta: number) => {
      const e = Float64Array.from(c.epsHat), v = Float64Array.from(c.v);
      (which === 'eps' ? e : v)[i] += delta;
      const r = refLoss(base, c, xt, e, v, detached ? c.epsHat : e);
      return r.mse + r.vb;
    };
    return (at(h) - at(-h)) / (2 * h);
  });
  const fdEps = fd('eps', true), fdV = fd('v', true);
  assertClose(t, gotEps, fdEps, { atol: 1e-5, rtol: 1e-3, label: 'dε̂ (finite differences)' });
  assertClose(t, gotEps, c.epsHat.map((e, i) => (2 * (e - c.noise[i]!)) / n), { atol: 1e-7, rtol: 1e-5, label: 'dε̂ = 2(ε̂ − ε)/n exactly' });
  const scale = Math.max(...fdV.map(Math.abs));
  assertClose(t, gotV, fdV, { atol: 1e-4 * scale, rtol: 1e-3, label: 'dv (finite differences)' });
  // Had ε̂ not been detached, its gradient would differ by the VLB's: far from what we got.
  const attached = fd('eps', false);
  const vbShare = attached.map((g, i) => Math.abs(g - fdEps[i]!));
  t.true(Math.max(...vbShare) > 100 * 1e-5, `the VLB would move ε̂ by up to ${Math.max(...vbShare)}: detaching is visible`);
});

test('the loss\'s derivative references (refLossGradient, used by the non-finite sweep) against central differences of the float64 loss', (t) => {
  // t = 0 (the NLL), 1, 500 and 999 (the KL); lossCase puts x0 = −1 at every fifth element and
  // +1 after it, so the t = 0 sample holds all three NLL branches.
  const c = lossCase([0, 1, 500, 999], 1, 3, 53);
  const xt = refXt(base, c), n = c.x0.length, per = n / c.ts.length, dloss = 0.7;
  const branch = (x: number) => (x < -0.999 ? 'below -0.999' : x > 0.999 ? 'above 0.999' : 'a bin');
  t.deepEqual(new Set(Array.from(c.x0.subarray(0, per), branch)).size, 3, 'the t = 0 sample covers the three NLL branches');
  // ε̂ is detached in the vb term: it stays c.epsHat there while the MSE sees the probed copy.
  const loss = ([epsHat, v]: Float64Array[]) => {
    const r = refLoss(base, c, xt, epsHat!, v!, c.epsHat);
    return dloss * (r.mse + r.vb);
  };
  const [fdEps] = finiteDifferences(loss, [Float64Array.from(c.epsHat), Float64Array.from(c.v)], 1e-5);
  // The loss is a sum of per-element terms, each with its own v: ∂loss/∂v_i is the difference
  // of element i's term alone, with h moving the model's log variance by 1e-4 (h = 1e-4 /
  // |dL/dv|): at large t, log β_t and log β̃_t nearly meet and a fixed h in v would move the
  // term by less than the whole sum's rounding.
  const fdV = Float64Array.from(c.v, (_, i) => {
    const s = c.ts[Math.floor(i / per)]!, h = 1e-4 / Math.abs((Math.log(base.betas[s]!) - base.postLogVarClipped[s]!) / 2);
    return finiteDifferences(([v]) => (dloss * refLoss(base, c, xt, c.epsHat, v!, c.epsHat).vbs[i]!) / n, [Float64Array.from(c.v)], h)[0]![i]!;
  });
  const { dEpsHat, dv } = refLossGradient(base, c, xt, dloss);
  assertClose(t, dEpsHat, fdEps!, { atol: 1e-10, rtol: 1e-6, label: 'dε̂ = 2(ε̂ − ε)/n·dloss' });
  for (let b = 0; b < c.ts.length; b++) {
    const at = (x: Float64Array) => x.subarray(b * per, (b + 1) * per);
    const scale = Math.max(...Array.from(at(fdV), Math.abs));
    assertClose(t, at(dv), at(fdV), { atol: 1e-5 * scale, rtol: 1e-5, label: `dv at t = ${c.ts[b]}` });
  }

  // Where the clamp holds p at 1e-12 (the mean 60 bin widths or more outside x0's bin, in each
  // branch) the loss does not move with v: the reference's gradient is 0, as is the difference.
  const far: LossCase = { shape: [1, 1, 1, 4], ts: [0], x0: Float64Array.from([-1, 1, 0.2, -0.5]), noise: randomF32(4),
    epsHat: new Float64Array(4), v: Float64Array.from([-0.5, 0, 0.5, 0.9]) };
  far.epsHat = Float64Array.from(Float32Array.from(far.noise.map((e, i) => e + [-60, 60, 40, -40][i]!)));
  const farXt = refXt(base, far);
  const clamped = -Math.log(1e-12) / Math.LN2;
  t.deepEqual(Array.from(refLoss(base, far, farXt, far.epsHat, far.v, far.epsHat).vbs), [clamped, clamped, clamped, clamped], 'every element is clamped');
  const [, farFd] = finiteDifferences(([e, v]) => refLoss(base, far, farXt, e!, v!, far.epsHat).vb, [Float64Array.from(far.epsHat), Float64Array.from(far.v)], 1e-5);
  t.true(refLossGradient(base, far, farXt, 1).dv.every((g) => g === 0), 'the reference: no gradient where clamped');
  t.true(farFd!.every((g) => g === 0), 'the difference: the clamped term is constant');
});

test('trainingLosses: a pure function of (seed, step); t and ε from their substreams; the loss is the fused op on them', (t) => {
  const B = 4, shape = [B, 1, 2, 2];
  const x0Values = randomF32(16).map((x) => Math.max(-1, Math.min(1, x / 3)));
  const denoiser: Denoiser = (x, ts, y) => tidy(() => {
    // ε̂ = 0.5·x_t, v = 0.1·y − 0.2 per sample: depends on its inputs, nothing random.
    const xs = x.toArray(), ys = y.toArray();
    t.deepEqual(ts.dtype, 'i32');
    const out = new Float32Array(2 * xs.length);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < 4; j++) {
        out[b * 8 + j] = 0.5 * xs[b * 4 + j]!;
        out[b * 8 + 4 + j] = 0.1 * ys[b]! - 0.2;
      }
    return tensor(out, [B, 2, 2, 2]);
  });
  const run = (offset: number) => tidy(() => {
    const x0 = tensor(Float32Array.from(x0Values), shape);
    const r = trainingLosses(diffusion, denoiser, x0, tensor(Int32Array.from([0, 1, 2, 3])), { random: { seed: 9, offset } });
    return { loss: r.loss.item(), terms: Array.from(r.terms!.toArray()), t: Array.from(r.t) };
  });
  const a = run(3), again = run(3), other = run(4);
  t.deepEqual(again, a, 'same (seed, step): same t, same loss');
  t.notDeepEqual(other.t, a.t, 'another step draws other timesteps');
  t.deepEqual(Array.from(drawTimesteps(diffusion, B, { seed: 9, offset: 3 })), a.t);
  // Recompute from the same substreams in float64.
  const noise = tidy(() => Float64Array.from(randn(shape, substream({ seed: 9, offset: 3 }, 'noise')).toArray()));
  const c: LossCase = { shape: [B, 1, 2, 2], ts: a.t, x0: Float64Array.from(Float32Array.from(x0Values)), noise, epsHat: new Float64Array(16), v: new Float64Array(16) };
  const xt = refXt(base, c);
  c.epsHat = xt.map((x) => Math.fround(0.5 * x));
  c.v = Float64Array.from({ length: 16 }, (_, i) => Math.fround(0.1 * Math.floor(i / 4) - 0.2));
  const ref = refLoss(base, c, xt, c.epsHat, c.v, c.epsHat);
  assertClose(t, a.terms, [ref.mse, ref.vb], { atol: 1e-5, rtol: 1e-4, label: 'terms' });
  // Without learned σ the loss is the plain MSE.
  const plain = tidy(() => {
    const r = trainingLosses(diffusion, (x) => x.reshape(x.shape).detach(), tensor(Float32Array.from(x0Values), shape), tensor(Int32Array.from([0, 1, 2, 3])), { random: { seed: 9, offset: 3 } });
    return { loss: r.loss.item(), terms: r.terms };
  });
  t.is(plain.terms, null);
  t.true(Math.abs(plain.loss - xt.reduce((s, x, i) => s + (x - noise[i]!) ** 2, 0) / 16) < 1e-5);
});

test('a NaN in the model output reaches the loss and its own sample only; the 1e-12 clamp never hides it', (t) => {
  for (const [label, at] of [['ε̂ at t = 0', 1], ['v at t = 0', 5], ['ε̂ at t > 0', 8], ['v at t > 0', 13]] as const) {
    const c = lossCase([0, 37], 1, 2, 47);
    const got = tidy(() => {
      const { out, x0, xt, noise, coefs } = lossTensors(c);
      const values = out.toArray() as Float32Array;
      values[at] = Number.NaN;
      const poisoned = tensor(values, out.shape);
      return { terms: Array.from(noGrad(() => diffusionLoss(poisoned, x0, xt, noise, coefs)).terms.toArray()), vb: Array.from(diffusionVbTerms(poisoned, x0, xt, coefs).toArray()) };
    });
    t.true(Number.isNaN(got.terms[1]!), `${label}: the vb term is NaN`);
    if (label.startsWith('ε̂')) t.true(Number.isNaN(got.terms[0]!), `${label}: the MSE is NaN`);
    // Element `at` of (B, 2C, 2, 2) is element (at − 4·(b + 1) for v, at − 4b for ε̂) of (B, C, 2, 2).
    const b = Math.floor(at / 8), element = b * 4 + (at % 4);
    t.deepEqual(got.vb.map((v, i) => Number.isNaN(v) === (i === element)), new Array(8).fill(true), `${label}: NaN exactly at its element`);
  }
  const spaced = diffusion.respace(10);
  const outs = Float32Array.from(randomF32(16));
  outs[2] = Number.NaN;  // sample 0, ε̂
  const next = tidy(() => diffusionStep(tensor(outs, [2, 2, 2, 2]), tensor(Float32Array.from(randomF32(8)), [2, 1, 2, 2]), tensor(Float32Array.from(randomF32(8)), [2, 1, 2, 2]), stepScalars(spaced, 5)).toArray());
  t.deepEqual(Array.from(next, (v) => Number.isNaN(v)), [false, false, true, false, false, false, false, false]);
});

// ---- respacing ---------------------------------------------------------------------------
test('respacing: 250 of 1000 at round(k·999/249); β\' = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}; ᾱ kept; the model sees the original t', (t) => {
  const kept = respacedTimesteps(1000, 250);
  t.deepEqual(kept, Array.from({ length: 250 }, (_, k) => Math.round((k * 999) / 249)));
  t.deepEqual([kept[0], kept[1], kept[248], kept[249]], [0, 4, 995, 999]);
  // Exact ties fall as guided-diffusion's float accumulation has them (pinned from its space_timesteps).
  t.deepEqual(respacedTimesteps(1000, 21).slice(9, 12), [450, 499, 549]);
  t.deepEqual(respacedTimesteps(1000, 3), [0, 500, 999]);
  t.deepEqual(respacedTimesteps(1000, 1), [0]);
  const spaced = diffusion.respace(250);
  t.is(spaced.timesteps, 250);
  t.is(spaced.respacedFrom, 1000);
  t.deepEqual(Array.from(spaced.timestepMap), kept);
  const betas = kept.map((s, i) => 1 - base.ac[s]! / (i ? base.ac[kept[i - 1]!]! : 1));
  assertClose(t, spaced.betas, betas, { atol: 0, rtol: 1e-13, label: "β'" });
  assertClose(t, spaced.alphasCumprod, kept.map((s) => base.ac[s]!), { atol: 0, rtol: 1e-12, label: 'ᾱ at the kept steps' });
  // The learned range of the respaced chain uses its own β' and β̃'.
  const r = refSchedule(betas);
  assertClose(t, spaced.posteriorLogVarianceClipped, r.postLogVarClipped, { atol: 0, rtol: 1e-12, label: "log β̃'" });
  t.is(spaced.learnedLogVariance(5, 1), Math.log(spaced.betas[5]!));
  // All steps: the same process.
  const all = diffusion.respace(1000);
  assertClose(t, all.betas, numpyBetas, { atol: 0, rtol: 1e-12, label: 'respace(T)' });
  t.throws(() => diffusion.respace(0), { message: /respace: 'steps' must be an integer in \[1, 1000\], got 0/ });
  t.throws(() => diffusion.respace(1001), { message: /'steps' must be an integer in \[1, 1000\], got 1001/ });
  t.throws(() => spaced.respace(10), { message: /already respaced/ });
});

// ---- sampling ----------------------------------------------------------------------------
/**
 * A deterministic toy model, per element: ε̂ = 0.3·x + 0.1·(label + 1) + 0.001·t, v = 0.5·tanh(x)
 * — labels and the null class give different outputs. Optionally without learned σ.
 */
function toyDenoiser(C: number, learned = true, seen?: number[]): Denoiser {
  return (x, ts, y) => tidy(() => {
    const xs = x.toArray(), tv = ts.toArray(), ys = y.toArray();
    const [B, , H, W] = x.shape as [number, number, number, number];
    const per = C * H * W, outC = learned ? 2 * C : C;
    seen?.push(tv[0]!);
    const out = new Float32Array(B * outC * H * W);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < per; j++) {
        const v = xs[b * per + j]!;
        out[b * outC * H * W + j] = 0.3 * v + 0.1 * (ys[b]! + 1) + 0.001 * tv[b]!;
        if (learned) out[b * outC * H * W + per + j] = 0.5 * Math.tanh(v);
      }
    return tensor(out, [B, outC, H, W], { device: x.device });
  });
}

test('one sampling step (diffusionStep) against float64: ancestral with guidance, DDIM, DiT\'s channel slice, fixed σ', (t) => {
  const spaced = diffusion.respace(50);
  const r = refSchedule(Array.from(spaced.betas));
  const B = 2, C = 4, N = 3, per = C * N;
  const x = randomF32(B * per, 1.5), z = randomF32(B * per);
  const outs = randomF32(2 * B * 2 * per);  // (2B, 2C, N): conditional rows, then unconditional
  const at = (row: number, ch: number, n: number) => outs[(row * 2 * C + ch) * N + n]!;
  for (const [name, i, ddim, clip, s, dit] of [['ancestral, guided s = 4', 30, false, true, 4, false], ['DDIM, guided s = 1.5', 30, true, true, 1.5, false],
    ['ancestral, DiT slice', 10, false, false, 4, true], ['ancestral, t = 0, unguided', 0, false, true, 1, false]] as const) {
    const guided = s !== 1;
    const got = tidy(() => diffusionStep(tensor(Float32Array.from(guided ? outs : outs.slice(0, B * 2 * per)), [guided ? 2 * B : B, 2 * C, N]),
      tensor(Float32Array.from(x), [B, C, N]), i > 0 && !ddim ? tensor(Float32Array.from(z), [B, C, N]) : null,
      stepScalars(spaced, i, { sampler: ddim ? 'ddim' : 'ddpm', clipDenoised: clip, guidanceScale: s, guidedChannels: !guided ? 0 : dit ? 3 : C })).toArray());
    const expected = Float64Array.from({ length: B * per }, (_, e) => {
      const b = Math.floor(e / per), c = Math.floor((e % per) / N), n = e % N;
      // DiT guides output channels [:3]: here three of the four noise channels; the variance is the conditional one.
      const g = guided && (!dit || c < 3);
      const eps = g ? at(b + B, c, n) + s * (at(b, c, n) - at(b + B, c, n)) : at(b, c, n);
      return refStep(r, i, eps, at(b, C + c, n), x[e]!, i > 0 && !ddim ? z[e]! : null, clip, ddim);
    });
    assertClose(t, got, expected, { atol: 2e-5, rtol: 2e-5, label: name });
  }
  // A model without learned σ: fixed "large" variance [β̃₁, β₁, β₂, ...].
  const fixed = tidy(() => diffusionStep(tensor(Float32Array.from(outs.slice(0, B * per)), [B, C, N]), tensor(Float32Array.from(x), [B, C, N]),
    tensor(Float32Array.from(z), [B, C, N]), stepScalars(spaced, 7, { learnedSigma: false })).toArray());
  assertClose(t, fixed, Float64Array.from({ length: B * per }, (_, e) => refStep(r, 7, outs[e]!, null, x[e]!, z[e]!, true, false)),
    { atol: 2e-5, rtol: 2e-5, label: 'fixed σ' });
});

test('sampling: guidance with scale 1 is the conditional model exactly, scale 0 the unconditional', (t) => {
  const base2 = new GaussianDiffusion({ timesteps: 100 });
  const shape = [2, 1, 3, 3], labels = [1, 4];
  const run = (options: { guidanceScale?: number; labels?: number[] }) => tidy(() =>
    sampleDiffusion(base2, toyDenoiser(1), { shape, labels: options.labels ?? labels, steps: 10, seed: 3, guidanceScale: options.guidanceScale, nullLabel: 10 }).toArray());
  const conditional = run({});
  t.deepEqual(run({ guidanceScale: 1 }), conditional);
  t.deepEqual(run({ guidanceScale: 0 }), run({ labels: [10, 10] }));
  t.notDeepEqual(run({ guidanceScale: 4 }), conditional, 'a real scale changes the samples');
});

test('samplers are deterministic per seed (same seed same samples, another seed others), call the original t, report progress', (t) => {
  const base2 = new GaussianDiffusion({ timesteps: 200 });
  const shape = [3, 2, 4, 4], labels = [0, 1, 2];
  for (const sampler of ['ddpm', 'ddim'] as const) {
    const seen: number[] = [];
    const progress: number[] = [];
    const run = (seed: number, record = false) => tidy(() => sampleDiffusion(base2, toyDenoiser(2, true, record ? seen : undefined), {
      shape, labels, steps: 20, sampler, seed, onStep: record ? (p) => progress.push(p.step, p.steps, p.t) : undefined,
    }).toArray());
    const a = run(7, true);
    t.deepEqual(run(7), a, `${sampler}: same seed`);
    t.notDeepEqual(run(8), a, `${sampler}: another seed`);
    t.true(a.every(Number.isFinite));
    const kept = respacedTimesteps(200, 20);
    t.deepEqual(seen, kept.slice().reverse(), `${sampler}: the model sees the original t, last to first`);
    t.deepEqual(progress.slice(0, 3), [1, 20, 199]);
    t.deepEqual(progress.slice(-3), [20, 20, 0]);
  }
});

test('DDPM (250 steps of 1000) and DDIM with a perfect denoiser on a one-point distribution converge to that point', (t) => {
  const B = 2, C = 1, side = 4, per = C * side * side;
  const point = Float64Array.from({ length: per }, (_, i) => -0.9 + (1.8 * i) / (per - 1));
  // The exact ε for data = point: ε = (x_t − √ᾱ_t·x*) / √(1 − ᾱ_t), at the original t.
  const perfect: Denoiser = (x, ts) => tidy(() => {
    const xs = x.toArray(), tv = ts.toArray();
    const out = new Float32Array(2 * xs.length);
    for (let b = 0; b < B; b++) {
      const ac = base.ac[tv[b]!]!;
      for (let j = 0; j < per; j++) out[2 * b * per + j] = (xs[b * per + j]! - Math.sqrt(ac) * point[j]!) / Math.sqrt(1 - ac);
    }
    return tensor(out, [B, 2 * C, side, side]);
  });
  for (const [sampler, steps] of [['ddpm', 250], ['ddim', 50], ['ddpm', 1000]] as const) {
    const got = tidy(() => sampleDiffusion(diffusion, perfect, { shape: [B, C, side, side], labels: [0, 0], steps, sampler, seed: 1 }).toArray());
    assertClose(t, got, [...point, ...point], { atol: 1e-4, rtol: 0, label: `${sampler}, ${steps} steps` });
  }
});

test('sampling frees every per-step tensor: only the samples outlive the call', (t) => {
  const before = memory().cpu.tensors;
  const x = sampleDiffusion(new GaussianDiffusion({ timesteps: 50 }), toyDenoiser(1), { shape: [2, 1, 3, 3], labels: [0, 1], steps: 10, guidanceScale: 2, nullLabel: 5 });
  t.is(memory().cpu.tensors, before + 1);
  x.dispose();
  t.is(memory().cpu.tensors, before);
});

test('errors name the parameter: shapes, t out of range, steps out of [1, T], labels, the denoiser output and its device', (t) => {
  const d = new GaussianDiffusion({ timesteps: 50 });
  const toy = toyDenoiser(1);
  const sample = (o: object) => () => tidy(() => sampleDiffusion(d, toy, { shape: [1, 1, 2, 2], labels: [0], ...o }));
  t.notThrows(sample({ steps: 1 }), 'one step: straight from noise to x̂₀');
  t.throws(sample({ steps: 0 }), { message: /'steps' must be an integer in \[1, 50\], got 0/ });
  t.throws(sample({ steps: 51 }), { message: /'steps' must be an integer in \[1, 50\], got 51/ });
  t.throws(sample({ shape: [1, 2, 2] }), { message: /'shape' must be \(B, C, H, W\)/ });
  t.throws(sample({ labels: [0, 1] }), { message: /'labels' must hold one label per sample \(1\), got 2/ });
  t.throws(sample({ guidanceScale: 2 }), { message: /'nullLabel' must be the null class/ });
  t.throws(sample({ sampler: 'euler' }), { message: /'sampler' must be "ddpm" or "ddim"/ });
  t.throws(sample({ seed: -1 }), { message: /'seed' must be an integer/ });
  t.throws(() => tidy(() => sampleDiffusion(d, () => tensor([1]), { shape: [1, 1, 2, 2], labels: [0] })), { message: /the denoiser's output must be \(1, 1 or 2, 2, 2\), got shape \[1\]/ });
  t.throws(() => tidy(() => checkModelOutput('sampleDiffusion', tensor(new Float32Array(8), [1, 2, 2, 2]), [1, 1, 2, 2], 1, 'cuda')), { message: /must be on cuda, got cpu/ });
  const x0 = tensor(new Float32Array(8), [2, 1, 2, 2]);
  t.throws(() => tidy(() => qSample(d, x0, [0, 50], x0)), { message: /qSample: 't\[1\]' must be an integer timestep in \[0, 50\), got 50/ });
  t.throws(() => tidy(() => qSample(d, x0, [0, 1], tensor(new Float32Array(4), [1, 1, 2, 2]))), { message: /qSample: 'noise' must have x0's shape \[2, 1, 2, 2\], got \[1, 1, 2, 2\]/ });
  t.throws(() => tidy(() => qSample(d, x0, [0], x0)), { message: /'t' must hold one timestep per sample \(2\), got 1/ });
  t.throws(() => tidy(() => qSample(d, tensor(new Float32Array(4), [4]), [0], x0)), { message: /qSample: 'x0' must be \(B, C, H, W\)/ });
  t.throws(() => tidy(() => trainingLosses(d, toy, x0, tensor(Int32Array.from([0])), { random: { seed: 1, offset: 0 } })), { message: /'labels' must be an i32 tensor of shape \[2\]/ });
  t.throws(() => d.posterior(-1), { message: /posterior: 't' must be an integer timestep in \[0, 50\)/ });
  t.throws(() => new GaussianDiffusion({ timesteps: 0 }), { message: /'timesteps' must be an integer in \[1, /});
  t.throws(() => new GaussianDiffusion({ betas: [0.1, 1.5] }), { message: /'betas\[1\]' must be in \(0, 1\), got 1.5/ });
  t.throws(() => tidy(() => diffusionStep(tensor(new Float32Array(12), [1, 3, 2, 2]), x0, null, stepScalars(d, 3))), { message: /diffusionStep: 'modelOut' must have C = 1 or 2C = 2 channels/ });
  t.throws(() => tidy(() => diffusionLoss(x0, x0, x0, x0, tensor(new Float32Array(14), [2, 7]))), { message: /diffusionLossForward: 'modelOut' must have shape \[2, 2, 2, 2\]/ });
  t.throws(() => tidy(() => diffusionLoss(tensor(new Float32Array(16), [2, 2, 2, 2]), x0, x0, x0, tensor(new Float32Array(12), [2, 6]))), { message: /'coefs' must have shape \[2, 7\]/ });
  x0.dispose();
});

// ---- GPU parity --------------------------------------------------------------------------
const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU diffusion tests skipped: ${selectBackend().reasons.join('; ')}`);

/** The values of f's tensors on each device. */
function onBoth(f: (device: Device) => Record<string, Tensor>): Record<string, Float32Array>[] {
  return (['cpu', 'cuda'] as const).map((device) => tidy(() => {
    const r = f(device);
    return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.toArray() as Float32Array]));
  }));
}

gpuTest('GPU: the loss ops (terms, per-element vb, gradient) and perSampleAxpby match the CPU', (t) => {
  // Awkward sizes: B = 3, C = 3, 7×11 (odd element counts: no float4 path), t = 0 and large t.
  const n = 3 * 3 * 7 * 11;
  const noise = randomF32(n);
  const c: LossCase = {
    shape: [3, 3, 7, 11], ts: [0, 999, 123], noise,
    x0: Float64Array.from(Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -1 : i % 7 === 1 ? 1 : Math.sin(i)))),
    epsHat: Float64Array.from(Float32Array.from(noise.map((e, i) => e + 0.3 * Math.cos(i)))),
    v: Float64Array.from(Float32Array.from({ length: n }, (_, i) => 0.9 * Math.sin(3 * i))),
  };
  const [cpu, cuda] = onBoth((device) => {
    const { out, x0, xt, noise, coefs } = lossTensors(c, device);
    const { loss, terms } = diffusionLoss(out, x0, xt, noise, coefs);
    backward(loss);
    const a = tensor([0.5, -2, 3], [3], { device }), cc = tensor([1.5, 0.25, -1], [3], { device });
    return { terms, vb: diffusionVbTerms(out, x0, xt, coefs), grad: out.grad!, axpby: perSampleAxpby(x0, a, noise, cc) };
  });
  // Same f32 formulas; the GPU's expf/logf/tanh differ in the last bits, and x̂₀ at t = 999
  // amplifies x_t's rounding by √(1/ᾱ) ≈ 157: 1e-4 relative leaves room for that only.
  assertClose(t, cuda!.terms!, cpu!.terms!, { atol: 1e-5, rtol: 1e-5, label: 'terms' });
  assertClose(t, cuda!.vb!, cpu!.vb!, { atol: 1e-4, rtol: 1e-4, label: 'vb per element' });
  assertClose(t, cuda!.grad!, cpu!.grad!, { atol: 1e-7, rtol: 1e-4, label: 'dmodelOut' });
  assertClose(t, cuda!.axpby!, cpu!.axpby!, { atol: 1e-6, rtol: 1e-6, label: 'perSampleAxpby' });
});

gpuTest('GPU: one guided sampling step and a short DDPM chain match the CPU', (t) => {
  const spaced = diffusion.respace(25);
  const B = 2, C = 4, side = 5, per = C * side * side;
  const outs = randomF32(2 * B * 2 * per), x = randomF32(B * per), z = randomF32(B * per);
  const [cpu, cuda] = onBoth((device) => ({
    step: diffusionStep(tensor(Float32Array.from(outs), [2 * B, 2 * C, side, side], { device }), tensor(Float32Array.from(x), [B, C, side, side], { device }),
      tensor(Float32Array.from(z), [B, C, side, side], { device }), stepScalars(spaced, 12, { guidanceScale: 4, guidedChannels: 3 })),
    chain: sampleDiffusion(new GaussianDiffusion({ timesteps: 100 }), toyDenoiser(C), { shape: [B, C, side, side], labels: [1, 2], steps: 10, seed: 4, device, guidanceScale: 1.5, nullLabel: 9 }),
  }));
  assertClose(t, cuda!.step!, cpu!.step!, { atol: 1e-5, rtol: 1e-5, label: 'one step' });
  // Ten steps of the toy model compound the last-bit differences of Philox normals (GPU logf/sincosf).
  assertClose(t, cuda!.chain!, cpu!.chain!, { atol: 1e-4, rtol: 1e-4, label: '10-step chain' });
});
