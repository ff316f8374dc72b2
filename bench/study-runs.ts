// What the studies (`pit study pretrain`, `pit study dit`) share: each run of a study is an
// ordinary run folder, trained fresh, resumed from its checkpoint or skipped when its
// metrics.jsonl already holds every epoch, so a stopped study continues where it stopped; and
// settings are compared as mean ± sample std over seeds.
import { join } from 'node:path';
import { latestStep, METRICS_FILE, readMetrics, runTraining, type Device, type EpochRecord, type Recipe, type Task, type TaskModel } from '../lib/index.js';

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for one value. */
  std: number;
  n: number;
}

export function meanStd(values: number[]): MeanStd {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

/** A model name as a folder name: vit-d4w64h4/2 → vit-d4w64h4-p2. */
export const modelFolder = (model: string) => model.replace(/\/(\d+)$/, '-p$1');

/** The epoch records of a run folder's metrics.jsonl, in order. */
export function epochRecords<M>(folder: string): EpochRecord<M>[] {
  return (readMetrics(join(folder, METRICS_FILE)) as { type?: unknown }[]).filter((r) => r.type === 'epoch') as EpochRecord<M>[];
}

export interface StudyRunContext {
  device: Device;
  /** Checked between steps: the run in flight saves, and the study stops. */
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

/**
 * One training run of a study: fresh into an empty folder, resumed where a checkpoint is,
 * skipped when its metrics already hold every epoch. Returns its epoch records, or null when
 * interrupted (the run saved).
 */
export async function studyRun<P, M extends TaskModel, Metrics>(task: Task<P, M, Metrics>, folder: string, recipe: Partial<Recipe<P>>, epochs: number,
  context: StudyRunContext): Promise<EpochRecord<Metrics>[] | null> {
  const done = epochRecords<Metrics>(folder);
  if (done.length === epochs && done.at(-1)!.epoch === epochs) return done;
  const resume = latestStep(folder) !== null;
  context.onLine?.(`${folder}: ${resume ? 'resuming' : 'training'}`);
  const result = await runTraining(task, { out: folder, recipe, resume, device: context.device, signal: context.signal });
  result.model.dispose();
  return result.interrupted ? null : epochRecords<Metrics>(folder);
}

/** Seconds of training steps (evaluation excluded) over a run's epochs. */
export const trainingSeconds = (records: readonly { seconds: number }[]) => records.reduce((a, r) => a + r.seconds, 0);
