// Data: MNIST loading and split, resizing against float64 references, CIFAR readers on
// generated fixtures (and their errors), transforms and the resumable batch loader.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchLoader, flipImage, loadCifar10, loadCifar100, loadMnist, loadMnistAll, normalize, randomCrop, randomFlip, randomTranslate, resizeImages, Rng, augmentation, type Dataset } from '../lib/data/index.js';
import { assertClose, rng } from './helpers.js';

test('MNIST: 10,000 digits split 8,000 / 2,000, labels 0..9 all present, pixels in [0, 1]', (t) => {
  const all = loadMnistAll();
  t.is(all.n, 10_000);
  t.is(all.images.length, 10_000 * 784);
  const { train, test: held } = loadMnist();
  t.is(train.n, 8000);
  t.is(held.n, 2000);
  for (const d of [train, held]) {
    t.deepEqual([d.channels, d.height, d.width, d.classes], [1, 28, 28, 10]);
    t.is(d.images.length, d.n * 784);
    const counts = new Array(10).fill(0);
    for (const l of d.labels) {
      t.true(l >= 0 && l <= 9);
      counts[l]++;
    }
    t.true(counts.every((c) => c > 100), `every class present: ${counts}`);
    let lo = Infinity, hi = -Infinity;
    for (const v of d.images) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    t.is(lo, 0);
    t.is(hi, 1);
  }
  t.true(train.mean[0]! > 0.05 && train.mean[0]! < 0.3, `mean ${train.mean[0]}`);
  t.true(train.std[0]! > 0.2 && train.std[0]! < 0.45, `std ${train.std[0]}`);
  t.deepEqual(held.mean, train.mean);
});

/** Rebuilds which of the 10,000 source digits each split example is, by image content. */
function sourceOf(all: Dataset, d: Dataset): number[] {
  const key = (imgs: Float32Array, i: number) => Buffer.from(imgs.buffer, imgs.byteOffset + i * 784 * 4, 784 * 4).toString('base64');
  const where = new Map<string, number>();
  for (let i = 0; i < all.n; i++) where.set(key(all.images, i), i);
  return Array.from({ length: d.n }, (_, i) => where.get(key(d.images, i))!);
}

test('MNIST: the split is deterministic for a seed, differs across seeds, and train/test are disjoint', (t) => {
  const a = loadMnist(), b = loadMnist(), c = loadMnist({ seed: 7 });
  t.deepEqual(a.train.labels, b.train.labels);
  t.deepEqual(a.test.images.subarray(0, 5000), b.test.images.subarray(0, 5000));
  t.notDeepEqual(a.train.labels, c.train.labels);
  const all = loadMnistAll();
  const trainSrc = new Set(sourceOf(all, a.train));
  const testSrc = sourceOf(all, a.test);
  // Duplicate images in the source would merge keys; a real split keeps nearly all distinct.
  t.true(trainSrc.size > 7900);
  t.true(testSrc.filter((i) => trainSrc.has(i)).length < 20);
  for (let k = 0; k < 50; k++) t.is(a.test.labels[k], all.labels[testSrc[k]!]);
});

test('MNIST resized to 14 is the 2×2 box mean of the 28×28 digits', (t) => {
  const full = loadMnist(), small = loadMnist({ size: 14 });
  t.deepEqual([small.train.height, small.train.width], [14, 14]);
  t.is(small.train.images.length, 8000 * 196);
  t.deepEqual(small.train.labels, full.train.labels);
  for (const [i, y, x] of [[0, 7, 7], [1, 5, 9], [123, 10, 3], [7999, 13, 13], [4000, 6, 8]] as const) {
    const f = full.train.images, o = i * 784;
    const ref = (f[o + 2 * y * 28 + 2 * x]! + f[o + 2 * y * 28 + 2 * x + 1]! + f[o + (2 * y + 1) * 28 + 2 * x]! + f[o + (2 * y + 1) * 28 + 2 * x + 1]!) / 4;
    assertClose(t, [small.train.images[i * 196 + y * 14 + x]!], [ref], { atol: 1e-6, label: `image ${i} (${y}, ${x})` });
  }
});

