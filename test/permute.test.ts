// The pixel permutation of the locality study (SPEC §5): its construction (T disjoint swaps
// within δ, seeded, reaching a full matching), applying it and its inverse, its errors, the
// recipe fields and flags that ask for it, the data every consumer reads (held-out images
// permuted once, training batches after augmentation), a `pit train` run, and PiT's
// permutation equivariance (learned position table, average pooling).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  augmentation, classifierFromCheckpoint, classifyTask, ditTask, evaluate, inversePermutation, loadImageData, makeRecipe, permutePixels, pixelPermutation,
  randomFlip, recipePermutation, Rng, runTraining, tensor, type ClassifierRecipe, type Dataset, type VisionTransformer,
} from '../lib/index.js';
import { assertClose, rng, runPit } from './helpers.js';

/** Checks `p` is an involution of exactly `swaps` disjoint pairs, each within δ; returns the pairs. */
function checkSwaps(t: import('ava').ExecutionContext, p: Int32Array, width: number, swaps: number, delta: number | null, label: string): [number, number][] {
  const pairs: [number, number][] = [];
  let moved = 0, involution = true, within = true;
  const hit = new Uint8Array(p.length);
  for (let i = 0; i < p.length; i++) {
    hit[p[i]!]++;
    if (p[p[i]!] !== i) involution = false;
    if (p[i] === i) continue;
    moved++;
    if (p[i]! > i) pairs.push([i, p[i]!]);
    const dr = Math.abs(Math.floor(i / width) - Math.floor(p[i]! / width)), dc = Math.abs((i % width) - (p[i]! % width));
    if (delta !== null && (dr > delta - 1 || dc > delta - 1)) within = false;
  }
  t.true(hit.every((h) => h === 1), `${label}: a permutation`);
  t.true(involution, `${label}: p[p[i]] = i (disjoint swaps)`);
  t.is(moved, 2 * swaps, `${label}: 2T pixels move`);
  t.true(within, `${label}: every swap within |Δrow|, |Δcol| ≤ δ − 1`);
  return pairs;
}

test('pixelPermutation: exactly T disjoint swaps, each within δ, over sizes, δ and T', (t) => {
  for (const [h, w] of [[8, 8], [7, 9], [14, 14], [1, 10], [28, 28]] as const)
    for (const delta of [2, 3, 5, null])
      for (const swaps of [0, 1, 5, Math.floor((h * w) / 4), Math.floor((h * w) / 2)]) {
        const p = pixelPermutation(h, w, { swaps, delta, seed: 11 });
        t.is(p.length, h * w);
        checkSwaps(t, p, w, swaps, delta, `${h}×${w} δ=${delta} T=${swaps}`);
      }
});

test('pixelPermutation: the full ⌊H·W/2⌋ swaps are placed at δ = 2 on the study\'s sizes (every seed tried)', (t) => {
  // A greedy matching alone pairs ~90% of the pixels at δ = 2; the repair must reach all.
  for (const [h, w] of [[8, 8], [14, 14], [16, 16], [28, 28], [7, 7], [13, 15], [32, 32]] as const)
    for (let seed = 0; seed < 20; seed++) {
      const most = Math.floor((h * w) / 2);
      checkSwaps(t, pixelPermutation(h, w, { swaps: most, delta: 2, seed }), w, most, 2, `${h}×${w} seed ${seed}`);
    }
});

test('pixelPermutation: δ = ∞ reaches pairs farther than any window of δ = 3; δ ≥ max(H, W) is ∞', (t) => {
  for (const delta of [null, Infinity]) {
    const p = pixelPermutation(28, 28, { swaps: 392, delta, seed: 0 });
    const pairs = checkSwaps(t, p, 28, 392, null, `δ = ${delta}`);
    const far = pairs.filter(([a, b]) => Math.max(Math.abs(Math.floor(a / 28) - Math.floor(b / 28)), Math.abs((a % 28) - (b % 28))) > 2);
    t.true(far.length > 300, `${far.length} of 392 pairs beyond |Δ| ≤ 2`);
  }
  t.deepEqual(pixelPermutation(28, 28, { swaps: 100, delta: 28, seed: 4 }), pixelPermutation(28, 28, { swaps: 100, delta: null, seed: 4 }));
  t.deepEqual(pixelPermutation(28, 28, { swaps: 100, delta: Infinity, seed: 4 }), pixelPermutation(28, 28, { swaps: 100, delta: null, seed: 4 }));
});

