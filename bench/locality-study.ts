// `pit study locality patch-sweep | pos-embed | permute`: the paper's locality experiments
// (§5.1 Fig. 2, §6 and Fig. 5; SPEC §5) as sets of classification runs. An experiment is a list
// of settings (a model, an image size, a position embedding, a pixel permutation), each trained
// from scratch over every seed with `pit train`'s recipe; the study reads the runs' held-out
// accuracy and reports it per setting as mean ± sample std, so a difference can be told from
// noise.
//
// Layout: <out>/<setting>/seed-<s> is an ordinary `pit train` run folder, trained fresh,
// resumed or skipped (bench/study-runs.ts), so a stopped study resumes at its first unfinished
// run. Files: runs.jsonl and runs.csv (a line per run), summary.csv, study.json, study.md (the
// table) and one chart per panel (<panel>.svg and .png: accuracy against the swept quantity, a
// curve per series).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { classifyTask, makeRecipe, type ClassificationMetrics, type ClassifierRecipe } from '../lib/index.js';
import { writeFileAtomic } from '../lib/train/safetensors.js';
import { renderPng, renderSvg, type PlotChart, type PlotSeries } from './plot.js';
import { meanStd, modelFolder, studyRun, trainingSeconds, type MeanStd, type StudyRunContext } from './study-runs.js';

export const localityExperiments = ['patch-sweep', 'pos-embed', 'permute'] as const;
export type LocalityExperiment = (typeof localityExperiments)[number];

/** One setting of an experiment: a recipe trained over every seed. */
export interface LocalitySetting {
  /** The run folder under the study's, one per setting (settings in two panels share it). */
  folder: string;
  /** The curve it is on, e.g. the model or 'fixed input 16×16'. */
  series: string;
  /** What the table calls it: 'p = 2', 'T = 64, δ = ∞', 'sincos'. */
  label: string;
  /** Its panel and its x there (p, T, δ, or a category's index). A setting may be in several panels. */
  at: { panel: string; x: number }[];
  recipe: Partial<ClassifierRecipe>;
}

/** A chart of an experiment: accuracy against x, a curve per series. */
export interface LocalityPanel {
  id: string;
  title: string;
  xLabel: string;
  logX: boolean;
  /** Tick labels in place of numbers (categories, or ∞ for δ). */
  xTicks?: { value: number; label: string }[];
}

export interface LocalityPlan {
  experiment: LocalityExperiment;
  settings: LocalitySetting[];
  panels: LocalityPanel[];
  /** What the experiment asks, for study.md. */
  question: string;
}

export interface LocalityStudyOptions extends StudyRunContext {
  plan: LocalityPlan;
  seeds: number[];
  /** Epochs of every run (default: `pit train`'s recipe). */
  epochs?: number;
  /** Recipe fields of every run (data, imageSize, batchSize, …); a setting's own fields win. */
  recipe?: Partial<ClassifierRecipe>;
  outDir: string;
  /** The command line, recorded in study.json. */
  command: string;
}

export interface LocalityRun {
  folder: string;
  series: string;
  label: string;
  seed: number;
  epochs: number;
  top1: number;
  top5: number;
  loss: number;
  /** Training steps' seconds, evaluation excluded. */
  seconds: number;
}

export interface LocalitySummary {
  folder: string;
  series: string;
  label: string;
  top1: MeanStd;
  top5: MeanStd;
  seconds: MeanStd;
}

export interface LocalityReport {
  interrupted: boolean;
  runs: LocalityRun[];
  summary: LocalitySummary[];
  table: string;
  files: string[];
}

// ---- plans ------------------------------------------------------------------------------------

/** The classifier of a size ('d4w64h4', 't') and patch: PiT at p = 1, ViT/p otherwise. */
export const patchModel = (size: string, patch: number) => (patch === 1 ? `pit-${size}` : `vit-${size}/${patch}`);

/**
 * Fig. 2b: one input size, patch p over `patches` (accuracy should rise as p falls). With
 * `fixedTokens` L instead (Fig. 2a): the input side is p·√L, so every model sees L tokens.
 */
