// `pit study dit` (bench/dit-study.ts): its runs, metrics, summary and files; the samples it
// scores are exactly what `pit sample` draws for the same seed; a finished study is skipped and
// an interrupted one (in training or in sampling) continues to the same result; errors. Tiny
// DiTs on the 8×8 digits, one epoch each, a handful of samples.
import { mkdtempSync, readFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import { runDitStudy, studyLabels, type DitStudyOptions } from '../bench/dit-study.js';
import { meanStd } from '../bench/study-runs.js';
import { ditFromCheckpoint, generateSamples, npyFloat32, npyInt32, readNpy, runTraining, classifyTask } from '../lib/index.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-study-dit-'));

let classifierPromise: Promise<string> | undefined;
/** One tiny classifier (1 epoch) shared by the tests. */
function classifier(): Promise<string> {
  classifierPromise ??= (async () => {
    const out = join(scratch(), 'classifier');
    const result = await runTraining(classifyTask, { out, recipe: { model: 'pit-d1w16h2', epochs: 1 }, device: 'cpu' });
    result.model.dispose();
    return out;
  })();
  return classifierPromise;
}

const tiny = async (outDir: string, extra: Partial<DitStudyOptions> = {}): Promise<DitStudyOptions> => ({
  models: ['dit-d1w16h2/1', 'dit-d1w16h2/2'], seeds: [0, 1], epochs: 1, cfgs: [1, 1.5], n: 20, steps: 3, sampler: 'ddpm',
  classifier: await classifier(), device: 'cpu', outDir, command: 'test', ...extra,
});

test('studyLabels: class-major and balanced', (t) => {
  t.deepEqual([...studyLabels(6, 3)], [0, 0, 1, 1, 2, 2]);
  t.deepEqual([...studyLabels(5, 2)], [0, 0, 0, 1, 1]);
  const counts = new Map<number, number>();
  for (const y of studyLabels(1000, 10)) counts.set(y, (counts.get(y) ?? 0) + 1);
  t.deepEqual([...counts.values()], Array(10).fill(100));
});

test.serial('a study trains each generator per seed, samples at each scale, scores, summarises, writes its files and skips finished work', async (t) => {
  const out = scratch();
  const report = await runDitStudy(await tiny(out));
  t.false(report.interrupted);
  t.deepEqual(report.runs.map((r) => `${r.model} ${r.seed} ${r.cfg}`), [
    'dit-d1w16h2/1 0 1', 'dit-d1w16h2/1 0 1.5', 'dit-d1w16h2/1 1 1', 'dit-d1w16h2/1 1 1.5',
    'dit-d1w16h2/2 0 1', 'dit-d1w16h2/2 0 1.5', 'dit-d1w16h2/2 1 1', 'dit-d1w16h2/2 1 1.5',
  ]);
  for (const r of report.runs) {
    t.is(r.epochs, 1);
    t.true(r.frechet > 0 && Number.isFinite(r.frechet), `Fréchet ${r.frechet}`);
    t.true(r.meanTerm >= 0 && r.meanTerm <= r.frechet + 1e-9);
    for (const x of [r.accuracy, r.precision, r.recall]) t.true(x >= 0 && x <= 1);
    t.true(r.testLoss > 0 && r.trainSeconds > 0 && r.sampleSeconds > 0);
  }
  // The floor (training images against held-out ones) is far below an untrained generator's samples.
  t.true(report.floor!.frechet < Math.min(...report.runs.map((r) => r.frechet)));

  // The scored samples are what `pit sample` draws: the run's EMA, studyLabels, the study's seed.
  const folder = join(out, 'dit-d1w16h2-p2', 'seed-1', 'samples-cfg1.5');
  const loaded = ditFromCheckpoint(join(out, 'dit-d1w16h2-p2', 'seed-1', 'train'));
  const again = generateSamples(loaded, { labels: studyLabels(20, 10), steps: 3, guidanceScale: 1.5, seed: 1 });
  loaded.model.dispose();
  t.deepEqual(npyFloat32(readNpy(join(folder, 'samples.npy')), 'samples'), again.samples);
  t.deepEqual([...npyInt32(readNpy(join(folder, 'labels.npy')), 'labels')], [...studyLabels(20, 10)]);

  const rs = report.runs.filter((r) => r.model === 'dit-d1w16h2/1' && r.cfg === 1.5);
  const summary = report.summary.find((s) => s.model === 'dit-d1w16h2/1' && s.cfg === 1.5)!;
  t.deepEqual(summary.frechet, meanStd(rs.map((r) => r.frechet)));
  t.deepEqual(summary.accuracy, meanStd(rs.map((r) => r.accuracy)));
  const pairs = [0, 1].map((seed) => report.runs.filter((r) => r.seed === seed && r.cfg === 1).map((r) => r.frechet));
  t.deepEqual(report.differences.find((d) => d.cfg === 1)!.frechet, meanStd(pairs.map(([a, b]) => a! - b!)));

  for (const name of ['samples-dit-d1w16h2-p1-cfg1.png', 'samples-dit-d1w16h2-p2-cfg1.5.png']) {
    const png = PNG.sync.read(readFileSync(join(out, name)));
    t.true(png.width > 0 && png.height > 0, name);
  }
  const json = JSON.parse(readFileSync(join(out, 'study.json'), 'utf8')) as { runs: unknown[]; cfgs: number[] };
  t.deepEqual(json.runs, JSON.parse(JSON.stringify(report.runs)));
  t.deepEqual(json.cfgs, [1, 1.5]);
  t.regex(readFileSync(join(out, 'study.md'), 'utf8'), /\| dit-d1w16h2\/1 \| none \(1\) \| [\d.]+ ± [\d.]+ \|/);

  // Again: nothing trains or samples (the metrics files are untouched), and the report is the same.
  const metrics = join(folder, 'metrics.json');
  const before = statSync(metrics).mtimeMs;
  const repeated = await runDitStudy(await tiny(out));
  t.deepEqual(repeated.runs, report.runs);
  t.is(statSync(metrics).mtimeMs, before);
});

