// `pit study locality` (bench/locality-study.ts): the plans of each experiment, a tiny study end
// to end (runs, summary, CSV, JSON lines, charts, table), its resume at the first unfinished run,
// and its errors. Tiny models on the 8×8 digits, one epoch per run.
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import { patchSweepPlan, permutePlan, posEmbedPlan, runLocalityStudy, type LocalityStudyOptions } from '../bench/locality-study.js';
import { meanStd } from '../bench/study-runs.js';
import { permutationFigure, runAttentionAnalysis } from '../bench/locality-analysis.js';
import { sweepPatches } from '../cli/study-locality.js';
import { classifyTask, makeRecipe, permutePixels, pixelPermutation, runTraining } from '../lib/index.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-study-locality-'));
const tiny = (outDir: string, extra: Partial<LocalityStudyOptions> = {}): LocalityStudyOptions => ({
  plan: patchSweepPlan({ size: 'd1w16h2', patches: [4, 2], imageSize: 8 }), seeds: [0, 1], epochs: 1, device: 'cpu', outDir, command: 'test', ...extra,
});

test('patch-sweep plans: PiT at p = 1, ViT/p otherwise; a fixed input or a fixed sequence length', (t) => {
  const fixed = patchSweepPlan({ size: 'd4w64h4', patches: [4, 2, 1], imageSize: 16 });
  t.deepEqual(fixed.settings.map((s) => [s.recipe.model, s.recipe.imageSize, s.at]), [
    ['vit-d4w64h4/4', 16, [{ panel: 'patch', x: 4 }]], ['vit-d4w64h4/2', 16, [{ panel: 'patch', x: 2 }]], ['pit-d4w64h4', 16, [{ panel: 'patch', x: 1 }]],
  ]);
  t.deepEqual(fixed.panels[0]!.xTicks, [{ value: 4, label: '4' }, { value: 2, label: '2' }, { value: 1, label: '1' }], 'a tick at each patch size');
  const tokens = patchSweepPlan({ size: 't', patches: [4, 2, 1], imageSize: 16, fixedTokens: 64 });
  t.deepEqual(tokens.settings.map((s) => [s.recipe.model, s.recipe.imageSize]), [['vit-t/4', 32], ['vit-t/2', 16], ['pit-t', 8]]);
  t.throws(() => patchSweepPlan({ size: 't', patches: [3], imageSize: 16 }), { message: /patch 3 does not divide the image side 16/ });
  t.throws(() => patchSweepPlan({ size: 't', patches: [2], imageSize: 16, fixedTokens: 50 }), { message: /'fixedTokens' must be a square number of tokens, got 50/ });
});

test('pos-embed and permute plans: a setting per model and kind; the permutation sweeps share the setting both panels hold', (t) => {
  const pe = posEmbedPlan({ models: ['vit-t/2', 'pit-t'] });
  t.deepEqual(pe.settings.map((s) => [s.series, s.recipe.posEmbed]), [
    ['vit-t/2', 'sincos'], ['vit-t/2', 'learned'], ['vit-t/2', 'none'], ['pit-t', 'sincos'], ['pit-t', 'learned'], ['pit-t', 'none'],
  ]);
  t.deepEqual(pe.panels[0]!.xTicks, [{ value: 0, label: 'sincos' }, { value: 1, label: 'learned' }, { value: 2, label: 'none' }]);
  const perm = permutePlan({ models: ['vit-t/2'], swaps: [0, 16, 32], delta: null, deltas: [2, null], fixedSwaps: 16, permuteSeed: 7 });
  // T = 16, δ = ∞ is on both panels: one setting, two places.
  t.deepEqual(perm.settings.map((s) => [s.label, s.at.map((a) => `${a.panel} ${a.x}`)]), [
    ['T = 0 (none)', ['swaps 0']], ['T = 16, δ = ∞', ['swaps 16', 'delta 4']], ['T = 32, δ = ∞', ['swaps 32']], ['T = 16, δ = 2', ['delta 2']],
  ]);
  t.like(perm.settings[1]!.recipe, { model: 'vit-t/2', permuteSwaps: 16, permuteDelta: null, permuteSeed: 7 });
  t.deepEqual(perm.panels.find((p) => p.id === 'delta')!.xTicks, [{ value: 2, label: '2' }, { value: 4, label: 'inf' }]);
  // An ends model runs at the least and largest T only, and on the δ panel where that setting is.
  const ends = permutePlan({ models: ['vit-t/4'], endsModels: ['pit-t'], swaps: [0, 16, 32], delta: null, deltas: [2, null], fixedSwaps: 32, permuteSeed: 7 });
  t.deepEqual(ends.settings.filter((s) => s.series === 'pit-t').map((s) => [s.label, s.at.map((a) => `${a.panel} ${a.x}`)]), [
    ['T = 0 (none)', ['swaps 0']], ['T = 32, δ = ∞', ['swaps 32', 'delta 4']],
  ]);
  t.is(ends.settings.filter((s) => s.series === 'vit-t/4').length, 4);
  const endsOff = permutePlan({ models: [], endsModels: ['pit-t'], swaps: [8, 16, 32], delta: 4, deltas: [2], fixedSwaps: 16, permuteSeed: 7 });
  t.deepEqual(endsOff.settings.map((s) => s.label), ['T = 8, δ = 4', 'T = 32, δ = 4']);
  t.throws(() => permutePlan({ models: [], swaps: [0], delta: null, deltas: [], fixedSwaps: 0, permuteSeed: 0 }), { message: /'models' and 'endsModels' must name at least one model/ });
});

