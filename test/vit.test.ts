// ViT / PiT: SPEC §1 parameter counts, patchify order, sin-cos table (SPEC §2), forward
// shape and determinism, gradients for every parameter, drop path in training.
import test from 'ava';
import { backward, noGrad, sliceTokens, softmaxCrossEntropy, tensor, tidy, type Tensor } from '../lib/index.js';
import { modelName, parseModelName } from '../lib/models/names.js';
import { modelConfig, parameterCount, VisionTransformer, vit, type VitConfig } from '../lib/models/vit.js';
import { sincosPositionTable } from '../lib/nn/index.js';
import { assertClose, randomF32, t32 } from './helpers.js';

const values = (x: Tensor): number[] => Array.from(x.toArray());
const tiny: Partial<VitConfig> = { imageSize: 8, channels: 1, depth: 2, dim: 32, heads: 2, classes: 10 };

test('parameterCount matches SPEC §1 for the four PiT presets on 32×32×3, 100 classes', (t) => {
  t.is(parameterCount(modelConfig('pit-t')), 5_555_812);
  t.is(parameterCount(modelConfig('pit-s')), 21_728_356);
  t.is(parameterCount(modelConfig('pit-b')), 85_923_940);
  t.is(parameterCount(modelConfig('pit-l')), 303_468_644);
  // A direct evaluation of SPEC's formula for ViT-T/2 (N = 256): depth·(12d² + 13d) + ...
  const d = 192, N = 256;
  t.is(parameterCount(modelConfig('vit-t/2')), 12 * (12 * d * d + 13 * d) + (4 * 3 * d + d) + d + (N + 1) * d + 2 * d + (d * 100 + 100));
});

