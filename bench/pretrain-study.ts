// `pit study pretrain`: the small-scale version of the paper's Table 4. For each encoder (PiT
// and ViT/2 of the same size by default) and each seed: MAE pre-training (`pit pretrain`), then
// fine-tuning from its encoder (`pit train --init`, AdamW β (0.9, 0.999), optional layer-wise lr decay),
// against the same classifier trained from scratch (`pit train`) for the same epochs. Every run
// is an ordinary run folder under <out>/<model>/seed-<s>/{mae,finetune,scratch}; the study only
// chooses recipes, runs them in turn and reads their metrics.jsonl, so an interrupted study
// resumes each run where it stopped and skips the finished ones.
//
// Summary: per model and setting, held-out top-1 / top-5 as mean ± sample std over the seeds,
// and the paired gain (fine-tuned − scratch, seed by seed) as mean ± std. Files: study.json
// (every run and the summary), study.md (the table), mae-<model>.png (the reconstruction
// figure of the first seed's MAE).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  classifyTask, maeFigure, makeRecipe, pretrainTask, writePng,
  type ClassificationMetrics, type Device, type EpochRecord, type ReconstructionMetrics, type SharedRecipe,
} from '../lib/index.js';
import { meanStd, modelFolder, studyRun, trainingSeconds, type MeanStd } from './study-runs.js';


export type StudySetting = 'mae' | 'finetune' | 'scratch';

export interface PretrainStudyOptions {
  /** Encoders: model names (pit-d4w64h4, vit-d4w64h4/2, pit-t, …). */
  models: string[];
  seeds: number[];
  /** Epochs of MAE pre-training (default: `pit pretrain`'s). */
  pretrainEpochs?: number;
  /** Epochs of both fine-tuning and training from scratch (default: `pit train`'s). */
  epochs?: number;
  /** Layer-wise lr decay of fine-tuning (1 = off; SPEC §3: the paper's 0.65 for 12 blocks). */
  layerDecay: number;
  /** Shared recipe fields for every run (data, dataDir, imageSize, batchSize, …). */
  recipe?: Partial<SharedRecipe>;
  device: Device;
  outDir: string;
  /** The command line, recorded in study.json. */
  command: string;
  /** Checked between steps: the run in flight saves, and the study stops with `interrupted`. */
  signal?: AbortSignal;
  /** A line when each run starts and ends. */
  onLine?: (line: string) => void;
}

export interface StudyRun {
  model: string;
  seed: number;
  setting: StudySetting;
  folder: string;
  epochs: number;
  /** Wall time of the run's training steps (evaluation excluded), summed over its epochs. */
  seconds: number;
  /** Classification runs: the last epoch's held-out metrics. */
  top1?: number;
  top5?: number;
  loss: number;
}

export interface SettingSummary {
  model: string;
  setting: StudySetting;
  top1?: MeanStd;
  top5?: MeanStd;
  loss: MeanStd;
  seconds: MeanStd;
}

export interface PretrainStudyReport {
  interrupted: boolean;
  runs: StudyRun[];
  summary: SettingSummary[];
  /** Fine-tuned − scratch top-1, paired by seed, per model. */
  gains: { model: string; top1: MeanStd }[];
  /** The summary as study.md holds it. */
  table: string;
  files: string[];
}

