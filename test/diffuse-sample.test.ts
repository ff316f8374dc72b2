// Sampling a trained diffusion run: generateSamples and `pit sample` are deterministic per seed
// and agree with each other; the grid has a row per requested class (its size, its labels, its
// panels being exactly the samples written to --out-dir); --out-dir's samples.npy and
// labels.npy read back with the right shapes and range, and `pit eval-gen` reads them as they
// are; latents runs write latents; errors name what to pass instead.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import {
  classifyTask, defaultScale, diffusionOf, ditFromCheckpoint, ditTask, generateSamples, readNpy, runTraining, sampleDiffusion, sampleGrid,
  sampleGridLayout, sampleImage, tidy, writeNpy,
} from '../lib/index.js';
import { sampleFileName } from '../cli/diffuse.js';
import { runPit as run } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-sample-'));
let root = '', ditRun = '', noEmaRun = '', classifierRun = '', latentRun = '';

test.before(async () => {
  root = scratch();
  const train = async (task: typeof ditTask | typeof classifyTask, out: string, recipe: object) => (await runTraining(task as typeof ditTask, { recipe, out, device: 'cpu' })).model.dispose();
  ditRun = join(root, 'dit');
  await train(ditTask, ditRun, { model: 'dit-d1w16h2/1', epochs: 1, ema: 0.99 });
  noEmaRun = join(root, 'no-ema');
  await runTraining(ditTask, { recipe: { model: 'dit-d1w16h2/1', ema: 0 }, out: noEmaRun, device: 'cpu', stopAtStep: 1 }).then((r) => r.model.dispose());
  classifierRun = join(root, 'classifier');
  await train(classifyTask, classifierRun, { model: 'pit-d1w16h2', epochs: 1 });
  const latents = join(root, 'latents');
  mkdirSync(latents);
  writeNpy(join(latents, 'latents.npy'), { dtype: 'float16', shape: [20, 4, 4, 4], data: Array.from({ length: 1280 }, (_, i) => 4 * Math.sin(i)) });
  writeNpy(join(latents, 'labels.npy'), { dtype: 'int32', shape: [20], data: Array.from({ length: 20 }, (_, i) => i % 2) });
  latentRun = join(root, 'latent-run');
  await runTraining(ditTask, { recipe: { data: 'latents', dataDir: latents, model: 'dit-d1w16h2/2', batchSize: 6 }, out: latentRun, device: 'cpu', stopAtStep: 2 }).then((r) => r.model.dispose());
});

test.after.always(() => rmSync(root, { recursive: true, force: true }));

test('generateSamples: the same seed gives the same samples, another seed others; in [0, 1]; one batch is sampleDiffusion with that seed', (t) => {
  const loaded = ditFromCheckpoint(ditRun);
  t.is(loaded.weights, 'ema');
  const labels = [0, 1, 2, 3, 4, 5];
  const options = { labels, steps: 8, guidanceScale: 2, seed: 5 };
  const a = generateSamples(loaded, options), b = generateSamples(loaded, options), c = generateSamples(loaded, { ...options, seed: 6 });
  t.deepEqual(a.shape, [6, 1, 8, 8]);
  t.is(a.space, 'pixels');
  t.deepEqual(Array.from(a.labels), labels);
  t.deepEqual(a.samples, b.samples);
  t.notDeepEqual(a.samples, c.samples);
  t.true(a.samples.every((v) => v >= 0 && v <= 1));
  // The library's sampler, called directly with the model: the same numbers, mapped (x + 1)/2 and clipped.
  const direct = tidy(() => sampleDiffusion(diffusionOf(1000), (x, tt, y) => loaded.model.forward(x, tt, y, { train: false }), {
    shape: [6, 1, 8, 8], labels, steps: 8, seed: 5, guidanceScale: 2, nullLabel: 10,
  }).toArray());
  t.deepEqual(a.samples, Float32Array.from(direct, (x) => Math.min(1, Math.max(0, x * 0.5 + 0.5))));
  // Batches: each its own seed, so the result depends on (seed, batchSize) and repeats exactly.
  const steps: number[] = [];
  const split = generateSamples(loaded, { ...options, batchSize: 4, onStep: (done, total) => steps.push(done, total) });
  t.deepEqual(split.samples.subarray(0, 4 * 64), generateSamples(loaded, { ...options, labels: labels.slice(0, 4) }).samples, 'batch 0 uses the seed itself');
  t.deepEqual(split.samples, generateSamples(loaded, { ...options, batchSize: 4 }).samples);
  t.deepEqual(steps.filter((_, i) => i % 2 === 0), Array.from({ length: 16 }, (_, i) => i + 1), 'onStep counts every step of every batch');
  t.true(steps.filter((_, i) => i % 2 === 1).every((total) => total === 16));
  // Guidance needs the null class, which a run without label dropout never trained.
  t.throws(() => generateSamples({ ...loaded, recipe: { ...loaded.recipe, classDropout: 0 } }, options), { message: /guidance \(scale 2\) needs the null class.*use guidance scale 1/ });
  t.notThrows(() => generateSamples({ ...loaded, recipe: { ...loaded.recipe, classDropout: 0 } }, { ...options, guidanceScale: 1 }));
  t.throws(() => generateSamples(loaded, { ...options, labels: [10] }), { message: /'labels\[0\]' must be a class in \[0, 10\), got 10/ });
  loaded.model.dispose();
});

