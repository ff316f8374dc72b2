// The runner knows no task: a regression defined here (an MLP fitting a fixed linear function
// of random images, with a per-sample loss mask drawn from the step's random stream, as MAE's
// masks will be) trains through it, its loss falls, a stopped and resumed run is bit-identical
// to a straight one, and the benchmark times its step. Recipe errors name the field, in the
// shared part and in the task's.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { measureTaskStep } from '../bench/train.js';
import {
  channelStats, classifyTask, gelu, InitRng, Linear, linear, makeRecipe, METRICS_FILE, Module, mse, MODEL_FILE, noGrad, rand, resolveCheckpoint,
  RUN_FILE, runTraining, substream, tensor, tidy, TRAIN_STATE_FILE, EMA_FILE, type Dataset, type Device, type Task, type TaskRecipePart, type Tensor,
} from '../lib/index.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-runner-'));

interface RegressionRecipe {
  hidden: number;
  /** Fraction of the samples whose error counts in a step (drawn per step, like MAE's mask). */
  keep: number;
}

interface RegressorConfig {
  inputs: number;
  hidden: number;
  seed: number;
}

/** images (B, C, H, W) → (B, 1, 1): flatten, Linear, GELU, Linear. */
class Regressor extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly config: RegressorConfig, device: Device) {
    super(device);
    const rng = new InitRng(config.seed, device);
    this.fc1 = this.child('fc1', new Linear(config.inputs, config.hidden, rng));
    this.fc2 = this.child('fc2', new Linear(config.hidden, 1, rng));
  }

  forward(images: Tensor): Tensor {
    const B = images.shape[0]!;
    return this.fc2.forward(gelu(this.fc1.forward(images.reshape([B, this.config.inputs])))).reshape([B, 1, 1]);
  }
}

const [C, S] = [1, 4];
const D = C * S * S;
/** The function to learn: y = Σ w_i x_i over the normalised pixels, w fixed. */
const trueWeights = Float32Array.from({ length: D }, (_, i) => Math.sin(1 + i) / 2);

function randomImages(n: number, seed: number, name: string): Dataset {
  const images = Float32Array.from({ length: n * D }, (_, i) => (Math.sin(seed * 7919 + i * 12.9898) * 43758.5453) % 1 + 0.5);
  return { images, labels: new Int32Array(n), n, channels: C, height: S, width: S, classes: 1, name, ...channelStats(images, n, C, S * S) };
}

/** (B, C, H, W) → the target (B, 1, 1), no gradient. */
const target = (images: Tensor): Tensor =>
  noGrad(() => linear(images.reshape([images.shape[0]!, D]), tensor(trueWeights, [1, D], { device: images.device })).reshape([images.shape[0]!, 1, 1]));

const regressionRecipe: TaskRecipePart<RegressionRecipe> = {
  defaults: { hidden: 16, keep: 0.75 },
  sharedDefaults: { imageSize: null, epochs: 10, batchSize: 20, lr: 2e-2, warmupEpochs: 0, ema: 0.9, evalBatchSize: 50 },
  fields: [
    { key: 'hidden', flag: '--hidden <n>', help: 'hidden width', rule: { kind: 'integer', min: 1 } },
    { key: 'keep', flag: '--keep <fraction>', help: 'fraction of samples in the loss', rule: { kind: 'number', min: 0, max: 1, maxClosed: true } },
  ],
  check(r) {
    if (r.keep === 0) throw new RangeError("recipe: 'keep' must be > 0, got 0");
  },
};

const regressionTask: Task<RegressionRecipe, Regressor, { mse: number }> = {
  name: 'regress',
  checkpointFormat: 'runner test regression v1',
  recipe: regressionRecipe,
  data: (recipe) => {
    const train = randomImages(200, recipe.seed + 1, 'random-train');
    return { train, test: { ...randomImages(100, recipe.seed + 2, 'random-test'), mean: train.mean, std: train.std } };
  },
  model: (recipe, shape, device) => new Regressor({ inputs: shape.channels * shape.height * shape.width, hidden: recipe.hidden, seed: recipe.seed }, device),
  loss(model, batch, { recipe, random }) {
    const B = batch.images.shape[0]!;
    // (1, B) mask of the samples that count this step, from the step's Philox stream.
    const u = noGrad(() => rand([B], substream(random, 'mask')).toArray());
    const mask = tensor(Float32Array.from(u, (x) => (x < recipe.keep ? 1 : 0)), [1, B], { device: model.device });
    return mse(model.forward(batch.images).reshape([1, B, 1]), target(batch.images).reshape([1, B, 1]), mask);
  },
  evaluate(model, data, { normalization }) {
    const images = Float32Array.from(data.images, (x) => (x - normalization.mean[0]!) / normalization.std[0]!);
    return tidy(() => noGrad(() => {
      const x = tensor(images, [data.n, C, S, S], { device: model.device });
      return { mse: mse(model.forward(x), target(x)).toArray()[0]! };
    }));
  },
};

