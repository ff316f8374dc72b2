// `pit study scaling`: training-step time and peak memory against image side (tokens) for
// chosen models, a power-law fit of each in each region, CSV/JSON/JSON-lines and log-log plots
// (SVG and PNG), with the PyTorch peer's curves on the same axes when its results are given,
// and optionally the largest side each model trains at.
//
// Fit: t ≈ a·N^k on log-log axes by least squares. A pixel transformer's step is linear in the
// token count N while the MLPs dominate and quadratic once attention does, so the fit looks for
// one breakpoint: the split into two regions (each of at least 3 points) whose two lines leave
// the least squared residual, kept when it removes at least half of the one-line residual.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Device, Precision, Recompute } from '../lib/index.js';
import { renderPng, renderSvg, type PlotSeries } from './plot.js';
import { resultTask, type BenchResult } from './schema.js';
import { findMaxSide, measureTrainStep, modelPatch, skippable, trainResult, type BenchTask, type DecoderSize } from './train.js';

export interface PowerLawRegion {
  fromTokens: number;
  toTokens: number;
  /** k in y ≈ a·N^k. */
  exponent: number;
  /** Coefficient of determination of the region's line in log-log space. */
  r2: number;
  points: number;
}

function line(xs: number[], ys: number[]): { slope: number; intercept: number; sse: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0, intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i]! - (intercept + slope * xs[i]!)) ** 2;
  return { slope, intercept, sse, r2: syy > 0 ? 1 - sse / syy : 1 };
}

/** Power-law fit of y against x (both > 0), in one region or two (see the header). */
export function fitPowerLaw(points: { x: number; y: number }[]): PowerLawRegion[] {
  const pts = points.filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
  if (pts.length < 2) return [];
  const lx = pts.map((p) => Math.log(p.x)), ly = pts.map((p) => Math.log(p.y));
  const region = (i: number, j: number): PowerLawRegion & { sse: number } => {
    const f = line(lx.slice(i, j), ly.slice(i, j));
    return { fromTokens: pts[i]!.x, toTokens: pts[j - 1]!.x, exponent: f.slope, r2: f.r2, points: j - i, sse: f.sse };
  };
  let best: (PowerLawRegion & { sse: number })[] = [region(0, pts.length)];
  const whole = best[0]!.sse;
  let bestSse = whole;
  // An exact power law leaves only rounding residue (< 1e-10 per point): nothing to split.
  for (let k = 3; k <= pts.length - 3 && whole > 1e-10 * pts.length; k++) {
    const a = region(0, k), b = region(k, pts.length);
    if (a.sse + b.sse < bestSse && a.sse + b.sse <= whole / 2) [best, bestSse] = [[a, b], a.sse + b.sse];
  }
  return best.map(({ sse: _sse, ...r }) => ({ ...r, exponent: Number(r.exponent.toFixed(3)), r2: Number(r.r2.toFixed(4)) }));
}

export interface ScalingOptions {
  device: Device;
  models: string[];
  sides: number[];
  batch: number;
  /** The step timed: 'classify' (default), 'mae' (the models as MAE encoders), 'dit' (the DiT of each model's trunk, or a dit-… name) or 'dit-sample' (one guided DDPM step of that DiT). */
  task?: BenchTask;
  /** 'mae': the decoder (default the task's for each encoder). */
  decoder?: DecoderSize;
  precision?: Precision;
  /** Each model is measured (and searched) with each (default ['none']): a series apiece. */
  recomputes?: Recompute[];
  budgetMs?: number;
  /** Also search each model's largest trainable side. */
  findMax?: boolean;
  /** For findMax: the most peak bytes allowed (on CPU the search needs one). */
  memoryLimit?: number;
  ceiling?: number;
  /** Results of the PyTorch peer (bench/pytorch/vit_train.py --kind scaling), drawn dashed. */
  peer?: BenchResult[];
  outDir: string;
  command?: string;
  onResult?: (r: BenchResult) => void;
  onSkip?: (what: string, reason: string) => void;
  onProbe?: (model: string, side: number, fits: boolean, peakBytes: number | null) => void;
}

