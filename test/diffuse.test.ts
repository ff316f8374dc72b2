// The diffusion training task (lib/train/tasks/diffuse.ts) and `pit diffuse`: DiT's recipe and
// its errors, the EMA started as a copy of the weights, a tiny run whose held-out diffusion loss
// falls, exact resume, the memory estimate against the measured peak, pre-computed latents (and
// every way their files can be wrong), and the CLI. Sampling: diffuse-sample.test.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { measureTaskStep } from '../bench/train.js';
import {
  classifyTask, diffusionData, ditTask, EMA_FILE, estimateDitInferenceMemory, estimateDitTrainingMemory, evaluateDiffusion, imageDataSize, inspectLatents,
  latentTestCount, makeRecipe, readSafetensors, recipeDitConfig, resolveCheckpoint, runTraining, writeNpy, type DitRecipe,
} from '../lib/index.js';
import { assertClose, cpuPeakOf, expectEstimateWithin, runPit as run, syntheticImages } from './helpers.js';
import { assertExactResume } from './same-run.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-diffuse-'));
/** A tiny DiT on the 8×8 digits: one block, width 16, 2 heads, one token per pixel. */
const tiny: Partial<DitRecipe> = { model: 'dit-d1w16h2/1' };

test('the default recipe: DiT\'s optimisation (SPEC §4) on 8×8 digits, lr 1e-3 and EMA 0.999 for the short MNIST run, DiT\'s 1e-4 and 0.9999 otherwise', (t) => {
  const r = makeRecipe(ditTask.recipe);
  t.like(r, {
    data: 'mnist', imageSize: 8, model: 'dit-d4w64h4/1', posEmbed: 'sincos', classDropout: 0.1, flip: false, translate: 0, cropPadding: 0,
    beta1: 0.9, beta2: 0.999, weightDecay: 0, warmupEpochs: 0, clipGrad: 0, ema: 0.999, epochs: 40, batchSize: 64, lr: 1e-3,
  });
  t.is(r.minLr, r.lr, 'a constant lr: the cosine runs from lr to lr');
  t.like(recipeDitConfig(r, { channels: 1, height: 8, width: 8, classes: 10 }), { depth: 4, dim: 64, heads: 4, patch: 1, learnSigma: true, classes: 10, seed: 0 });
  // Natural images flip, keep their size and take DiT's EMA, lr and batch; no crop (zero padding would teach black borders).
  t.like(makeRecipe(ditTask.recipe, { data: 'cifar10', dataDir: '/nowhere' }), { flip: true, cropPadding: 0, imageSize: null, ema: 0.9999, lr: 1e-4, minLr: 1e-4, batchSize: 256 });
  t.like(makeRecipe(ditTask.recipe, { data: 'latents', dataDir: '/nowhere' }), { flip: false, cropPadding: 0, translate: 0, imageSize: null, ema: 0.9999, latentScale: 0.18215 });
  t.is(makeRecipe(ditTask.recipe, { lr: 3e-4 }).minLr, 3e-4);
  const saved = makeRecipe(ditTask.recipe, { lr: 2e-4, ema: 0.99 });
  t.deepEqual(makeRecipe(ditTask.recipe, saved), saved, 'a saved recipe rebuilds as it was');
});

test('recipe errors name the field', (t) => {
  const cases: [Partial<DitRecipe>, RegExp][] = [
    [{ flip: true }, /'flip' must be false for digits/],
    [{ model: 'pit-t' }, /recipe: 'model': DiT model name must be dit-<size>\/<patch>/],
    [{ model: 'dit-d2w30h4/1' }, /'model' must be a DiT whose heads divide its width/],
    [{ model: 'dit-d2w32h2/3' }, /'imageSize' must be a multiple of the patch size 3 of dit-d2w32h2\/3, got 8/],
    [{ latentScale: 0 }, /'latentScale' must be a number > 0, got 0/],
    [{ classDropout: 1 }, /'classDropout' must be a number in \[0, 1\), got 1/],
    [{ minLr: 0 }, /recipe: 'minLr' is computed for this task \(DiT trains at a constant lr: minLr = lr\), got 0 instead of 0\.001/],
    [{ data: 'latents' }, /'dataDir' must be the folder of latents\.npy and labels\.npy/],
    [{ data: 'latents', dataDir: '/x', flip: true }, /'flip' must be false for latents/],
    [{ data: 'latents', dataDir: '/x', imageSize: 16 }, /'imageSize' must be null for latents/],
    [{ data: 'latents', dataDir: '/x', translate: 2 }, /'translate' must be 0 for latents/],
    [{ data: 'imagenet' as 'mnist' }, /'data' must be "mnist", "cifar10", "cifar100" or "latents", got "imagenet"/],
  ];
  for (const [given, message] of cases) t.throws(() => makeRecipe(ditTask.recipe, given), { instanceOf: RangeError, message }, JSON.stringify(given));
  // Latents are the diffusion task's: the classifier names the data sets it takes.
  t.throws(() => makeRecipe(classifyTask.recipe, { data: 'latents', dataDir: '/x' }), { message: /'data' must be "mnist", "cifar10" or "cifar100", got "latents"/ });
});

