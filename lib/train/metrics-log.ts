// metrics.jsonl: one JSON object per line, each with the `step` it describes. Lines are
// appended as the run goes, before the checkpoint that covers them is saved, so a crash can
// leave lines past the last checkpoint (and half a line). A resume first cuts the file back
// to the resumed step, so it reads as one clean run.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './safetensors.js';

export const METRICS_FILE = 'metrics.jsonl';

export function appendMetrics(path: string, record: object): void {
  appendFileSync(path, JSON.stringify(record) + '\n');
}

/** The file's records in order, each with its line; lines that do not parse are skipped. */
function readRecords(path: string): { line: string; record: { type?: unknown; step?: unknown } }[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').flatMap((line) => {
    try {
      const record = JSON.parse(line) as { type?: unknown; step?: unknown };
      return record && typeof record === 'object' ? [{ line, record }] : [];
    } catch {
      return [];   // a line cut short by a crash, or the empty string after the last newline
    }
  });
}

/** The records of a metrics.jsonl (none when it is missing), skipping a line a crash cut short. */
export function readMetrics(path: string): object[] {
  return readRecords(path).map((r) => r.record);
}

/** Keeps the lines for steps ≤ `step` (dropping unreadable ones), rewriting the file atomically. */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readRecords(path).filter(({ record }) => typeof record.step === 'number' && record.step <= step).map((r) => r.line);
  writeFileAtomic(path, new TextEncoder().encode(kept.map((l) => l + '\n').join('')));
}
