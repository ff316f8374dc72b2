// lib/nn: deterministic init, timm names, state dicts, train/eval and drop path.
import test from 'ava';
import { add, memory, noGrad, tidy, type Tensor } from '../lib/index.js';
import { attentionPrecision, BF16_HEAD_DIMS, Block, dropPathResidual, InitRng, LayerNorm, Linear } from '../lib/nn/index.js';
import { randomF32, t32 } from './helpers.js';

const values = (x: Tensor): number[] => Array.from(x.toArray());

const moments = (w: ArrayLike<number>) => {
  const v = Array.from(w);
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  return { mean, std: Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length) };
};

test("truncNormal is timm's: absolute bounds [a, b] = [-2, 2], so std 0.02 is untruncated and std 1 cut at ±2", (t) => {
  const unit = new InitRng(5).truncNormal([40000], 1);
  t.true(unit.every((v) => Math.abs(v) <= 2), 'inside [-2, 2]');
  // A standard normal truncated to [-2, 2] has std 0.8796.
  t.true(Math.abs(moments(unit).std - 0.8796) < 0.01, `std ${moments(unit).std}`);
  const narrow = new InitRng(5).truncNormal([40000], 1, -0.5, 1);
  t.true(narrow.every((v) => v >= -0.5 && v <= 1));
  t.throws(() => new InitRng(5).truncNormal([4], 1, 1, 1), { instanceOf: RangeError, message: /'a' \(1\) must be less than 'b' \(1\)/ });
});

test('Linear init: trunc-normal(0.02) as timm (effectively N(0, 0.02²)), zero bias, deterministic from the seed', (t) => {
  const a = new Linear(256, 128, 7), b = new Linear(256, 128, 7), c = new Linear(256, 128, 8);
  const w = values(a.weight);
  t.deepEqual(a.weight.shape, [128, 256]);
  const { mean, std } = moments(w);
  t.true(Math.abs(std - 0.02) < 0.0004, `std ${std}`);
  t.true(Math.abs(mean) < 0.0005, `mean ${mean}`);
  t.true(w.some((v) => Math.abs(v) > 0.06), 'beyond 3σ occurs: not truncated at 2σ');
  t.deepEqual(values(a.bias!), new Array(128).fill(0));
  t.deepEqual(values(a.weight), values(b.weight));
  t.notDeepEqual(values(a.weight), values(c.weight));
  t.true(a.weight.requiresGrad && a.bias!.requiresGrad);
  for (const m of [a, b, c]) m.dispose();
});

test('InitRng: consecutive draws are independent streams', (t) => {
  const rng = new InitRng(3);
  t.notDeepEqual(Array.from(rng.normal([8], 1)), Array.from(rng.normal([8], 1)));
  t.throws(() => new InitRng(-1), { instanceOf: TypeError, message: /'seed' must be a non-negative integer/ });
});

test('LayerNorm starts at (1, 0) with eps 1e-6', (t) => {
  const ln = new LayerNorm(5);
  t.deepEqual(values(ln.weight), [1, 1, 1, 1, 1]);
  t.deepEqual(values(ln.bias), [0, 0, 0, 0, 0]);
  t.is(ln.eps, 1e-6);
  ln.dispose();
  const other = new LayerNorm(5, 0, { eps: 1e-5 });
  t.is(other.eps, 1e-5);
  other.dispose();
  // An eps where the init goes is an error, not a LayerNorm with the default eps.
  t.throws(() => new LayerNorm(5, 1e-5), { instanceOf: TypeError, message: /'seed' must be a non-negative integer, got 0.00001/ });
  t.throws(() => new LayerNorm(5, 0, { eps: 0 }), { instanceOf: RangeError, message: /LayerNorm: 'eps' must be > 0, got 0/ });
});

test('Block: timm parameter names in order, and parameters() matches', (t) => {
  const block = new Block(16, 2, { init: 1 });
  const names = block.namedParameters().map(([n]) => n);
  t.deepEqual(names, [
    'norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias', 'attn.proj.weight', 'attn.proj.bias',
    'norm2.weight', 'norm2.bias', 'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias',
  ]);
  t.deepEqual(block.namedParameters().map(([, p]) => p.shape), [[16], [16], [48, 16], [48], [16, 16], [16], [16], [16], [64, 16], [64], [16, 64], [16]]);
  t.is(block.parameters().length, 12);
  t.is(block.parameterCount(), 12 * 16 * 16 + 13 * 16);
  block.dispose();
});

test('train()/eval() set the flag on every child', (t) => {
  const block = new Block(8, 2);
  t.true(block.training && block.attn.qkv.training);
  block.eval();
  t.false(block.training || block.attn.training || block.attn.qkv.training || block.mlp.fc2.training || block.norm1.training);
  block.train();
  t.true(block.mlp.fc1.training);
  block.dispose();
});