test('sampleGrid: a row per class with its number drawn at the left; a sample in the wrong row is an error', (t) => {
  const shape = { channels: 1, height: 8, width: 8 };
  const images = Float32Array.from({ length: 6 * 64 }, (_, i) => (i % 64) / 63);
  const grid = sampleGrid({ images, labels: [12, 12, 12, 3, 3, 3], shape, rowClasses: [12, 3] }, { scale: 2 });
  const layout = sampleGridLayout([12, 3], 3, shape, 2);
  t.deepEqual([grid.width, grid.height], [layout.width, layout.height]);
  t.is(grid.height, 2 * 16 + 2);
  t.deepEqual(grid.layout.rowClasses, [12, 3]);
  const ink = (row: number) => {
    let n = 0;
    for (let y = row * (16 + 2); y < row * (16 + 2) + 16; y++) for (let x = 0; x < layout.labelWidth; x++) if (grid.data[(y * grid.width + x) * 4] === 0) n++;
    return n;
  };
  t.true(ink(0) > ink(1) && ink(1) > 0, 'two digits carry more ink than one');
  t.throws(() => sampleGrid({ images, labels: [12, 12, 3, 3, 3, 3], shape, rowClasses: [12, 3] }), { message: /sample 2 is of class 3 but sits in row 0, of class 12/ });
  t.throws(() => sampleGrid({ images: images.subarray(0, 5 * 64), labels: [1, 1, 1, 1, 1], shape, rowClasses: [1, 2] }), { message: /with 2 rows/ });
});

test('pit sample: the grid\'s rows are the requested classes, its panels the samples of --out-dir, which read back in [0, 1]; the same seed repeats', (t) => {
  const dir = scratch();
  const args = ['sample', '--checkpoint', ditRun, '--classes', '3,7', '--n', '4', '--steps', '6', '--cfg', '3', '--seed', '11', '--device', 'cpu'];
  const r = run(...args, '--out', join(dir, 'grid.png'), '--out-dir', join(dir, 'a'));
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^8 samples of .*step-00000125 \(EMA weights\): ddpm 6 steps, guidance scale 3, --seed 11, --batch-size 256, device cpu/);
  t.regex(r.stdout, /grid\.png: \d+×\d+, a row per class \(3, 7\) of 4 samples/);
  const samples = readNpy(join(dir, 'a', 'samples.npy')), labels = readNpy(join(dir, 'a', 'labels.npy'));
  t.deepEqual([samples.dtype, samples.shape, labels.dtype, labels.shape], ['float32', [8, 1, 8, 8], 'int32', [8]]);
  t.deepEqual(Array.from(labels.data as Int32Array), [3, 3, 3, 3, 7, 7, 7, 7]);
  const values = samples.data as Float32Array;
  t.true(values.every((v) => v >= 0 && v <= 1) && new Set(values).size > 10, 'pixels in [0, 1], not constant');
  t.deepEqual(readdirSync(join(dir, 'a')).filter((f) => f.endsWith('.png')).sort(), Array.from({ length: 8 }, (_, i) => sampleFileName(i, i < 4 ? 3 : 7)).sort());
  const one = PNG.sync.read(readFileSync(join(dir, 'a', sampleFileName(5, 7))));
  t.deepEqual(Buffer.from(one.data), Buffer.from(sampleImage(values, 5, { channels: 1, height: 8, width: 8 }).data));

  // The grid: its size is the layout of 2 rows × 4 panels, and panel (r, c) is sample 4r + c, upscaled.
  const png = PNG.sync.read(readFileSync(join(dir, 'grid.png')));
  const scale = defaultScale({ height: 8, width: 8 });
  const layout = sampleGridLayout([3, 7], 4, { height: 8, width: 8 }, scale);
  t.deepEqual([png.width, png.height], [layout.width, layout.height]);
  for (let row = 0; row < 2; row++)
    for (let col = 0; col < 4; col++) {
      const { x, y } = layout.panel(row, col), i = 4 * row + col;
      for (const [py, px] of [[0, 0], [3, 5], [7, 7]] as const) {
        const expected = Math.round(255 * values[i * 64 + py * 8 + px]!);
        t.is(png.data[((y + py * scale) * png.width + x + px * scale) * 4], expected, `panel (${row}, ${col}) pixel (${py}, ${px})`);
      }
    }

  // The same command again: the same bytes; another seed: other samples.
  t.is(run(...args, '--out-dir', join(dir, 'b')).status, 0);
  t.true(readFileSync(join(dir, 'a', 'samples.npy')).equals(readFileSync(join(dir, 'b', 'samples.npy'))));
  t.is(run(...args.slice(0, -4), '--seed', '12', '--device', 'cpu', '--out-dir', join(dir, 'c')).status, 0);
  t.false(readFileSync(join(dir, 'a', 'samples.npy')).equals(readFileSync(join(dir, 'c', 'samples.npy'))));
  // The CLI's samples are the library's with the same options (EMA weights by default).
  const loaded = ditFromCheckpoint(ditRun);
  t.deepEqual(values, generateSamples(loaded, { labels: [3, 3, 3, 3, 7, 7, 7, 7], steps: 6, guidanceScale: 3, seed: 11 }).samples);
  loaded.model.dispose();
  rmSync(dir, { recursive: true });
});

