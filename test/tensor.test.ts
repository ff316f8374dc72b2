// Tensor creation, read-back, dtypes, views, disposal, tidy, memory accounting and the
// Philox generator.
import test from 'ava';
import { copyOf, empty, full, keep, memory, ones, rand, randn, tensor, tidy, zeros, type Tensor } from '../lib/index.js';
import { philoxReference } from './philox-reference.js';

test('tensor round-trips f32 and i32 data with its shape', (t) => {
  const a = tensor(new Float32Array([1.5, -2, 3.25, 0, 7, -8]), [2, 3]);
  t.deepEqual(a.shape, [2, 3]);
  t.is(a.dtype, 'f32');
  t.is(a.device, 'cpu');
  t.deepEqual(Array.from(a.toArray()), [1.5, -2, 3.25, 0, 7, -8]);
  const ids = tensor(new Int32Array([3, -1, 2147483647]));
  t.is(ids.dtype, 'i32');
  t.deepEqual(Array.from(ids.toArray()), [3, -1, 2147483647]);
  a.dispose();
  ids.dispose();
});

test('zeros, ones and full fill every element', (t) => {
  t.deepEqual(Array.from(zeros([3, 5]).toArray()), new Array(15).fill(0));
  t.deepEqual(Array.from(ones([1, 1, 7]).toArray()), new Array(7).fill(1));
  t.deepEqual(Array.from(full([4], -2.5).toArray()), [-2.5, -2.5, -2.5, -2.5]);
  t.deepEqual(Array.from(full([2], 9, { dtype: 'i32' }).toArray()), [9, 9]);
});

test('bf16 rounds to nearest even and reads back as f32', (t) => {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to even (1 + 2^-6).
  const values = [1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -3.140625, 65504, 1e-30, Number.POSITIVE_INFINITY, Number.NaN];
  const b = tensor(Float32Array.from(values), [values.length], { dtype: 'bf16' });
  t.is(b.dtype, 'bf16');
  const back = Array.from(b.toArray());
  t.deepEqual(back.slice(0, 5), [1, 1, 1 + 2 ** -6, -3.140625, 65536]);
  t.true(Math.abs(back[5]! - 1e-30) / 1e-30 < 2 ** -8);
  t.is(back[6], Number.POSITIVE_INFINITY);
  t.true(Number.isNaN(back[7]!));
  const f = copyOf(b, { dtype: 'f32' });
  t.deepEqual(Array.from(f.toArray()).slice(0, 4), back.slice(0, 4));
});

test('reshape is a view over the same storage; -1 infers a dim', (t) => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const v = a.reshape([3, -1]);
  t.deepEqual(v.shape, [3, 2]);
  t.deepEqual(Array.from(v.toArray()), [1, 2, 3, 4, 5, 6]);
  const before = memory().cpu.bytes;
  a.reshape([6]).dispose();
  t.is(memory().cpu.bytes, before, 'a view allocates nothing');
  t.throws(() => a.reshape([4, 2]), { instanceOf: RangeError, message: /cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/ });
  t.throws(() => a.reshape([4, -1]), { instanceOf: RangeError, message: /cannot infer/ });
});

test('a disposed tensor throws a clear error on use; dispose twice is harmless', (t) => {
  const a = tensor([1, 2, 3]);
  a.dispose();
  a.dispose();
  t.true(a.disposed);
  t.throws(() => a.toArray(), { instanceOf: TypeError, message: /disposed/ });
  t.throws(() => copyOf(a), { instanceOf: TypeError, message: /copy: 'src' is a disposed tensor/ });
  t.regex(String(a), /disposed/);
});

test('Symbol.dispose frees a tensor at the end of its block', (t) => {
  const before = memory().cpu.tensors;
  {
    using a = zeros([128]);
    t.is(memory().cpu.tensors, before + 1);
    t.is(a.size, 128);
  }
  t.is(memory().cpu.tensors, before);
});