test('stateDict/loadStateDict round trip is bit-exact; failed loads throw clearly and change nothing', (t) => {
  const a = new Block(16, 2, { init: 1 }).eval(), b = new Block(16, 2, { init: 2 }).eval();
  tidy(() => noGrad(() => {
    const x = t32(randomF32(2 * 5 * 16), [2, 5, 16]);
    const ya = values(a.forward(x));
    t.notDeepEqual(values(b.forward(x)), ya);
    const before = values(b.attn.qkv.weight);

    const missing = new Map(a.stateDict());
    missing.delete('mlp.fc1.bias');
    t.throws(() => b.loadStateDict(missing), { instanceOf: RangeError, message: /missing "mlp\.fc1\.bias"/ });
    const extra = new Map(a.stateDict()).set('head.weight', x);
    t.throws(() => b.loadStateDict(extra), { instanceOf: RangeError, message: /unexpected "head\.weight"/ });
    const wrong = new Map(a.stateDict()).set('attn.proj.weight', t32(new Float64Array(16 * 15), [16, 15]));
    t.throws(() => b.loadStateDict(wrong), { instanceOf: RangeError, message: /"attn\.proj\.weight" must have shape \[16, 16\], got \[16, 15\]/ });
    t.deepEqual(values(b.attn.qkv.weight), before, 'a failed load copies nothing');

    b.loadStateDict(Object.fromEntries(a.stateDict()));
    t.deepEqual(values(b.forward(x)), ya);
    for (const [name, p] of b.stateDict()) t.deepEqual(values(p), values(a.stateDict().get(name)!), name);
    t.not(b.attn.qkv.weight, a.attn.qkv.weight, 'values are copied, not shared');
  }));
  a.dispose();
  b.dispose();
});

test('dispose frees every parameter and gradient', (t) => {
  const before = memory().cpu.tensors;
  const block = new Block(8, 2);
  t.is(memory().cpu.tensors, before + 12);
  block.dispose();
  t.is(memory().cpu.tensors, before);
  t.true(block.norm1.weight.disposed);
});

test('drop path is the identity (x + y) in eval mode and at rate 0', (t) => {
  tidy(() => {
    const x = t32(randomF32(4 * 3 * 8), [4, 3, 8]), y = t32(randomF32(4 * 3 * 8), [4, 3, 8]);
    const expected = values(add(x, y));
    t.deepEqual(values(dropPathResidual(x, y, 0.5, false, { seed: 1, offset: 0 })), expected);
    t.deepEqual(values(dropPathResidual(x, y, 0, true)), expected);
    t.throws(() => dropPathResidual(x, y, 0.5, true), { instanceOf: TypeError, message: /needs a random stream/ });
    t.throws(() => dropPathResidual(x, y, 1, true), { instanceOf: RangeError, message: /'rate' must be in \[0, 1\)/ });
  });
  // A block with drop path in eval mode equals the same weights without it.
  const withDrop = new Block(16, 2, { init: 4, dropPath: 0.9 }).eval(), plain = new Block(16, 2, { init: 4 }).eval();
  tidy(() => noGrad(() => {
    const x = t32(randomF32(3 * 4 * 16), [3, 4, 16]);
    t.deepEqual(values(withDrop.forward(x, { random: { seed: 1, offset: 2 } })), values(plain.forward(x)));
  }));
  withDrop.dispose();
  plain.dispose();
});

test('drop path in training keeps each sample with probability 1 − r, scaled by 1/(1 − r)', (t) => {
  const B = 20000, r = 0.3;
  tidy(() => noGrad(() => {
    const x = t32(new Float64Array(B * 2), [B, 1, 2]), y = t32(new Float64Array(B * 2).fill(1), [B, 1, 2]);
    const out = dropPathResidual(x, y, r, true, { seed: 5, offset: 11 }).toArray();
    const scaleKept = Math.fround(1 / (1 - r));
    let kept = 0;
    for (let b = 0; b < B; b++) {
      const [u, v] = [out[2 * b]!, out[2 * b + 1]!];
      t.true((u === 0 || u === scaleKept) && v === u, `sample ${b}: ${u}, ${v}`);
      if (u !== 0) kept++;
    }
    const rate = kept / B, sigma = Math.sqrt(r * (1 - r) / B);
    t.true(Math.abs(rate - (1 - r)) < 4 * sigma, `keep rate ${rate}`);
    // Same noise → same mask; another offset → another mask.
    t.deepEqual(Array.from(dropPathResidual(x, y, r, true, { seed: 5, offset: 11 }).toArray()), Array.from(out));
    t.notDeepEqual(Array.from(dropPathResidual(x, y, r, true, { seed: 5, offset: 12 }).toArray()), Array.from(out));
  }));
});

test("mixed precision runs attention in bf16 only at head dims with a bf16 kernel, else in f32 (autocast's rule)", (t) => {
  t.deepEqual([...BF16_HEAD_DIMS], [16, 32, 64, 128]);
  for (const D of [16, 32, 64, 128]) t.is(attentionPrecision('mixed', D), 'bf16', `D = ${D}`);
  // The first GPU run (2026-12-04) found a mixed-precision step of an 8-wide-head model
  // refused by the bf16 kernel; such heads now run the f32 kernel.
  for (const D of [8, 24, 48, 256]) t.is(attentionPrecision('mixed', D), 'f32', `D = ${D}`);
  for (const D of [8, 64]) t.is(attentionPrecision('f32', D), 'f32', `f32 run, D = ${D}`);
  t.is(attentionPrecision(undefined, 64), 'f32');
});