test('pit eval-gen reads --out-dir\'s samples.npy and labels.npy as they are (no --signed)', (t) => {
  const dir = scratch();
  t.is(run('sample', '--checkpoint', ditRun, '--n', '2', '--steps', '4', '--sampler', 'ddim', '--cfg', '1', '--no-ema', '--device', 'cpu', '--out-dir', dir, '--json').status, 0);
  const r = run('eval-gen', '--classifier', classifierRun, '--samples', join(dir, 'samples.npy'), '--labels', join(dir, 'labels.npy'), '--n', '20', '--device', 'cpu', '--json');
  t.is(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  t.is(m.n, 20);
  t.is(m.clipped, 0);
  t.true(m.conditionalAccuracy.samples >= 0 && m.conditionalAccuracy.samples <= 1);
  rmSync(dir, { recursive: true });
});

test('pit sample --json says what it drew; latents runs write latents (not clipped, no PNGs) and refuse --out', (t) => {
  const dir = scratch();
  const r = run('sample', '--checkpoint', latentRun, '--n', '3', '--steps', '3', '--device', 'cpu', '--out-dir', dir, '--json');
  t.is(r.status, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { weights: 'ema', classes: [0, 1], n: 3, steps: 3, sampler: 'ddpm', cfg: 4, seed: 0, shape: [6, 4, 4, 4], space: 'latents' });
  t.deepEqual(readNpy(join(dir, 'samples.npy')).shape, [6, 4, 4, 4]);
  t.deepEqual(readdirSync(dir).sort(), ['labels.npy', 'samples.npy']);
  const grid = run('sample', '--checkpoint', latentRun, '--device', 'cpu', '--out', join(dir, 'grid.png'));
  t.is(grid.status, 1);
  t.regex(grid.stderr, /--out draws pixels, and this run generates latents: use --out-dir/);
  t.false(existsSync(join(dir, 'grid.png')));
  rmSync(dir, { recursive: true });
});

test('pit sample errors say what to pass instead', (t) => {
  const out = join(tmpdir(), `pit-sample-never-${process.pid}.png`);
  const cases: [string[], RegExp][] = [
    [['--checkpoint', ditRun], /give --out <grid\.png> and\/or --out-dir <folder>/],
    [['--checkpoint', ditRun, '--classes', '2,10', '--out', out], /--classes: 10 is not a class of this run \(its classes are 0 to 9\)/],
    [['--checkpoint', classifierRun, '--out', out], /is a 'classify' run; sample reads diffusion \(pit diffuse\) checkpoints/],
    [['--checkpoint', noEmaRun, '--out', out], /was trained without an EMA \(--ema 0\); sample its trained weights instead \(--no-ema\)/],
    [['--checkpoint', join(root, 'nowhere'), '--out', out], /nowhere/],
    [['--checkpoint', ditRun, '--sampler', 'euler', '--out', out], /--sampler <kind>.*Allowed choices are ddpm, ddim/],
    [['--checkpoint', ditRun, '--cfg', '-1', '--out', out], /--cfg <s>.*expected a number in \[0, ∞\)/],
  ];
  for (const [args, message] of cases) {
    const r = run('sample', '--device', 'cpu', ...args);
    t.is(r.status, 1, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
  t.false(existsSync(out));
});