/** PyTorch bilinear, align_corners = false, in float64 (what enlarging must equal). */
function bilinearRef(src: ArrayLike<number>, h: number, w: number, oh: number, ow: number): Float64Array {
  const out = new Float64Array(oh * ow);
  const coord = (d: number, inS: number, outS: number) => Math.max(0, (d + 0.5) * (inS / outS) - 0.5);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++) {
      const sy = coord(y, h, oh), sx = coord(x, w, ow);
      const y0 = Math.floor(sy), x0 = Math.floor(sx);
      const y1 = Math.min(y0 + 1, h - 1), x1 = Math.min(x0 + 1, w - 1);
      const ty = sy - y0, tx = sx - x0;
      const v = (yy: number, xx: number) => src[yy * w + xx]!;
      out[y * ow + x] = (1 - ty) * ((1 - tx) * v(y0, x0) + tx * v(y0, x1)) + ty * ((1 - tx) * v(y1, x0) + tx * v(y1, x1));
    }
  return out;
}

/**
 * Pillow's bilinear resample (torchvision antialias=True) in float64, written per output
 * pixel from its definition: weight max(0, 1 − |j + 0.5 − c|/s) per axis, s = max(in/out, 1),
 * c = (d + 0.5)·in/out, normalised over the image.
 */
function antialiasedRef(src: ArrayLike<number>, h: number, w: number, oh: number, ow: number): Float64Array {
  const weightsFor = (d: number, inS: number, outS: number) => {
    const scale = inS / outS, s = Math.max(scale, 1), c = (d + 0.5) * scale;
    const ws = Array.from({ length: inS }, (_, j) => Math.max(0, 1 - Math.abs((j + 0.5 - c) / s)));
    const total = ws.reduce((a, b) => a + b, 0);
    return ws.map((v) => v / total);
  };
  const out = new Float64Array(oh * ow);
  for (let y = 0; y < oh; y++) {
    const wy = weightsFor(y, h, oh);
    for (let x = 0; x < ow; x++) {
      const wx = weightsFor(x, w, ow);
      let acc = 0;
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) acc += wy[i]! * wx[j]! * src[i * w + j]!;
      out[y * ow + x] = acc;
    }
  }
  return out;
}

test('bilinear resize: a constant stays constant; a ramp and random data match a float64 reference', (t) => {
  const constant = new Float32Array(2 * 28 * 28).fill(0.375);
  for (const side of [20, 40, 9]) {
    const out = resizeImages(constant, 2, 28, 28, side, side);
    t.is(out.length, 2 * side * side);
    assertClose(t, out, new Float64Array(out.length).fill(0.375), { atol: 1e-6, label: `constant → ${side}` });
  }
  // A ramp x + 2y: interior samples are exactly linear; the borders clamp as PyTorch does.
  const ramp = Float32Array.from({ length: 28 * 28 }, (_, i) => (i % 28) + 2 * Math.floor(i / 28));
  const up = resizeImages(ramp, 1, 28, 28, 40, 40);
  assertClose(t, up, bilinearRef(ramp, 28, 28, 40, 40), { atol: 1e-4, label: 'ramp 28 → 40' });
  // Interior pixel (20, 20): source coordinate (20.5)·0.7 − 0.5 = 13.85 on both axes.
  assertClose(t, [up[20 * 40 + 20]!], [13.85 * 3], { atol: 1e-4, label: 'ramp interior' });
  // Values computed by torch.nn.functional.interpolate(mode='bilinear', align_corners=False)
  // for the 2×2 image [[0, 1], [2, 3]] → 4×4 (first row and last column).
  const tiny = resizeImages(Float32Array.from([0, 1, 2, 3]), 1, 2, 2, 4, 4);
  assertClose(t, Array.from(tiny.subarray(0, 4)), [0, 0.25, 0.75, 1], { atol: 1e-6, label: 'torch row 0' });
  assertClose(t, [tiny[3]!, tiny[7]!, tiny[11]!, tiny[15]!], [1, 1.5, 2.5, 3], { atol: 1e-6, label: 'torch col 3' });
  const r = rng(5);
  const noise = Float32Array.from({ length: 3 * 17 * 23 }, () => r());
  const down = resizeImages(noise, 3, 17, 23, 10, 7);
  const ref = new Float64Array(3 * 70);
  for (let p = 0; p < 3; p++) ref.set(antialiasedRef(noise.subarray(p * 391, (p + 1) * 391), 17, 23, 10, 7), p * 70);
  assertClose(t, down, ref, { atol: 1e-5, label: 'random 17×23 → 10×7' });
  // Shrinking averages every pixel: one bright pixel anywhere in 28×28 moves the 8×8 image's
  // mean by its share (point-sampled bilinear would miss most positions entirely).
  for (const at of [0, 5 * 28 + 3, 13 * 28 + 14, 27 * 28 + 27]) {
    const dot = new Float32Array(28 * 28);
    dot[at] = 1;
    const small = resizeImages(dot, 1, 28, 28, 8, 8);
    t.true(small.reduce((a, b) => a + b, 0) > 0.03, `pixel ${at} reaches the 8×8 image`);
  }
});