export function patchSweepPlan(o: { size: string; patches: number[]; imageSize: number; fixedTokens?: number }): LocalityPlan {
  const { size, patches } = o;
  if (!patches.length) throw new RangeError("study locality patch-sweep: 'patches' must name at least one patch size");
  const side = o.fixedTokens === undefined ? null : Math.sqrt(o.fixedTokens);
  if (side !== null && !Number.isInteger(side)) throw new RangeError(`study locality patch-sweep: 'fixedTokens' must be a square number of tokens, got ${o.fixedTokens}`);
  for (const p of patches)
    if (side === null && o.imageSize % p) throw new RangeError(`study locality patch-sweep: patch ${p} does not divide the image side ${o.imageSize}`);
  const series = side === null ? `${o.imageSize}×${o.imageSize} input` : `${o.fixedTokens} tokens`;
  const settings = patches.map((p): LocalitySetting => {
    const imageSize = side === null ? o.imageSize : p * side;
    return {
      folder: `p${p}-${imageSize}x${imageSize}`, series, label: `${patchModel(size, p)} at ${imageSize}×${imageSize} (${(imageSize / p) ** 2} tokens)`,
      at: [{ panel: 'patch', x: p }], recipe: { model: patchModel(size, p), imageSize },
    };
  });
  return {
    experiment: 'patch-sweep', settings,
    panels: [{
      id: 'patch', title: side === null ? `accuracy against patch size, fixed ${o.imageSize}×${o.imageSize} input` : `accuracy against patch size, fixed ${o.fixedTokens} tokens`,
      xLabel: 'patch size p', logX: true, xTicks: patches.map((p) => ({ value: p, label: String(p) })),
    }],
    question: side === null ? 'Does accuracy rise as the patch size falls at a fixed input size (Fig. 2b)?' : 'At a fixed sequence length, how does accuracy change with the patch size (Fig. 2a)?',
  };
}

export const positionKinds = ['sincos', 'learned', 'none'] as const;

/** §6: each model with each position embedding. */
export function posEmbedPlan(o: { models: string[]; kinds?: readonly ('sincos' | 'learned' | 'none')[] }): LocalityPlan {
  const kinds = o.kinds ?? positionKinds;
  if (!o.models.length) throw new RangeError("study locality pos-embed: 'models' must name at least one model");
  const settings = o.models.flatMap((model) => kinds.map((kind, i): LocalitySetting => ({
    folder: join(modelFolder(model), kind), series: model, label: kind, at: [{ panel: 'pos-embed', x: i }], recipe: { model, posEmbed: kind },
  })));
  return {
    experiment: 'pos-embed', settings,
    panels: [{ id: 'pos-embed', title: 'accuracy against the position embedding', xLabel: 'position embedding', logX: false, xTicks: kinds.map((label, value) => ({ value, label })) }],
    question: 'Does removing the position embedding cost ViT/p little (its locality is in the patches), and PiT much?',
  };
}

/** δ as text: null is ∞ (any pair). */
export const deltaText = (delta: number | null) => (delta === null ? '∞' : String(delta));

/**
 * Fig. 5: one fixed pixel permutation (T swaps of disjoint pairs within δ; SPEC §5) shared by
 * train and test, for each model: T over `swaps` at δ = `delta` (left), and δ over `deltas` at
 * T = `fixedSwaps` (right). The permutation's own seed is `permuteSeed`, the same for every
 * run, so the seeds vary only the training.
 *
 * `endsModels` run only at the left sweep's ends (its least and largest T) and at whatever
 * right-panel setting coincides with one of them: for PiT with learned position embeddings and
 * average pooling every shared permutation gives the same learning problem (SPEC §5), so its
 * ends are the whole test, at a fraction of the cost.
 */