test('the EMA starts as a copy of the initial weights, not at zero (one step at decay 0.999999 leaves it there)', async (t) => {
  const out = scratch();
  const recipe = { ...tiny, ema: 0.999999 };
  const r = await runTraining(ditTask, { recipe, out, device: 'cpu', stopAtStep: 1 });
  const fresh = ditTask.model(makeRecipe(ditTask.recipe, recipe), { channels: 1, height: 8, width: 8, classes: 10 }, 'cpu');
  const ema = readSafetensors(join(resolveCheckpoint(out), EMA_FILE)).tensors;
  const params = fresh.namedParameters();
  t.is(ema.size, params.length);
  // shadow = d·w₀ + (1 − d)·w₁: within f32 rounding of w₀ and 1e-6 of the first step (lr 1e-3) of it;
  // a start at zero would be 1e-6·w₁.
  for (const [name, p] of params) assertClose(t, ema.get(name)!.data, p.toArray(), { rtol: 3e-6, atol: 2e-9, label: name });
  // …while the trained weights have moved away from it (the output layer starts at zero).
  t.notDeepEqual(Array.from(r.model.finalLayer.linear.weight.toArray()), Array.from(fresh.finalLayer.linear.weight.toArray()));
  fresh.dispose();
  r.model.dispose();
  rmSync(out, { recursive: true });
});

test('a tiny DiT on MNIST: the held-out diffusion loss falls, at the same draws every epoch', async (t) => {
  const out = scratch();
  const recipe = makeRecipe(ditTask.recipe, { ...tiny, epochs: 3 });
  const { train, test: heldOut } = diffusionData(recipe);
  t.deepEqual([Array.from(train.mean), Array.from(train.std)], [[0.5], [0.5]], 'pixels are scaled to [−1, 1]');
  const fresh = ditTask.model(recipe, train, 'cpu');
  const context = { normalization: { mean: [0.5], std: [0.5] }, batchSize: 500, precision: 'f32' as const };
  const before = evaluateDiffusion(fresh, heldOut, context);
  t.deepEqual(evaluateDiffusion(fresh, heldOut, context), before, 'the evaluation draws are fixed');
  // adaLN-Zero: the untrained model predicts ε̂ = 0, so the MSE is E[ε²] ≈ 1.
  t.true(Math.abs(before.mse - 1) < 0.02, `untrained MSE ${before.mse}`);
  fresh.dispose();
  const r = await runTraining(ditTask, { recipe: { ...tiny, epochs: 3 }, out, device: 'cpu' });
  const losses = r.epochs.map((e) => e.test.loss);
  t.log(`held-out diffusion loss: untrained ${before.loss.toFixed(4)}, epochs ${losses.map((l) => l.toFixed(4)).join(', ')}`);
  t.is(r.final!.test.n, 2000);
  t.true(losses[0]! < before.loss / 2, `untrained ${before.loss} → epoch 1 ${losses[0]}`);
  t.true(losses.at(-1)! < losses[0]!, `epoch 1 ${losses[0]} → epoch 3 ${losses.at(-1)}`);
  for (const e of r.epochs) t.true(Math.abs(e.test.loss - e.test.mse - e.test.vb) < 1e-6 && e.test.vb > 0, JSON.stringify(e.test));
  t.like(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')), {
    task: 'dit', format: 'pixel-transformer DiT checkpoint v1', normalization: { mean: [0.5], std: [0.5] }, config: { dim: 16, patch: 1, classes: 10, learnSigma: true },
  });
  r.model.dispose();
  rmSync(out, { recursive: true });
});

