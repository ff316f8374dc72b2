// The classification trainer on the real MNIST digits: it learns, its metrics and
// checkpoints are what they claim, and a stopped run resumed continues bit-exactly.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  CHECKPOINTS_DIR, classifyTask, EMA_FILE, evaluate, loadImageData, loadModelWeights, makeRecipe, METRICS_FILE, MODEL_FILE,
  memory, readSafetensors, recipeModelConfig, TRAIN_STATE_FILE, resolveCheckpoint, runTraining, topKHits, VisionTransformer,
  type ClassificationMetrics, type ClassifierRecipe, type EpochRecord, type RunOptions, type ClassifyRecipe,
} from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-train-'));
const trainClassifier = (options: RunOptions<ClassifyRecipe, ClassificationMetrics>) => runTraining(classifyTask, options);
const makeClassifierRecipe = (given: Partial<ClassifierRecipe> = {}) => makeRecipe(classifyTask.recipe, given);

// A ViT/7 on 14×14 digits (four tokens): learns in seconds, so the test checks the loop.
const quick: Partial<ClassifierRecipe> = { imageSize: 14, patch: 7, depth: 2, dim: 32, heads: 2, epochs: 2, batchSize: 64, lr: 2e-3, warmupEpochs: 0.2 };
// Every piece of state a resume must carry: drop path noise, EMA, augmentation, clipping.
const stateful: Partial<ClassifierRecipe> = { imageSize: 7, depth: 2, dim: 16, heads: 2, epochs: 2, batchSize: 128, dropPath: 0.2, ema: 0.9, translate: 1, clipGrad: 0.5 };

test('topKHits: top-1 and top-5 with ties counted against the label and NaN as a miss', (t) => {
  // K = 6. Row 0: label 2 is the largest. Row 1: label 0 ties class 3 and comes first: a hit.
  // Row 2: label 0 is the smallest, 6th of 6: a miss for both. Row 3: label 1 (0) has NaN
  // above it and ties after it: 2nd, so top-5 only.
  const logits = Float32Array.from([
    0, 1, 9, 2, 3, 4,
    5, 1, 1, 5, 0, 0,
    0, 7, 1, 2, 3, 7,
    NaN, 0, 0, 0, 0, 0,
  ]);
  t.deepEqual(topKHits(logits, [2, 0, 0, 1], 6), { top1: 2, top5: 3 });
  // Row 2 with label 5: tied with class 1, which is earlier and so ranks above it.
  t.deepEqual(topKHits(logits.subarray(12, 18), [5], 6), { top1: 0, top5: 1 });
  // A NaN label logit is a miss.
  t.deepEqual(topKHits(logits.subarray(18), [0], 6), { top1: 0, top5: 0 });
  // Constant logits score chance, not a perfect 1.
  t.deepEqual(topKHits(new Float32Array(10 * 10), Array.from({ length: 10 }, (_, i) => i), 10), { top1: 1, top5: 5 });
});

test('makeRecipe: defaults, data-set defaults, and a clear error naming a bad field', (t) => {
  const r = makeClassifierRecipe();
  t.like(r, { data: 'mnist', imageSize: 8, epochs: 36, model: 'pit-d4w64h4', patch: null, translate: 0, flip: false });
  t.like(makeClassifierRecipe({ data: 'cifar10', dataDir: '/x' }), { imageSize: null, cropPadding: 4, flip: true, translate: 0 });
  t.throws(() => makeClassifierRecipe({ data: 'cifar100' }), { instanceOf: RangeError, message: /'dataDir' must be the folder of the cifar100 binary files, got null/ });
  t.throws(() => makeClassifierRecipe({ lr: -1 }), { message: /'lr' must be a number in \[0, ∞\), got -1/ });
  t.throws(() => makeClassifierRecipe({ epochs: 2, warmupEpochs: 3 }), { message: /'warmupEpochs' must be a number in \[0, 2\], got 3/ });
  t.throws(() => makeClassifierRecipe({ model: 'pit-xl' }), { message: /recipe: 'model': model name must be pit-<size> or vit-<size>\/<patch>, .*got "pit-xl"/ });
  t.throws(() => makeClassifierRecipe({ model: 42 as never }), { message: /recipe: 'model' must be a model name such as pit-t, vit-s\/2 or pit-d4w64h4 .*got 42/ });
  t.throws(() => makeClassifierRecipe({ depth: 0 }), { message: /'depth' must be an integer ≥ 1 or null, got 0/ });
  const { train } = loadImageData(makeClassifierRecipe({ imageSize: 7 }));
  t.like(recipeModelConfig(makeClassifierRecipe({ imageSize: 7, patch: 7 }), train), { depth: 4, dim: 64, heads: 4, patch: 7, imageSize: [7, 7], channels: 1, classes: 10 });
  t.like(recipeModelConfig(makeClassifierRecipe({ model: 'vit-s/2' }), train), { depth: 12, dim: 384, heads: 12, patch: 2 });
});