test('patch-sweep defaults: every patch size dividing the side with at least 4 tokens', (t) => {
  t.deepEqual(sweepPatches(12), [6, 4, 3, 2, 1]);
  t.deepEqual(sweepPatches(16), [8, 4, 2, 1]);
  t.deepEqual(sweepPatches(32), [16, 8, 4, 2, 1]);
  t.deepEqual(sweepPatches(2), [1]);
});

test.serial('a study trains each setting per seed, summarises, writes CSV, JSON lines, charts and a table, and skips finished runs', async (t) => {
  const out = scratch();
  const report = await runLocalityStudy(tiny(out));
  t.false(report.interrupted);
  t.deepEqual(report.runs.map((r) => `${r.folder} ${r.seed}`), ['p4-8x8 0', 'p4-8x8 1', 'p2-8x8 0', 'p2-8x8 1']);
  for (const r of report.runs) t.true(r.top1 > 0.1 && r.top1 <= r.top5 && r.epochs === 1, JSON.stringify(r));
  const p2 = report.runs.filter((r) => r.folder === 'p2-8x8');
  t.deepEqual(report.summary.find((s) => s.folder === 'p2-8x8')!.top1, meanStd(p2.map((r) => r.top1)));
  // Each run is a pit train run folder with its setting's recipe.
  const runJson = JSON.parse(readFileSync(join(out, 'p2-8x8', 'seed-1', 'run.json'), 'utf8')) as { recipe: { model: string; imageSize: number; seed: number } };
  t.like(runJson.recipe, { model: 'vit-d1w16h2/2', imageSize: 8, seed: 1 });
  t.is(readFileSync(join(out, 'runs.jsonl'), 'utf8').trim().split('\n').length, 4);
  t.is(readFileSync(join(out, 'runs.csv'), 'utf8').trim().split('\n').length, 5);
  t.regex(readFileSync(join(out, 'summary.csv'), 'utf8'), /^setting,series,label,seeds,top1_mean/);
  t.regex(readFileSync(join(out, 'patch.svg'), 'utf8'), /<svg[^]*8×8 input|<svg[^]*8x8 input/);
  const png = PNG.sync.read(readFileSync(join(out, 'patch.png')));
  t.true(png.width > 0 && png.height > 0);
  t.regex(report.table, /\| 8×8 input \| vit-d1w16h2\/2 at 8×8 \(16 tokens\) \| [\d.]+ ± [\d.]+ \|/);

  const metrics = join(out, 'p4-8x8', 'seed-0', 'metrics.jsonl');
  const before = statSync(metrics).mtimeMs;
  const again = await runLocalityStudy(tiny(out));
  t.deepEqual(again.runs, report.runs);
  t.is(statSync(metrics).mtimeMs, before);
});

test.serial('a stopped study resumes at the first unfinished run', async (t) => {
  const out = scratch();
  const controller = new AbortController();
  // Stop as the second run starts: the first is finished, the second saved.
  let started = 0;
  const stopped = await runLocalityStudy(tiny(out, { seeds: [0, 1], signal: controller.signal, onLine: (line) => { if (line.endsWith('training') && ++started === 2) controller.abort(); } }));
  t.true(stopped.interrupted);
  t.deepEqual(stopped.runs.map((r) => `${r.folder} ${r.seed}`), ['p4-8x8 0']);
  t.false(existsSync(join(out, 'patch.png')), 'no chart of an unfinished study');
  const lines: string[] = [];
  const resumed = await runLocalityStudy(tiny(out, { onLine: (line) => lines.push(line) }));
  t.false(resumed.interrupted);
  // The finished run is only read back; the first run to train is the saved one, resumed.
  const first = lines.find((line) => line.endsWith(': training') || line.endsWith(': resuming'))!;
  t.true(first.includes(join('p4-8x8', 'seed-1')) && first.endsWith('resuming'), first);
  t.is(resumed.runs.length, 4);
});

