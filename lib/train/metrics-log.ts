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

/** Keeps the lines for steps ≤ `step` (dropping unreadable ones), rewriting the file atomically. */
export function truncateMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8').split('\n').filter((line) => {
    try {
      const record = JSON.parse(line) as { step?: unknown };
      return typeof record.step === 'number' && record.step <= step;
    } catch {
      return false;   // a line cut short by a crash, or the empty string after the last newline
    }
  });
  writeFileAtomic(path, new TextEncoder().encode(kept.map((l) => l + '\n').join('')));
}
