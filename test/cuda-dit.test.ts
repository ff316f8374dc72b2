// Whole-model parity for the DiT: five AdamW steps of a small pixel DiT (patch 1, label dropout
// on) on the CPU and on the GPU from the same seed, the same real digits, timesteps and targets,
// in f32 and in mixed precision; and the device rules for x, t and y. The label dropout comes
// from Philox on the host, so both devices drop the same labels and differ only in summation
// order. Runs only where the CUDA addon sees a GPU.
import test from 'ava';
import {
  DiffusionTransformer, loadMnist, mse, normalize, randn, scale, selectBackend, tensor, tidy, type Device, type DitConfig, type Precision,
} from '../lib/index.js';
import { assertStepsClose, adamWSteps } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU DiT tests skipped: ${selectBackend().reasons.join('; ')}`);

// Head dim 32 / 2 = 16: mixed precision runs the bf16 attention kernel.
const small: Partial<DitConfig> = { imageSize: 8, channels: 1, patch: 1, depth: 2, dim: 32, heads: 2, classes: 10, classDropout: 0.1, seed: 3 };

/** The zero-initialised layers (adaLN, final Linear) at small random values, the same on both devices, so every gradient is nonzero from step 0. */
function wakeZeroLayers(model: DiffusionTransformer): void {
  tidy(() => model.loadStateDict(new Map(model.namedParameters()
    .filter(([n]) => n.includes('adaLN_modulation.') || n.startsWith('final_layer.linear.'))
    .map(([n, p], i) => [n, scale(randn(p.shape, { seed: 21, offset: i, device: model.device }), 0.05)])), { strict: false }));
}

function fiveDitSteps(device: Device, precision: Precision = 'f32'): { losses: number[]; grads: Map<string, Float32Array> } {
  const { train } = loadMnist({ size: 8 });
  const B = 32, size = 64;
  const images = normalize(train.images.slice(0, B * size), train, train.mean, train.std);
  const labels = Array.from(train.labels.slice(0, B));
  const model = new DiffusionTransformer(small, { device });
  wakeZeroLayers(model);
  const Cout = model.outputChannels;
  return adamWSteps(model, (step) => {
    const steps = labels.map((_, b) => (step * 131 + b * 37) % 1000);
    const target = randn([B, Cout, size], { seed: 5, offset: step, device });  // Philox: the same numbers on both devices
    const out = model.forward(tensor(images, [B, 1, 8, 8], { device }), steps, labels, { precision, random: { seed: 11, offset: step } });
    return mse(out.reshape([B, Cout, size]), target);
  });
}

// Tolerances as in cuda-model.test.ts: f32 on both sides differs in summation order only
// (1e-3 of each gradient's norm after four optimizer steps); bf16 attention rounds q, k, v and
// the output to 8 significant bits (3e-2). A wrong kernel is off by O(1).
for (const [precision, lossTol, gradTol] of [['f32', 1e-2, 1e-3], ['mixed', 2e-2, 3e-2]] as const) {
  gpuTest(`DiT, 5 training steps, ${precision}: CPU and GPU losses and every gradient close`, (t) => {
    assertStepsClose(t, fiveDitSteps('cpu'), fiveDitSteps('cuda', precision), lossTol, gradTol);
  });
}

gpuTest('a DiT built for cuda: parameters and buffer there, the same weights as on the cpu; x, t or y on the cpu are errors naming them', (t) => {
  const onGpu = new DiffusionTransformer(small, { device: 'cuda' }), onCpu = new DiffusionTransformer(small);
  const cpuWeights = new Map(onCpu.namedParameters());
  for (const [name, p] of onGpu.namedParameters()) {
    t.is(p.device, 'cuda', name);
    t.deepEqual(p.toArray(), cpuWeights.get(name)!.toArray(), `${name}: Philox init is the same on both`);
  }
  t.is(onGpu.posEmbed!.device, 'cuda');
  onGpu.eval();
  tidy(() => {
    const x = tensor(new Float32Array(2 * 64).fill(0.5), [2, 1, 8, 8], { device: 'cuda' });
    t.throws(() => onGpu.forward(tensor(new Float32Array(2 * 64), [2, 1, 8, 8]), [0, 1], [0, 1]), { instanceOf: TypeError, message: /DiffusionTransformer: 'x' is on cpu but the model is on cuda/ });
    t.throws(() => onGpu.forward(x, tensor([0, 1]), [0, 1]), { instanceOf: TypeError, message: /'t' is on cpu but the model is on cuda/ });
    t.throws(() => onGpu.forward(x, [0, 1], tensor(new Int32Array([0, 1]))), { instanceOf: TypeError, message: /'y' is on cpu but the model is on cuda/ });
    const out = onGpu.forward(x, tensor([0, 1], undefined, { device: 'cuda' }), tensor(new Int32Array([0, 10]), undefined, { device: 'cuda' }));
    t.is(out.device, 'cuda');
    t.deepEqual(out.shape, [2, 2, 8, 8]);
  });
  onGpu.dispose();
  onCpu.dispose();
});