// ---- CIFAR fixtures ----------------------------------------------------------------------

/** A record whose pixel p of channel c is (seedByte + 3c + p) mod 256. */
function record(labels: number[], seedByte: number): Uint8Array {
  const r = new Uint8Array(labels.length + 3072);
  r.set(labels);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) r[labels.length + c * 1024 + p] = (seedByte + 50 * c + p) % 256;
  return r;
}
const concat = (parts: Uint8Array[]) => Buffer.concat(parts);

function cifar10Fixture(dir: string, labelOf = (file: number, k: number) => (file * 3 + k) % 10): void {
  for (let f = 0; f < 6; f++) {
    const name = f < 5 ? `data_batch_${f + 1}.bin` : 'test_batch.bin';
    writeFileSync(join(dir, name), concat([0, 1, 2].map((k) => record([labelOf(f, k)], f * 3 + k))));
  }
}

const tempDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pit-data-'));
  tempDirs.push(d);
  return d;
}
test.after.always(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

test('CIFAR-10: labels and R-plane-first pixel order from the nested folder', (t) => {
  const root = tempDir();
  const dir = join(root, 'cifar-10-batches-bin');
  mkdirSync(dir);
  cifar10Fixture(dir);
  const { train, test: held } = loadCifar10(root);
  t.is(train.n, 15);
  t.is(held.n, 3);
  t.deepEqual([train.channels, train.height, train.width, train.classes], [3, 32, 32, 10]);
  t.deepEqual(Array.from(train.labels), Array.from({ length: 15 }, (_, i) => i % 10));
  t.deepEqual(Array.from(held.labels), [5, 6, 7]);
  // Train example 4 = file 1, record 1, seedByte 4: channel c pixel (y, x) = (4 + 50c + 32y + x) mod 256.
  const img = train.images.subarray(4 * 3072, 5 * 3072);
  for (const [c, y, x] of [[0, 0, 0], [0, 3, 5], [1, 0, 0], [2, 31, 31], [1, 7, 30]] as const)
    t.is(img[c * 1024 + y * 32 + x], Math.fround(((4 + 50 * c + 32 * y + x) % 256) / 255), `c${c} (${y}, ${x})`);
  t.is(held.name, 'cifar10-test');
  t.deepEqual(held.mean, train.mean);
});

test('CIFAR-100: fine labels, files in the directory itself', (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'train.bin'), concat([record([3, 99], 0), record([19, 42], 1), record([0, 0], 2)]));
  writeFileSync(join(dir, 'test.bin'), concat([record([7, 17], 9)]));
  const { train, test: held } = loadCifar100(dir);
  t.deepEqual(Array.from(train.labels), [99, 42, 0]);
  t.deepEqual(Array.from(held.labels), [17]);
  t.is(train.classes, 100);
  t.is(held.images[0], Math.fround(9 / 255));
  t.is(held.images[1024], Math.fround(59 / 255));
});

