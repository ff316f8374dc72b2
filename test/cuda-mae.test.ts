// Whole-model parity for MAE pre-training: five AdamW steps of a small pixel MAE (drop path on,
// 75% masked) on the CPU and on the GPU from the same seed and the same real digits, in f32 and
// in mixed precision. The masks come from Philox on the host, so both devices mask the same
// pixels and differ only in summation order. Runs only where the CUDA addon sees a GPU.
import test from 'ava';
import { loadMnist, MaskedAutoencoder, normalize, selectBackend, tensor, type Device, type Precision } from '../lib/index.js';
import { assertStepsClose, adamWSteps } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU MAE parity tests skipped: ${selectBackend().reasons.join('; ')}`);

function fiveMaeSteps(device: Device, precision: Precision = 'f32'): { losses: number[]; grads: Map<string, Float32Array> } {
  const { train } = loadMnist({ size: 8 });
  const B = 32, size = 64;
  const images = normalize(train.images.slice(0, B * size), train, train.mean, train.std);
  const model = new MaskedAutoencoder({
    imageSize: 8, channels: 1, depth: 2, dim: 32, heads: 2, dropPath: 0.1, decoderDepth: 1, decoderDim: 32, decoderHeads: 2, seed: 3,
  }, { device });
  return adamWSteps(model, (step) => model.forward(tensor(images, [B, 1, 8, 8], { device }), { precision, random: { seed: 11, offset: step } }).loss);
}

// Tolerances as in cuda-model.test.ts: f32 on both sides differs in summation order only
// (1e-3 of each gradient's norm after four optimizer steps); bf16 attention rounds q, k, v
// and the output to 8 significant bits (3e-2). A wrong kernel is off by O(1).
for (const [precision, lossTol, gradTol] of [['f32', 1e-2, 1e-3], ['mixed', 2e-2, 3e-2]] as const) {
  gpuTest(`MAE pre-training, 5 steps, ${precision}: CPU and GPU losses and every gradient close`, (t) => {
    assertStepsClose(t, fiveMaeSteps('cpu'), fiveMaeSteps('cuda', precision), lossTol, gradTol);
  });
}