test('tidy disposes what it made except its result and kept tensors', (t) => {
  const before = memory().cpu;
  let kept!: ReturnType<typeof zeros>;
  const result = tidy(() => {
    zeros([1000]);
    ones([10, 10]);
    kept = keep(zeros([3]));
    return { a: ones([5]), list: [zeros([2])] };
  });
  t.false(result.a.disposed);
  t.false(result.list[0]!.disposed);
  t.false(kept.disposed);
  t.is(memory().cpu.tensors, before.tensors + 3);
  t.is(memory().cpu.bytes, before.bytes + 4 * (5 + 2 + 3));
  result.a.dispose();
  result.list[0]!.dispose();
  kept.dispose();
  t.deepEqual({ tensors: memory().cpu.tensors, bytes: memory().cpu.bytes }, { tensors: before.tensors, bytes: before.bytes });
});

test('tidy disposes what it made when fn throws, except kept tensors, and rethrows', (t) => {
  const before = memory().cpu.tensors;
  let kept: Tensor | undefined;
  const err = t.throws(() => tidy(() => {
    zeros([1000]);
    kept = keep(ones([3]));
    tidy(() => zeros([7]));
    throw new RangeError('out of memory (simulated)');
  }));
  t.is(err?.message, 'out of memory (simulated)');
  t.is(memory().cpu.tensors, before + 1, 'only the kept tensor is alive');
  t.false(kept!.disposed);
  kept!.dispose();
  t.is(memory().cpu.tensors, before);
});

test('nested tidy hands returned tensors to the enclosing scope', (t) => {
  const before = memory().cpu.tensors;
  tidy(() => {
    const inner = tidy(() => {
      zeros([4]);
      return ones([4]);
    });
    t.false(inner.disposed);
    t.is(memory().cpu.tensors, before + 1);
  });
  t.is(memory().cpu.tensors, before);
});

test('tidy rejects async functions instead of leaking', (t) => {
  t.throws(() => tidy((async () => zeros([1])) as never), { instanceOf: TypeError, message: /synchronous/ });
});

test('randn and rand follow the Philox 4x32-10 stream exactly', (t) => {
  for (const [seed, offset] of [[0, 0], [42, 0], [42, 3], [2 ** 40 + 7, 2 ** 33]] as const) {
    const n = 37;  // not a multiple of 4: the last block is partial
    const u = rand([n], { seed, offset }).toArray();
    const z = randn([n], { seed, offset }).toArray();
    const ref = philoxReference(seed, offset, n);
    for (let i = 0; i < n; i++) {
      t.is(u[i], ref.uniform[i], `uniform ${i}`);
      t.true(Math.abs(z[i]! - ref.normal[i]!) <= 1e-5 * Math.max(1, Math.abs(ref.normal[i]!)), `normal ${i}: ${z[i]} vs ${ref.normal[i]}`);
    }
  }
});

test('randn has the moments of a standard normal and depends on seed and offset', (t) => {
  const n = 1 << 18;
  const z = randn([n], { seed: 7 }).toArray();
  let s = 0, s2 = 0;
  for (const v of z) {
    s += v;
    s2 += v * v;
  }
  const mean = s / n, variance = s2 / n - mean * mean;
  t.true(Math.abs(mean) < 0.01, `mean ${mean}`);
  t.true(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
  const other = randn([8], { seed: 8 }).toArray();
  const shifted = randn([8], { seed: 7, offset: 1 }).toArray();
  t.notDeepEqual(Array.from(other), Array.from(z.subarray(0, 8)));
  t.notDeepEqual(Array.from(shifted), Array.from(z.subarray(0, 8)));
  t.deepEqual(Array.from(randn([8], { seed: 7 }).toArray()), Array.from(z.subarray(0, 8)), 'same seed, same numbers');
});

test('empty tensors are allowed and read back empty', (t) => {
  const e = empty([0, 5]);
  t.is(e.size, 0);
  t.is(e.toArray().length, 0);
});

test('the Philox reference matches the Random123 known-answer vectors', async (t) => {
  const { philox } = await import('./philox-reference.js');
  const hex = (xs: number[]) => xs.map((x) => x.toString(16).padStart(8, '0'));
  t.deepEqual(hex(philox(0n, 0n, 0n)), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  // counter (243f6a88, 85a308d3, 13198a2e, 03707344), key (a4093822, 299f31d0): digits of pi
  t.deepEqual(hex(philox(0x85a308d3_243f6a88n, 0x03707344_13198a2en, 0x299f31d0_a4093822n)),
    ['d16cfe09', '94fdcceb', '5001e420', '24126ea1']);
});
