// Whether two run folders ended in the same state: a stopped-and-resumed run against a straight one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { EMA_FILE, METRICS_FILE, MODEL_FILE, resolveCheckpoint, runTraining, TRAIN_STATE_FILE, type Recipe, type Task, type TaskModel } from '../lib/index.js';

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

/**
 * Runs `task` on `recipe` on the CPU twice, into two fresh folders: straight, and stopped after
 * `stopAtStep` steps then resumed; asserts they end the same (assertSameRun). Returns the folders
 * (the split one holds the resumed run, for further checks); the caller removes them.
 */
export async function assertExactResume<P, M extends TaskModel>(t: ExecutionContext, task: Task<P, M, unknown>, recipe: Partial<Recipe<P>>, stopAtStep: number,
  scratch: () => string): Promise<{ straight: string; split: string }> {
  const straight = scratch(), split = scratch();
  const a = await runTraining(task, { recipe, out: straight, device: 'cpu' });
  const b1 = await runTraining(task, { recipe, out: split, device: 'cpu', stopAtStep });
  t.true(b1.interrupted);
  t.is(b1.step, stopAtStep);
  b1.model.dispose();
  const b2 = await runTraining(task, { out: split, resume: true, device: 'cpu' });
  t.is(b2.step, a.step);
  assertSameRun(t, straight, split);
  a.model.dispose();
  b2.model.dispose();
  return { straight, split };
}