test('k steps, stop, resume, N − k steps: bit-identical to N straight (model, EMA, train state, metrics)', async (t) => {
  const { straight, split } = await assertExactResume(t, ditTask, { ...tiny, epochs: 2, ema: 0.99 }, 130, scratch);
  await t.throwsAsync(runTraining(ditTask, { recipe: { classDropout: 0.2 }, out: split, resume: true, device: 'cpu' }), { message: /resume: 'classDropout' is 0\.1 in the checkpoint, got 0\.2/ });
  rmSync(straight, { recursive: true });
  rmSync(split, { recursive: true });
});

// (model, side, channels, batch): pixel and patch tokens, 1, 3 and 4 (latent) channels, thin and wide.
// Same bound as the classifier's and MAE's estimates (test/memory-estimate.test.ts, pretrain.test.ts).
const shapes = [
  ['dit-d4w64h4/1', 8, 1, 64], ['dit-d2w32h2/1', 16, 3, 8], ['dit-d4w64h4/2', 16, 3, 16], ['dit-d1w16h2/1', 12, 4, 32], ['dit-d6w96h3/1', 8, 3, 16],
] as const;

test('estimateDitTrainingMemory is within [0.85, 1.25]× the measured peak of a CPU training step, with each recompute mode and precision', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, batch] of shapes) for (const recompute of ['none', 'mlp', 'block'] as const) for (const precision of ['f32', 'mixed'] as const) {
    if (precision === 'mixed' && model !== 'dit-d4w64h4/1') continue;
    const recipe = makeRecipe(ditTask.recipe, { model, imageSize: side, batchSize: batch, recompute });
    const measured = measureTaskStep(ditTask, recipe, 'cpu', { side, channels, classes: 10, batch, precision }, { timed: false }).peakBytes;
    const estimate = estimateDitTrainingMemory(recipeDitConfig(recipe, { channels, height: side, width: side, classes: 10 }), { batch, recompute, precision }).total;
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch} ${recompute} ${precision}`, measured, estimate);
  }
  t.log(rows.join('\n'));
});

test('estimateDitInferenceMemory is within [0.85, 1.25]× the measured peak of an evaluation batch', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, batch] of shapes) {
    const recipe = makeRecipe(ditTask.recipe, { model, imageSize: side });
    const shape = { channels, height: side, width: side, classes: 10 };
    const net = ditTask.model(recipe, shape, 'cpu');
    const data = syntheticImages(batch, channels, side, 10);
    const normalization = { mean: Array(channels).fill(0.5), std: Array(channels).fill(0.5) };
    const measured = cpuPeakOf(() => evaluateDiffusion(net, data, { normalization, batchSize: batch, precision: 'f32' }));
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch}`, measured, estimateDitInferenceMemory(recipeDitConfig(recipe, shape), { batch }));
    net.dispose();
  }
  t.log(rows.join('\n'));
});

test('runTraining refuses a DiT that cannot fit, naming the flags', async (t) => {
  const out = scratch();
  const err = await t.throwsAsync(runTraining(ditTask, { recipe: { model: 'dit-d100000w4096h16/1', epochs: 1 }, out, device: 'cpu' }), { instanceOf: RangeError });
  t.regex(err!.message, /^memory: this run needs an estimated .* of cpu memory \(RAM\).*--model/);
  rmSync(out, { recursive: true, force: true });
});

/** A latents folder: n latents (C, side, side) of a smooth pattern per class, labels i % classes. */
function latentsFolder(n: number, { channels = 4, side = 4, classes = 3, dtype = 'float16' as 'float16' | 'float32' } = {}): string {
  const dir = scratch();
  const size = channels * side * side;
  const data = Float32Array.from({ length: n * size }, (_, i) => 3 * Math.sin(i * 0.37 + Math.floor(i / size) % classes));
  writeNpy(join(dir, 'latents.npy'), { dtype, shape: [n, channels, side, side], data });
  writeNpy(join(dir, 'labels.npy'), { dtype: 'int64', shape: [n], data: Array.from({ length: n }, (_, i) => i % classes) });
  return dir;
}