test('a task the runner has never heard of trains through it: its loss falls, and its files say which task', async (t) => {
  const out = scratch();
  const types: string[] = [];
  const r = await runTraining(regressionTask, { out, device: 'cpu', onEvent: (e) => types.push(e.type) });
  t.false(r.interrupted);
  t.is(r.step, 10 * 10);
  const [first, last] = [r.epochs[0]!, r.epochs.at(-1)!];
  t.true(last.trainLoss < first.trainLoss / 2, `train loss ${first.trainLoss} → ${last.trainLoss}`);
  t.true(last.test.mse < first.test.mse / 2, `held-out mse ${first.test.mse} → ${last.test.mse}`);
  t.truthy(last.ema, 'the shared EMA (a default this task set) is evaluated too');
  t.deepEqual(types.filter((e) => e !== 'step'), ['start', ...Array(10).fill(['epoch', 'checkpoint']).flat()]);
  const run = JSON.parse(readFileSync(join(out, RUN_FILE), 'utf8'));
  t.like(run, { task: 'regress', format: 'runner test regression v1', config: { inputs: 16, hidden: 16, seed: 0 }, recipe: { hidden: 16, keep: 0.75, epochs: 10, lr: 2e-2 } });
  r.model.dispose();
  rmSync(out, { recursive: true });
});

test('the task runs k steps, stops, resumes and runs N − k: bit-identical to N straight steps', async (t) => {
  const straight = scratch(), split = scratch();
  const a = await runTraining(regressionTask, { recipe: { epochs: 3 }, out: straight, device: 'cpu' });
  const b1 = await runTraining(regressionTask, { recipe: { epochs: 3 }, out: split, device: 'cpu', stopAtStep: 13 });
  t.true(b1.interrupted);
  t.is(b1.step, 13);
  b1.model.dispose();
  const b2 = await runTraining(regressionTask, { out: split, resume: true, device: 'cpu' });
  t.is(b2.step, a.step);
  for (const file of [MODEL_FILE, EMA_FILE, TRAIN_STATE_FILE]) {
    const x = readFileSync(join(resolveCheckpoint(straight), file)), y = readFileSync(join(resolveCheckpoint(split), file));
    t.true(x.equals(y), `${file} identical byte for byte`);
  }
  const epochLines = (dir: string) => readFileSync(join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((l) => l.type === 'epoch').map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);
  t.deepEqual(epochLines(split), epochLines(straight));
  // The resumed run keeps its task part too.
  await t.throwsAsync(runTraining(regressionTask, { recipe: { hidden: 4 }, out: split, resume: true, device: 'cpu' }), { message: /resume: 'hidden' is 16 in the checkpoint, got 4/ });
  // And it is a regression run: the classification task refuses it by name.
  await t.throwsAsync(runTraining(classifyTask, { out: split, resume: true, device: 'cpu' }), { message: /is a 'regress' run, not 'classify'/ });
  a.model.dispose();
  b2.model.dispose();
  rmSync(straight, { recursive: true });
  rmSync(split, { recursive: true });
});

test('recipe errors name the field: the shared part, the task part and its own checks', (t) => {
  t.like(makeRecipe(regressionTask.recipe), { hidden: 16, epochs: 10, ema: 0.9, lr: 0.02, data: 'mnist' });
  t.throws(() => makeRecipe(regressionTask.recipe, { lr: -1 }), { instanceOf: RangeError, message: /recipe: 'lr' must be a number in \[0, ∞\), got -1/ });
  t.throws(() => makeRecipe(regressionTask.recipe, { batchSize: 0 }), { message: /'batchSize' must be an integer ≥ 1, got 0/ });
  t.throws(() => makeRecipe(regressionTask.recipe, { beta2: 1 }), { message: /'beta2' must be a number in \[0, 1\), got 1/ });
  t.throws(() => makeRecipe(regressionTask.recipe, { hidden: 0 }), { message: /recipe: 'hidden' must be an integer ≥ 1, got 0/ });
  t.throws(() => makeRecipe(regressionTask.recipe, { keep: 2 }), { message: /'keep' must be a number in \[0, 1\], got 2/ });
  t.throws(() => makeRecipe(regressionTask.recipe, { keep: 0 }), { message: /'keep' must be > 0/ });
  t.throws(() => makeRecipe(classifyTask.recipe, { labelSmoothing: 1 }), { message: /'labelSmoothing' must be a number in \[0, 1\), got 1/ });
  t.throws(() => makeRecipe(classifyTask.recipe, { pool: 'max' as never }), { message: /'pool' must be "avg" or "cls", got "max"/ });
});

test('the benchmark times the task\'s own step (any task), on the device it is asked for', (t) => {
  const recipe = makeRecipe(regressionTask.recipe);
  const m = measureTaskStep(regressionTask, recipe, 'cpu', { side: S, channels: C, classes: 1, batch: 8 }, { budgetMs: 20 });
  t.is(m.parameters, 16 * 16 + 16 + 16 + 1);
  t.true(m.ms > 0 && m.repeats >= 3);
  t.true(m.peakBytes >= 16 * m.parameters, 'weights, gradients and both AdamW moments');
});
