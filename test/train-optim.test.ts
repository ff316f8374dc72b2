// Training utilities: the lr schedule at its phase boundaries, AdamW's parameter groups
// (SPEC §1: no decay on 1-D parameters, cls_token, pos_embed), AdamW over several steps
// against a float64 reference with per-group lr scales, clipGradNorm, state round trips,
// and the weight EMA.
import test from 'ava';
import { keep, tensor, tidy, type Tensor } from '../lib/index.js';
import { Module } from '../lib/nn/module.js';
import { AdamW, Ema, excludedFromDecay, learningRate } from '../lib/train/index.js';
import { randomF32, relativeError, t32 } from './helpers.js';

const f32 = Math.fround;
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

// ---- schedule -------------------------------------------------------------------------
const sched = { baseLr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-5 };

test('learningRate: warm-up starts at baseLr/warmup and reaches baseLr at its last step', (t) => {
  t.is(learningRate(0, sched), 1e-3 / 10);
  t.is(learningRate(4, sched), (1e-3 * 5) / 10);
  t.is(learningRate(9, sched), 1e-3);
  // The first cosine step is baseLr (r = 0): warm-up hands over without a jump.
  t.is(learningRate(10, sched), 1e-3);
});

test('learningRate: cosine midpoint is (baseLr + minLr)/2, the end and beyond are minLr', (t) => {
  t.true(Math.abs(learningRate(60, sched) - (1e-3 + 1e-5) / 2) < 1e-15);
  // A quarter of the way: minLr + ½(1 + cos(π/4))(baseLr − minLr).
  t.true(Math.abs(learningRate(35, sched) - (1e-5 + 0.5 * (1 + Math.SQRT1_2) * (1e-3 - 1e-5))) < 1e-15);
  t.is(learningRate(110, sched), 1e-5);
  t.is(learningRate(10_000, sched), 1e-5);
  // One step before the end: r = 0.99, just above the floor.
  t.true(Math.abs(learningRate(109, sched) - (1e-5 + 0.5 * (1 + Math.cos(0.99 * Math.PI)) * (1e-3 - 1e-5))) < 1e-18);
  t.true(learningRate(109, sched) > 1e-5);
  // Monotone non-increasing after warm-up.
  for (let s = 10; s < 115; s++) t.true(learningRate(s + 1, sched) <= learningRate(s, sched), `step ${s}`);
});

test('learningRate: no warm-up, and bad arguments name the parameter', (t) => {
  t.is(learningRate(0, { ...sched, warmupSteps: 0 }), 1e-3);
  t.throws(() => learningRate(-1, sched), { message: /'step'/ });
  t.throws(() => learningRate(1.5, sched), { message: /'step'/ });
  t.throws(() => learningRate(0, { ...sched, totalSteps: 5 }), { message: /'totalSteps' \(5\) must be ≥ 'warmupSteps' \(10\)/ });
  t.throws(() => learningRate(0, { ...sched, baseLr: Number.NaN }), { message: /'baseLr'/ });
});

// ---- AdamW ----------------------------------------------------------------------------
/** A parameter list like a ViT's: a weight (decays), a bias, a LayerNorm weight, cls, pos. */
function toyParams(): [string, Tensor][] {
  const shapes: [string, number[]][] = [
    ['cls_token', [1, 1, 4]], ['pos_embed', [1, 3, 4]], ['blocks.0.attn.qkv.weight', [12, 4]],
    ['blocks.0.attn.qkv.bias', [12]], ['blocks.0.norm1.weight', [4]], ['head.weight', [3, 4]],
  ];
  return shapes.map(([n, s]) => [n, keep(t32(randomF32(prod(s)), s, true))]);
}
const disposeAll = (params: [string, Tensor][]) => params.forEach(([, p]) => { p.grad?.dispose(); p.dispose(); });
const setGrad = (p: Tensor, values: ArrayLike<number>) => {
  p.grad?.dispose();
  p.grad = keep(t32(values, p.shape));
};

test('excludedFromDecay: every 1-D parameter, cls_token and pos_embed; not 2-D weights', (t) => {
  const params = toyParams();
  const excluded = params.filter(([n, p]) => excludedFromDecay(n, p)).map(([n]) => n);
  t.deepEqual(excluded, ['cls_token', 'pos_embed', 'blocks.0.attn.qkv.bias', 'blocks.0.norm1.weight']);
  disposeAll(params);
});