test('pixelPermutation: seeded; a larger T adds swaps to a smaller T\'s', (t) => {
  const o = { swaps: 50, delta: 2, seed: 3 };
  t.deepEqual(pixelPermutation(14, 14, o), pixelPermutation(14, 14, o));
  t.notDeepEqual(pixelPermutation(14, 14, o), pixelPermutation(14, 14, { ...o, seed: 4 }));
  t.notDeepEqual(pixelPermutation(14, 14, o), pixelPermutation(14, 14, { ...o, delta: 3 }));
  const small = pixelPermutation(14, 14, { ...o, swaps: 10 }), large = pixelPermutation(14, 14, { ...o, swaps: 98 });
  for (let i = 0; i < small.length; i++) if (small[i] !== i) t.is(large[i], small[i], `pixel ${i} keeps its partner`);
});

test('pixelPermutation: pinned output (a change of algorithm would re-permute saved runs\' test images)', (t) => {
  // If this fails the construction changed: runs saved before would be evaluated on other
  // pixels. Keep the old construction for them (or version the recipe) before updating this.
  const p = pixelPermutation(6, 6, { swaps: 6, delta: 2, seed: 1 });
  t.deepEqual(Array.from(p), PINNED_6x6_T6_D2_S1);
  t.deepEqual(Array.from(pixelPermutation(4, 4, { swaps: 3, delta: null, seed: 2 })), PINNED_4x4_T3_INF_S2);
});

// Pairs (7, 12) (8, 9) (14, 21) (15, 16) (24, 31) (29, 34): each a king's move apart.
const PINNED_6x6_T6_D2_S1 = [0, 1, 2, 3, 4, 5, 6, 12, 9, 8, 10, 11, 7, 13, 21, 16, 15, 17, 18, 19, 20, 14, 22, 23, 31, 25, 26, 27, 28, 34, 30, 24, 32, 33, 29, 35];
const PINNED_4x4_T3_INF_S2 = [11, 1, 2, 3, 4, 5, 10, 9, 8, 7, 6, 0, 12, 13, 14, 15];

test('permutePixels then its inverse restores every image and channel exactly', (t) => {
  const [n, c, h, w] = [3, 3, 9, 11];
  const r = rng(5);
  const images = Float32Array.from({ length: n * c * h * w }, () => r());
  const original = images.slice();
  const p = pixelPermutation(h, w, { swaps: 40, delta: 3, seed: 9 });
  permutePixels(images, c, h, w, p);
  t.notDeepEqual(images, original);
  // out(n, c, i) = in(n, c, p[i]), every channel the same way.
  for (let k = 0; k < n * c; k++)
    for (let i = 0; i < h * w; i++) t.is(images[k * h * w + i], original[k * h * w + p[i]!]);
  permutePixels(images, c, h, w, inversePermutation(p));
  t.deepEqual(images, original);
  // A general (not self-inverse) permutation too.
  const q = Int32Array.from({ length: h * w }, (_, i) => (i * 7 + 3) % (h * w));
  permutePixels(images, c, h, w, q);
  permutePixels(images, c, h, w, inversePermutation(q));
  t.deepEqual(images, original);
  const inv = inversePermutation(q);
  for (let i = 0; i < q.length; i++) t.is(inv[q[i]!], i);
});

