// DiT (SPEC §4): parameter counts of the presets against facebookresearch/DiT's, names, the
// timestep and sin-cos embeddings against float64, adaLN-Zero init (identity blocks, zero
// output), label dropout per (seed, step), the forward and every gradient against a float64
// reference DiT, position kinds, memory, and errors.
import test from 'ava';
import {
  backward, checkDitConfig, DiffusionTransformer, dit, ditConfig, ditModelName, ditParameterCount, dropLabels, memory, noGrad,
  parseDitName, parseModelName, selectBackend, substream, tensor, tidy, timestepEmbedding, unpatchify, type DitConfig, type Tensor,
} from '../lib/index.js';
import { ditReference, type Weights } from './dit-reference.js';
import { assertClose, finiteDifferences, randomF32, rng, t32 } from './helpers.js';

const values = (x: Tensor): number[] => Array.from(x.toArray());
const tiny: Partial<DitConfig> = { imageSize: 4, channels: 2, patch: 1, depth: 2, dim: 16, heads: 2, classes: 3 };
const gpu = selectBackend().backend === 'cuda';

/** Parameters and buffers (pos_embed) by name, in float64. */
function weightsOf(model: DiffusionTransformer): Weights {
  const w: Weights = new Map(model.namedParameters().map(([n, p]) => [n, Float64Array.from(p.toArray())]));
  if (model.posEmbed && !w.has('pos_embed')) w.set('pos_embed', Float64Array.from(model.posEmbed.toArray()));
  return w;
}

/** Redraws the zero-initialised layers (every adaLN Linear, the final Linear) at N(0, std²), so every path carries signal. */
function perturbZeroLayers(model: DiffusionTransformer, seed: number, std = 0.3): void {
  const r = rng(seed);
  tidy(() => {
    const fresh = new Map<string, Tensor>();
    for (const [name, p] of model.namedParameters())
      if (name.includes('adaLN_modulation.') || name.startsWith('final_layer.linear.'))
        fresh.set(name, tensor(Float32Array.from({ length: p.size }, () => std * (2 * r() - 1) * Math.sqrt(3)), p.shape, { device: model.device }));
    model.loadStateDict(fresh, { strict: false });
  });
}

// ---- parameter counts ----------------------------------------------------------------------

test("ditParameterCount with reference: true equals facebookresearch/DiT's sizes at latent 32×32×4, 1000 classes", (t) => {
  // Exact integers of DiT's model.parameters() (pos_embed included: an nn.Parameter with
  // requires_grad False); SPEC §4 rounds them to 32.96 / 130.51 / 458.10 / 675.13 M (p = 2) and
  // 33.24 / 131.07 / 458.85 / 675.97 M (p = 1).
  const expected: Record<string, [number, number]> = {
    'dit-s/2': [32_963_360, 32.96], 'dit-b/2': [130_512_416, 130.51], 'dit-l/2': [458_102_816, 458.10], 'dit-xl/2': [675_129_632, 675.13],
    'dit-s/1': [33_244_424, 33.24], 'dit-b/1': [131_074_568, 131.07], 'dit-l/1': [458_852_360, 458.85], 'dit-xl/1': [675_972_872, 675.97],
  };
  for (const [name, [exact, millions]] of Object.entries(expected)) {
    const config = ditConfig(name);
    const n = ditParameterCount(config, { reference: true });
    t.is(n, exact, name);
    t.is(Math.round(n / 1e4) / 100, millions, `${name} rounds to the published ${millions} M`);
    // Trainable values leave the fixed sin-cos table out: N·d fewer.
    const [h, w] = checkDitConfig(config);
    t.is(ditParameterCount(config), exact - h * w * config.dim, `${name} trainable`);
    // A direct evaluation of the architecture: depth·(18d² + 15d) + embedders + final layer + table.
    const { depth, dim: d, patch: p } = config;
    t.is(exact, depth * (18 * d * d + 15 * d) + (256 * d + d) + (d * d + d) + 1001 * d + (p * p * 4 * d + d) + (2 * d * d + 2 * d) + (d * p * p * 8 + p * p * 8) + h * w * d, `${name} formula`);
  }
});

