// `pit bench compare A.jsonl B.jsonl`: pairs results with the same key (bench/schema.ts: kind,
// op or model, task and decoder for MAE steps, device, shape) across two files and prints them
// side by side with the ratio B / A of their values (higher is better for every unit, so > 1
// means B is faster).
// Several results under one key (PyTorch's SDPA backends, eager and compiled) pair with each
// other one by one; the summary gives one geometric mean per pair of implementations, never
// one across different peers. Results without a partner are counted, not dropped silently.
import { resultKey, resultTask, shapeText, type BenchResult } from './schema.js';

export interface ComparisonRow {
  key: string;
  a: BenchResult;
  b: BenchResult;
  /** b.value / a.value. */
  ratio: number;
}

export interface Comparison {
  rows: ComparisonRow[];
  onlyA: BenchResult[];
  onlyB: BenchResult[];
}

function byKey(results: BenchResult[]): Map<string, BenchResult[]> {
  const map = new Map<string, BenchResult[]>();
  for (const r of results) map.set(resultKey(r), [...(map.get(resultKey(r)) ?? []), r]);
  return map;
}

export function compareResults(a: BenchResult[], b: BenchResult[]): Comparison {
  const ka = byKey(a), kb = byKey(b);
  const rows: ComparisonRow[] = [];
  for (const [key, as] of ka) {
    for (const ra of as) {
      for (const rb of kb.get(key) ?? []) {
        if (ra.unit !== rb.unit) throw new TypeError(`compare: "${key}" is measured in ${ra.unit} in the first file and ${rb.unit} in the second`);
        rows.push({ key, a: ra, b: rb, ratio: rb.value / ra.value });
      }
    }
  }
  return { rows, onlyA: a.filter((r) => !kb.has(resultKey(r))), onlyB: b.filter((r) => !ka.has(resultKey(r))) };
}

/** ' mae d8w512h16' for an MAE step (its decoder tells two MAE rows of one shape apart); '' otherwise. */
const taskText = (r: BenchResult): string => (resultTask(r) === 'classify' ? '' : ` ${resultTask(r)}${r.decoder ? ` ${r.decoder}` : ''}`);

/** A fixed-width table: what, shape, A (impl dtype value), B (impl dtype value), B/A. */
export function formatComparison(c: Comparison, names: [string, string]): string {
  const header = ['what', 'shape', `A: ${names[0]}`, `B: ${names[1]}`, 'B/A'];
  const impl = (r: BenchResult) => `${r.impl}${r.variant ? ` ${r.variant}` : ''}${r.path ? ` [${r.path}]` : ''}`;
  const cells = c.rows.map((r) => [
    `${r.a.kind} ${r.a.model ?? r.a.op}${taskText(r.a)} (${r.a.device})`,
    shapeText(r.a.shape),
    `${impl(r.a)} ${r.a.dtype} ${r.a.value} ${r.a.unit}`,
    `${impl(r.b)} ${r.b.dtype} ${r.b.value} ${r.b.unit}`,
    `${r.ratio.toFixed(2)}×`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((x, i) => (i === row.length - 1 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ');
  const lines = [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(fmt)];
  if (c.rows.length) {
    lines.push('');
    const byImpl = new Map<string, number[]>();
    for (const r of c.rows) {
      const pair = `${r.a.impl} ${r.a.dtype} → ${r.b.impl} ${r.b.dtype}`;
      byImpl.set(pair, [...(byImpl.get(pair) ?? []), r.ratio]);
    }
    for (const [pair, ratios] of byImpl) {
      const geo = Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length);
      lines.push(`${pair}: ${ratios.length} pairs, geometric mean of B/A ${geo.toFixed(2)}×`);
    }
  } else {
    lines.push('', 'no results with the same kind, op or model, device and shape in both files');
  }
  if (c.onlyA.length || c.onlyB.length) lines.push(`unpaired: ${c.onlyA.length} only in A, ${c.onlyB.length} only in B`);
  return lines.join('\n');
}
