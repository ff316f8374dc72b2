// Whole-task parity for diffusion training and sampling (pit diffuse, pit sample): five AdamW
// steps of the 'dit' task's loss (the hybrid diffusion loss with its timesteps, noise and label
// dropout from the step's Philox substreams) on the CPU and on the GPU from the same seed and
// the same real digits, in f32 and mixed precision; then one guided DDPM sampling step and a
// three-step DDIM chain of the same weights on both devices. Philox gives both devices the same
// draws, so they differ only in summation order. Runs only where the CUDA addon sees a GPU.
import test from 'ava';
import {
  diffusionData, diffusionOf, DiffusionTransformer, ditTask, makeRecipe, normalize, sampleDiffusion, selectBackend, taskOptimizer, tensor, tidy, trainStep,
  type Device, type Precision,
} from '../lib/index.js';
import { assertStepsClose, adamWSteps, relativeError } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU diffusion-task parity tests skipped: ${selectBackend().reasons.join('; ')}`);

// Head dim 32 / 2 = 16: mixed precision runs the bf16 attention kernel.
const recipe = makeRecipe(ditTask.recipe, { model: 'dit-d2w32h2/1', seed: 3 });
const { train } = diffusionData(recipe);
const B = 32;
const images = normalize(train.images.slice(0, B * 64), train, train.mean, train.std);
const labels = train.labels.slice(0, B);

function fiveDiffusionSteps(device: Device, precision: Precision = 'f32'): { losses: number[]; grads: Map<string, Float32Array> } {
  const model = ditTask.model(recipe, train, device);
  return adamWSteps(model, (step) => ditTask.loss(model, { images: tensor(images, [B, 1, 8, 8], { device }), labels: tensor(labels, [B], { device }) },
    { recipe, random: { seed: 11, offset: step }, precision }));
}

// Tolerances as in cuda-dit.test.ts: f32 differs in summation order only (1e-3 of each
// gradient's norm after four optimizer steps); bf16 attention rounds q, k, v and the output to
// 8 significant bits (3e-2). A wrong kernel, or a draw that differs between devices (another
// t, ε or dropped label), is off by O(1).
for (const [precision, lossTol, gradTol] of [['f32', 1e-2, 1e-3], ['mixed', 2e-2, 3e-2]] as const) {
  gpuTest(`diffusion training (task 'dit'), 5 steps, ${precision}: CPU and GPU losses and every gradient close`, (t) => {
    assertStepsClose(t, fiveDiffusionSteps('cpu'), fiveDiffusionSteps('cuda', precision), lossTol, gradTol);
  });
}

gpuTest('sampling with the same weights: one guided DDPM step and a 3-step DDIM chain agree on CPU and GPU', (t) => {
  // Trained a few steps on the CPU so that every layer is awake, then copied to the GPU.
  const trained = ditTask.model(recipe, train, 'cpu');
  const optimizer = taskOptimizer(ditTask, trained, recipe);
  for (let step = 0; step < 5; step++)
    tidy(() => trainStep(ditTask, trained, optimizer, { images: tensor(images, [B, 1, 8, 8]), labels: tensor(labels, [B]) },
      { recipe, random: { seed: 11, offset: step }, precision: 'f32', lr: 1e-3 }));
  optimizer.dispose();
  const onGpu = new DiffusionTransformer(trained.config, { device: 'cuda' });
  onGpu.loadStateDict(trained.stateDict());
  const sample = (model: DiffusionTransformer, steps: number, sampler: 'ddpm' | 'ddim') => tidy(() => Array.from(sampleDiffusion(diffusionOf(1000),
    (x, tt, y) => model.forward(x, tt, y, { train: false }), {
      shape: [6, 1, 8, 8], labels: [0, 1, 2, 3, 4, 5], steps, sampler, seed: 7, guidanceScale: 4, nullLabel: 10, device: model.device,
    }).toArray()));
  for (const [steps, sampler] of [[1, 'ddpm'], [3, 'ddim']] as const) {
    const err = relativeError(sample(onGpu, steps, sampler), sample(trained, steps, sampler));
    t.true(err < 1e-4, `${sampler} ${steps} step(s): max |GPU − CPU| / max |CPU| = ${err}`);
  }
  trained.dispose();
  onGpu.dispose();
});