test('built DiTs have the counted parameters, under DiT names in PyTorch order, across config variants', (t) => {
  const variants: Partial<DitConfig>[] = [
    {}, { patch: 2 }, { posEmbed: 'learned' }, { posEmbed: 'none' }, { learnSigma: false }, { imageSize: [2, 6], patch: 2 }, { mlpRatio: 2 }, { classes: 1 },
  ];
  for (const overrides of variants) {
    const model = new DiffusionTransformer({ ...tiny, ...overrides });
    const label = JSON.stringify(overrides);
    t.is(model.parameterCount(), ditParameterCount(model.config), label);
    const fixed = model.config.posEmbed === 'sincos' ? model.tokens * model.config.dim : 0;
    t.is(ditParameterCount(model.config, { reference: true }), model.parameterCount() + fixed, `${label}: reference adds the fixed table`);
    const names = model.namedParameters().map(([n]) => n);
    const learned = model.config.posEmbed === 'learned';
    t.deepEqual(names.slice(0, learned ? 8 : 7), [
      ...(learned ? ['pos_embed'] : []), 'x_embedder.proj.weight', 'x_embedder.proj.bias', 't_embedder.mlp.0.weight', 't_embedder.mlp.0.bias',
      't_embedder.mlp.2.weight', 't_embedder.mlp.2.bias', 'y_embedder.embedding_table.weight',
    ], label);
    t.deepEqual(names.filter((n) => n.startsWith('blocks.1.')), [
      'blocks.1.attn.qkv.weight', 'blocks.1.attn.qkv.bias', 'blocks.1.attn.proj.weight', 'blocks.1.attn.proj.bias', 'blocks.1.mlp.fc1.weight',
      'blocks.1.mlp.fc1.bias', 'blocks.1.mlp.fc2.weight', 'blocks.1.mlp.fc2.bias', 'blocks.1.adaLN_modulation.1.weight', 'blocks.1.adaLN_modulation.1.bias',
    ], label);
    t.deepEqual(names.slice(-4), ['final_layer.linear.weight', 'final_layer.linear.bias', 'final_layer.adaLN_modulation.1.weight', 'final_layer.adaLN_modulation.1.bias'], label);
    const shapes = new Map(model.namedParameters().map(([n, p]) => [n, p.shape]));
    const { dim: d, channels: C, patch: p, classes: K } = model.config;
    t.deepEqual(shapes.get('x_embedder.proj.weight'), [d, C, p, p], `${label}: conv layout`);
    t.deepEqual(shapes.get('y_embedder.embedding_table.weight'), [K + 1, d], `${label}: K + 1 rows, the last the null class`);
    t.deepEqual(shapes.get('final_layer.linear.weight'), [p * p * model.outputChannels, d], label);
    t.is(model.outputChannels, (model.config.learnSigma ? 2 : 1) * C);
    model.dispose();
  }
});

// ---- names ---------------------------------------------------------------------------------