test('bad arguments are errors naming the parameter, what it must be and what it is', (t) => {
  t.throws(() => pixelPermutation(8, 8, { swaps: 33, delta: null, seed: 0 }),
    { instanceOf: RangeError, message: "pixelPermutation: 'swaps' must be at most ⌊H·W / 2⌋ = 32 for 8×8 images (disjoint pairs), got 33" });
  t.throws(() => pixelPermutation(7, 7, { swaps: 25, delta: 2, seed: 0 }), { message: /'swaps' must be at most ⌊H·W \/ 2⌋ = 24 for 7×7 images .*got 25/ });
  t.throws(() => pixelPermutation(8, 8, { swaps: 4, delta: 1, seed: 0 }), { instanceOf: RangeError, message: /'delta' must be an integer ≥ 2 .*δ = 1 allows no pair.*got 1$/ });
  t.throws(() => pixelPermutation(8, 8, { swaps: 4, delta: 2.5, seed: 0 }), { message: /'delta' must be an integer ≥ 2.*got 2\.5$/ });
  t.throws(() => pixelPermutation(8, 8, { swaps: -1, delta: 2, seed: 0 }), { message: "pixelPermutation: 'swaps' must be an integer ≥ 0, got -1" });
  t.throws(() => pixelPermutation(8, 8, { swaps: 1.5, delta: 2, seed: 0 }), { message: /'swaps' must be an integer ≥ 0, got 1\.5/ });
  t.throws(() => pixelPermutation(0, 8, { swaps: 0, delta: 2, seed: 0 }), { message: "pixelPermutation: 'height' must be an integer ≥ 1, got 0" });
  t.throws(() => pixelPermutation(8, 8, { swaps: 1, delta: 2, seed: 0.5 }), { message: "pixelPermutation: 'seed' must be an integer, got 0.5" });
  t.throws(() => permutePixels(new Float32Array(64), 1, 8, 8, new Int32Array(63)), { message: "permutePixels: 'permutation' must have H·W = 64 entries for 8×8 images, got 63" });
  t.throws(() => permutePixels(new Float32Array(65), 1, 8, 8, new Int32Array(64)), { message: /'images' has 65 values, not a multiple of 1·8·8/ });
  t.throws(() => inversePermutation([0, 2, 2]), { instanceOf: RangeError, message: "inversePermutation: 'p' must be a permutation of 0..2, but p[2] = 2 repeats p[1]" });
  t.throws(() => inversePermutation([0, 3, 1]), { message: /p\[1\] = 3 is out of range/ });
  t.throws(() => augmentation({ channels: 1, height: 4, width: 4 }, { permutation: new Int32Array(15) }), { message: /'permutation' must have H·W = 16 entries/ });
});

test('augmentation applies the permutation last, after the random crop and flip', (t) => {
  const s = { channels: 2, height: 6, width: 6 };
  const r = rng(8);
  const batch = Float32Array.from({ length: 5 * 72 }, () => r());
  const p = pixelPermutation(6, 6, { swaps: 12, delta: null, seed: 1 });
  const mean = [0.5, 0.25], std = [2, 4];
  const a = batch.slice(), b = batch.slice();
  augmentation(s, { flip: true, normalize: { mean, std }, permutation: p })(a, new Rng(3));
  randomFlip(b, s, new Rng(3));
  for (let i = 0; i < b.length; i++) b[i] = (b[i]! - mean[Math.floor(i / 36) % 2]!) / std[Math.floor(i / 36) % 2]!;
  permutePixels(b, 2, 6, 6, p);
  t.deepEqual(a, b);
});

// --- the recipe fields, their flags and the data every consumer reads ---

const recipe = (given: Partial<ClassifierRecipe>) => makeRecipe(classifyTask.recipe, given);

test('recipe: permuteSwaps, permuteDelta, permuteSeed default off / ∞ / 0 and are checked', (t) => {
  t.like(recipe({}), { permuteSwaps: 0, permuteDelta: null, permuteSeed: 0 });
  t.like(recipe({ permuteSwaps: 32, permuteDelta: 2, permuteSeed: 7 }), { permuteSwaps: 32, permuteDelta: 2, permuteSeed: 7 });
  t.throws(() => recipe({ permuteDelta: 1 }), { message: "recipe: 'permuteDelta' must be an integer ≥ 2 or null, got 1" });
  t.throws(() => recipe({ permuteDelta: Infinity }), { message: "recipe: 'permuteDelta' must be an integer ≥ 2 or null, got Infinity" });
  t.throws(() => recipe({ permuteSwaps: -1 }), { message: "recipe: 'permuteSwaps' must be an integer ≥ 0, got -1" });
  t.throws(() => recipe({ permuteSeed: 1.5 }), { message: /recipe: 'permuteSeed' must be an integer in \[0, 4294967295\], got 1\.5/ });
  // The default 8×8 digits hold 32 disjoint pairs; 14×14 hold 98.
  t.throws(() => recipe({ permuteSwaps: 33 }), { message: "recipe: 'permuteSwaps' must be an integer in [0, 32] (disjoint pixel pairs of the 8×8 images), got 33" });
  t.notThrows(() => recipe({ permuteSwaps: 98, imageSize: 14 }));
  t.throws(() => makeRecipe(ditTask.recipe, { permuteSwaps: 4 }), { message: /recipe: 'permuteSwaps' must be 0 for diffusion/ });
});

