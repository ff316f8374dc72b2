// Sizes checked before anything is built: the training-memory estimate against the measured
// peak, the runner refusing what cannot fit (naming the flags) in milliseconds, and a model
// deep enough to have overflowed the stack training a step.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureTrainStep } from '../bench/train.js';
import {
  AdamW, checkRunMemory, classifyTask, estimateInferenceMemory, estimateTrainingMemory, evaluate, makeRecipe, memory, modelConfig, runTraining,
  setMemoryCap, tensor, tidy, trainStep, VisionTransformer, zeros,
} from '../lib/index.js';
import { cpuPeakOf, expectEstimateWithin, syntheticImages } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-memory-'));

// (model, side, channels, classes, batch): depth 1 to 12, widths 16 to 128, PiT and ViT/2.
const shapes = [
  ['pit-d4w64h4', 8, 1, 10, 64], ['pit-d4w64h4', 8, 1, 10, 8], ['pit-d2w32h2', 16, 3, 100, 4], ['pit-d6w96h3', 12, 3, 10, 16],
  ['vit-d4w64h4/2', 16, 3, 100, 8], ['pit-d1w128h8', 16, 3, 10, 2], ['pit-d12w16h2', 8, 3, 10, 32],
] as const;

// The estimate counts every tensor the forward keeps exactly; what it approximates is the
// backward's gradients in flight (about one block's worth: their exact overlap depends on the
// order they are freed in). Measured: 0.95–1.18× the peak, the shallowest model (depth 1)
// highest because its one block's gradients overlap the trunk's. The bound [0.85, 1.25] keeps
// a refusal honest (never more than a quarter too cautious) and catches a term left out.
test('estimateTrainingMemory is within [0.85, 1.25]× the measured peak of a CPU training step, with each recompute mode and precision', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, classes, batch] of shapes) for (const recompute of ['none', 'mlp', 'block'] as const) for (const precision of ['f32', 'mixed'] as const) {
    if (precision === 'mixed' && model !== 'pit-d4w64h4') continue;
    const measured = measureTrainStep('cpu', { model, side, channels, classes, batch, recompute, precision }, { timed: false }).peakBytes;
    const estimate = estimateTrainingMemory(modelConfig(model, { imageSize: side, channels, classes }), { batch, recompute, precision }).total;
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch} ${recompute} ${precision}`, measured, estimate);
  }
  t.log(rows.join('\n'));
});

test('the estimate moves as the terms say: an EMA adds the parameters, mixed precision the bf16 copies less the f32 tensors it releases', (t) => {
  const config = modelConfig('pit-d2w32h2', { imageSize: 8, channels: 1, classes: 10 });
  const base = estimateTrainingMemory(config, { batch: 4 });
  t.is(base.parameters, base.parameterCount * 4);
  t.is(estimateTrainingMemory(config, { batch: 4, ema: true }).total - base.total, base.parameters);
  // batch 4 × 65 tokens × 2 blocks × (4d attention + (3 + r)·d GEMM inputs, r = 4) bf16 values of 2 bytes, less
  // the released f32 norm outputs, qkv, attention and GELU outputs ((6 + r)·d: heads of 16 run the bf16
  // kernel), plus each block's bf16 weights, (4 + 2r)·d² values of 2 bytes.
  t.is(estimateTrainingMemory(config, { batch: 4, precision: 'mixed' }).activations - base.activations,
    4 * 65 * 2 * ((4 + 7) * 32 * 2 - (6 + 4) * 32 * 4) + 2 * (4 + 8) * 32 * 32 * 2);
  t.throws(() => estimateTrainingMemory(config, { batch: 0 }), { instanceOf: RangeError, message: /'batch' must be a positive integer, got 0/ });
});

test('runTraining refuses --depth 1000000000 and --image-size 100000 at once, naming the flags and the estimate', async (t) => {
  const cases = [
    [{ depth: 1_000_000_000 }, /--depth/],
    [{ imageSize: 100_000 }, /--image-size/],
    [{ imageSize: 600 }, /--image-size/],
  ] as const;
  for (const [recipe, flag] of cases) {
    const out = scratch();
    try {
      // runTraining checks before its first await: the time to the refusal is the call's.
      const started = performance.now();
      const run = runTraining(classifyTask, { recipe: { ...recipe, epochs: 1 }, out, device: 'cpu' });
      const ms = performance.now() - started;
      const err = await t.throwsAsync(run, { instanceOf: RangeError });
      t.regex(err!.message, /^memory: this run needs an estimated [\d.e+]+ [KMGT]i?B of cpu memory \(RAM\), more than the [\d.]+ GiB there is/);
      t.regex(err!.message, flag);
      t.true(ms < 1000, `refused in ${ms} ms`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
});

test('checkRunMemory: on cuda the device parts meet the GPU, the images the host', (t) => {
  const estimate = { device: [{ what: 'activations', bytes: 10 * 2 ** 30, keys: ['batchSize'] }], host: [{ what: 'images', bytes: 2 ** 30, keys: ['imageSize'] }] };
  const flag = (k: string) => `--${k}`;
  t.notThrows(() => checkRunMemory(estimate, 'cuda', flag, { device: 16 * 2 ** 30, host: 2 * 2 ** 30 }));
  t.throws(() => checkRunMemory(estimate, 'cuda', flag, { device: 8 * 2 ** 30, host: 64 * 2 ** 30 }),
    { message: 'memory: this run needs an estimated 10.0 GiB of cuda memory, more than the 8.0 GiB there is: 10.0 GiB for activations (--batchSize). Lower the flags named.' });
  t.throws(() => checkRunMemory(estimate, 'cpu', flag, { device: 0, host: 10 * 2 ** 30 }), { message: /11\.0 GiB of cpu memory.*10\.0 GiB for activations.*1\.0 GiB for images \(--imageSize\)/ });
});

// An evaluation batch runs without gradients: BlockStack frees each block's tensors once its
// output exists, so the peak is the trunk plus one block (its tensors and the stream it read),
// whatever the depth. Same bound as above; it also fails if evaluation keeps every block again.
test('estimateInferenceMemory is within [0.85, 1.25]× the measured peak of an evaluation batch, independent of depth', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, classes, batch] of [['pit-d4w64h4', 8, 1, 10, 64], ['pit-d12w32h2', 12, 3, 100, 16], ['vit-d6w64h4/2', 16, 3, 10, 32]] as const) {
    const config = modelConfig(model, { imageSize: side, channels, classes });
    const net = new VisionTransformer(config);
    const data = syntheticImages(batch, channels, side, classes);
    const measured = cpuPeakOf(() => evaluate(net, data, { normalization: { mean: data.mean, std: data.std }, batchSize: batch }));
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch}`, measured, estimateInferenceMemory(config, { batch }));
    net.dispose();
  }
  t.log(rows.join('\n'));
});