test('DiT names: dit-<size>/<p> with DiT sizes s, b, l, xl or d…w…h…; the other families refuse them and vice versa', (t) => {
  t.deepEqual(parseDitName('dit-s/2'), { depth: 12, dim: 384, heads: 6, patch: 2 });
  t.deepEqual(parseDitName('dit-b/4'), { depth: 12, dim: 768, heads: 12, patch: 4 });
  t.deepEqual(parseDitName('dit-l/1'), { depth: 24, dim: 1024, heads: 16, patch: 1 });
  t.deepEqual(parseDitName('dit-xl/8'), { depth: 28, dim: 1152, heads: 16, patch: 8 });
  t.deepEqual(parseDitName('dit-d4w64h4/1'), { depth: 4, dim: 64, heads: 4, patch: 1 });
  for (const name of ['dit-s/2', 'dit-xl/1', 'dit-d4w64h4/1', 'dit-d2w32h2/4']) t.is(ditModelName(parseDitName(name)), name, 'ditModelName inverts parseDitName');
  t.is(ditModelName({ depth: 12, dim: 384, heads: 12, patch: 2 }), 'dit-d12w384h12/2', "ViT-S's 12 heads are not DiT-S");
  for (const bad of ['dit-t/2', 'dit-s', 'dit-xl', 'dit-s/0', 'pit-s', 'vit-s/2', 'dit-d4w64/1', 'DiT-S/2', ' dit-s/2'])
    t.throws(() => parseDitName(bad), { instanceOf: RangeError, message: /DiT model name/ }, bad);
  t.throws(() => parseDitName('dit-t/2'), { message: /must be dit-<size>\/<patch>, <size> one of s, b, l, xl or d<depth>w<width>h<heads> .*; got "dit-t\/2"/ });
  t.throws(() => parseDitName('dit-l'), { message: /a DiT names its patch size, e.g. dit-l\/2 \(dit-l\/1 for one token per pixel\)/ });
  t.throws(() => parseModelName('dit-s/2'), { instanceOf: RangeError, message: /"dit-s\/2" is a diffusion transformer \(DiT\): it is built by dit\(\)/ });
  t.like(ditConfig('dit-xl/2', { classes: 10 }), { depth: 28, dim: 1152, heads: 16, patch: 2, classes: 10, channels: 4, classDropout: 0.1, learnSigma: true, posEmbed: 'sincos' });
  const model = dit('dit-d2w16h2/2', { imageSize: 4, channels: 1, classes: 2 });
  t.like(model.config, { depth: 2, dim: 16, heads: 2, patch: 2 });
  t.true(Object.isFrozen(model.config));
  model.dispose();
});

// ---- embeddings ----------------------------------------------------------------------------

test('timestep embedding: [cos, sin] of t·f over 128 frequencies against float64, and the t_embedder MLP on it', (t) => {
  const steps = [0, 1, 17, 250.5, 999];
  const emb = timestepEmbedding(steps);
  t.is(emb.length, steps.length * 256);
  for (const [b, s] of steps.entries())
    for (const j of [0, 1, 64, 127]) {
      const f = 10000 ** (-j / 128);
      t.true(Math.abs(emb[b * 256 + j]! - Math.cos(s * f)) < 1e-12, `cos t=${s} j=${j}`);
      t.true(Math.abs(emb[b * 256 + 128 + j]! - Math.sin(s * f)) < 1e-12, `sin t=${s} j=${j}`);
    }
  t.deepEqual(Array.from(timestepEmbedding([0]).slice(0, 4)), [1, 1, 1, 1], 't = 0: cos 0');
  // t_embedder.mlp: Linear(256, d) → SiLU → Linear(d, d), in float64 from the model's weights.
  const model = new DiffusionTransformer({ ...tiny, seed: 5 });
  const w = weightsOf(model), d = 16;
  const got = tidy(() => noGrad(() => values(model.tEmbedder.forward(steps))));
  const expected: number[] = [];
  for (let b = 0; b < steps.length; b++) {
    const hidden = Array.from({ length: d }, (_, o) => {
      let s = 0;
      for (let k = 0; k < 256; k++) s += w.get('t_embedder.mlp.0.weight')![o * 256 + k]! * emb[b * 256 + k]!;
      return s / (1 + Math.exp(-s));
    });
    for (let o = 0; o < d; o++) expected.push(hidden.reduce((s, v, k) => s + v * w.get('t_embedder.mlp.2.weight')![o * d + k]!, 0));
  }
  assertClose(t, got, expected, { atol: 1e-6, rtol: 1e-5 });
  model.dispose();
});