test('loadImageData: the held-out split is permuted once, the train split is left to the batch transform', (t) => {
  const plain = loadImageData(recipe({ imageSize: 14 }));
  const permuted = loadImageData(recipe({ imageSize: 14, permuteSwaps: 60, permuteDelta: 3, permuteSeed: 2 }));
  t.is(plain.permutation, null);
  const p = recipePermutation(recipe({ imageSize: 14, permuteSwaps: 60, permuteDelta: 3, permuteSeed: 2 }), 14, 14)!;
  t.deepEqual(permuted.permutation, p);
  t.deepEqual(p, pixelPermutation(14, 14, { swaps: 60, delta: 3, seed: 2 }));
  const expected = plain.test.images.slice();
  permutePixels(expected, 1, 14, 14, p);
  t.deepEqual(permuted.test.images, expected);
  t.deepEqual(permuted.train.images, plain.train.images);
  t.deepEqual(permuted.test.mean, plain.test.mean, 'per-channel statistics do not change');
  // The seed of the run does not change the permutation: the seeds of a study share it.
  t.deepEqual(loadImageData(recipe({ imageSize: 14, permuteSwaps: 60, permuteDelta: 3, permuteSeed: 2, seed: 9 })).permutation, p);
});

test('the runner refuses a permuting recipe whose task\'s data does not carry the permutation', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'pit-permute-'));
  const unpermuted = { ...classifyTask, data: (r: Readonly<ClassifierRecipe>) => ({ ...loadImageData({ ...r, permuteSwaps: 0 }) }) };
  await t.throwsAsync(runTraining(unpermuted, { out, recipe: { permuteSwaps: 4, depth: 1, dim: 16, heads: 2 }, device: 'cpu' }),
    { message: /task 'classify': the recipe permutes pixels \(permuteSwaps 4\) but the task's data carries no permutation/ });
  rmSync(out, { recursive: true, force: true });
});

test('pit train --permute-*: flags parsed and checked, saved in run.json; pit eval sees the permuted held-out images', (t) => {
  const bad = runPit('train', '--permute-delta', '1', '--out', join(tmpdir(), 'pit-permute-never'));
  t.is(bad.status, 1);
  t.regex(bad.stderr, /option '--permute-delta <δ\|inf>' argument '1' is invalid\. expected an integer ≥ 2 or inf/);
  const tooMany = runPit('train', '--permute-swaps', '40', '--out', join(tmpdir(), 'pit-permute-never'));
  t.is(tooMany.status, 1);
  t.regex(tooMany.stderr, /recipe: 'permuteSwaps' must be an integer in \[0, 32\] \(disjoint pixel pairs of the 8×8 images\), got 40/);
  const help = runPit('train', '--help');
  t.regex(help.stdout, /--permute-swaps <T>\s+shuffle pixels/);
  t.regex(help.stdout, /--permute-delta <δ\|inf>\s+distance of each swapped pair: \|Δrow\| ≤ δ − 1 and\s+\|Δcol\| ≤ δ − 1[\s\S]*\(default: inf\)/);

  const out = mkdtempSync(join(tmpdir(), 'pit-permute-'));
  const r = runPit('train', '--model', 'pit-d1w16h2', '--image-size', '8', '--epochs', '1', '--permute-swaps', '32', '--permute-delta', 'inf', '--permute-seed', '3',
    '--device', 'cpu', '--out', out);
  t.is(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
  t.like(run.recipe, { permuteSwaps: 32, permuteDelta: null, permuteSeed: 3 });
  const e = runPit('eval', '--checkpoint', out, '--json', '--device', 'cpu');
  t.is(e.status, 0, e.stderr);
  const evaluated = JSON.parse(e.stdout);
  const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'epoch');
  t.is(evaluated.loss.toFixed(5), logged.at(-1).test.loss.toFixed(5), 'pit eval = the runner\'s held-out evaluation');
  // The same weights on the unpermuted digits score otherwise: eval read permuted ones.
  const { model, normalization, recipe: saved } = classifierFromCheckpoint(out);
  try {
    const plain = loadImageData(recipe({ ...saved, permuteSwaps: 0 })).test;
    const permuted = loadImageData(recipe(saved)).test;
    t.is(evaluate(model, permuted, { normalization }).loss.toFixed(5), evaluated.loss.toFixed(5));
    t.not(evaluate(model, plain, { normalization }).loss.toFixed(5), evaluated.loss.toFixed(5));
  } finally {
    model.dispose();
  }
  rmSync(out, { recursive: true, force: true });
});