test('AdamW groups: with zero grads and wd > 0, 2-D weights shrink by exactly (1 − lr·scale·wd), the rest stay put', (t) => {
  const params = toyParams();
  const before = new Map(params.map(([n, p]) => [n, p.toArray()]));
  const lr = 0.01, wd = 0.1;
  const opt = new AdamW(params, { weightDecay: wd, lrScale: (n) => (n.startsWith('head') ? 0.5 : 1) });
  t.deepEqual(opt.groups.map((g) => [g.weightDecay, g.lrScale, g.names.length]), [[0, 1, 4], [wd, 1, 1], [wd, 0.5, 1]]);
  for (const [, p] of params) setGrad(p, new Float32Array(p.size));
  opt.step(lr);
  for (const [name, p] of params) {
    const got = p.toArray(), was = before.get(name)!;
    if (name === 'blocks.0.attn.qkv.weight' || name === 'head.weight') {
      const factor = 1 - f32(lr * (name === 'head.weight' ? 0.5 : 1)) * f32(wd);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - was[i]! * factor) / Math.abs(was[i]!));
      t.true(worst < 2.5e-7, `${name}: relative error ${worst} from the (1 − lr·wd) shrink`);
      t.notDeepEqual(Array.from(got), Array.from(was));
    } else {
      t.deepEqual(Array.from(got), Array.from(was), `${name} must not decay`);
    }
  }
  opt.dispose();
  disposeAll(params);
});

/** Float64 AdamW (hyper-parameters rounded to f32 as the kernel receives them). */
function adamwRef(p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array, lr: number, wd: number, b1: number, b2: number, eps: number, step: number): void {
  [lr, wd, b1, b2, eps] = [lr, wd, b1, b2, eps].map(f32) as [number, number, number, number, number];
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    const mHat = m[i]! / (1 - b1 ** step), vHat = v[i]! / (1 - b2 ** step);
    p[i] = p[i]! - lr * (mHat / (Math.sqrt(vHat) + eps) + wd * p[i]!);
  }
}

test('AdamW: 5 scheduled steps with groups and lr scales against float64 AdamW', (t) => {
  const params = toyParams();
  const wd = 0.3, betas = [0.9, 0.95] as const, eps = 1e-8;
  const scale = (n: string) => (n.startsWith('blocks') ? 0.65 : 1);
  const opt = new AdamW(params, { weightDecay: wd, betas, lrScale: scale });
  const ref = params.map(([n, p]) => ({
    n, P: Float64Array.from(p.toArray()), M: new Float64Array(p.size), V: new Float64Array(p.size),
    wd: excludedFromDecay(n, p) ? 0 : wd,
  }));
  const p0 = params.map(([, p]) => p.toArray());
  for (let step = 0; step < 5; step++) {
    const lr = learningRate(step, { baseLr: 4e-3, warmupSteps: 2, totalSteps: 5, minLr: 1e-6 });
    params.forEach(([, p], i) => {
      const g = randomF32(p.size);
      setGrad(p, g);
      adamwRef(ref[i]!.P, g, ref[i]!.M, ref[i]!.V, lr * scale(ref[i]!.n), ref[i]!.wd, betas[0], betas[1], eps, step + 1);
    });
    opt.step(lr);
  }
  t.is(opt.stepCount, 5);
  const state = opt.state();
  params.forEach(([n, p], i) => {
    const got = p.toArray();
    let worst = 0;
    for (let k = 0; k < got.length; k++) worst = Math.max(worst, Math.abs(got[k]! - ref[i]!.P[k]!) / Math.max(1, Math.abs(ref[i]!.P[k]!)));
    t.true(worst < 1e-6, `${n}: param error ${worst}`);
    t.true(relativeError(state.m.get(n)!.toArray(), ref[i]!.M) < 1e-5, `${n}: m`);
    t.true(relativeError(state.v.get(n)!.toArray(), ref[i]!.V) < 1e-5, `${n}: v`);
    t.true(relativeError(got, p0[i]!) > 1e-4, `${n} moved`);
  });
  opt.dispose();
  disposeAll(params);
});

test('AdamW.step skips parameters without a grad but the step count is shared', (t) => {
  const params = toyParams();
  const opt = new AdamW(params);
  const [, frozen] = params[2]!;
  const was = frozen.toArray();
  for (const [, p] of params) if (p !== frozen) setGrad(p, randomF32(p.size));
  opt.step(1e-3);
  t.deepEqual(Array.from(frozen.toArray()), Array.from(was));
  t.deepEqual(Array.from(opt.state().m.get(params[2]![0])!.toArray()), new Array(frozen.size).fill(0));
  opt.zeroGrad();
  t.true(params.every(([, p]) => p.grad === null));
  t.is(opt.stepCount, 1);
  t.throws(() => opt.step(Number.NaN), { message: /'lr'/ });
  opt.dispose();
  disposeAll(params);
});

test('clipGradNorm returns the float64 norm and scales grads by maxNorm/(norm + 1e-6) only above it', (t) => {
  const params = toyParams();
  const opt = new AdamW(params);
  const grads = params.map(([, p]) => randomF32(p.size));
  params.forEach(([, p], i) => setGrad(p, grads[i]!));
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
  // Above the threshold: every grad scaled by the same factor.
  const returned = opt.clipGradNorm(1);
  t.true(Math.abs(returned - norm) / norm < 1e-12, `norm ${returned} vs ${norm}`);
  const factor = 1 / (norm + 1e-6);
  params.forEach(([n, p], i) => t.true(relativeError(p.grad!.toArray(), grads[i]!.map((x) => x * factor)) < 1e-6, n));
  // The clipped norm is (just under) maxNorm; below the threshold nothing changes.
  const clipped = params.map(([, p]) => p.grad!.toArray());
  const again = opt.clipGradNorm(1);
  t.true(again <= 1 && again > 1 - 1e-5, `clipped norm ${again}`);
  params.forEach(([, p], i) => t.deepEqual(Array.from(p.grad!.toArray()), Array.from(clipped[i]!)));
  t.throws(() => opt.clipGradNorm(0), { message: /'maxNorm'/ });
  opt.dispose();
  disposeAll(params);
});