test('sincos pos_embed: a fixed (1, N, d) buffer of the 2-D table (no cls row) against float64', (t) => {
  const [h, w, d] = [3, 5, 16];
  const model = new DiffusionTransformer({ ...tiny, imageSize: [h, w], dim: d });
  const table = model.posEmbed!;
  t.deepEqual(table.shape, [1, h * w, d]);
  t.false(table.requiresGrad);
  t.false(model.parameters().includes(table));
  const stored = values(table);
  // DiT's get_2d_sincos_pos_embed: [1-D(d/2, col), 1-D(d/2, row)], 1-D = [sin(pos·ω), cos(pos·ω)], ω_k = 10000^(−k/(d/4)).
  const oneD = (D: number, pos: number) => {
    const omega = Array.from({ length: D / 2 }, (_, k) => 1 / 10000 ** (k / (D / 2)));
    return [...omega.map((o) => Math.sin(pos * o)), ...omega.map((o) => Math.cos(pos * o))];
  };
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++)
    assertClose(t, stored.slice((r * w + c) * d, (r * w + c + 1) * d), [...oneD(d / 2, c), ...oneD(d / 2, r)], { atol: 1e-7, rtol: 0, label: `(${r}, ${c})` });
  model.dispose();
});

test('learned pos_embed is a trained parameter (trunc-normal 0.02, first in order) and changes the output; none has no table', (t) => {
  const sincos = new DiffusionTransformer({ ...tiny, seed: 2 }), learned = new DiffusionTransformer({ ...tiny, seed: 2, posEmbed: 'learned' });
  const none = new DiffusionTransformer({ ...tiny, seed: 2, posEmbed: 'none' });
  t.is(learned.namedParameters()[0]![0], 'pos_embed');
  t.true(learned.posEmbed!.requiresGrad);
  const v = values(learned.posEmbed!);
  const std = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  t.true(Math.abs(std - 0.02) < 0.004, `std ${std}`);
  t.is(none.posEmbed, null);
  for (const m of [sincos, learned, none]) perturbZeroLayers(m, 9);
  const x = randomF32(2 * 2 * 16);
  const outs = [sincos, learned, none].map((m) => tidy(() => noGrad(() => values(m.forward(t32(x, [2, 2, 4, 4]), [5, 500], [0, 3], { train: false })))));
  t.notDeepEqual(outs[0], outs[1]);
  t.notDeepEqual(outs[1], outs[2]);
  tidy(() => {
    const out = learned.forward(t32(x, [2, 2, 4, 4]), [5, 500], [0, 3], { train: false });
    backward(out, t32(randomF32(out.size), out.shape));
  });
  t.true(values(learned.posEmbed!.grad!).some((g) => g !== 0), 'the learned table receives gradients');
  for (const m of [sincos, learned, none]) m.dispose();
});

// ---- adaLN-Zero ----------------------------------------------------------------------------

test('adaLN-Zero init: every block is the identity and the output is exactly zero; the rest follows DiT', (t) => {
  const model = new DiffusionTransformer({ ...tiny, patch: 2, seed: 4 });
  const params = new Map(model.namedParameters());
  for (const [name, p] of params) {
    const v = values(p);
    if (name.includes('adaLN_modulation.') || name.startsWith('final_layer.linear.')) t.true(v.every((x) => x === 0), `${name} zero`);
    else if (name.endsWith('.bias')) t.true(v.every((x) => x === 0), `${name} zero bias`);
  }
  // xavier-uniform Linears: U(±√(6/(fan_in + fan_out))); the patch embedding on its (d, C·p²) view.
  for (const [name, fanIn, fanOut] of [['blocks.0.attn.qkv.weight', 16, 48], ['blocks.1.mlp.fc2.weight', 64, 16], ['x_embedder.proj.weight', 8, 16]] as const) {
    const v = values(params.get(name)!), bound = Math.sqrt(6 / (fanIn + fanOut));
    t.true(v.every((x) => Math.abs(x) <= bound) && v.some((x) => Math.abs(x) > 0.8 * bound), `${name} xavier bound ${bound}`);
  }
  for (const name of ['t_embedder.mlp.0.weight', 't_embedder.mlp.2.weight', 'y_embedder.embedding_table.weight']) {
    const v = values(params.get(name)!);
    const std = Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    t.true(Math.abs(std - 0.02) < 0.006, `${name} std ${std}`);
  }
  tidy(() => noGrad(() => {
    const x = t32(randomF32(3 * 16 * 4), [3, 4, 16]), c = t32(randomF32(3 * 16), [3, 16]);
    for (const [i, block] of model.blocks.blocks.entries()) t.deepEqual(values(block.forward(x, c)), values(x), `block ${i} is the identity`);
    const out = model.forward(t32(randomF32(3 * 2 * 16), [3, 2, 4, 4]), [0, 500, 999], [0, 2, 3], { train: false });
    t.deepEqual(out.shape, [3, 4, 4, 4]);
    t.true(values(out).every((v) => v === 0), 'output exactly zero');
  }));
  perturbZeroLayers(model, 1);
  tidy(() => noGrad(() => {
    const x = t32(randomF32(3 * 16 * 4), [3, 4, 16]), c = t32(randomF32(3 * 16), [3, 16]);
    t.notDeepEqual(values(model.blocks.blocks[0]!.forward(x, c)), values(x), 'no longer the identity once the gates are not 0');
  }));
  model.dispose();
});

