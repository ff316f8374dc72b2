// The CUDA device layer: allocation through the stream-ordered pool, host <-> device copies,
// memory(), out-of-memory and mixed-device errors. Runs only where the CUDA addon sees a GPU;
// elsewhere every test here is reported as skipped.
import test from 'ava';
import { copyOf, empty, matmul, memory, selectBackend, tensor, zeros } from '../lib/index.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU tests skipped: ${selectBackend().reasons.join('; ')}`);

gpuTest('f32, bf16 and i32 data round-trip through the GPU exactly', (t) => {
  const values = Float32Array.from({ length: 1025 }, (_, i) => Math.sin(i) * 1000);
  const g = tensor(values, [1025], { device: 'cuda' });
  t.is(g.device, 'cuda');
  t.deepEqual(Array.from(g.toArray()), Array.from(values));
  const ids = tensor(new Int32Array([5, -7, 2 ** 31 - 1]), [3], { device: 'cuda' });
  t.deepEqual(Array.from(ids.toArray()), [5, -7, 2 ** 31 - 1]);
  const back = copyOf(g, { device: 'cpu' });
  t.deepEqual(Array.from(back.toArray()), Array.from(values));
  const again = copyOf(back, { device: 'cuda' });
  const onDevice = copyOf(again);
  t.deepEqual(Array.from(onDevice.toArray()), Array.from(values));
  const b16 = tensor(values, [1025], { device: 'cuda', dtype: 'bf16' });
  const cpu16 = tensor(values, [1025], { dtype: 'bf16' });
  t.deepEqual(Array.from(b16.toArray()), Array.from(cpu16.toArray()), 'same bf16 rounding on both devices');
});

gpuTest('memory() counts GPU tensors and bytes, and reports free memory', (t) => {
  const before = memory().cuda!;
  const a = empty([1 << 20], { device: 'cuda' });
  const during = memory().cuda!;
  t.is(during.tensors, before.tensors + 1);
  t.is(during.bytes, before.bytes + 4 * (1 << 20));
  t.true(during.total > 0 && during.free > 0 && during.free <= during.total);
  a.dispose();
  t.is(memory().cuda!.tensors, before.tensors);
  t.is(memory().cuda!.bytes, before.bytes);
});

gpuTest('an out-of-memory allocation is a RangeError with the size and free memory; the process goes on', (t) => {
  const total = memory().cuda!.total;
  const n = Math.floor((2 * total) / 4);  // twice the card's memory, under the 1 TiB shape limit
  t.throws(() => empty([n], { device: 'cuda' }), { instanceOf: RangeError, message: /out of GPU memory.*\d+ bytes.*free/i });
  const ok = zeros([16], { device: 'cuda' });
  t.deepEqual(Array.from(ok.toArray()), new Array(16).fill(0));
});

gpuTest('mixing devices in one op is a TypeError naming both parameters', (t) => {
  const a = zeros([2, 2], { device: 'cuda' });
  const b = zeros([2, 2]);
  t.throws(() => matmul(a, b), { instanceOf: TypeError, message: /all tensors must be on one device; 'out' is on cuda but 'b' is on cpu/ });
});

gpuTest('a disposed GPU tensor is a clear error', (t) => {
  const a = zeros([4], { device: 'cuda' });
  a.dispose();
  t.throws(() => a.toArray(), { instanceOf: TypeError, message: /disposed/ });
  t.throws(() => copyOf(a), { instanceOf: TypeError, message: /'src' is a disposed tensor/ });
});

test('the backend choice is reported with reasons', (t) => {
  const s = selectBackend();
  t.true(s.reasons.length >= 1);
  t.is(s.backend, gpu ? 'cuda' : 'cpu');
  t.is(s.addon.buildInfo().backend, gpu ? 'cuda' : 'cpu');
});