test.serial('a permute study trains on the shared permutation it names and draws its panel', async (t) => {
  const out = scratch();
  const plan = permutePlan({ models: ['vit-d1w16h2/2'], swaps: [0, 8], delta: null, deltas: [], fixedSwaps: 8, permuteSeed: 5 });
  const report = await runLocalityStudy(tiny(out, { plan, seeds: [0], recipe: { imageSize: 8 } }));
  t.deepEqual(report.runs.map((r) => r.label), ['T = 0 (none)', 'T = 8, δ = ∞']);
  const recipe = (folder: string) => (JSON.parse(readFileSync(join(out, folder, 'seed-0', 'run.json'), 'utf8')) as { recipe: object }).recipe;
  t.like(recipe(join('vit-d1w16h2-p2', 'T8-deltainf')), { permuteSwaps: 8, permuteDelta: null, permuteSeed: 5 });
  t.like(recipe(join('vit-d1w16h2-p2', 'T0-deltainf')), { permuteSwaps: 0 });
  t.true(existsSync(join(out, 'swaps.png')) && !existsSync(join(out, 'delta.png')));
});

test('study errors name the option, and a bad setting fails before any run trains', async (t) => {
  await t.throwsAsync(runLocalityStudy(tiny(scratch(), { seeds: [] })), { message: /'seeds' must name at least one seed/ });
  await t.throwsAsync(runLocalityStudy(tiny(scratch(), { seeds: [3, 3] })), { message: /'seeds' must differ, got 3, 3/ });
  const out = scratch();
  await t.throwsAsync(runLocalityStudy(tiny(out, { plan: patchSweepPlan({ size: 'd1w16h2', patches: [2], imageSize: 8 }), recipe: { batchSize: 0 } })), { message: /batchSize/ });
  t.false(existsSync(join(out, 'p2-8x8')), 'nothing trained');
});

test('show-permutation: the top row is the held-out images, the bottom row the same pixels moved by the permutation', (t) => {
  const figure = permutationFigure({ recipe: { imageSize: 8 }, swaps: 32, delta: null, seed: 3, n: 2 });
  const { test: held } = classifyTask.data(makeRecipe(classifyTask.recipe, { imageSize: 8 }));
  const moved = held.images.slice(0, 2 * 64);
  permutePixels(moved, 1, 8, 8, pixelPermutation(8, 8, { swaps: 32, delta: null, seed: 3 }));
  const { layout } = figure;
  // Grey: the red channel of each panel's first pixel of every row is round(255·value).
  const at = (row: number, col: number, y: number, x: number) => {
    const { x: x0, y: y0 } = layout.panel(row, col);
    return figure.data[((y0 + y * layout.scale) * figure.width + x0 + x * layout.scale) * 4]!;
  };
  for (const col of [0, 1])
    for (let p = 0; p < 64; p += 7) {
      const [y, x] = [Math.floor(p / 8), p % 8];
      t.is(at(0, col, y, x), Math.round(255 * held.images[col * 64 + p]!));
      t.is(at(1, col, y, x), Math.round(255 * moved[col * 64 + p]!));
    }
  t.throws(() => permutationFigure({ recipe: { imageSize: 8 }, swaps: 33, delta: null, seed: 3, n: 2 }), { message: /swaps/ });
});

test.serial('attention: distances per layer and head of two classifiers, charts, maps and a table', async (t) => {
  const dir = scratch();
  const paths = [];
  for (const model of ['pit-d2w16h2', 'vit-d2w16h2/2']) {
    const out = join(dir, model.replace('/', '-'));
    (await runTraining(classifyTask, { out, recipe: { model, epochs: 1 }, device: 'cpu' })).model.dispose();
    paths.push(out);
  }
  const report = runAttentionAnalysis({ checkpoints: [{ name: 'PiT', path: paths[0]! }, { name: 'ViT/2', path: paths[1]! }], images: 4, device: 'cpu', outDir: join(dir, 'a'), command: 'test' });
  t.deepEqual(report.checkpoints.map((c) => [c.name, c.layers.length, c.layers[0]!.heads.length]), [['PiT', 2, 2], ['ViT/2', 2, 2]]);
  for (const c of report.checkpoints)
    for (const l of c.layers) {
      const d = l.heads.map((h) => h.distance);
      t.deepEqual(d, [...d].sort((a, b) => a - b), 'heads sorted by distance');
      for (const h of l.heads) t.true(h.distance > 0 && h.distance < Math.SQRT2 && h.offset >= 0 && h.offset <= h.distance + 1e-9, JSON.stringify(h));
    }
  for (const f of ['distance.png', 'offset.svg', 'centre-PiT.png', 'position-similarity-ViT-2.png', 'heads.csv', 'study.md'])
    t.true(existsSync(join(dir, 'a', f)), f);
  t.is(readFileSync(join(dir, 'a', 'heads.jsonl'), 'utf8').trim().split('\n').length, 2 * 2 * 2);
  t.regex(report.table, /\| 1 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
});