test('same seed gives the same weights and outputs; another seed does not', (t) => {
  const [a, b, c] = [1, 1, 2].map((seed) => new DiffusionTransformer({ ...tiny, seed }));
  for (const m of [a!, b!, c!]) perturbZeroLayers(m, 3);
  const x = randomF32(2 * 2 * 16);
  const out = (m: DiffusionTransformer) => tidy(() => noGrad(() => values(m.forward(t32(x, [2, 2, 4, 4]), [3, 7], [1, 2], { train: false }))));
  t.deepEqual(out(a!), out(b!));
  t.notDeepEqual(out(a!), out(c!));
  for (const m of [a!, b!, c!]) m.dispose();
});

// ---- label dropout -------------------------------------------------------------------------

test('label dropout: the same (seed, step) drops the same labels, other steps others, at rate ≈ 0.1; nothing at rate 0', (t) => {
  const labels = Int32Array.from({ length: 64 }, (_, i) => i % 10);
  const a = dropLabels(labels, 10, 0.1, { seed: 7, offset: 3 });
  t.deepEqual(dropLabels(labels, 10, 0.1, { seed: 7, offset: 3 }), a, 'reproducible');
  t.notDeepEqual(dropLabels(labels, 10, 0.1, { seed: 7, offset: 4 }), a, 'another step');
  t.notDeepEqual(dropLabels(labels, 10, 0.1, { seed: 8, offset: 3 }), a, 'another seed');
  t.true(Array.from(a).every((v, i) => v === labels[i] || v === 10), 'a label is kept or becomes the null class');
  t.deepEqual(Array.from(labels), Array.from({ length: 64 }, (_, i) => i % 10), 'the input is not changed');
  // 200 steps × 100 labels: the rate's standard error is √(0.09/20000) = 0.0021.
  let dropped = 0;
  const many = new Int32Array(100);
  for (let step = 0; step < 200; step++) dropped += dropLabels(many, 5, 0.1, { seed: 11, offset: step }).filter((v) => v === 5).length;
  const rate = dropped / 20000;
  t.true(Math.abs(rate - 0.1) < 0.01, `rate ${rate}`);
  t.deepEqual(dropLabels(labels, 10, 0, { seed: 7, offset: 3 }), labels);
  // The draws are the 'labelDrop' substream's: the step's own stream (drop path) is untouched.
  t.notDeepEqual(substream({ seed: 7, offset: 3 }, 'labelDrop'), { seed: 7, offset: 3 });
  t.throws(() => dropLabels(labels, 10, 1, { seed: 7, offset: 3 }), { instanceOf: RangeError, message: /'rate' must be in \[0, 1\)/ });
});