export function permutePlan(o: {
  models: string[]; endsModels?: string[]; swaps: number[]; delta: number | null; deltas: (number | null)[]; fixedSwaps: number; permuteSeed: number;
}): LocalityPlan {
  const endsModels = o.endsModels ?? [];
  if (!o.models.length && !endsModels.length) throw new RangeError("study locality permute: 'models' and 'endsModels' must name at least one model");
  if (endsModels.length && !o.swaps.length) throw new RangeError("study locality permute: 'endsModels' run at the ends of 'swaps', which is empty");
  const byFolder = new Map<string, LocalitySetting>();
  const add = (model: string, T: number, delta: number | null, panel: string, x: number) => {
    const folder = join(modelFolder(model), `T${T}-delta${delta === null ? 'inf' : delta}`);
    const setting: LocalitySetting = byFolder.get(folder) ?? {
      folder, series: model, label: T === 0 ? 'T = 0 (none)' : `T = ${T}, δ = ${deltaText(delta)}`, at: [],
      recipe: { model, permuteSwaps: T, permuteDelta: delta, permuteSeed: o.permuteSeed },
    };
    setting.at.push({ panel, x });
    byFolder.set(folder, setting);
  };
  const finite = o.deltas.filter((d): d is number => d !== null);
  // ∞ sits one doubling past the largest finite δ on the log axis.
  const infX = finite.length ? 2 * Math.max(...finite) : 2;
  const deltaX = (d: number | null) => (d === null ? infX : d);
  for (const model of o.models) {
    for (const T of o.swaps) add(model, T, T === 0 ? null : o.delta, 'swaps', T);
    for (const d of o.deltas) add(model, o.fixedSwaps, d, 'delta', deltaX(d));
  }
  if (endsModels.length) {
    const ends = [...new Set([Math.min(...o.swaps), Math.max(...o.swaps)])];
    for (const model of endsModels) {
      for (const T of ends) add(model, T, T === 0 ? null : o.delta, 'swaps', T);
      if (o.fixedSwaps > 0 && ends.includes(o.fixedSwaps) && o.deltas.includes(o.delta)) add(model, o.fixedSwaps, o.delta, 'delta', deltaX(o.delta));
    }
  }
  // Charts are drawn in ASCII (bench/plot.ts's bitmap font): 'delta', 'inf'.
  const ascii = (d: number | null) => (d === null ? 'inf' : String(d));
  const panels: LocalityPanel[] = [];
  if (o.swaps.length) panels.push({ id: 'swaps', title: `accuracy against the swaps T of a shared pixel permutation (delta = ${ascii(o.delta)})`, xLabel: 'swaps T', logX: false });
  if (o.deltas.length)
    panels.push({
      id: 'delta', title: `accuracy against the swap distance delta (T = ${o.fixedSwaps})`, xLabel: 'delta (|drow|, |dcol| <= delta - 1)', logX: true,
      xTicks: o.deltas.map((d) => ({ value: d === null ? infX : d, label: ascii(d) })),
    });
  return {
    experiment: 'permute', settings: [...byFolder.values()], panels,
    question: 'Does a shared pixel permutation leave PiT unchanged (with learned position embeddings it is the same learning problem) while ViT/p falls with T and δ?',
  };
}

// ---- running ----------------------------------------------------------------------------------