test("the README's CIFAR runs fit a 24 GiB machine: pit-t and pit-s on cifar100 at the default batches", (t) => {
  for (const model of ['pit-t', 'pit-s']) {
    const recipe = makeRecipe(classifyTask.recipe, { model, data: 'cifar100', dataDir: '/data/cifar-100-binary' });
    const memory = classifyTask.estimate(recipe, { precision: 'f32' });
    const total = [...memory.device, ...memory.host].reduce((s, p) => s + p.bytes, 0);
    t.true(total < 24 * 2 ** 30, `${model}: ${(total / 2 ** 30).toFixed(1)} GiB: ${memory.device.map((p) => p.what).join('; ')}`);
  }
});

test('the default recipe fits: its estimate is far below any machine', (t) => {
  const memory = classifyTask.estimate(makeRecipe(classifyTask.recipe), { precision: 'f32' });
  const total = [...memory.device, ...memory.host].reduce((s, p) => s + p.bytes, 0);
  t.true(total < 2 ** 30, `${total} bytes`);
});

// namedParameters spread a child's whole list as call arguments: at depth 100,000 (1.2 M
// names; 130,000 already did) overflowed the stack. A deep, thin model (144,008 parameters)
// walks every path that could recurse with depth:
// building, the parameter list, the forward, backward's graph order, AdamW.
test('a deep, thin model (depth 12,000, width 8) trains a step', (t) => {
  const model = new VisionTransformer({ imageSize: 2, channels: 1, depth: 12_000, dim: 8, heads: 1, classes: 2 });
  const optimizer = new AdamW(model);
  try {
    t.is(model.namedParameters().length, 12_000 * 12 + 8);
    const recipe = makeRecipe(classifyTask.recipe, { depth: 12_000, dim: 8, heads: 1 });
    const loss = trainStep(classifyTask, model, optimizer, { images: tensor(new Float32Array(4 * 4).fill(0.5), [4, 1, 2, 2]), labels: tensor(new Int32Array([0, 1, 0, 1])) },
      { recipe, random: { seed: 0, offset: 0 }, precision: 'f32', lr: 1e-3 });
    t.true(Number.isFinite(loss), `loss ${loss}`);
    t.is(optimizer.stepCount, 1);
  } finally {
    optimizer.dispose();
    model.dispose();
  }
});

test('setMemoryCap: an allocation past the cap throws "out of cpu memory" before allocating, and a capped step frees what it made', (t) => {
  const live = memory().cpu.bytes;
  setMemoryCap('cpu', live + 4096);
  try {
    t.notThrows(() => tidy(() => void zeros([1024])));  // 4 KiB: exactly at the cap
    t.throws(() => tidy(() => zeros([1025])), { instanceOf: RangeError, message: /out of cpu memory: 4100 more bytes would pass the cap of \d+ bytes \(setMemoryCap\)/ });
  } finally {
    setMemoryCap('cpu', null);
  }
  // 4 MiB: the model (~25k parameters, with AdamW's moments) is built, its step's ~40 MB of activations are not.
  setMemoryCap('cpu', live + 4 * 2 ** 20);
  try {
    t.throws(() => measureTrainStep('cpu', { model: 'pit-d2w32h2', side: 32, channels: 3, classes: 10, batch: 8 }, { timed: false }), { instanceOf: RangeError, message: /out of cpu memory/ });
  } finally {
    setMemoryCap('cpu', null);
  }
  t.is(memory().cpu.bytes, live, 'nothing left behind');
  t.notThrows(() => tidy(() => void zeros([1 << 20])));
  t.throws(() => setMemoryCap('cpu', -1), { instanceOf: RangeError, message: /'bytes' must be a positive integer or null, got -1/ });
});