test('label dropout in the forward: on in training (as if the label were K), off in eval and with train: false', (t) => {
  const model = new DiffusionTransformer({ ...tiny, classes: 3, classDropout: 0.5, seed: 6 });
  perturbZeroLayers(model, 2);
  const B = 8, labels = [0, 1, 2, 0, 1, 2, 0, 1];
  const random = { seed: 5, offset: 9 };
  const dropped = Array.from(dropLabels(Int32Array.from(labels), 3, 0.5, random));
  t.true(dropped.some((v) => v === 3) && dropped.some((v, i) => v === labels[i]), 'this draw drops some labels and keeps some');
  const x = randomF32(B * 2 * 16), steps = labels.map((_, i) => 100 * i);
  const run = (y: number[], options: object) => tidy(() => noGrad(() => values(model.forward(t32(x, [B, 2, 4, 4]), steps, y, options))));
  const trained = run(labels, { random });
  t.deepEqual(trained, run(dropped, { train: false }), 'training forward = eval forward on the dropped labels');
  t.notDeepEqual(trained, run(labels, { train: false }));
  t.deepEqual(run(labels, { train: true, random }), trained);
  model.eval();
  t.deepEqual(run(labels, {}), run(labels, { train: false }), 'eval mode: no dropout, no random needed');
  t.deepEqual(run(labels, { random }), run(labels, { train: false }));
  model.train();
  t.throws(() => run(labels, {}), { instanceOf: TypeError, message: /drops labels \(classDropout 0.5\) and needs options.random/ });
  model.dispose();
  const noDrop = new DiffusionTransformer({ ...tiny, classDropout: 0 });
  t.notThrows(() => tidy(() => noGrad(() => noDrop.forward(t32(x, [B, 2, 4, 4]), steps, labels))), 'classDropout 0 draws nothing');
  noDrop.dispose();
});

// ---- forward and gradients against float64 -------------------------------------------------

for (const overrides of [{ patch: 1 }, { patch: 2, imageSize: [4, 6], posEmbed: 'learned', learnSigma: false }] as Partial<DitConfig>[]) {
  test(`forward and every gradient match a float64 reference DiT (${JSON.stringify(overrides)})`, (t) => {
    const model = new DiffusionTransformer({ ...tiny, ...overrides, seed: 8 });
    perturbZeroLayers(model, 4);
    // The timestep MLP and label table start at N(0, 0.02): scaled up so c, and the adaLN it
    // drives, vary between samples.
    tidy(() => model.loadStateDict(new Map(model.namedParameters()
      .filter(([n]) => n.startsWith('t_embedder') || n.startsWith('y_embedder'))
      .map(([n, p]) => [n, t32(values(p).map((v) => 25 * v), p.shape)])), { strict: false }));
    const config = model.config;
    const [H, W] = typeof config.imageSize === 'number' ? [config.imageSize, config.imageSize] : config.imageSize;
    const B = 2, C = config.channels, steps = [3, 640], labels = [1, 3];
    const x = randomF32(B * C * H * W);
    const Cout = model.outputChannels, outSize = B * Cout * H * W;
    const weightsOut = randomF32(outSize);
    // Σ weightsOut ∘ out through the model's autograd.
    const grads = tidy(() => {
      const xt = t32(x, [B, C, H, W], true);
      const out = model.forward(xt, steps, labels, { train: false });
      t.deepEqual(out.shape, [B, Cout, H, W]);
      const w = weightsOf(model);
      assertClose(t, values(out), ditReference(config, w, { x, t: steps, y: labels }), { atol: 2e-5, rtol: 1e-4, label: 'forward' });
      backward(out, t32(weightsOut, out.shape));
      return new Map([['x', Float64Array.from(xt.grad!.toArray())], ...model.namedParameters().map(([n, p]) => [n, Float64Array.from(p.grad!.toArray())] as const)]);
    });
    // Central differences of the float64 reference, probing up to 6 entries of every tensor.
    const w = weightsOf(model);
    const names = ['x', ...model.namedParameters().map(([n]) => n)];
    const inputs = names.map((n) => (n === 'x' ? Float64Array.from(x) : w.get(n)!));
    const objective = (ins: Float64Array[]) => {
      const weights: Weights = new Map(w);
      names.forEach((n, i) => n !== 'x' && weights.set(n, ins[i]!));
      const out = ditReference(config, weights, { x: ins[0]!, t: steps, y: labels });
      return out.reduce((s, v, i) => s + v * weightsOut[i]!, 0);
    };
    const fd = finiteDifferences(objective, inputs, 1e-5, 6);
    names.forEach((n, i) => {
      const g = grads.get(n)!, scale = Math.max(...Array.from(g, Math.abs), 1e-3);
      assertClose(t, g, fd[i]!, { atol: 2e-4 * scale, rtol: 2e-3, probedOnly: true, label: n });
    });
    // The unused label rows (0 and 2 for labels 1, 3) get exactly zero gradient.
    const table = grads.get('y_embedder.embedding_table.weight')!, d = config.dim;
    t.true(table.slice(0, d).every((v) => v === 0) && table.slice(2 * d, 3 * d).every((v) => v === 0));
    model.dispose();
  });
}