/** Runs the plan's settings over the seeds (or their unfinished runs), writes the files, returns the report. */
export async function runLocalityStudy(options: LocalityStudyOptions): Promise<LocalityReport> {
  const { plan, seeds, outDir } = options;
  const name = `study locality ${plan.experiment}`;
  if (!plan.settings.length) throw new RangeError(`${name}: the experiment has no settings`);
  if (!seeds.length) throw new RangeError(`${name}: 'seeds' must name at least one seed`);
  if (new Set(seeds).size !== seeds.length) throw new RangeError(`${name}: 'seeds' must differ, got ${seeds.join(', ')}`);
  const epochs = options.epochs ?? makeRecipe(classifyTask.recipe, options.recipe ?? {}).epochs;
  // Every recipe is checked before the first run trains: a bad setting fails now, not an hour in.
  for (const s of plan.settings) makeRecipe(classifyTask.recipe, { ...options.recipe, ...s.recipe, epochs });
  mkdirSync(outDir, { recursive: true });
  const say = options.onLine ?? (() => {});
  const runs: LocalityRun[] = [];
  let interrupted = false;
  study: for (const setting of plan.settings)
    for (const seed of seeds) {
      const folder = join(outDir, setting.folder, `seed-${seed}`);
      const records = await studyRun(classifyTask, folder, { ...options.recipe, ...setting.recipe, seed, epochs }, epochs, options);
      if (!records) {
        interrupted = true;
        say(`interrupted: ${folder} saved; run the same command again to continue`);
        break study;
      }
      const test = records.at(-1)!.test as ClassificationMetrics;
      const run: LocalityRun = {
        folder: setting.folder, series: setting.series, label: setting.label, seed, epochs: records.at(-1)!.epoch,
        top1: test.top1, top5: test.top5, loss: test.loss, seconds: trainingSeconds(records),
      };
      runs.push(run);
      say(`${setting.series} ${setting.label} seed ${seed}: top-1 ${(run.top1 * 100).toFixed(2)}% (${run.seconds.toFixed(0)} s of training)`);
    }

  const summary: LocalitySummary[] = plan.settings.flatMap((s) => {
    const rs = runs.filter((r) => r.folder === s.folder);
    return rs.length ? [{ folder: s.folder, series: s.series, label: s.label, top1: meanStd(rs.map((r) => r.top1)), top5: meanStd(rs.map((r) => r.top5)), seconds: meanStd(rs.map((r) => r.seconds)) }] : [];
  });
  const files: string[] = [];
  const write = (file: string, text: string | Uint8Array) => {
    const path = join(outDir, file);
    writeFileAtomic(path, typeof text === 'string' ? new TextEncoder().encode(text) : text);
    files.push(path);
  };
  write('runs.jsonl', runs.map((r) => JSON.stringify({ experiment: plan.experiment, ...r })).join('\n') + (runs.length ? '\n' : ''));
  write('runs.csv', csv(['setting', 'series', 'label', 'seed', 'epochs', 'top1', 'top5', 'loss', 'seconds'],
    runs.map((r) => [r.folder, r.series, r.label, r.seed, r.epochs, r.top1, r.top5, r.loss, r.seconds.toFixed(1)])));
  write('summary.csv', csv(['setting', 'series', 'label', 'seeds', 'top1_mean', 'top1_std', 'top5_mean', 'top5_std'],
    summary.map((s) => [s.folder, s.series, s.label, s.top1.n, s.top1.mean, s.top1.std, s.top5.mean, s.top5.std])));
  if (!interrupted)
    for (const panel of plan.panels) {
      const chart = panelChart(plan, panel, summary);
      write(`${panel.id}.svg`, renderSvg(chart));
      write(`${panel.id}.png`, renderPng(chart));
    }
  write('study.json', JSON.stringify({ command: options.command, experiment: plan.experiment, epochs, seeds, recipe: options.recipe ?? {}, settings: plan.settings, runs, summary }, null, 2) + '\n');
  const table = localityTable(plan, summary, { epochs, seeds });
  write('study.md', table);
  return { interrupted, runs, summary, table, files };
}

/** CSV with quoted text fields. */
function csv(header: string[], rows: (string | number)[][]): string {
  const cell = (v: string | number) => (typeof v === 'number' ? String(v) : `"${v.replace(/"/g, '""')}"`);
  return [header.join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

/** A panel's chart: mean top-1 (%) against x, a curve per series, in the order the settings came. */
function panelChart(plan: LocalityPlan, panel: LocalityPanel, summary: LocalitySummary[]): PlotChart {
  const series = new Map<string, PlotSeries['points']>();
  for (const s of plan.settings)
    for (const at of s.at.filter((a) => a.panel === panel.id)) {
      const row = summary.find((r) => r.folder === s.folder);
      if (!row) continue;
      series.set(s.series, [...(series.get(s.series) ?? []), { x: at.x, y: 100 * row.top1.mean, err: 100 * row.top1.std }]);
    }
  return {
    title: panel.title, xLabel: panel.xLabel, yLabel: 'held-out top-1 % (mean and std over seeds)', logX: panel.logX, logY: false,
    ...(panel.xTicks ? { xTicks: panel.xTicks } : {}),
    series: [...series].map(([name, points]) => ({ name, points: points.sort((a, b) => a.x - b.x) })),
  };
}

const pct = (m: MeanStd) => `${(m.mean * 100).toFixed(2)} ± ${(m.std * 100).toFixed(2)}`;

/** The summary as Markdown: a row per setting, top-1 / top-5 mean ± std over the seeds. */
function localityTable(plan: LocalityPlan, summary: LocalitySummary[], o: { epochs: number; seeds: number[] }): string {
  const lines = [`**${plan.question}**`, '', '| series | setting | top-1 % | top-5 % | training (s) |', '|---|---|---|---|---|'];
  for (const s of summary) lines.push(`| ${s.series} | ${s.label} | ${pct(s.top1)} | ${pct(s.top5)} | ${s.seconds.mean.toFixed(0)} ± ${s.seconds.std.toFixed(0)} |`);
  lines.push('', `Held-out accuracy, mean ± sample std over seeds ${o.seeds.join(', ')} (${o.epochs} epoch${o.epochs === 1 ? '' : 's'} each, \`pit train\`'s recipe otherwise).`);
  return lines.join('\n') + '\n';
}