test('latents: read at their own size, a tenth held out, scaled by --latent-scale (mean 0, std 1/scale), and a DiT trains on them', async (t) => {
  const dir = latentsFolder(40);
  t.deepEqual(inspectLatents(dir), { n: 40, channels: 4, height: 4, width: 4, classes: 3, testImages: 4 });
  t.deepEqual([latentTestCount(2), latentTestCount(1000), latentTestCount(10 ** 7)], [1, 100, 10_000]);
  const recipe = makeRecipe(ditTask.recipe, { data: 'latents', dataDir: dir, latentScale: 0.5, model: 'dit-d1w16h2/2', batchSize: 8, epochs: 1 });
  t.like(imageDataSize(recipe), { channels: 4, height: 4, width: 4, classes: 3, trainImages: 36, testImages: 4 });
  const { train, test: heldOut } = diffusionData(recipe);
  t.is(train.n + heldOut.n, 40);
  t.deepEqual([Array.from(train.mean), Array.from(train.std)], [[0, 0, 0, 0], [2, 2, 2, 2]]);
  const out = join(dir, 'run');
  const r = await runTraining(ditTask, { recipe: { data: 'latents', dataDir: dir, latentScale: 0.5, model: 'dit-d1w16h2/2', batchSize: 8, epochs: 1 }, out, device: 'cpu' });
  t.is(r.step, 4);
  t.true(Number.isFinite(r.final!.test.loss));
  t.like(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')), { data: { name: 'latents', channels: 4, classes: 3 }, normalization: { mean: [0, 0, 0, 0], std: [2, 2, 2, 2] } });
  r.model.dispose();
  rmSync(dir, { recursive: true });
});

test('latents: a missing, truncated or mismatched file is an error naming it, before anything is built', async (t) => {
  const good = latentsFolder(10);
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['no folder', (dir) => rmSync(dir, { recursive: true }), /latents: the folder .* does not exist/],
    ['no labels', (dir) => rmSync(join(dir, 'labels.npy')), /has no labels\.npy; the folder must hold latents\.npy \(N, C, H, W\) float32 or float16 and labels\.npy/],
    ['no latents', (dir) => rmSync(join(dir, 'latents.npy')), /has no latents\.npy/],
    ['truncated latents', (dir) => truncateSync(join(dir, 'latents.npy'), 200), /npy: .*latents\.npy: truncated: shape \(10, 4, 4, 4\) of float16 needs 1280 bytes of data, the file holds \d+/],
    ['truncated header', (dir) => truncateSync(join(dir, 'latents.npy'), 30), /latents\.npy: truncated: the header is/],
    ['not npy', (dir) => writeFileSync(join(dir, 'latents.npy'), 'hello, this is text'), /latents\.npy: not an \.npy file/],
    ['labels count', (dir) => writeNpy(join(dir, 'labels.npy'), { dtype: 'int32', shape: [9], data: Array(9).fill(0) }), /labels\.npy must be 1-D with one label per latent \(10, as latents\.npy has\), got shape \(9\)/],
    ['float labels', (dir) => writeNpy(join(dir, 'labels.npy'), { dtype: 'float32', shape: [10], data: Array(10).fill(0) }), /labels\.npy: expected an integer array \(int32 or int64\), got float32/],
    ['negative label', (dir) => writeNpy(join(dir, 'labels.npy'), { dtype: 'int32', shape: [10], data: [0, 1, -1, 0, 0, 0, 0, 0, 0, 0] }), /label 2 is -1/],
    ['int latents', (dir) => writeNpy(join(dir, 'latents.npy'), { dtype: 'int32', shape: [10, 4, 4, 4], data: Array(640).fill(0) }), /latents\.npy must be float32 or float16, got int32/],
    ['3-D latents', (dir) => writeNpy(join(dir, 'latents.npy'), { dtype: 'float32', shape: [10, 16, 4], data: Array(640).fill(0) }), /latents\.npy must be 4-D \(N, C, H, W\).*got shape \(10, 16, 4\)/],
    ['one latent', (dir) => {
      writeNpy(join(dir, 'latents.npy'), { dtype: 'float32', shape: [1, 4, 4, 4], data: Array(64).fill(0) });
      writeNpy(join(dir, 'labels.npy'), { dtype: 'int32', shape: [1], data: [0] });
    }, /holds 1 latent; at least 2 are needed/],
  ];
  for (const [name, damage, message] of cases) {
    const dir = scratch();
    for (const f of ['latents.npy', 'labels.npy']) writeFileSync(join(dir, f), readFileSync(join(good, f)));
    damage(dir);
    t.throws(() => inspectLatents(dir), { instanceOf: RangeError, message }, name);
    const out = join(tmpdir(), `pit-diffuse-never-${process.pid}`);
    await t.throwsAsync(runTraining(ditTask, { recipe: { data: 'latents', dataDir: dir, model: 'dit-d1w16h2/2', batchSize: 2 }, out, device: 'cpu' }), { message }, `${name} (runTraining)`);
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
  const nonFinite = latentsFolder(10, { dtype: 'float32' });
  const values = Float32Array.from({ length: 640 }, (_, i) => (i === 77 ? Number.NaN : 0));
  writeNpy(join(nonFinite, 'latents.npy'), { dtype: 'float32', shape: [10, 4, 4, 4], data: values });
  t.throws(() => diffusionData(makeRecipe(ditTask.recipe, { data: 'latents', dataDir: nonFinite })), { message: /latents\.npy: value 77 is NaN; latents must be finite/ });
  // Through the CLI, as a user meets it.
  mkdirSync(join(nonFinite, 'empty'));
  const cli = run('diffuse', '--data', 'latents', '--data-dir', join(nonFinite, 'empty'), '--out', join(nonFinite, 'run'));
  t.is(cli.status, 1);
  t.regex(cli.stderr, /^pit: latents: .*empty has no latents\.npy/);
  rmSync(good, { recursive: true });
  rmSync(nonFinite, { recursive: true });
});

test('pit diffuse --help shows the DiT flags and their data sets; --min-lr is no flag of it (the lr is constant)', (t) => {
  const r = run('diffuse', '--help');
  t.is(r.status, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  for (const flag of ['--model <name>', '--pe <kind>', '--class-dropout <p>', '--latent-scale <s>', '--ema <decay>', '--lr <lr>', '--resume [dir]', '--json'])
    t.true(help.includes(flag), flag);
  t.regex(help, /--data <name> data set: digits, CIFAR .* \(choices: "mnist", "cifar10", "cifar100", "latents", default: "mnist"\)/);
  t.regex(help, /--ema <decay> EMA of the weights, started as a copy of them; sampling uses it \(0: off; 0\.999 for mnist, DiT's 0\.9999 otherwise\) \(default: 0\.999\)/);
  t.false(help.includes('--min-lr'));
  t.regex(run('train', '--help').stdout.replace(/\s+/g, ' '), /--data <name> data set \(choices: "mnist", "cifar10", "cifar100", default: "mnist"\)/);
});

test('pit diffuse --epochs 1 with a tiny DiT runs end to end, --json gives its events, and a second run into the folder needs --resume', (t) => {
  const out = scratch();
  const r = run('diffuse', '--epochs', '1', '--model', 'dit-d1w16h2/1', '--device', 'cpu', '--out', out);
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.regex(lines[0]!, /^dit-d1w16h2\/1 \(one token per pixel\): depth 1, dim 16, 2 heads, [\d,]+ parameters on 8×8×1 mnist pixels in \[−1, 1\], 10 classes; EMA 0\.999; device cpu/);
  t.is(lines.filter((l) => /^epoch +1 +step 125 +train loss .* test loss \d\.\d{4} \(MSE \d\.\d{4} \+ vb \d\.\d{4}\) +\(EMA \d\.\d{4}\)/.test(l)).length, 1);
  t.regex(lines.at(-1)!, /^final held-out diffusion loss: \d\.\d{4} \(MSE .* on 2000 images; EMA \d\.\d{4}\); sample with: pit sample/);
  const again = run('diffuse', '--epochs', '2', '--model', 'dit-d1w16h2/1', '--device', 'cpu', '--out', out, '--json');
  t.is(again.status, 1);
  t.regex(again.stderr, /holds a run at step 125.*pass --resume/);
  const resumed = run('diffuse', '--device', 'cpu', '--out', out, '--resume', '--json');
  t.is(resumed.status, 0, resumed.stderr);
  t.like(JSON.parse(resumed.stdout.trim().split('\n')[0]!), { type: 'start', task: 'dit', step: 125, totalSteps: 125 });
  rmSync(out, { recursive: true });
});
