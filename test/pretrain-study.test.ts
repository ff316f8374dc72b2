// `pit study pretrain` (bench/pretrain-study.ts): the study's runs, summary, files, its resume
// (finished runs skipped, an interrupted one continued bit-exactly) and its errors, on a tiny
// PiT over 7×7 digits with one epoch per run.
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { PNG } from 'pngjs';
import { runPretrainStudy, type PretrainStudyOptions } from '../bench/pretrain-study.js';
import { meanStd, modelFolder } from '../bench/study-runs.js';

const tiny = (outDir: string, extra: Partial<PretrainStudyOptions> = {}): PretrainStudyOptions => ({
  models: ['pit-d1w16h2'], seeds: [0, 1], pretrainEpochs: 1, epochs: 1, layerDecay: 0.65, recipe: { imageSize: 7 }, device: 'cpu',
  outDir, command: 'test', ...extra,
});
const scratch = () => mkdtempSync(join(tmpdir(), 'pit-study-'));

test('meanStd: the mean and the sample standard deviation', (t) => {
  t.deepEqual(meanStd([1, 2, 3]), { mean: 2, std: 1, n: 3 });
  t.deepEqual(meanStd([0.5]), { mean: 0.5, std: 0, n: 1 });
  t.is(modelFolder('vit-d4w64h4/2'), 'vit-d4w64h4-p2');
  t.is(modelFolder('pit-t'), 'pit-t');
});

test.serial('a study runs pre-training, fine-tuning and scratch per seed, summarises them and skips finished runs when run again', async (t) => {
  const out = scratch();
  const report = await runPretrainStudy(tiny(out));
  t.false(report.interrupted);
  t.deepEqual(report.runs.map((r) => `${r.seed} ${r.setting}`), ['0 mae', '0 finetune', '0 scratch', '1 mae', '1 finetune', '1 scratch']);
  for (const r of report.runs) {
    t.is(r.epochs, 1);
    t.true(Number.isFinite(r.loss) && r.loss > 0, `${r.setting} loss ${r.loss}`);
    if (r.setting !== 'mae') t.true(r.top1! > 0.1 && r.top1! <= r.top5! && r.top5! <= 1, `${r.setting}: top-1 ${r.top1}, top-5 ${r.top5}`);
  }
  // The fine-tuning runs started from their seed's MAE: the recipe saved in run.json says so.
  const run = JSON.parse(readFileSync(join(out, 'pit-d1w16h2', 'seed-1', 'finetune', 'run.json'), 'utf8')) as { recipe: { init: string; beta2: number; layerDecay: number } };
  t.is(run.recipe.init, join(out, 'pit-d1w16h2', 'seed-1', 'mae'));
  t.is(run.recipe.beta2, 0.999);
  t.is(run.recipe.layerDecay, 0.65);

  const top1 = (setting: string) => report.runs.filter((r) => r.setting === setting).map((r) => r.top1!);
  const finetune = report.summary.find((s) => s.setting === 'finetune')!, fromScratch = report.summary.find((s) => s.setting === 'scratch')!;
  t.deepEqual(finetune.top1, meanStd(top1('finetune')));
  t.deepEqual(fromScratch.top1, meanStd(top1('scratch')));
  t.deepEqual(report.gains, [{ model: 'pit-d1w16h2', top1: meanStd(top1('finetune').map((f, i) => f - top1('scratch')[i]!)) }]);

  const png = PNG.sync.read(readFileSync(join(out, 'mae-pit-d1w16h2.png')));
  t.true(png.width > 0 && png.height > 0);
  const json = JSON.parse(readFileSync(join(out, 'study.json'), 'utf8')) as { runs: unknown[]; summary: unknown[] };
  t.deepEqual(json.runs, JSON.parse(JSON.stringify(report.runs)));
  t.regex(readFileSync(join(out, 'study.md'), 'utf8'), /\| pit-d1w16h2 \| fine-tuned from the MAE, 1 epoch \| [\d.]+ ± [\d.]+ \|/);

  // Again: every run is finished, so none trains (their metrics files are untouched).
  const metrics = join(out, 'pit-d1w16h2', 'seed-0', 'scratch', 'metrics.jsonl');
  const before = statSync(metrics).mtimeMs;
  const again = await runPretrainStudy(tiny(out));
  t.deepEqual(again.runs, report.runs);
  t.is(statSync(metrics).mtimeMs, before);
});

test.serial('an interrupted study saves the run in flight and, run again, continues it to the same result as an uninterrupted one', async (t) => {
  const whole = await runPretrainStudy(tiny(scratch(), { seeds: [3] }));
  const out = scratch();
  const controller = new AbortController();
  controller.abort();
  const stopped = await runPretrainStudy(tiny(out, { seeds: [3], signal: controller.signal }));
  t.true(stopped.interrupted);
  t.deepEqual(stopped.runs, []);
  t.true(existsSync(join(out, 'pit-d1w16h2', 'seed-3', 'mae', 'checkpoints')), 'the MAE run saved a checkpoint');
  t.false(existsSync(join(out, 'mae-pit-d1w16h2.png')), 'no figure of an unfinished study');
  const resumed = await runPretrainStudy(tiny(out, { seeds: [3] }));
  t.false(resumed.interrupted);
  const key = (r: { setting: string; loss: number; top1?: number; top5?: number }) => ({ setting: r.setting, loss: r.loss, top1: r.top1, top5: r.top5 });
  t.deepEqual(resumed.runs.map(key), whole.runs.map(key));
});

test('study errors name the option', async (t) => {
  await t.throwsAsync(runPretrainStudy(tiny(scratch(), { models: [] })), { instanceOf: RangeError, message: /'models' must name at least one model/ });
  await t.throwsAsync(runPretrainStudy(tiny(scratch(), { seeds: [] })), { instanceOf: RangeError, message: /'seeds' must name at least one seed/ });
  await t.throwsAsync(runPretrainStudy(tiny(scratch(), { seeds: [1, 1] })), { instanceOf: RangeError, message: /'seeds' must differ, got 1, 1/ });
});