test('unpatchify reads each token in (row, col, channel) order, the order of DiT\'s final Linear', (t) => {
  const [B, h, w, p, C] = [2, 2, 3, 2, 3];
  const tokens = Float32Array.from({ length: B * h * w * p * p * C }, (_, i) => i);
  const images = tidy(() => noGrad(() => values(unpatchify(tensor(tokens, [B, h * w, p * p * C]), p, [h, w]))));
  const H = h * p, W = w * p;
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const token = Math.floor(y / p) * w + Math.floor(x / p);
    if (images[((b * C + c) * H + y) * W + x] !== tokens[(b * h * w + token) * p * p * C + ((y % p) * p + (x % p)) * C + c]) {
      t.fail(`(${b}, ${c}, ${y}, ${x})`);
      return;
    }
  }
  t.throws(() => unpatchify(tensor(tokens, [B, h * w, p * p * C]), p, [3, 3]), { instanceOf: RangeError, message: /must hold 3×3 = 9 tokens/ });
  t.pass();
});

// ---- memory --------------------------------------------------------------------------------

test('forward and backward inside tidy leave only the gradients; an eval forward leaves nothing', (t) => {
  const model = new DiffusionTransformer({ ...tiny, seed: 1 });
  perturbZeroLayers(model, 5);
  const x = randomF32(2 * 2 * 16);
  const n = model.parameters().length;
  const before = memory().cpu.tensors;
  tidy(() => {
    noGrad(() => model.forward(t32(x, [2, 2, 4, 4]), [1, 2], [0, 1], { train: false }));
  });
  t.is(memory().cpu.tensors, before, 'eval forward');
  tidy(() => {
    const out = model.forward(t32(x, [2, 2, 4, 4]), [1, 2], [0, 1], { random: { seed: 1, offset: 0 } });
    backward(out, t32(randomF32(out.size), out.shape));
  });
  t.is(memory().cpu.tensors, before + n, 'one gradient per parameter');
  model.dispose();
  t.is(memory().cpu.tensors, before - n - 1, 'disposed with its sin-cos buffer and gradients');
});

// ---- errors --------------------------------------------------------------------------------