test('constructed PiT-T and ViT-T/2 have the counted parameters under timm names', (t) => {
  for (const name of ['pit-t', 'vit-t/2']) {
    const model = vit(name);
    t.is(model.parameterCount(), name === 'pit-t' ? 5_555_812 : parameterCount(model.config), name);
    const names = model.namedParameters().map(([n]) => n);
    // PyTorch's order: a module's own parameters, then its children's.
    t.deepEqual(names.slice(0, 4), ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias']);
    t.deepEqual(names.slice(4, 6), ['blocks.0.norm1.weight', 'blocks.0.norm1.bias']);
    t.true(names.includes('blocks.11.mlp.fc2.weight'));
    t.deepEqual(names.slice(-4), ['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']);
    model.dispose();
  }
});

test('config variants: counts by construction equal the formula; cls pool names `norm`', (t) => {
  for (const overrides of [{ posEmbed: 'sincos' }, { posEmbed: 'none' }, { pool: 'cls' }, { patch: 2, mlpRatio: 2 }, { imageSize: [6, 8] }] as Partial<VitConfig>[]) {
    const model = new VisionTransformer({ ...tiny, ...overrides });
    t.is(model.parameterCount(), parameterCount(model.config), JSON.stringify(overrides));
    const names = model.namedParameters().map(([n]) => n);
    t.is(names.includes('pos_embed'), (overrides.posEmbed ?? 'learned') === 'learned');
    t.true(names.includes(overrides.pool === 'cls' ? 'norm.weight' : 'fc_norm.weight'));
    model.dispose();
  }
});

test('model names: presets, any patch, custom sizes; a wrong name is an error stating the grammar; overrides apply', (t) => {
  t.deepEqual(parseModelName('pit-t'), { depth: 12, dim: 192, heads: 12, patch: 1 });
  t.deepEqual(parseModelName('vit-l/2'), { depth: 24, dim: 1024, heads: 16, patch: 2 });
  t.deepEqual(parseModelName('vit-b/16'), { depth: 12, dim: 768, heads: 12, patch: 16 });
  t.deepEqual(parseModelName('pit-d4w64h4'), { depth: 4, dim: 64, heads: 4, patch: 1 });
  t.deepEqual(parseModelName('vit-d2w32h4/4'), { depth: 2, dim: 32, heads: 4, patch: 4 });
  t.deepEqual(parseModelName('vit-s/1'), parseModelName('pit-s'));
  for (const name of ['pit-t', 'vit-s/2', 'pit-d4w64h4', 'vit-d2w32h4/4']) t.is(modelName(parseModelName(name)), name, 'modelName inverts parseModelName');
  t.is(modelName(parseModelName('vit-s/1')), 'pit-s');
  for (const bad of ['pit-xl', 'custom', 'vit-t', 'pit-t/2', 'pit-d0w64h4', 'pit-d4w64', 'vit-t/0', ' pit-t'])
    t.throws(() => parseModelName(bad), { instanceOf: RangeError, message: /model name/ }, bad);
  t.throws(() => modelConfig('pit-xl'), { instanceOf: RangeError, message: /must be pit-<size> or vit-<size>\/<patch>, <size> one of t, s, b, l or d<depth>w<width>h<heads> .*; got "pit-xl"/ });
  t.throws(() => modelConfig('pit-t/2'), { message: /a PiT has 1×1 patches; write vit-…\/2/ });
  const c = modelConfig('vit-s/2', { classes: 10, dropPath: 0.1 });
  t.like(c, { depth: 12, dim: 384, heads: 12, patch: 2, classes: 10, dropPath: 0.1, mlpRatio: 4 });
  t.throws(() => new VisionTransformer({ ...tiny, patch: 3 }), { instanceOf: RangeError, message: /8×8 must be divisible by 'patch' 3/ });
});

test('patchify flattens each patch in (channel, row, col) order, patches row-major', (t) => {
  const [B, C, H, W, p] = [2, 3, 4, 6, 2];
  const model = new VisionTransformer({ ...tiny, imageSize: [H, W], channels: C, patch: p });
  const image = Float32Array.from({ length: B * C * H * W }, (_, i) => i);
  const tokens = tidy(() => noGrad(() => model.patchify(tensor(image, [B, C, H, W])).toArray()));
  const [h, w] = [H / p, W / p];
  const expected: number[] = [];
  for (let b = 0; b < B; b++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++)
    for (let ch = 0; ch < C; ch++) for (let r = 0; r < p; r++) for (let c = 0; c < p; c++)
      expected.push(image[((b * C + ch) * H + i * p + r) * W + j * p + c]!);
  t.deepEqual(Array.from(tokens), expected);
  model.dispose();
  const pit = new VisionTransformer({ ...tiny, imageSize: [3, 5], channels: 2 });
  const pix = Float32Array.from({ length: 2 * 15 }, (_, i) => i);
  const pixTokens = tidy(() => noGrad(() => pit.patchify(tensor(pix, [1, 2, 3, 5])).toArray()));
  t.deepEqual(Array.from(pixTokens).slice(0, 6), [0, 15, 1, 16, 2, 17], 'p = 1: token = pixel, channels last');
  pit.dispose();
});

test("patch_embed.proj.weight has timm's conv layout (d, C, p, p): the embedding is the stride-p convolution", (t) => {
  const [B, C, H, W, p, d] = [2, 3, 4, 6, 2, 32];
  const model = new VisionTransformer({ ...tiny, imageSize: [H, W], channels: C, patch: p, dim: d });
  const weight = model.patchEmbed.proj.weight, bias = model.patchEmbed.proj.bias;
  t.deepEqual(weight.shape, [d, C, p, p]);
  t.deepEqual(bias.shape, [d]);
  const image = randomF32(B * C * H * W);
  const got = tidy(() => noGrad(() => model.patchEmbed.forward(model.patchify(t32(image, [B, C, H, W]))).toArray()));
  const w = weight.toArray(), bv = bias.toArray();
  const [h, wt] = [H / p, W / p];
  const expected = new Float64Array(B * h * wt * d);
  for (let b = 0; b < B; b++) for (let i = 0; i < h; i++) for (let j = 0; j < wt; j++) for (let o = 0; o < d; o++) {
    let acc = bv[o]!;
    for (let ch = 0; ch < C; ch++) for (let r = 0; r < p; r++) for (let c = 0; c < p; c++)
      acc += w[((o * C + ch) * p + r) * p + c]! * image[((b * C + ch) * H + i * p + r) * W + j * p + c]!;
    expected[((b * h + i) * wt + j) * d + o] = acc;
  }
  assertClose(t, got, expected, { rtol: 1e-5, atol: 1e-6 });
  model.dispose();
});

test('sincos position table matches a float64 reference of SPEC §2; it is a fixed buffer', (t) => {
  // MAE's get_2d_sincos_pos_embed: emb = [1d(D/2, col), 1d(D/2, row)], 1d = [sin(pos·ω), cos(pos·ω)].
  const oneD = (D: number, pos: number) => {
    const omega = Array.from({ length: D / 2 }, (_, k) => 1 / 10000 ** (k / (D / 2)));
    return [...omega.map((o) => Math.sin(pos * o)), ...omega.map((o) => Math.cos(pos * o))];
  };
  const [h, w, D] = [5, 7, 32];
  const table = sincosPositionTable(h, w, D);
  t.deepEqual(Array.from(table.slice(0, D)), new Array(D).fill(0), 'cls row zeros');
  for (const [r, c] of [[0, 0], [0, 3], [2, 6], [4, 1]] as const) {
    const row = Array.from(table.slice((1 + r * w + c) * D, (2 + r * w + c) * D));
    assertClose(t, row, [...oneD(D / 2, c), ...oneD(D / 2, r)], { atol: 1e-12, rtol: 0, label: `(${r}, ${c})` });
  }
  const model = new VisionTransformer({ ...tiny, imageSize: [h, w], posEmbed: 'sincos' });
  t.false(model.parameters().includes(model.posEmbed!));
  t.false(model.posEmbed!.requiresGrad);
  const stored = values(model.posEmbed!);
  const at = (1 + 2 * w + 6) * 32;
  assertClose(t, stored.slice(at, at + 32), [...oneD(16, 6), ...oneD(16, 2)], { atol: 1e-7, rtol: 0, label: 'model (2, 6)' });
  model.dispose();
});

test('forward: logits (B, K); same seed bit-identical, another seed different', (t) => {
  const a = new VisionTransformer({ ...tiny, seed: 1 }), b = new VisionTransformer({ ...tiny, seed: 1 }), c = new VisionTransformer({ ...tiny, seed: 2 });
  for (const m of [a, b, c]) m.eval();
  tidy(() => noGrad(() => {
    const x = t32(randomF32(3 * 64), [3, 1, 8, 8]);
    const la = a.forward(x);
    t.deepEqual(la.shape, [3, 10]);
    t.true(values(la).every(Number.isFinite));
    t.deepEqual(values(b.forward(x)), values(la));
    t.notDeepEqual(values(c.forward(x)), values(la));
    t.throws(() => a.forward(t32(new Float64Array(64), [1, 1, 4, 16])), { instanceOf: RangeError, message: /'images' must be \(B, 1, 8, 8\)/ });
  }));
  for (const m of [a, b, c]) m.dispose();
});

test('backward reaches every parameter with finite, nonzero gradients (avg and cls pools, p = 1 and 2)', (t) => {
  for (const overrides of [{}, { pool: 'cls', patch: 2 }] as Partial<VitConfig>[]) {
    const model = new VisionTransformer({ ...tiny, ...overrides, seed: 3 });
    tidy(() => {
      const x = t32(randomF32(4 * 64), [4, 1, 8, 8]);
      backward(softmaxCrossEntropy(model.forward(x), tensor(new Int32Array([1, 7, 3, 0]), [4])));
    });
    for (const [name, p] of model.namedParameters()) {
      t.truthy(p.grad, name);
      const g = values(p.grad!);
      t.true(g.every(Number.isFinite), `${name} finite`);
      t.true(g.some((v) => v !== 0), `${name} nonzero`);
    }
    model.dispose();
  }
});

test('training with drop path: needs a random stream, deterministic given it, identity in eval mode', (t) => {
  const model = new VisionTransformer({ ...tiny, depth: 3, dropPath: 0.5, seed: 4 });
  t.deepEqual(model.blocks.blocks.map((b) => b.dropPath), [0, 0.25, 0.5]);
  tidy(() => noGrad(() => {
    const x = t32(randomF32(16 * 64), [16, 1, 8, 8]);
    t.throws(() => model.forward(x), { message: /needs a random stream/ });
    const first = values(model.forward(x, { random: { seed: 9, offset: 0 } }));
    t.deepEqual(values(model.forward(x, { random: { seed: 9, offset: 0 } })), first);
    t.notDeepEqual(values(model.forward(x, { random: { seed: 9, offset: 1 } })), first);
    model.eval();
    const evalA = values(model.forward(x)), evalB = values(model.forward(x, { random: { seed: 9, offset: 0 } }));
    t.deepEqual(evalA, evalB);
    t.notDeepEqual(evalA, first);
  }));
  model.dispose();
});

test('a ViT state dict loads into another of the same config, bit-exact', (t) => {
  const a = new VisionTransformer({ ...tiny, seed: 5 }).eval(), b = new VisionTransformer({ ...tiny, seed: 6 }).eval();
  b.loadStateDict(a.stateDict());
  tidy(() => noGrad(() => {
    const x = t32(randomF32(2 * 64), [2, 1, 8, 8]);
    t.deepEqual(values(b.forward(x)), values(a.forward(x)));
  }));
  const other = new VisionTransformer({ ...tiny, dim: 48, heads: 3 });
  t.throws(() => other.loadStateDict(a.stateDict()), { instanceOf: RangeError, message: /"cls_token" must have shape \[1, 1, 48\], got \[1, 1, 32\]/ });
  for (const m of [a, b, other]) m.dispose();
});

test('the encoder in steps: embed (patches + position rows 1..N), prependCls (cls + row 0), blocks — what MAE masks between', (t) => {
  const model = new VisionTransformer({ ...tiny, seed: 8 }).eval();
  tidy(() => noGrad(() => {
    const x = t32(randomF32(2 * 64), [2, 1, 8, 8]);
    const tokens = model.embed(x);
    t.deepEqual(tokens.shape, [2, 64, 32]);
    const pos = values(model.posEmbed!), patches = values(model.patchEmbed.forward(model.patchify(x))), got = values(tokens);
    for (const i of [0, 31, 64 * 32 + 5]) t.is(got[i], Math.fround(patches[i]! + pos[32 + (i % (64 * 32))]!), `token value ${i}`);
    // Keep 3 tokens of each image (as MAE's masking does) and encode only those.
    const kept = model.prependCls(sliceTokens(tokens, 10, 3));
    t.deepEqual(kept.shape, [2, 4, 32]);
    const cls = values(kept).slice(0, 32), clsRow = values(model.clsToken).map((v, i) => Math.fround(v + pos[i]!));
    t.deepEqual(cls, clsRow);
    t.deepEqual(model.blocks.forward(kept).shape, [2, 4, 32]);
    t.deepEqual(values(model.features(x)), values(model.blocks.forward(model.prependCls(model.embed(x)))));
  }));
  model.dispose();
});

test('loadStateDict partial mode: loads the names both have and reports the rest; a wrong shape still changes nothing', (t) => {
  const source = new VisionTransformer({ ...tiny, classes: 10, seed: 1 });
  const target = new VisionTransformer({ ...tiny, classes: 5, pool: 'cls', seed: 2 });
  const encoder = new Map([...source.stateDict()].filter(([n]) => !n.startsWith('head.') && !n.startsWith('fc_norm.')));
  encoder.set('mask_token', source.clsToken);
  t.throws(() => target.loadStateDict(encoder), { instanceOf: RangeError, message: /missing "norm.weight", "norm.bias", "head.weight", "head.bias"; unexpected "mask_token"/ });
  const headBefore = values(target.head.weight);
  const report = target.loadStateDict(encoder, { strict: false });
  t.deepEqual(report.missing, ['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
  t.deepEqual(report.unexpected, ['mask_token']);
  t.is(report.loaded.length, encoder.size - 1);
  t.deepEqual(values(target.blocks.blocks[1]!.mlp.fc2.weight), values(source.blocks.blocks[1]!.mlp.fc2.weight));
  t.deepEqual(values(target.head.weight), headBefore, 'what was not given is untouched');
  const wide = new VisionTransformer({ ...tiny, dim: 48, heads: 3 });
  const clsBefore = values(wide.clsToken);
  t.throws(() => wide.loadStateDict(encoder, { strict: false }), { instanceOf: RangeError, message: /"cls_token" must have shape \[1, 1, 48\]/ });
  t.deepEqual(values(wide.clsToken), clsBefore);
  for (const m of [source, target, wide]) m.dispose();
});