test('CIFAR errors: missing file, truncated file, label out of range', (t) => {
  const empty = tempDir();
  const missing = t.throws(() => loadCifar10(empty))!;
  t.regex(missing.message, /missing files? .*data_batch_1\.bin/);
  t.regex(missing.message, /cifar-10-batches-bin/);
  t.regex(missing.message, /test_batch\.bin/);

  const dir = tempDir();
  cifar10Fixture(dir);
  writeFileSync(join(dir, 'data_batch_3.bin'), concat([record([1], 0), record([2], 1)]).subarray(0, 3073 * 2 - 100));
  const truncated = t.throws(() => loadCifar10(dir))!;
  t.true(truncated.message.includes(join(dir, 'data_batch_3.bin')), truncated.message);
  t.regex(truncated.message, /truncated.*6046 bytes is not a whole multiple of the 3073-byte record/);

  const bad = tempDir();
  writeFileSync(join(bad, 'train.bin'), concat([record([3, 5], 0), record([2, 100], 1)]));
  writeFileSync(join(bad, 'test.bin'), concat([record([1, 1], 0)]));
  const range = t.throws(() => loadCifar100(bad))!;
  t.regex(range.message, /train\.bin: record 1 has label byte 1 = 100, expected 0\.\.99/);

  // A CIFAR-10 file read as CIFAR-100 (3073 ∤ 3074·k for small k) is a record size mismatch.
  const wrong = tempDir();
  writeFileSync(join(wrong, 'train.bin'), concat([record([1], 0), record([2], 1)]));
  writeFileSync(join(wrong, 'test.bin'), concat([record([1, 1], 0)]));
  t.throws(() => loadCifar100(wrong), { message: /6146 bytes is not a whole multiple of the 3074-byte record/ });
  const badLabel = tempDir();
  cifar10Fixture(badLabel, (f, k) => (f === 5 && k === 2 ? 10 : 0));
  t.throws(() => loadCifar10(badLabel), { message: /test_batch\.bin: record 2 has label byte 0 = 10, expected 0\.\.9/ });
});

// ---- loader and transforms ---------------------------------------------------------------

function toyDataset(n: number): Dataset {
  const images = Float32Array.from({ length: n * 2 * 4 * 4 }, (_, i) => Math.floor(i / 32) + (i % 32) / 100);
  return { images, labels: Int32Array.from({ length: n }, (_, i) => i), n, channels: 2, height: 4, width: 4, classes: n, name: 'toy', mean: new Float32Array(2), std: new Float32Array(2).fill(1) };
}

test('loader: each index once per epoch, batches match the dataset, last batch partial', (t) => {
  const d = toyDataset(23);
  const loader = new BatchLoader(d, { batchSize: 5, seed: 3 });
  t.is(loader.batchesPerEpoch, 5);
  for (let epoch = 0; epoch < 3; epoch++) {
    const seen: number[] = [];
    const sizes: number[] = [];
    for (const b of loader.epochBatches()) {
      t.is(b.epoch, epoch);
      sizes.push(b.labels.length);
      t.is(b.images.length, b.labels.length * 32);
      b.indices.forEach((i, k) => {
        t.is(b.labels[k], i);
        t.deepEqual(b.images.subarray(k * 32, (k + 1) * 32), d.images.subarray(i * 32, (i + 1) * 32));
      });
      seen.push(...b.indices);
    }
    t.deepEqual(sizes, [5, 5, 5, 5, 3]);
    t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
    t.notDeepEqual(seen, Array.from({ length: 23 }, (_, i) => i), 'shuffled');
  }
  const dropping = new BatchLoader(d, { batchSize: 5, seed: 3, dropLast: true });
  t.deepEqual([...dropping.epochBatches()].map((b) => b.labels.length), [5, 5, 5, 5]);
  t.is(dropping.next().epoch, 1);
});

test('loader: same seed same order, another seed another; restored state continues identically', (t) => {
  const d = toyDataset(40);
  const transform = augmentation(d, { cropPadding: 1, flip: true });
  const take = (l: BatchLoader, k: number) => Array.from({ length: k }, () => l.next());
  const a = take(new BatchLoader(d, { batchSize: 6, seed: 11, transform }), 20);
  const b = take(new BatchLoader(d, { batchSize: 6, seed: 11, transform }), 20);
  t.deepEqual(a.map((x) => Array.from(x.indices)), b.map((x) => Array.from(x.indices)));
  t.deepEqual(a.map((x) => Array.from(x.images)), b.map((x) => Array.from(x.images)));
  const c = take(new BatchLoader(d, { batchSize: 6, seed: 12, transform }), 3);
  t.notDeepEqual(c.map((x) => Array.from(x.indices)), a.slice(0, 3).map((x) => Array.from(x.indices)));

  const first = new BatchLoader(d, { batchSize: 6, seed: 11, transform });
  take(first, 9); // into the second epoch (7 batches per epoch)
  const saved = JSON.parse(JSON.stringify(first.state()));
  t.deepEqual(saved, { seed: 11, epoch: 1, position: 12, n: 40 });
  const resumed = new BatchLoader(d, { batchSize: 6, seed: 999, transform });
  resumed.restore(saved);
  const rest = take(resumed, 11);
  t.deepEqual(rest.map((x) => Array.from(x.indices)), a.slice(9).map((x) => Array.from(x.indices)));
  t.deepEqual(rest.map((x) => Array.from(x.images)), a.slice(9).map((x) => Array.from(x.images)));
  t.deepEqual(rest.map((x) => x.epoch), a.slice(9).map((x) => x.epoch));
  t.throws(() => resumed.restore({ ...saved, n: 41 }), { message: /state is for 41 examples/ });
});

