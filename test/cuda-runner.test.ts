// The training runner and the benchmarks on the GPU: the model is built there, a mixed-precision
// run resumes bit-exactly with its precision, and `pit bench train` / `pit study scaling
// --device cuda` measure instead of failing on a model left on the CPU (the bug of issue 10).
// Runs only where the CUDA addon sees a GPU.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { measureTrainStep } from '../bench/train.js';
import {
  classifyTask, MODEL_FILE, readSafetensors, resolveCheckpoint, runTraining, selectBackend, TRAIN_STATE_FILE, EMA_FILE,
  type ClassifierRecipe,
} from '../lib/index.js';
import { runPit as run } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU runner tests skipped: ${selectBackend().reasons.join('; ')}`);

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-cuda-runner-'));
const small: Partial<ClassifierRecipe> = { imageSize: 8, depth: 2, dim: 32, heads: 2, epochs: 1, dropPath: 0.1, ema: 0.99 };

gpuTest('a mixed-precision run on cuda: every parameter there, and k steps + resume + N − k steps = N steps, bit for bit', async (t) => {
  const straight = scratch(), resumed = scratch();
  const a = await runTraining(classifyTask, { out: straight, recipe: small, device: 'cuda', precision: 'mixed', stopAtStep: 6 });
  for (const [name, p] of a.model.namedParameters()) t.is(p.device, 'cuda', name);
  a.model.dispose();
  const first = await runTraining(classifyTask, { out: resumed, recipe: small, device: 'cuda', precision: 'mixed', stopAtStep: 3 });
  first.model.dispose();
  const second = await runTraining(classifyTask, { out: resumed, resume: true, device: 'cuda', stopAtStep: 6 });
  second.model.dispose();
  for (const file of [MODEL_FILE, EMA_FILE, TRAIN_STATE_FILE]) {
    const [x, y] = [straight, resumed].map((dir) => readSafetensors(join(resolveCheckpoint(dir), file)));
    t.is(y!.metadata.precision ?? x!.metadata.precision, x!.metadata.precision);
    for (const [name, entry] of x!.tensors) t.deepEqual(y!.tensors.get(name)!.data, entry.data, `${file} ${name}`);
  }
  for (const dir of [straight, resumed]) rmSync(dir, { recursive: true, force: true });
});

gpuTest('measureTrainStep on cuda, f32 and mixed: finite times, peak memory on the GPU', (t) => {
  for (const precision of ['f32', 'mixed'] as const) {
    const m = measureTrainStep('cuda', { model: 'pit-d1w16h2', side: 8, channels: 3, classes: 10, batch: 2, precision }, { budgetMs: 50 });
    t.true(m.ms > 0 && Number.isFinite(m.ms), `${precision}: ${m.ms} ms`);
    t.true(m.peakBytes > 0, precision);
  }
});

gpuTest('pit bench train and pit study scaling --device cuda measure every case', (t) => {
  const bench = run('bench', 'train', '--device', 'cuda', '--models', 'pit-d1w16h2,vit-d1w16h2/2', '--sides', '8', '--batch', '2', '--budget', '50', '--json');
  t.is(bench.status, 0, bench.stderr);
  t.is(bench.stdout.trim().split('\n').filter((l) => l.startsWith('{')).length, 2, bench.stdout);
  const out = scratch();
  const study = run('study', 'scaling', '--device', 'cuda', '--models', 'pit-d1w16h2', '--sides', '4,8', '--budget', '30', '--out', out);
  t.is(study.status, 0, study.stderr);
  t.notRegex(study.stderr, /skipped/);
  rmSync(out, { recursive: true, force: true });
});