export interface ScalingReport {
  results: BenchResult[];
  fits: { model: string; impl: string; recompute?: string; task?: string; decoder?: string; time: PowerLawRegion[]; memory: PowerLawRegion[] }[];
  maxSide: { model: string; recompute: Recompute; side: number; tokens: number; peakBytes: number; limitedBy: string; batch: number }[];
  files: string[];
}

const seriesName = (r: BenchResult) => {
  const model = `${r.task === 'mae' ? `${r.model} MAE ${r.decoder}` : r.model!}${r.recompute ? ` recompute ${r.recompute}` : ''}`;
  return r.impl === 'pit' ? model : `${model} (${r.impl})`;
};

function groups(results: BenchResult[]): Map<string, BenchResult[]> {
  const by = new Map<string, BenchResult[]>();
  for (const r of results) by.set(seriesName(r), [...(by.get(seriesName(r)) ?? []), r]);
  return by;
}

export function runScalingStudy(o: ScalingOptions): ScalingReport {
  const results: BenchResult[] = [];
  const maxSide: ScalingReport['maxSide'] = [];
  for (const model of o.models) for (const recompute of o.recomputes ?? ['none' as const]) {
    modelPatch(model);  // an unknown model fails before anything runs
    const label = `${model}${recompute === 'none' ? '' : ` recompute ${recompute}`}`;
    let largestFit = 0;
    for (const side of o.sides) {
      const shape = { model, task: o.task, decoder: o.decoder, side, channels: 3, classes: 100, batch: o.batch, precision: o.precision, recompute };
      try {
        const r = trainResult(o.device, shape, measureTrainStep(o.device, shape, { budgetMs: o.budgetMs }), 'scaling');
        results.push(r);
        o.onResult?.(r);
        largestFit = side;
      } catch (err) {
        if (!skippable(err)) throw err;
        o.onSkip?.(`${label} at ${side}×${side}`, err.message);
      }
    }
    if (o.findMax && largestFit) {
      const found = findMaxSide({
        device: o.device, model, task: o.task, decoder: o.decoder, from: largestFit, batch: o.batch, precision: o.precision, recompute, memoryLimit: o.memoryLimit, ceiling: o.ceiling,
        onProbe: (side, fits, peak) => o.onProbe?.(label, side, fits, peak),
      });
      const patch = modelPatch(model);
      maxSide.push({ model, recompute, side: found.side, tokens: (found.side / patch) ** 2, peakBytes: found.peakBytes, limitedBy: found.limitedBy, batch: o.batch });
    }
  }
  const all = [...results, ...(o.peer ?? []).filter((r) => (r.op === 'train_step' || r.op === 'sample_step') && r.model && r.device === o.device && resultTask(r) === (o.task ?? 'classify'))];
  const fits = [...groups(all).values()].map((rs) => ({
    model: rs[0]!.model!, impl: rs[0]!.impl, ...(rs[0]!.recompute ? { recompute: rs[0]!.recompute } : {}), ...(rs[0]!.task === 'mae' ? { task: 'mae', decoder: rs[0]!.decoder } : rs[0]!.task === 'dit' || rs[0]!.task === 'dit-sample' ? { task: rs[0]!.task } : {}),
    time: fitPowerLaw(rs.map((r) => ({ x: r.shape.tokens!, y: r.ms }))),
    memory: fitPowerLaw(rs.filter((r) => r.peakBytes).map((r) => ({ x: r.shape.tokens!, y: r.peakBytes! }))),
  }));
  const files = writeScalingFiles(o, all, { results, fits, maxSide, files: [] });
  return { results, fits, maxSide, files };
}

/**
 * The --find-max results on the memory chart: each model's (and recompute mode's) largest side as
 * a marker at its tokens and peak, and the memory limit searched under as a dashed line.
 */
