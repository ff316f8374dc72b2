// Seeded mutations of CIFAR binary files: every one either loads correctly or fails with a
// clean error (Error/RangeError, never a TypeError from deep inside) that names the file or
// folder; never a crash. Also the named cases: one repeated byte, labels out of range.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCifar10, loadCifar100 } from '../lib/index.js';
import { rng } from './helpers.js';

const PIXELS = 3072;

/** n valid records: label bytes below the limits, varied pixels. */
function records(n: number, labelLimits: number[], random: () => number): Uint8Array {
  const size = labelLimits.length + PIXELS;
  const bytes = new Uint8Array(n * size);
  for (let r = 0; r < n; r++) {
    labelLimits.forEach((limit, k) => (bytes[r * size + k] = Math.floor(random() * limit)));
    for (let p = 0; p < PIXELS; p++) bytes[r * size + labelLimits.length + p] = Math.floor(random() * 256);
  }
  return bytes;
}

const formats = [
  { name: 'cifar10', load: loadCifar10, files: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'], limits: [10] },
  { name: 'cifar100', load: loadCifar100, files: ['train.bin', 'test.bin'], limits: [20, 100] },
] as const;

type Mutation = (b: Uint8Array, random: () => number) => Uint8Array;
const mutations: Record<string, Mutation> = {
  truncate: (b, random) => b.subarray(0, Math.floor(random() * b.length)),
  extend: (b, random) => Uint8Array.from([...b, ...Array.from({ length: 1 + Math.floor(random() * 5000) }, () => Math.floor(random() * 256))]),
  empty: () => new Uint8Array(0),
  byteRun: (b, random) => {
    const c = b.slice(), start = Math.floor(random() * b.length), value = Math.floor(random() * 256);
    c.fill(value, start, Math.min(b.length, start + Math.floor(random() * 20000)));
    return c;
  },
  oneByte: (b, random) => new Uint8Array(b.length).fill(Math.floor(random() * 256)),
  labelOutOfRange: (b, random) => {
    const c = b.slice();
    c[0] = 100 + Math.floor(random() * 156);
    return c;
  },
  flipBytes: (b, random) => {
    const c = b.slice();
    for (let i = 0; i < 50; i++) c[Math.floor(random() * c.length)] = Math.floor(random() * 256);
    return c;
  },
};

test('fuzz: 240 mutated CIFAR-10/100 folders each load correctly or fail naming the file, never crash', (t) => {
  const random = rng(11);
  const counts = { cases: 0, loaded: 0, cleanErrors: 0, crashes: 0 };
  const names = Object.keys(mutations);
  for (let i = 0; i < 240; i++) {
    const format = formats[i % 2]!;
    const dir = mkdtempSync(join(tmpdir(), 'pit-cifar-fuzz-'));
    try {
      const originals = format.files.map(() => records(1 + Math.floor(random() * 3), [...format.limits], random));
      const target = Math.floor(random() * format.files.length), kind = names[Math.floor(random() * names.length)]!;
      format.files.forEach((file, f) => writeFileSync(join(dir, file), f === target ? mutations[kind]!(originals[f]!, random) : originals[f]!));
      counts.cases++;
      try {
        const { train, test } = format.load(dir);
        // A correct load: every record became an image with its label.
        const record = format.limits.length + PIXELS;
        t.is(train.images.length, train.n * PIXELS);
        t.is(test.images.length, test.n * PIXELS);
        t.true([...train.labels, ...test.labels].every((l) => l >= 0 && l < format.limits.at(-1)!), `${kind}: labels in range`);
        t.true(train.n > 0 && test.n > 0 && record > 0);
        counts.loaded++;
      } catch (err) {
        const e = err as Error;
        const clean = (e instanceof RangeError || e.constructor === Error) && e.message.includes(dir) && e.message.startsWith(`${format.name}: `);
        if (clean) counts.cleanErrors++;
        else {
          counts.crashes++;
          t.fail(`${kind} on ${format.files[target]}: ${e.stack}`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  t.log(`CIFAR fuzz: ${counts.cases} cases, ${counts.loaded} correct loads, ${counts.cleanErrors} clean errors, ${counts.crashes} crashes`);
  t.is(counts.crashes, 0);
  t.true(counts.loaded > 0 && counts.cleanErrors > 0, 'both outcomes are exercised');
});

test('CIFAR files of one repeated byte: an error naming the files and the channel with zero variance', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-cifar-flat-'));
  try {
    const flat = new Uint8Array(2 * (1 + PIXELS)).fill(7); // label 7, every pixel 7
    for (const file of formats[0].files) writeFileSync(join(dir, file), flat);
    t.throws(() => loadCifar10(dir), { instanceOf: RangeError, message: new RegExp(`^cifar10: the training files \\(${join(dir, 'data_batch_1.bin').replace(/[/\\\\.]/g, '\\$&')}.*have zero variance in channel 0 \\(every pixel 7\\)`) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
