// `pit mae show` and the grid it draws (lib/viz/mae-grid.ts): the layout's size, the original
// panel is the denormalised held-out image, the masked panel is grey exactly where the seed's
// masks remove a token, the reconstruction keeps the visible pixels, a patch > 1 prediction is
// un-patchified in patchify's order, and a checkpoint that is not an MAE's is refused naming it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import {
  loadImageData, makeRecipe, maeReconstructionGrid, MASK_GREY, normalize, PANEL_SEPARATOR, pretrainTask, randomMasking, runTraining,
  TRIPLET_GAP, type MaeRecipe,
} from '../lib/index.js';
import { regressionTask } from './regression-task.js';
import { runPit as run } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-mae-show-'));
/** A tiny MAE on 7×7 digits: 49 pixels, 12 visible. */
const tiny: Partial<MaeRecipe> = { imageSize: 7, model: 'pit-d1w16h2', decoderDepth: 1, decoderDim: 16, decoderHeads: 2 };

/** RGBA of pixel (x, y). */
const pixel = (png: PNG, x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * 4, (y * png.width + x) * 4 + 4));

test.serial('pit mae show on a tiny pre-train: layout, original, grey masks from the seed, visible pixels pasted back', async (t) => {
  const dir = scratch();
  const out = join(dir, 'run');
  const r = await runTraining(pretrainTask, { recipe: tiny, out, device: 'cpu', stopAtStep: 3 });
  r.model.dispose();
  const n = 5, seed = 3;
  const png1 = join(dir, 'a.png'), png2 = join(dir, 'b.png');
  const shown = run('mae', 'show', '--checkpoint', out, '--n', String(n), '--seed', String(seed), '--out', png1, '--device', 'cpu');
  t.is(shown.status, 0, shown.stderr);
  t.regex(shown.stdout, /a\.png: 658×148, the first 5 images of mnist-test/);
  t.is(run('mae', 'show', '--checkpoint', out, '--n', String(n), '--seed', String(seed), '--out', png2, '--device', 'cpu').status, 0);
  t.deepEqual(readFileSync(png1), readFileSync(png2), 'the same seed draws the same picture');

  // Layout: panels of 7·10 px (the default scale makes them ≥ 64), ⌈√5⌉ = 3 triplets a row, 2 rows.
  const png = PNG.sync.read(readFileSync(png1));
  const S = 7, k = 10, P = S * k, cols = 3;
  t.is(png.width, cols * (3 * P + 2 * PANEL_SEPARATOR) + (cols - 1) * TRIPLET_GAP);
  t.is(png.height, 2 * P + TRIPLET_GAP);
  const corner = (i: number, panel: number) => ({
    x: (i % cols) * (3 * P + 2 * PANEL_SEPARATOR + TRIPLET_GAP) + panel * (P + PANEL_SEPARATOR),
    y: Math.floor(i / cols) * (P + TRIPLET_GAP),
  });
  t.deepEqual(pixel(png, P, 0), [255, 255, 255, 255], 'a white separator after the first panel');

  // The held-out images as the run normalised them, and the masks of --seed.
  const recipe = makeRecipe(pretrainTask.recipe, tiny);
  const { train, test: heldOut } = loadImageData(recipe);
  const raw = heldOut.images.slice(0, n * S * S);
  const normalised = normalize(raw.slice(), heldOut, train.mean, train.std);
  const { mask } = randomMasking(n, S * S, recipe.maskRatio, { seed, offset: 0 });
  let maskedDiffer = 0;
  for (let i = 0; i < n; i++)
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        const j = i * S * S + y * S + x;
        const value = Math.round(255 * Math.min(1, Math.max(0, normalised[j]! * train.std[0]! + train.mean[0]!)));
        t.true(Math.abs(value - 255 * raw[j]!) <= 1, 'denormalising undoes the normalisation');
        const expected = [value, value, value, 255], grey = [MASK_GREY, MASK_GREY, MASK_GREY, 255];
        const removed = mask[j] === 1;
        // Every pixel of the k × k block (nearest neighbour) of each panel.
        for (const [panel, want] of [[0, expected], [1, removed ? grey : expected], [2, removed ? null : expected]] as const) {
          const { x: x0, y: y0 } = corner(i, panel);
          const block = Array.from({ length: k * k }, (_, b) => pixel(png, x0 + x * k + (b % k), y0 + y * k + Math.floor(b / k)));
          t.true(block.every((p) => p.join() === block[0]!.join()), `image ${i} (${y}, ${x}) panel ${panel}: one colour per block`);
          if (want) t.deepEqual(block[0], [...want], `image ${i} pixel (${y}, ${x}) panel ${panel}`);
          else if (block[0]!.join() !== expected.join()) maskedDiffer++;
        }
      }
  t.true(maskedDiffer > 0, `the removed pixels are predicted, not copied (${maskedDiffer} of ${n * 37} differ)`);
  rmSync(dir, { recursive: true, force: true });
});

test.serial('pit mae show refuses a checkpoint that is not an MAE run, naming it', async (t) => {
  const dir = scratch();
  const r = await runTraining(regressionTask, { out: dir, device: 'cpu', stopAtStep: 1 });
  r.model.dispose();
  const shown = run('mae', 'show', '--checkpoint', dir, '--out', join(dir, 'x.png'), '--device', 'cpu');
  t.is(shown.status, 1);
  t.regex(shown.stderr, /pit: mae show: .*checkpoints\/step-00000001 is not an MAE pre-training checkpoint \(its task is "regress", not 'mae'\); pass a run folder or checkpoint of `pit pretrain`/);
  rmSync(dir, { recursive: true, force: true });
});

test('the grid un-patchifies a p = 2 RGB prediction in patchify\'s (channel, row, column) order', (t) => {
  // One 4×4×3 image (4 tokens of 2×2), normalisation (mean 0.5, std 0.25); token 1 (top right) removed.
  const C = 3, H = 4, W = 4, p = 2;
  const images = new Float32Array(C * H * W).fill(-2);            // 0 after denormalising: black
  const pred = new Float32Array(4 * C * p * p).map((_, v) => (v % (C * p * p)) / 15 * 4 - 2); // token value v → v/15
  const mask = Float32Array.of(0, 1, 0, 0);
  const grid = maeReconstructionGrid({ images, pred, mask, shape: { channels: C, height: H, width: W }, patch: p, normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } }, { scale: 1 });
  t.is(grid.width, 3 * W + 2 * PANEL_SEPARATOR);
  t.is(grid.height, H);
  const recon = (x: number, y: number) => Array.from(grid.data.subarray((y * grid.width + 2 * (W + PANEL_SEPARATOR) + x) * 4, (y * grid.width + 2 * (W + PANEL_SEPARATOR) + x) * 4 + 3));
  // Pixel (row r, column c) of token 1 (x = 2 + c), channel ch is value (ch·4 + r·2 + c)/15.
  for (let r = 0; r < p; r++)
    for (let c = 0; c < p; c++)
      t.deepEqual(recon(2 + c, r), [0, 1, 2].map((ch) => 17 * (ch * 4 + r * 2 + c)), `token 1 pixel (${r}, ${c})`);
  t.deepEqual(recon(0, 0), [0, 0, 0], 'a visible token keeps the original');
  t.deepEqual(recon(0, 3), [0, 0, 0]);
});
