// Mixed precision on the CPU (`--precision mixed`, torch.autocast's bf16 policy): the blocks'
// GEMMs and attention on bf16 operands with fp32 accumulation (AVX512-BF16 or AMX kernels where
// the CPU has them, exact widening to f32 where not), everything else f32. Training in mixed
// precision must track the same steps in f32, and a mixed run must save, resume and report its
// precision like an f32 one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  classifyTask, loadMnist, MODEL_FILE, normalize, readSafetensors, resolveCheckpoint, runTraining, softmaxCrossEntropy, tensor,
  TRAIN_STATE_FILE, EMA_FILE, VisionTransformer, type ClassifierRecipe, type Precision,
} from '../lib/index.js';
import { adamWSteps, assertStepsClose, runPit as run } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-cpu-mixed-'));

function steps(precision: Precision, config: { side: number; depth: number; dim: number; heads: number; batch: number }, count: number) {
  const { side, depth, dim, heads, batch: B } = config;
  const { train } = loadMnist({ size: side });
  const pixels = side * side;
  const model = new VisionTransformer({ imageSize: side, channels: 1, depth, dim, heads, classes: 10, dropPath: 0.1, seed: 3 });
  const result = adamWSteps(model, (step) => {
    const at = (step % 4) * B;
    const images = normalize(train.images.slice(at * pixels, (at + B) * pixels), train, train.mean, train.std);
    return softmaxCrossEntropy(model.forward(tensor(images, [B, 1, side, side]), { precision, random: { seed: 11, offset: step } }),
      tensor(train.labels.slice(at, at + B), [B]), { labelSmoothing: 0.1 });
  }, count);
  model.dispose();
  return result;
}

test('mixed precision on the CPU: 5 steps of a small PiT track the f32 run within bf16 tolerances', (t) => {
  // Heads of 16 (dim 32, 2 heads), so attention runs on the bf16 kernels as well as the GEMMs.
  // Each bf16 rounding is ≤ 2^-9 relative: the loss moves by far less than 2e-2 and gradients by
  // a few parts in a thousand over four optimizer steps; a wrong bf16 kernel is off by O(1). The
  // tolerances are the GPU test's (test/cuda-model.test.ts), cls token included.
  const config = { side: 8, depth: 2, dim: 32, heads: 2, batch: 32 };
  assertStepsClose(t, steps('f32', config, 5), steps('mixed', config, 5), 2e-2, (name) => (name === 'cls_token' ? 1.5e-1 : 3e-2));
});

test('mixed precision on the CPU: 20 steps of a 4-block PiT on 8×8 digits keep each loss within 2% of f32', (t) => {
  const config = { side: 8, depth: 4, dim: 64, heads: 4, batch: 64 };
  const f32 = steps('f32', config, 20), mixed = steps('mixed', config, 20);
  t.true(f32.losses[19]! < f32.losses[0]! - 0.1, `the f32 run learns: ${f32.losses[0]} → ${f32.losses[19]}`);
  f32.losses.forEach((l, i) => t.true(Math.abs(mixed.losses[i]! - l) <= 0.02 * l, `step ${i}: mixed ${mixed.losses[i]} vs f32 ${l}`));
});

test('a mixed-precision run on the CPU saves its precision and resumes bit for bit: k steps + resume + N − k = N', async (t) => {
  const small: Partial<ClassifierRecipe> = { imageSize: 8, depth: 2, dim: 32, heads: 2, epochs: 1, dropPath: 0.1, ema: 0.99 };
  const straight = scratch(), resumed = scratch();
  (await runTraining(classifyTask, { out: straight, recipe: small, device: 'cpu', precision: 'mixed', stopAtStep: 6 })).model.dispose();
  (await runTraining(classifyTask, { out: resumed, recipe: small, device: 'cpu', precision: 'mixed', stopAtStep: 3 })).model.dispose();
  (await runTraining(classifyTask, { out: resumed, resume: true, device: 'cpu', stopAtStep: 6 })).model.dispose();
  for (const file of [MODEL_FILE, EMA_FILE, TRAIN_STATE_FILE]) {
    const [x, y] = [straight, resumed].map((dir) => readSafetensors(join(resolveCheckpoint(dir), file)));
    t.is(y!.metadata.precision, x!.metadata.precision, file);
    for (const [name, entry] of x!.tensors) t.deepEqual(y!.tensors.get(name)!.data, entry.data, `${file} ${name}`);
  }
  t.is(JSON.parse(readSafetensors(join(resolveCheckpoint(resumed), MODEL_FILE)).metadata.precision!), 'mixed');
  // A resumed run keeps its precision: asking for another one is an error naming both.
  await t.throwsAsync(runTraining(classifyTask, { out: resumed, resume: true, device: 'cpu', precision: 'f32', stopAtStep: 7 }),
    { instanceOf: RangeError, message: /resume: 'precision' is "mixed" in the checkpoint, got "f32"/ });
  for (const dir of [straight, resumed]) rmSync(dir, { recursive: true, force: true });
});

test('pit train --precision mixed --device cpu trains and reports its accuracy', (t) => {
  const out = scratch();
  const r = run('train', '--precision', 'mixed', '--device', 'cpu', '--model', 'pit-d2w32h2', '--image-size', '8', '--epochs', '1', '--out', out);
  t.is(r.status, 0, r.stderr);
  const final = /^final top-1 accuracy: (\d+\.\d\d)% on 2000 held-out images/.exec(r.stdout.trim().split('\n').at(-1)!);
  t.truthy(final, r.stdout);
  t.true(Number(final![1]) > 20, `a 1-epoch mixed run learns: ${final![1]}%`);
  rmSync(out, { recursive: true, force: true });
});