test('transforms: flip and crop are deterministic per seed; flip keeps sums, crop shifts with zero fill', (t) => {
  const s = { channels: 2, height: 5, width: 6 };
  const r = rng(9);
  const base = Float32Array.from({ length: 8 * 60 }, () => r() + 0.1);
  const sumOf = (a: Float32Array, i: number) => a.subarray(i * 60, (i + 1) * 60).reduce((x, y) => x + y, 0);

  const f1 = randomFlip(base.slice(), s, new Rng(4)), f2 = randomFlip(base.slice(), s, new Rng(4));
  t.deepEqual(f1, f2);
  let flipped = 0;
  for (let i = 0; i < 8; i++) {
    assertClose(t, [sumOf(f1, i)], [sumOf(base, i)], { atol: 1e-4, label: `flip sum ${i}` });
    const same = f1.subarray(i * 60, i * 60 + 60).every((v, k) => v === base[i * 60 + k]);
    if (!same) {
      flipped++;
      // Mirrored: (c, y, x) ← (c, y, W−1−x).
      t.is(f1[i * 60 + 30 + 2 * 6 + 1], base[i * 60 + 30 + 2 * 6 + 4]);
    }
  }
  t.true(flipped > 0 && flipped < 8, `${flipped} of 8 flipped`);
  const twice = base.slice();
  flipImage(twice, s, 3);
  flipImage(twice, s, 3);
  t.deepEqual(twice, base);

  const c1 = randomCrop(base.slice(), s, 2, new Rng(8)), c2 = randomCrop(base.slice(), s, 2, new Rng(8));
  t.deepEqual(c1, c2);
  t.notDeepEqual(randomCrop(base.slice(), s, 2, new Rng(9)), c1);
  t.deepEqual(randomCrop(base.slice(), s, 0, new Rng(8)), base, 'padding 0 is the identity');
  // Each cropped image is the source shifted by some (dy, dx) in [-2, 2]², zeros outside:
  // recover the shift and check every pixel; the sum never grows.
  for (let i = 0; i < 8; i++) {
    const out = c1.subarray(i * 60, (i + 1) * 60), src = base.subarray(i * 60, (i + 1) * 60);
    const shifted = (dy: number, dx: number) =>
      Array.from({ length: 60 }, (_, k) => {
        const c = Math.floor(k / 30), y = Math.floor((k % 30) / 6) + dy, x = (k % 6) + dx;
        return y >= 0 && y < 5 && x >= 0 && x < 6 ? src[c * 30 + y * 6 + x]! : 0;
      });
    const match = [-2, -1, 0, 1, 2].flatMap((dy) => [-2, -1, 0, 1, 2].map((dx) => [dy, dx])).find(([dy, dx]) => shifted(dy!, dx!).every((v, k) => v === out[k]));
    t.truthy(match, `image ${i} is a zero-padded shift`);
    t.true(sumOf(c1, i) <= sumOf(base, i) + 1e-4);
  }
  const tr = randomTranslate(base.slice(), s, 1, new Rng(8));
  t.deepEqual(tr, randomTranslate(base.slice(), s, 1, new Rng(8)));

  const n = normalize(Float32Array.from([1, 3, 5, 7, 10, 20, 30, 40]), { channels: 2, height: 2, width: 2 }, [4, 25], [2, 10]);
  t.deepEqual(Array.from(n), [-1.5, -0.5, 0.5, 1.5, -1.5, -0.5, 0.5, 1.5]);
  t.throws(() => normalize(new Float32Array(8), { channels: 2, height: 2, width: 2 }, [0, 0], [1, 0]), { message: /std\[1\]' must be > 0/ });
});
