// The runner knows no task: a regression (regression-task.ts: an MLP fitting a fixed linear
// function of random images, with a per-sample loss mask drawn from the step's random stream,
// as MAE's masks will be) trains through it, its loss falls, a stopped and resumed run is bit-identical
// to a straight one, and the benchmark times its step. Recipe errors name the field, in the
// shared part and in the task's.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { measureTaskStep } from '../bench/train.js';
import { classifyTask, makeRecipe, RUN_FILE, runTraining } from '../lib/index.js';
import { C, regressionTask, S } from './regression-task.js';
import { assertSameRun } from './same-run.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-runner-'));

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
  assertSameRun(t, straight, split);
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