test.serial('a study stopped in training or in sampling continues, run again, to the result of an uninterrupted one', async (t) => {
  const options = { models: ['dit-d1w16h2/2'], seeds: [4], cfgs: [1.5] };
  const whole = await runDitStudy(await tiny(scratch(), options));
  const key = (r: { frechet: number; accuracy: number; testLoss: number }) => ({ frechet: r.frechet, accuracy: r.accuracy, testLoss: r.testLoss });

  // Stopped before the first step: the diffusion run saves a checkpoint.
  const out = scratch();
  const stopped = new AbortController();
  stopped.abort();
  const first = await runDitStudy(await tiny(out, { ...options, signal: stopped.signal }));
  t.true(first.interrupted);
  t.deepEqual(first.runs, []);
  t.true(existsSync(join(out, 'dit-d1w16h2-p2', 'seed-4', 'train', 'checkpoints')));

  // Stopped as sampling starts: the run finishes training, the sampling is dropped.
  const inSampling = new AbortController();
  const second = await runDitStudy(await tiny(out, { ...options, signal: inSampling.signal, onLine: (line) => { if (line.includes('sampling')) inSampling.abort(); } }));
  t.true(second.interrupted);
  t.false(existsSync(join(out, 'dit-d1w16h2-p2', 'seed-4', 'samples-cfg1.5', 'metrics.json')));
  t.false(existsSync(join(out, 'samples-dit-d1w16h2-p2-cfg1.5.png')), 'no grid of an unfinished study');

  const resumed = await runDitStudy(await tiny(out, options));
  t.false(resumed.interrupted);
  t.deepEqual(resumed.runs.map(key), whole.runs.map(key));
});

test.serial('without --classifier the study trains one with `pit train`\'s recipe on its data, and scores with it', async (t) => {
  const out = scratch();
  const report = await runDitStudy(await tiny(out, { classifier: undefined, models: ['dit-d1w16h2/2'], seeds: [0], cfgs: [1], recipe: { epochs: 1 } }));
  t.is(report.classifier, join(out, 'classifier'));
  const run = JSON.parse(readFileSync(join(out, 'classifier', 'run.json'), 'utf8')) as { task: string; recipe: { model: string; epochs: number; seed: number } };
  t.like(run, { task: 'classify', recipe: { model: 'pit-d4w64h4', epochs: 1, seed: 0 } });
  t.is(report.runs.length, 1);
  t.regex(report.table, /penultimate features of .*classifier \(not FID\)/);
});

test('study errors name the option', async (t) => {
  const out = scratch();
  await t.throwsAsync(runDitStudy(await tiny(out, { models: [] })), { instanceOf: RangeError, message: /'models' must be at least one DiT name/ });
  await t.throwsAsync(runDitStudy(await tiny(out, { seeds: [2, 2] })), { instanceOf: RangeError, message: /'seeds' must be different seeds, got 2, 2/ });
  await t.throwsAsync(runDitStudy(await tiny(out, { cfgs: [] })), { instanceOf: RangeError, message: /'cfgs' must be at least one guidance scale/ });
  await t.throwsAsync(runDitStudy(await tiny(out, { n: 1 })), { instanceOf: RangeError, message: /'n' must be an integer ≥ 2, got 1/ });
  // A classifier of other images: the metrics refuse it before any sampling is scored.
  await t.throwsAsync(runDitStudy(await tiny(scratch(), { models: ['dit-d1w16h2/1'], seeds: [0], cfgs: [1], recipe: { imageSize: 6 } })),
    { instanceOf: RangeError, message: /'samples' are 1×6×6 images, the classifier takes 1×8×8/ });
});
