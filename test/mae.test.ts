// MAE (SPEC §3): per-sample masking from the 'mask' substream, the masked loss against a
// float64 reference (plain and normPixLoss), finite-difference gradients through the decoder
// and the masking gathers, MAE's tensor names and init, the parameter-count formula, devices,
// and a tiny pre-training on MNIST digits whose reconstruction loss falls.
import test from 'ava';
import {
  AdamW, backward, loadMnist, noGrad, normalize, rand, selectBackend, substream, tensor, tidy, type Tensor,
} from '../lib/index.js';
import {
  MaskedAutoencoder, maeConfig, maeParameterCount, randomMasking, type MaeConfig,
} from '../lib/models/mae.js';
import { assertClose, probeIndices, randomF32, relativeError } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU MAE device test skipped: ${selectBackend().reasons.join('; ')}`);

/** Head size 8 is the attention kernels' smallest. */
const tiny: Partial<MaeConfig> = { imageSize: 4, channels: 1, depth: 1, dim: 8, heads: 1, decoderDepth: 1, decoderDim: 8, decoderHeads: 1 };

const values = (x: Tensor): number[] => Array.from(x.toArray());
const images = (shape: [number, number, number, number]): Tensor => tensor(Float32Array.from(randomF32(shape.reduce((a, b) => a * b, 1))), shape);

/** Tokens of (B, C, H, W) in patchify's order: patches row-major, each (channel, row, col). */
function patchesRef(x: ArrayLike<number>, [B, C, H, W]: number[], p: number): number[][] {
  const out: number[][] = [];
  for (let b = 0; b < B; b++) for (let i = 0; i < H / p; i++) for (let j = 0; j < W / p; j++) {
    const token: number[] = [];
    for (let c = 0; c < C; c++) for (let r = 0; r < p; r++) for (let s = 0; s < p; s++) token.push(x[((b * C + c) * H + i * p + r) * W + j * p + s]!);
    out.push(token);
  }
  return out;
}

/** Σ over removed tokens of mean_P (pred − target)², over their count; float64. */
function maskedMseRef(pred: ArrayLike<number>, targets: number[][], mask: ArrayLike<number>): number {
  const P = targets[0]!.length;
  let total = 0, count = 0;
  targets.forEach((token, n) => {
    if (!mask[n]) return;
    let e = 0;
    for (let k = 0; k < P; k++) e += (pred[n * P + k]! - token[k]!) ** 2;
    total += e / P;
    count++;
  });
  return total / count;
}

test('masking: int(N·(1−r)) kept per sample, ids_restore inverts ids_shuffle, mask marks the removed, drawn from the mask substream', (t) => {
  const [B, N, r] = [4, 64, 0.75];
  const random = { seed: 5, offset: 3 };
  const m = randomMasking(B, N, r, random);
  t.is(m.keep, 16);
  const noise = tidy(() => rand([B, N], substream(random, 'mask')).toArray());
  for (let b = 0; b < B; b++) {
    const row = (a: ArrayLike<number>) => Array.from(a).slice(b * N, (b + 1) * N);
    const shuffle = row(m.idsShuffle), restore = row(m.idsRestore), mask = row(m.mask), u = row(noise);
    t.deepEqual([...shuffle].sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i), 'ids_shuffle is a permutation');
    t.deepEqual(shuffle, [...shuffle].sort((i, j) => u[i]! - u[j]!), 'ids_shuffle = argsort(noise of the mask substream)');
    t.true(shuffle.every((n, k) => restore[n] === k), 'ids_restore[ids_shuffle[k]] = k');
    t.is(mask.filter((v) => v === 0).length, 16, `sample ${b}: exactly 16 visible`);
    t.true(mask.every((v, n) => v === (restore[n]! >= 16 ? 1 : 0)), 'mask = 1 exactly for tokens shuffled past K');
  }
  const masks = Array.from({ length: B }, (_, b) => Array.from(m.mask.subarray(b * N, (b + 1) * N)).join(''));
  t.is(new Set(masks).size, B, 'every sample has its own mask');
  t.deepEqual(randomMasking(B, N, r, { seed: 5, offset: 3 }), m, 'reproducible from (seed, step)');
  t.notDeepEqual(randomMasking(B, N, r, { seed: 5, offset: 4 }).mask, m.mask, 'another step, other masks');
  t.notDeepEqual(randomMasking(B, N, r, { seed: 6, offset: 3 }).mask, m.mask, 'another seed, other masks');
  const drop = tidy(() => rand([B, N], { seed: 5, offset: 3 }).toArray());
  t.notDeepEqual(Array.from(drop), Array.from(noise), "the mask noise is not the step's own (drop-path) stream");
  t.is(randomMasking(2, 1024, 0.75, random).keep, 256, 'SPEC §3: 256 of 1,024 pixels');
  t.throws(() => randomMasking(2, 4, 0.9, random), { instanceOf: RangeError, message: /int\(N·\(1 − r\)\) in \[1, N\)/ });
});

test('forward: shapes, the masks of randomMasking for the same stream, and the loss of a float64 reference over removed tokens only', (t) => {
  const model = new MaskedAutoencoder({ ...tiny, channels: 3 });
  const shape: [number, number, number, number] = [3, 3, 4, 4];
  const random = { seed: 9, offset: 2 };
  tidy(() => noGrad(() => {
    const x = images(shape);
    const out = model.forward(x, { random });
    t.deepEqual(out.pred.shape, [3, 16, 3]);
    t.deepEqual(out.loss.shape, []);
    const expected = randomMasking(3, 16, 0.75, random);
    t.deepEqual(values(out.mask), Array.from(expected.mask));
    t.deepEqual(values(out.idsRestore), Array.from(expected.idsRestore));
    const pixels = x.toArray(), pred = out.pred.toArray(), mask = out.mask.toArray();
    const ref = maskedMseRef(pred, patchesRef(pixels, shape, 1), mask);
    assertClose(t, out.loss.toArray(), [ref], { rtol: 1e-5, atol: 0, label: 'masked loss' });
    // Change every visible pixel's target: the loss must not move. A removed pixel: it must.
    const visible = pixels.slice(), hidden = pixels.slice();
    for (let n = 0; n < 3 * 16; n++) for (let c = 0; c < 3; c++) {
      const at = (Math.floor(n / 16) * 3 + c) * 16 + (n % 16);
      if (!mask[n]) visible[at] = visible[at]! + 5;
    }
    const firstRemoved = Array.from(mask).indexOf(1);
    hidden[firstRemoved] = hidden[firstRemoved]! + 5;  // sample 0, channel 0: token firstRemoved
    t.is(model.loss(tensor(visible as Float32Array, shape), out.pred, out.mask).toArray()[0], out.loss.toArray()[0], 'visible targets are ignored');
    t.not(model.loss(tensor(hidden as Float32Array, shape), out.pred, out.mask).toArray()[0], out.loss.toArray()[0], 'removed targets count');
  }));
  t.throws(() => model.forward(tensor(new Float32Array(48), [1, 3, 4, 4]), {} as never), { instanceOf: TypeError, message: /options.random \{seed, offset\} is required/ });
  model.dispose();
});

test('normPixLoss: a clear error at p = 1; at p = 2 the target is normalised per token (unbiased variance + 1e-6), as a float64 reference', (t) => {
  t.throws(() => new MaskedAutoencoder({ ...tiny, normPixLoss: true }), { instanceOf: RangeError, message: /'normPixLoss' needs patch > 1: at p = 1 .*undefined for 1 channel.*SPEC §3/ });
  const model = new MaskedAutoencoder({ ...tiny, imageSize: 8, channels: 3, patch: 2, normPixLoss: true });
  const shape: [number, number, number, number] = [2, 3, 8, 8];
  tidy(() => noGrad(() => {
    const x = images(shape);
    const out = model.forward(x, { random: { seed: 1, offset: 0 } });
    const targets = patchesRef(x.toArray(), shape, 2).map((token) => {
      const P = token.length, mu = token.reduce((a, b) => a + b, 0) / P;
      const variance = token.reduce((a, b) => a + (b - mu) ** 2, 0) / (P - 1);
      return token.map((v) => (v - mu) / Math.sqrt(variance + 1e-6));
    });
    const ref = maskedMseRef(out.pred.toArray(), targets, out.mask.toArray());
    assertClose(t, out.loss.toArray(), [ref], { rtol: 1e-5, atol: 0, label: 'normPixLoss' });
    const plain = maskedMseRef(out.pred.toArray(), patchesRef(x.toArray(), shape, 2), out.mask.toArray());
    t.true(Math.abs(plain - ref) > 1e-3 * ref, 'the normalisation changes the target');
  }));
  model.dispose();
});

test('gradients of the decoder path, the mask token and the masking gathers match central finite differences', (t) => {
  const model = new MaskedAutoencoder({ ...tiny, seed: 4 });
  const x = images([2, 1, 4, 4]);
  const random = { seed: 3, offset: 1 };
  const params = new Map(model.namedParameters());
  const lossWith = (name: string, v: Float32Array): number => tidy(() => noGrad(() => {
    model.loadStateDict(new Map([[name, tensor(v, params.get(name)!.shape)]]), { strict: false });
    return model.forward(x, { random }).loss.toArray()[0]!;
  }));
  tidy(() => backward(model.forward(x, { random }).loss));
  const names = ['mask_token', 'decoder_pos_embed', 'decoder_embed.weight', 'decoder_blocks.0.attn.qkv.weight', 'decoder_norm.weight', 'decoder_pred.weight', 'decoder_pred.bias', 'patch_embed.proj.weight', 'pos_embed'];
  const h = 1e-3;
  for (const name of names) {
    const p = params.get(name)!;
    const grad = p.grad!.toArray() as Float32Array, saved = p.toArray() as Float32Array;
    const probes = probeIndices(p.size, 12);
    const fd = probes.map((i) => {
      const up = saved.slice(), down = saved.slice();
      up[i] = up[i]! + h;
      down[i] = down[i]! - h;
      return (lossWith(name, up) - lossWith(name, down)) / (2 * h);
    });
    lossWith(name, saved);
    // The decoder LayerNorms see tokens of std ~0.03 (mask token and table at 0.02), so the loss
    // curves fast: h = 1e-3 keeps the h² term small, f32 rounding adds ~1e-7/2e-3 = 5e-5.
    assertClose(t, probes.map((i) => grad[i]!), fd, { atol: 1e-3, rtol: 2e-2, label: name });
  }
  t.true(values(params.get('mask_token')!.grad!).some((g) => g !== 0), 'the mask token receives gradient');
  x.dispose();
  model.dispose();
});

test("tensor names in MAE's order; init: xavier-uniform Linears, zero biases, LN (1, 0), cls and mask token N(0, 0.02); same seed, same weights", (t) => {
  const model = new MaskedAutoencoder({ ...tiny, imageSize: 8, dim: 32, heads: 2, decoderDim: 64, decoderHeads: 4, decoderDepth: 2 });
  const names = model.namedParameters().map(([n]) => n);
  t.deepEqual(names.slice(0, 6), ['cls_token', 'pos_embed', 'mask_token', 'decoder_pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias']);
  t.deepEqual(names.slice(6, 8), ['blocks.0.norm1.weight', 'blocks.0.norm1.bias']);
  const tail = ['norm.weight', 'norm.bias', 'decoder_embed.weight', 'decoder_embed.bias', 'decoder_blocks.0.norm1.weight'];
  t.deepEqual(names.slice(names.indexOf('norm.weight'), names.indexOf('norm.weight') + 5), tail);
  t.true(names.includes('decoder_blocks.1.mlp.fc2.weight'));
  t.deepEqual(names.slice(-4), ['decoder_norm.weight', 'decoder_norm.bias', 'decoder_pred.weight', 'decoder_pred.bias']);
  const p = new Map(model.namedParameters());
  t.deepEqual(p.get('decoder_pos_embed')!.shape, [1, 65, 64]);
  t.deepEqual(p.get('mask_token')!.shape, [1, 1, 64]);
  t.deepEqual(p.get('decoder_pred.weight')!.shape, [1, 64]);
  const std = (v: number[]) => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
  for (const [name, [fanOut, fanIn]] of [['decoder_blocks.0.mlp.fc1.weight', [256, 64]], ['blocks.0.attn.qkv.weight', [96, 32]], ['patch_embed.proj.weight', [32, 1]]] as const) {
    const w = values(p.get(name)!), bound = Math.sqrt(6 / (fanIn + fanOut));
    t.true(w.every((v) => Math.abs(v) <= bound), `${name} within ±${bound}`);
    t.true(Math.abs(std(w) / (bound / Math.sqrt(3)) - 1) < 0.15, `${name}: std ${std(w)} ≈ bound/√3`);
  }
  for (const name of ['cls_token', 'mask_token']) t.true(Math.abs(std(values(p.get(name)!)) / 0.02 - 1) < 0.35, `${name} std ≈ 0.02`);
  t.true(names.filter((n) => n.endsWith('bias')).every((n) => values(p.get(n)!).every((v) => v === 0)), 'biases 0');
  t.true(values(p.get('decoder_norm.weight')!).every((v) => v === 1));
  const again = new MaskedAutoencoder(model.config);
  t.true(again.namedParameters().every(([n, q]) => values(q).join() === values(p.get(n)!).join()), 'deterministic from the seed');
  const sincos = new MaskedAutoencoder({ ...model.config, posEmbed: 'sincos', decoderPosEmbed: 'sincos' });
  t.false(sincos.namedParameters().some(([n]) => n.includes('pos_embed')), 'sincos tables are buffers, not trained');
  t.deepEqual(sincos.decoderPosEmbed!.shape, [1, 65, 64]);
  for (const m of [model, again, sincos]) m.dispose();
});

test('maeParameterCount: the closed form for PiT-T with MAE\'s decoder, equal to a built model; config variants', (t) => {
  const c = maeConfig('pit-t');
  const d = 192, dd = 512, N = 1024, P = 3;
  const block = (w: number) => 12 * w * w + 13 * w;
  const formula = 12 * block(d) + (P * d + d) + d + (N + 1) * d + 2 * d
    + (d * dd + dd) + dd + (N + 1) * dd + 8 * block(dd) + 2 * dd + (dd * P + P);
  t.is(maeParameterCount(c), formula);
  t.is(formula, 31_382_275);
  const model = new MaskedAutoencoder(c);
  t.is(model.parameterCount(), formula);
  model.dispose();
  for (const o of [{ posEmbed: 'none' }, { decoderPosEmbed: 'sincos' }, { patch: 2, channels: 3, normPixLoss: true }, { mlpRatio: 2, imageSize: [4, 8] }] as Partial<MaeConfig>[]) {
    const m = new MaskedAutoencoder({ ...tiny, ...o });
    t.is(m.parameterCount(), maeParameterCount(m.config), JSON.stringify(o));
    m.dispose();
  }
  t.throws(() => new MaskedAutoencoder({ ...tiny, maskRatio: 1 }), { instanceOf: RangeError, message: /'maskRatio' must leave at least one of the 16 tokens visible/ });
  t.throws(() => new MaskedAutoencoder({ ...tiny, maskRatio: 0 }), { instanceOf: RangeError, message: /'maskRatio'/ });
  t.throws(() => new MaskedAutoencoder({ ...tiny, decoderDim: 12, decoderHeads: 5 }), { instanceOf: RangeError, message: /'decoderHeads' 5 must divide 'decoderDim' 12/ });
});

test('a tiny MAE pre-trained for 40 AdamW steps on MNIST digits: the held-out reconstruction loss falls', (t) => {
  const { train, test: held } = loadMnist({ size: 8 });
  const B = 32, plane = 64;
  const model = new MaskedAutoencoder({ ...tiny, imageSize: 8, dim: 32, heads: 2, depth: 2, decoderDim: 32, decoderHeads: 2, decoderDepth: 1, seed: 1 });
  const optimizer = new AdamW(model, { weightDecay: 0.05, betas: [0.9, 0.95] });
  const heldOut = normalize(held.images.slice(0, 64 * plane), held, train.mean, train.std);
  const evaluate = () => tidy(() => noGrad(() => model.forward(tensor(heldOut, [64, 1, 8, 8]), { random: { seed: 99, offset: 0 } }).loss.toArray()[0]!));
  const before = evaluate();
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    const start = (step * B) % (train.n - B);
    const batch = normalize(train.images.slice(start * plane, (start + B) * plane), train, train.mean, train.std);
    tidy(() => {
      const { loss } = model.forward(tensor(batch, [B, 1, 8, 8]), { random: { seed: 7, offset: step } });
      losses.push(loss.toArray()[0]!);
      backward(loss);
      optimizer.step(2e-3);
      optimizer.zeroGrad();
    });
  }
  const after = evaluate();
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  t.true(losses.every(Number.isFinite));
  t.true(mean(losses.slice(-5)) < 0.8 * mean(losses.slice(0, 5)), `training loss ${mean(losses.slice(0, 5))} → ${mean(losses.slice(-5))}`);
  t.true(after < 0.8 * before, `held-out masked loss ${before} → ${after}`);
  optimizer.dispose();
  model.dispose();
});

test('device: every parameter and buffer on the cpu', (t) => {
  const model = new MaskedAutoencoder({ ...tiny, decoderPosEmbed: 'sincos' });
  t.is(model.device, 'cpu');
  t.true(model.namedParameters().every(([, p]) => p.device === 'cpu'));
  t.is(model.decoderPosEmbed!.device, 'cpu');
  model.dispose();
});

(gpu ? test.skip : test)('without a GPU a cuda MAE is a clear error', (t) => {
  t.throws(() => new MaskedAutoencoder(tiny, { device: 'cuda' }), { instanceOf: TypeError, message: /device "cuda" is not available/ });
});

gpuTest('a cuda MAE has every parameter there; a CPU batch is a TypeError naming both devices; the masks equal the CPU\'s', (t) => {
  const onGpu = new MaskedAutoencoder(tiny, { device: 'cuda' }), onCpu = new MaskedAutoencoder(tiny);
  for (const [name, p] of onGpu.namedParameters()) t.is(p.device, 'cuda', name);
  tidy(() => {
    const x = images([2, 1, 4, 4]);
    t.throws(() => onGpu.forward(x, { random: { seed: 0, offset: 0 } }), { instanceOf: TypeError, message: /MaskedAutoencoder: 'images' is on cpu but the model is on cuda/ });
    const a = onGpu.forward(tensor(x.toArray() as Float32Array, x.shape, { device: 'cuda' }), { random: { seed: 0, offset: 0 } });
    const b = onCpu.forward(x, { random: { seed: 0, offset: 0 } });
    t.is(a.loss.device, 'cuda');
    t.deepEqual(values(a.mask), values(b.mask));
    t.true(relativeError(a.pred.toArray(), b.pred.toArray()) < 1e-4);
  });
  onGpu.dispose();
  onCpu.dispose();
});