/** Runs the study (or its unfinished runs), writes its files and returns the report. */
export async function runPretrainStudy(options: PretrainStudyOptions): Promise<PretrainStudyReport> {
  const { models, seeds, layerDecay, outDir } = options;
  if (!models.length) throw new RangeError("study pretrain: 'models' must name at least one model");
  if (!seeds.length) throw new RangeError("study pretrain: 'seeds' must name at least one seed");
  if (new Set(seeds).size !== seeds.length) throw new RangeError(`study pretrain: 'seeds' must differ, got ${seeds.join(', ')}`);
  // The recipes' own epochs unless given: each task's default recipe says how long it trains.
  const pretrainEpochs = options.pretrainEpochs ?? makeRecipe(pretrainTask.recipe).epochs;
  const epochs = options.epochs ?? makeRecipe(classifyTask.recipe).epochs;
  const say = options.onLine ?? (() => {});
  mkdirSync(outDir, { recursive: true });
  const runs: StudyRun[] = [];
  let interrupted = false;

  const record = (model: string, seed: number, setting: StudySetting, folder: string, epochRecords: EpochRecord<ClassificationMetrics | ReconstructionMetrics>[]) => {
    const last = epochRecords.at(-1)!;
    const seconds = trainingSeconds(epochRecords);
    const test: Partial<ClassificationMetrics> & { loss: number } = last.test;
    const run: StudyRun = { model, seed, setting, folder, epochs: last.epoch, seconds, loss: test.loss, ...(test.top1 !== undefined ? { top1: test.top1, top5: test.top5 } : {}) };
    runs.push(run);
    say(`${model} seed ${seed} ${setting}: ${run.top1 !== undefined ? `top-1 ${(run.top1 * 100).toFixed(2)}%, top-5 ${(run.top5! * 100).toFixed(2)}%` : `held-out masked MSE ${run.loss.toFixed(4)}`}` +
      ` (${epochRecords.length} epoch${epochRecords.length === 1 ? '' : 's'}, ${seconds.toFixed(0)} s of training)`);
  };

  study: for (const model of models)
    for (const seed of seeds) {
      const base = join(outDir, modelFolder(model), `seed-${seed}`);
      const shared = { ...options.recipe, seed };
      const steps: [StudySetting, () => Promise<EpochRecord<ClassificationMetrics | ReconstructionMetrics>[] | null>][] = [
        ['mae', () => studyRun(pretrainTask, join(base, 'mae'), { ...shared, model, epochs: pretrainEpochs }, pretrainEpochs, options)],
        ['finetune', () => studyRun(classifyTask, join(base, 'finetune'), { ...shared, model, epochs, init: join(base, 'mae'), layerDecay }, epochs, options)],
        ['scratch', () => studyRun(classifyTask, join(base, 'scratch'), { ...shared, model, epochs }, epochs, options)],
      ];
      for (const [setting, run] of steps) {
        const records = await run();
        if (!records) {
          interrupted = true;
          say(`interrupted: ${join(base, setting)} saved; run the same command again to continue`);
          break study;
        }
        record(model, seed, setting, join(base, setting), records);
      }
    }

  const summary: SettingSummary[] = [];
  const gains: PretrainStudyReport['gains'] = [];
  for (const model of models) {
    for (const setting of ['mae', 'finetune', 'scratch'] as const) {
      const rs = runs.filter((r) => r.model === model && r.setting === setting);
      if (!rs.length) continue;
      summary.push({
        model, setting, loss: meanStd(rs.map((r) => r.loss)), seconds: meanStd(rs.map((r) => r.seconds)),
        ...(setting !== 'mae' ? { top1: meanStd(rs.map((r) => r.top1!)), top5: meanStd(rs.map((r) => r.top5!)) } : {}),
      });
    }
    const paired = seeds.flatMap((seed) => {
      const f = runs.find((r) => r.model === model && r.seed === seed && r.setting === 'finetune');
      const s = runs.find((r) => r.model === model && r.seed === seed && r.setting === 'scratch');
      return f && s ? [f.top1! - s.top1!] : [];
    });
    if (paired.length) gains.push({ model, top1: meanStd(paired) });
  }

  const files: string[] = [];
  const write = (name: string, text: string | Uint8Array) => {
    const path = join(outDir, name);
    writeFileSync(path, text);
    files.push(path);
  };
  if (!interrupted)
    for (const model of models) {
      const figure = maeFigure(join(outDir, modelFolder(model), `seed-${seeds[0]}`, 'mae'), { n: 16, seed: 0, command: 'study pretrain' });
      const path = join(outDir, `mae-${modelFolder(model)}.png`);
      writePng(path, figure.image);
      files.push(path);
    }
  write('study.json', JSON.stringify({ command: options.command, pretrainEpochs, epochs, layerDecay, seeds, recipe: options.recipe ?? {}, runs, summary, gains }, null, 2) + '\n');
  const table = studyTable({ summary, gains, pretrainEpochs, epochs, seeds });
  write('study.md', table);
  return { interrupted, runs, summary, gains, table, files };
}

const pct = (m: MeanStd | undefined) => (m ? `${(m.mean * 100).toFixed(2)} ± ${(m.std * 100).toFixed(2)}` : '');

/** The summary as a Markdown table (top-1 / top-5 in %, mean ± std over the seeds). */
function studyTable({ summary, gains, pretrainEpochs, epochs, seeds }: Pick<PretrainStudyReport, 'summary' | 'gains'> & { pretrainEpochs: number; epochs: number; seeds: number[] }): string {
  const lines = [
    `| model | setting | top-1 % | top-5 % | held-out loss | training time (s) |`,
    `|---|---|---|---|---|---|`,
  ];
  const n = (k: number) => `${k} epoch${k === 1 ? '' : 's'}`;
  const settingText = { mae: `MAE pre-training, ${n(pretrainEpochs)} (masked MSE)`, finetune: `fine-tuned from the MAE, ${n(epochs)}`, scratch: `from scratch, ${n(epochs)}` };
  for (const s of summary)
    lines.push(`| ${s.model} | ${settingText[s.setting]} | ${pct(s.top1)} | ${pct(s.top5)} | ${s.loss.mean.toFixed(4)} ± ${s.loss.std.toFixed(4)} | ${s.seconds.mean.toFixed(0)} ± ${s.seconds.std.toFixed(0)} |`);
  lines.push('', `Mean ± sample std over seeds ${seeds.join(', ')}. Gain of pre-training (fine-tuned − scratch top-1, paired by seed):`, '');
  for (const g of gains) lines.push(`- ${g.model}: ${g.top1.mean >= 0 ? '+' : ''}${(g.top1.mean * 100).toFixed(2)} ± ${(g.top1.std * 100).toFixed(2)} points (${g.top1.n} seeds)`);
  return lines.join('\n') + '\n';
}