test('a short run learns: loss falls, accuracy far above chance, metrics and checkpoints on disk agree', async (t) => {
  const out = scratch();
  const events: string[] = [];
  const result = await trainClassifier({ recipe: { ...quick, ema: 0.99 }, out, device: 'cpu', onEvent: (e) => events.push(e.type) });
  t.false(result.interrupted);
  t.is(result.step, 2 * 125);
  const [first, last] = result.epochs as [EpochRecord<ClassificationMetrics>, EpochRecord<ClassificationMetrics>];
  t.true(last.trainLoss < first.trainLoss, `train loss ${first.trainLoss} → ${last.trainLoss}`);
  t.true(last.test.top1 > 0.8, `top-1 ${last.test.top1} on 2,000 held-out digits (chance 0.1)`);
  t.true(last.test.top5 >= last.test.top1);
  t.truthy(last.ema, 'EMA evaluated');
  t.deepEqual(events.filter((e) => e !== 'step'), ['start', 'epoch', 'checkpoint', 'epoch', 'checkpoint']);
  // metrics.jsonl: the epoch lines are the returned records.
  const lines = readFileSync(join(out, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(lines.filter((l) => l.type === 'epoch'), JSON.parse(JSON.stringify(result.epochs)));
  t.is(lines.filter((l) => l.type === 'step').length, 5, 'a step line every 50 steps');
  // The latest checkpoint holds these weights (timm names), the EMA, and metadata to rebuild the run.
  const dir = resolveCheckpoint(out);
  t.is(dir, result.checkpoint);
  t.deepEqual(readdirSync(join(out, CHECKPOINTS_DIR)).sort(), ['latest', 'step-00000125', 'step-00000250']);
  const file = readSafetensors(join(dir, MODEL_FILE));
  t.deepEqual(file.tensors.get('patch_embed.proj.weight')!.shape, [32, 1, 7, 7]);
  t.deepEqual(JSON.parse(file.metadata.normalization!).mean.length, 1);
  t.like(JSON.parse(file.metadata.recipe!), { patch: 7, epochs: 2, ema: 0.99 });
  t.true(existsSync(join(dir, EMA_FILE)));
  const restored = new VisionTransformer(JSON.parse(file.metadata.config!));
  loadModelWeights(dir, restored);
  const { test: testSet, train } = loadImageData(makeClassifierRecipe(quick));
  const again = evaluate(restored, testSet, { normalization: train });
  t.deepEqual(again, last.test, 'the saved weights reproduce the final evaluation exactly');
  loadModelWeights(dir, restored, { ema: true });
  t.deepEqual(evaluate(restored, testSet, { normalization: train }), last.ema!);
  restored.dispose();
  result.model.dispose();
  rmSync(out, { recursive: true });
});

test('resume: k steps, stop, resume, N − k steps give bit-identical weights, EMA, optimizer state and metrics', async (t) => {
  const straight = scratch(), split = scratch();
  const a = await trainClassifier({ recipe: stateful, out: straight, device: 'cpu' });
  // Stop mid-way through the second epoch (62 steps per epoch), then continue from disk.
  const b1 = await trainClassifier({ recipe: stateful, out: split, device: 'cpu', stopAtStep: 80 });
  t.true(b1.interrupted);
  t.is(b1.step, 80);
  b1.model.dispose();
  const b2 = await trainClassifier({ out: split, resume: true, device: 'cpu' });
  t.false(b2.interrupted);
  t.is(b2.step, a.step);
  for (const file of [MODEL_FILE, EMA_FILE, 'train-state.safetensors']) {
    const x = readFileSync(join(resolveCheckpoint(straight), file)), y = readFileSync(join(resolveCheckpoint(split), file));
    t.true(x.equals(y), `${file} identical byte for byte`);
  }
  const epochLines = (dir: string) => readFileSync(join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((l) => l.type === 'epoch').map(({ seconds, imagesPerSecond, ...rest }) => rest);
  t.deepEqual(epochLines(split), epochLines(straight), 'same losses and accuracies, including the mean over a resumed epoch');
  a.model.dispose();
  b2.model.dispose();
  rmSync(straight, { recursive: true });
  rmSync(split, { recursive: true });
});

test('resume refuses a changed recipe and a broken checkpoint, naming what is wrong', async (t) => {
  const out = scratch();
  const r = await trainClassifier({ recipe: { ...stateful, epochs: 1 }, out, device: 'cpu', stopAtStep: 3 });
  r.model.dispose();
  await t.throwsAsync(trainClassifier({ recipe: { lr: 0.5 }, out, resume: true, device: 'cpu' }), { message: /resume: 'lr' is 0.003 in the checkpoint, got 0.5; a resumed run keeps its recipe/ });
  // The precision is the run's: saved with it, kept on resume, a different one refused.
  t.is(JSON.parse(readSafetensors(join(resolveCheckpoint(out), MODEL_FILE)).metadata.precision!), 'f32');
  await t.throwsAsync(trainClassifier({ out, resume: true, device: 'cpu', precision: 'mixed' }), { message: /resume: 'precision' is "f32" in the checkpoint, got "mixed"/ });
  await t.throwsAsync(trainClassifier({ out: join(out, 'nowhere'), resume: true, device: 'cpu' }), { message: /checkpoint: '.*nowhere' does not exist/ });
  const dir = resolveCheckpoint(out);
  const model = readFileSync(join(dir, MODEL_FILE));
  const train = readFileSync(join(dir, TRAIN_STATE_FILE));
  writeFileSync(join(dir, TRAIN_STATE_FILE), train.subarray(0, train.length - 10));
  const live = memory().cpu.tensors;
  await t.throwsAsync(trainClassifier({ out, resume: true, device: 'cpu' }), { message: /train-state.safetensors: .*truncated/ });
  t.is(memory().cpu.tensors, live, 'a failed resume frees the model, optimizer and EMA it built');
  writeFileSync(join(dir, TRAIN_STATE_FILE), train);
  writeFileSync(join(dir, MODEL_FILE), model.subarray(0, model.length - 10));
  await t.throwsAsync(trainClassifier({ out, resume: true, device: 'cpu' }), { message: /model.safetensors: .*truncated/ });
  writeFileSync(join(out, CHECKPOINTS_DIR, 'latest'), 'step-99999999\n');
  await t.throwsAsync(trainClassifier({ out, resume: true, device: 'cpu' }), { message: /latest names "step-99999999", which is not a checkpoint folder/ });
  rmSync(out, { recursive: true });
});

test('an aborted signal stops after the current step with a checkpoint', async (t) => {
  const out = scratch();
  const controller = new AbortController();
  let steps = 0;
  const r = await trainClassifier({
    recipe: { ...stateful, epochs: 1 }, out, device: 'cpu', signal: controller.signal,
    onEvent: (e) => {
      if (e.type === 'step' && ++steps === 5) controller.abort();
    },
  });
  t.true(r.interrupted);
  t.is(r.step, 5);
  t.true(existsSync(join(out, CHECKPOINTS_DIR, 'step-00000005', MODEL_FILE)));
  r.model.dispose();
  rmSync(out, { recursive: true });
});

// test/fixtures/run-c863a29: a run saved by the trainer before the runner (commit c863a29):
// the npm start model as "custom" shrunk to depth 1, width 16, 2 heads, 1 epoch, stopped
// after step 3 of 125 (trainClassifier({ recipe: { depth: 1, dim: 16, heads: 2, epochs: 1 }, stopAtStep: 3 })).
test('a run saved before the runner (model "custom") resumes exactly and evaluates', async (t) => {
  const fixture = join(packageRoot, 'test', 'fixtures', 'run-c863a29');
  const old = scratch(), straight = scratch();
  cpSync(fixture, old, { recursive: true });
  const shrunk: Partial<ClassifierRecipe> = { depth: 1, dim: 16, heads: 2, epochs: 1 };
  const resumed = await trainClassifier({ out: old, resume: true, stopAtStep: 6 });
  t.is(resumed.step, 6);
  resumed.model.dispose();
  const fresh = await trainClassifier({ out: straight, recipe: shrunk, stopAtStep: 6 });
  fresh.model.dispose();
  const [a, b] = [old, straight].map((dir) => readSafetensors(join(resolveCheckpoint(dir), MODEL_FILE)));
  t.is(JSON.parse(a!.metadata.recipe!).model, 'pit-d4w64h4', 'saved again under its name in the grammar');
  t.like(JSON.parse(a!.metadata.recipe!), { permuteSwaps: 0, permuteDelta: null, permuteSeed: 0 }, 'fields added since read as their defaults (no permutation)');
  for (const [name, entry] of b!.tensors) t.deepEqual(a!.tensors.get(name)!.data, entry.data, `${name}: 3 old + 3 new steps = 6 straight steps`);
  const r = spawnSync(process.execPath, [join(packageRoot, 'dist', 'cli', 'pit.js'), 'eval', '--checkpoint', fixture, '--json'], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { data: 'mnist-test', n: 2000 });
  for (const dir of [old, straight]) rmSync(dir, { recursive: true, force: true });
});