// --- PiT's permutation equivariance (SPEC §5) ---

/**
 * PiT (1×1 patches, learned position table, average pooling, no drop path) sees a permuted
 * image with a position table permuted the same way as the same set of tokens in another
 * order; attention has no order and the average does not care. So training on permuted pixels
 * from the permuted table is the same learning problem, step for step: the held-out losses
 * agree up to float summation order (on the CPU they came out bit-equal).
 */
test('PiT with a learned position table: training on permuted pixels = training with the table permuted alike', async (t) => {
  const side = 8;
  const given: Partial<ClassifierRecipe> = { model: 'pit-d1w16h2', imageSize: side, epochs: 1, posEmbed: 'learned', pool: 'avg', dropPath: 0 };
  const permuted = { ...given, permuteSwaps: 32, permuteDelta: null, permuteSeed: 5 };
  const p = recipePermutation(recipe(permuted), side, side)!;
  // The permuted run starts from the same weights with row 1 + i of the table = row 1 + p[i].
  const permuteTable = (model: VisionTransformer) => {
    const table = model.posEmbed!.toArray() as Float32Array, d = model.config.dim;
    const moved = table.slice();
    for (let i = 0; i < side * side; i++) moved.set(table.subarray((1 + p[i]!) * d, (2 + p[i]!) * d), (1 + i) * d);
    const source = tensor(moved, model.posEmbed!.shape, { device: model.device });
    model.loadStateDict({ pos_embed: source }, { strict: false });
    source.dispose();
  };
  const task = { ...classifyTask, initialize: (model: VisionTransformer, r: Readonly<ClassifierRecipe>) => (classifyTask.initialize?.(model, r), permuteTable(model)) };
  const steps = 20;
  const outs = [mkdtempSync(join(tmpdir(), 'pit-equi-')), mkdtempSync(join(tmpdir(), 'pit-equi-'))];
  const a = await runTraining(classifyTask, { out: outs[0]!, recipe: given, device: 'cpu', stopAtStep: steps });
  const b = await runTraining(task, { out: outs[1]!, recipe: permuted, device: 'cpu', stopAtStep: steps });
  try {
    const normalization = (d: Dataset) => ({ mean: Array.from(d.mean), std: Array.from(d.std) });
    const plainTest = loadImageData(recipe(given)).test, permutedTest = loadImageData(recipe(permuted)).test;
    const la = evaluate(a.model, plainTest, { normalization: normalization(plainTest) }).loss;
    const lb = evaluate(b.model, permutedTest, { normalization: normalization(permutedTest) }).loss;
    t.log(`held-out loss after ${steps} steps: ${la} (plain), ${lb} (permuted pixels and table)`);
    t.true(Math.abs(la - lb) <= 1e-4 * Math.abs(la), `held-out loss ${la} (plain) vs ${lb} (permuted pixels and table)`);
    // Without the table permuted alike, the permuted run is a different problem.
    const c = evaluate(a.model, permutedTest, { normalization: normalization(permutedTest) }).loss;
    t.true(Math.abs(la - c) > 1e-3, `the plain model on permuted pixels: ${c}`);
    // Step for step: every trained weight equal, the table's rows permuted alike.
    const wa = new Map(a.model.namedParameters()), d = a.model.config.dim;
    for (const [name, wb] of b.model.namedParameters()) {
      const x = wa.get(name)!.toArray() as Float32Array, y = wb.toArray() as Float32Array;
      if (name === 'pos_embed')
        for (let i = 0; i < side * side; i++)
          assertClose(t, y.subarray((1 + i) * d, (2 + i) * d), x.subarray((1 + p[i]!) * d, (2 + p[i]!) * d), { atol: 1e-6, rtol: 1e-4, label: `pos_embed row ${1 + i}` });
      else assertClose(t, y, x, { atol: 1e-6, rtol: 1e-4, label: name });
    }
  } finally {
    a.model.dispose();
    b.model.dispose();
    for (const o of outs) rmSync(o, { recursive: true, force: true });
  }
});
