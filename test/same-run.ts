// Whether two run folders ended in the same state: a stopped-and-resumed run against a straight one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { EMA_FILE, METRICS_FILE, MODEL_FILE, resolveCheckpoint, TRAIN_STATE_FILE } from '../lib/index.js';

/** The latest checkpoints byte for byte (model, EMA, train state) and the epoch lines of metrics.jsonl, timings aside. */
export function assertSameRun(t: ExecutionContext, straight: string, split: string): void {
  for (const file of [MODEL_FILE, EMA_FILE, TRAIN_STATE_FILE]) {
    const x = readFileSync(join(resolveCheckpoint(straight), file)), y = readFileSync(join(resolveCheckpoint(split), file));
    t.true(x.equals(y), `${file} identical byte for byte`);
  }
  const epochLines = (dir: string) => readFileSync(join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((l) => l.type === 'epoch').map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);
  t.deepEqual(epochLines(split), epochLines(straight));
}
