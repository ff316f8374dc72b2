// Device travels with the model: every parameter is made on the device the model is built
// for, and an input or a part on another device is a TypeError naming both. The GPU half
// runs only where the CUDA addon sees a GPU.
import test from 'ava';
import { Module, selectBackend, tensor, tidy, type Device, type Tensor } from '../lib/index.js';
import { VisionTransformer, type VitConfig } from '../lib/models/vit.js';
import { BlockStack, InitRng, Linear } from '../lib/nn/index.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU device tests skipped: ${selectBackend().reasons.join('; ')}`);

const tiny: Partial<VitConfig> = { imageSize: 4, channels: 1, depth: 2, dim: 16, heads: 2, classes: 3, posEmbed: 'sincos' };

/** A module with no tensors of its own, to check the device rules on any machine. */
class Probe extends Module {
  constructor(device: Device) {
    super(device);
  }
  adopt(name: string, m: Module): Module {
    return this.child(name, m);
  }
  check(x: Tensor): void {
    this.expectDevice('x', x);
  }
}

test('a CPU model has every parameter and buffer on the cpu; a seed alone means cpu', (t) => {
  const model = new VisionTransformer(tiny);
  t.is(model.device, 'cpu');
  t.true(model.namedParameters().every(([, p]) => p.device === 'cpu'));
  t.is(model.posEmbed!.device, 'cpu', 'the sincos buffer too');
  t.is(new Linear(2, 3, 7).device, 'cpu');
  model.dispose();
});

test('a part on another device, or an input on another device, is a TypeError naming both devices', (t) => {
  const cpu = new Probe('cpu'), cuda = new Probe('cuda');
  t.throws(() => cpu.adopt('blocks', cuda), { instanceOf: TypeError, message: /child "blocks" \(Probe\) is on cuda but its parent Probe is on cpu/ });
  const x = tensor(new Float32Array(4), [4]);
  t.throws(() => cuda.check(x), { instanceOf: TypeError, message: /Probe: 'x' is on cpu but the model is on cuda/ });
  t.notThrows(() => cpu.check(x));
  t.throws(() => new Probe('gpu' as Device), { instanceOf: TypeError, message: /'device' must be "cpu" or "cuda", got "gpu"/ });
  t.throws(() => new InitRng(0, 'tpu' as Device), { instanceOf: TypeError, message: /InitRng: 'device' must be "cpu" or "cuda", got "tpu"/ });
  x.dispose();
});

// Only where there is no GPU (where there is one, the GPU test below covers cuda models).
(gpu ? test.skip : test)('without a GPU, a model asked for cuda is a clear error, not a model on the cpu', (t) => {
  t.throws(() => new VisionTransformer(tiny, { device: 'cuda' }), { instanceOf: TypeError, message: /device "cuda" is not available/ });
  t.throws(() => new BlockStack(1, 16, 2, { init: new InitRng(0, 'cuda') }), { instanceOf: TypeError, message: /device "cuda" is not available/ });
});

gpuTest('a model built for cuda has every parameter and buffer there; a CPU batch is an error naming both; same weights as on the cpu', (t) => {
  const onGpu = new VisionTransformer(tiny, { device: 'cuda' }), onCpu = new VisionTransformer(tiny);
  t.is(onGpu.device, 'cuda');
  for (const [name, p] of onGpu.namedParameters()) t.is(p.device, 'cuda', name);
  t.is(onGpu.posEmbed!.device, 'cuda');
  const cpuWeights = new Map(onCpu.namedParameters());
  for (const [name, p] of onGpu.namedParameters()) t.deepEqual(p.toArray(), cpuWeights.get(name)!.toArray(), `${name}: Philox init is the same on both`);
  tidy(() => {
    const images = tensor(new Float32Array(2 * 16).fill(0.5), [2, 1, 4, 4]);
    t.throws(() => onGpu.forward(images), { instanceOf: TypeError, message: /VisionTransformer: 'images' is on cpu but the model is on cuda/ });
    const logits = onGpu.forward(tensor(new Float32Array(2 * 16).fill(0.5), [2, 1, 4, 4], { device: 'cuda' }));
    t.is(logits.device, 'cuda');
  });
  onGpu.dispose();
  onCpu.dispose();
});