test('AdamW state round trip: a restored optimizer continues bit-identically; bad state changes nothing', (t) => {
  const a = toyParams();
  const b = a.map(([n, p]): [string, Tensor] => [n, keep(tensor(p.toArray() as Float32Array, p.shape, { requiresGrad: true }))]);
  const optA = new AdamW(a, { weightDecay: 0.1 }), optB = new AdamW(b, { weightDecay: 0.1 });
  const steps = [randomF32(200), randomF32(200), randomF32(200)];
  const gradsFor = (params: [string, Tensor][], g: Float64Array) => {
    let at = 0;
    for (const [, p] of params) { setGrad(p, g.subarray(at, at + p.size)); at += p.size; }
  };
  gradsFor(a, steps[0]!); optA.step(1e-2);
  gradsFor(b, steps[0]!); optB.step(1e-2);
  const snapshot = optA.stateCopy();
  gradsFor(a, steps[1]!); optA.step(1e-2);       // optA moves on; then rewind optB's twin
  // A wrong-shaped entry throws and leaves optB's state alone.
  const vBefore = optB.state().v.get('head.weight')!.toArray();
  const bad = { ...snapshot, m: new Map(snapshot.m) };
  bad.m.set('head.weight', keep(tensor(new Float32Array(5), [5])));
  t.throws(() => optB.loadState(bad), { message: /'m' of "head.weight" must be a float tensor of shape \[3, 4\]/ });
  const missing = { ...snapshot, v: new Map([...snapshot.v].slice(1)) };
  t.throws(() => optB.loadState(missing), { message: /'v' names do not match the parameters: missing "cls_token"/ });
  t.deepEqual(Array.from(optB.state().v.get('head.weight')!.toArray()), Array.from(vBefore));
  bad.m.get('head.weight')!.dispose();
  optB.loadState(snapshot);
  t.is(optB.stepCount, 1);
  gradsFor(b, steps[1]!); optB.step(1e-2);
  a.forEach(([n, p], i) => t.deepEqual(Array.from(p.toArray()), Array.from(b[i]![1].toArray()), n));
  for (const m of [snapshot.m, snapshot.v]) for (const x of m.values()) x.dispose();
  optA.dispose(); optB.dispose();
  disposeAll(a); disposeAll(b);
});

test('AdamW rejects bad options naming them', (t) => {
  const params = toyParams();
  t.throws(() => new AdamW(params, { betas: [0.9, 1] }), { message: /'betas\[1\]'/ });
  t.throws(() => new AdamW(params, { weightDecay: -1 }), { message: /'weightDecay'/ });
  t.throws(() => new AdamW([...params, params[0]!]), { message: /"cls_token" appears twice/ });
  disposeAll(params);
});

// ---- EMA ------------------------------------------------------------------------------
class Toy extends Module {
  readonly w: Tensor;
  readonly b: Tensor;
  constructor(w: ArrayLike<number>, b: ArrayLike<number>) {
    super();
    this.w = this.parameter('w', Float32Array.from(w), [2, 2]);
    this.b = this.parameter('b', Float32Array.from(b), [2]);
  }
}

test('Ema: shadow = decay·shadow + (1 − decay)·param, copied into another module', (t) => {
  const model = new Toy([1, 2, 3, 4], [5, 6]);
  const ema = new Ema(model, 0.9);
  const target = [[10, 20, 30, 40], [50, 60]] as const;
  tidy(() => {
    model.loadStateDict({ w: tensor([...target[0]], [2, 2]), b: tensor([...target[1]], [2]) });
  });
  ema.update(model);
  ema.update(model);
  // After two updates toward x1 from x0: x1 + 0.81·(x0 − x1).
  const expectW = [1, 2, 3, 4].map((x0, i) => target[0][i]! + 0.81 * (x0 - target[0][i]!));
  t.true(relativeError(ema.stateDict().get('w')!.toArray(), expectW) < 1e-6);
  const copy = new Toy([0, 0, 0, 0], [0, 0]);
  ema.copyTo(copy);
  t.deepEqual(Array.from(copy.w.toArray()), Array.from(ema.stateDict().get('w')!.toArray()));
  t.true(relativeError(copy.b.toArray(), [5, 6].map((x0, i) => target[1][i]! + 0.81 * (x0 - target[1][i]!))) < 1e-6);
  t.throws(() => new Ema(model, 1.5), { message: /'decay'/ });
  ema.dispose(); model.dispose(); copy.dispose();
});