function maxSideSeries(maxSide: ScalingReport['maxSide'], limit: number | undefined, all: BenchResult[]): PlotSeries[] {
  if (!maxSide.length) return [];
  const markers = maxSide.map((m) => ({
    name: `max ${m.side}×${m.side}: ${m.model}${m.recompute === 'none' ? '' : ` ${m.recompute}`}`, lines: false,
    points: [{ x: m.tokens, y: m.peakBytes / 2 ** 20 }],
  }));
  if (limit === undefined) return markers;
  const xs = [...all.map((r) => r.shape.tokens!), ...maxSide.map((m) => m.tokens)].filter((x) => x > 0);
  return [...markers, { name: `limit ${limit / 2 ** 20} MiB`, dashed: true, points: [{ x: Math.min(...xs), y: limit / 2 ** 20 }, { x: Math.max(...xs), y: limit / 2 ** 20 }] }];
}

/**
 * The time chart with each --find-max result as a dashed vertical line at its tokens, spanning
 * the chart's times: where each model (and recompute mode) stops fitting, beside what it costs.
 */
function withReach(timed: PlotSeries[], maxSide: ScalingReport['maxSide']): PlotSeries[] {
  const ys = timed.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y > 0);
  if (!maxSide.length || !ys.length) return timed;
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  return [...timed, ...maxSide.map((m) => ({
    name: `max ${m.side}×${m.side}: ${m.model}${m.recompute === 'none' ? '' : ` ${m.recompute}`}`, dashed: true,
    points: [{ x: m.tokens, y: lo }, { x: m.tokens, y: hi }],
  }))];
}

/** Writes a study's files (JSON lines, CSV, JSON, plots) into o.outDir; returns their paths. */
export function writeScalingFiles(o: Pick<ScalingOptions, 'outDir' | 'device' | 'memoryLimit' | 'command'>, all: BenchResult[], report: ScalingReport): string[] {
  mkdirSync(o.outDir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, data: string | Buffer) => {
    writeFileSync(join(o.outDir, name), data);
    files.push(join(o.outDir, name));
  };
  write('scaling.jsonl', report.results.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const csv = ['model,impl,device,dtype,recompute,side,tokens,batch,ms_per_step,images_per_s,peak_bytes',
    ...all.map((r) => [r.model, r.impl, r.device, r.dtype, r.recompute ?? 'none', r.shape.side, r.shape.tokens, r.shape.batch, r.ms, r.value, r.peakBytes ?? ''].join(','))];
  write('scaling.csv', csv.join('\n') + '\n');
  write('scaling.json', JSON.stringify({ command: o.command ?? null, env: report.results[0]?.env ?? null, results: all, fits: report.fits, maxSide: report.maxSide }, null, 2) + '\n');
  const series = (y: (r: BenchResult) => number | undefined): PlotSeries[] => [...groups(all).entries()].map(([name, rs]) => ({
    name, dashed: rs[0]!.impl !== 'pit',
    points: rs.map((r) => ({ x: r.shape.tokens!, y: y(r) ?? Number.NaN })).sort((a, b) => a.x - b.x),
  }));
  const env = report.results[0]?.env;
  const where = env ? ` (${o.device}: ${env.device})` : '';
  const charts = {
    time: { title: `Training-step time per image vs tokens${where}`, xLabel: 'tokens per image', yLabel: 'ms per image', width: 960,
      series: withReach(series((r) => r.ms / r.shape.batch!), report.maxSide) },
    memory: { title: `Peak memory vs tokens${where}`, xLabel: 'tokens per image', yLabel: 'peak MiB', width: 960,
      series: [...series((r) => (r.peakBytes ? r.peakBytes / 2 ** 20 : undefined)), ...maxSideSeries(report.maxSide, o.memoryLimit, all)] },
  };
  for (const [name, chart] of Object.entries(charts)) {
    if (!chart.series.some((s) => s.points.some((p) => p.x > 0 && p.y > 0))) continue;
    write(`${name}.svg`, renderSvg(chart));
    write(`${name}.png`, renderPng(chart));
  }
  return files;
}