test('bad inputs are errors naming the parameter: x shape, dtype and disposal, t and y ranges and lengths, precision', (t) => {
  const model = new DiffusionTransformer({ ...tiny, classes: 3 });
  model.eval();
  tidy(() => noGrad(() => {
    const x = t32(randomF32(2 * 2 * 16), [2, 2, 4, 4]);
    t.throws(() => model.forward(t32(randomF32(2 * 16), [2, 1, 4, 4]), [0, 1], [0, 1]), { instanceOf: RangeError, message: /DiT: 'x' must be \(B, 2, 4, 4\) with B ≥ 1, got shape \[2, 1, 4, 4\]/ });
    t.throws(() => model.forward(t32(randomF32(32), [2, 16]), [0, 1], [0, 1]), { instanceOf: RangeError, message: /'x' must be \(B, 2, 4, 4\)/ });
    t.throws(() => model.forward(tensor(new Int32Array(32), [1, 2, 4, 4]), [0], [0]), { instanceOf: TypeError, message: /'x' must be f32, got i32/ });
    t.throws(() => model.forward(null as unknown as Tensor, [0], [0]), { instanceOf: TypeError, message: /'x' must be a Tensor/ });
    t.throws(() => model.forward(x, [0, 1000], [0, 1]), { instanceOf: RangeError, message: /DiT: 't\[1\]' must be a timestep in \[0, 1000\), got 1000/ });
    t.throws(() => model.forward(x, [-1, 0], [0, 1]), { instanceOf: RangeError, message: /'t\[0\]' must be a timestep in \[0, 1000\), got -1/ });
    t.throws(() => model.forward(x, [Number.NaN, 0], [0, 1]), { instanceOf: RangeError, message: /'t\[0\]'.*got NaN/ });
    t.throws(() => model.forward(x, [0], [0, 1]), { instanceOf: RangeError, message: /DiT: 't' must hold B = 2 values, got 1/ });
    t.throws(() => model.forward(x, tensor([0, 1, 2]), [0, 1]), { instanceOf: RangeError, message: /DiT: 't' must be \(B\) = \(2\), got shape \[3\]/ });
    t.throws(() => model.forward(x, 5 as unknown as number[], [0, 1]), { instanceOf: TypeError, message: /'t' must be a Tensor \(B\) or an array of 2 numbers, got number/ });
    t.throws(() => model.forward(x, [0, 1], [0, 4]), { instanceOf: RangeError, message: /DiT: 'y\[1\]' must be a class label in \[0, 3\] \(3: the null class\), got 4/ });
    t.throws(() => model.forward(x, [0, 1], [-1, 0]), { instanceOf: RangeError, message: /'y\[0\]' must be a class label/ });
    t.throws(() => model.forward(x, [0, 1], [0.5, 0]), { instanceOf: RangeError, message: /'y\[0\]' must be a class label .* got 0.5/ });
    t.throws(() => model.forward(x, [0, 1], [0, 1], { precision: 'f16' as never }), { instanceOf: TypeError, message: /precision must be "f32" or "mixed", got "f16"/ });
    const dead = tensor(new Int32Array([0, 1]));
    dead.dispose();
    t.throws(() => model.forward(x, [0, 1], dead), { instanceOf: TypeError, message: /DiT: 'y' is a disposed tensor/ });
    const gone = t32(randomF32(2 * 2 * 16), [2, 2, 4, 4]);
    gone.dispose();
    t.throws(() => model.forward(gone, [0, 1], [0, 1]), { instanceOf: TypeError, message: /DiT: 'x' is a disposed tensor/ });
    // Tensors work as well as arrays: i32 labels, f32 timesteps (DiT's respaced samplers call with the original t).
    t.deepEqual(values(model.forward(x, tensor([0, 999]), tensor(new Int32Array([3, 0])))), values(model.forward(x, [0, 999], [3, 0])));
  }));
  model.dispose();
});

test('bad configs are errors naming the field', (t) => {
  const cases: [Partial<DitConfig>, RegExp][] = [
    [{ classDropout: 1 }, /DiT: 'classDropout' must be in \[0, 1\), got 1/],
    [{ learnSigma: 'yes' as unknown as boolean }, /DiT: 'learnSigma' must be true or false/],
    [{ patch: 3 }, /DiT: 'imageSize' 4×4 must be divisible by 'patch' 3/],
    [{ heads: 3 }, /DiT: 'heads' 3 must divide 'dim' 16/],
    [{ classes: 0 }, /DiT: 'classes' must be a positive integer, got 0/],
    [{ timesteps: 0 }, /DiT: 'timesteps' must be a positive integer/],
    [{ posEmbed: 'sincos', dim: 18, heads: 2 }, /sincos position embedding needs 'dim' divisible by 4, got 18/],
    [{ mlpRatio: 0 }, /DiT: 'mlpRatio' must be positive/],
    [{ seed: -1 }, /'seed' must be a non-negative integer/],
  ];
  for (const [overrides, message] of cases) t.throws(() => new DiffusionTransformer({ ...tiny, ...overrides }), { message }, JSON.stringify(overrides));
  t.throws(() => ditParameterCount({ ...ditConfig('dit-s/2'), patch: 3 }), { message: /divisible by 'patch' 3/ });
});

(gpu ? test.skip : test)('without a GPU, a DiT asked for cuda is a clear error', (t) => {
  t.throws(() => new DiffusionTransformer(tiny, { device: 'cuda' }), { instanceOf: TypeError, message: /device "cuda" is not available/ });
});
