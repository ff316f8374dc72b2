// The training loop every task shares (`pit train` and the families to come): the run folder,
// the recipe saved in each checkpoint and checked on resume, the seeded loader, the lr
// schedule, the step (step.ts), EMA, progress events, metrics.jsonl, run.json, atomic
// checkpoints, exact resume, abort and the divergence error. A task (task.ts) brings its data,
// model, loss and evaluation.
//
// Every step is a pure function of (recipe, step): the batch comes from the seeded loader, the
// step's random draws from Philox at (seed, step), the lr from the schedule at step. A
// checkpoint holds the weights, AdamW's moments, the EMA, the loader position and the epoch's
// running sums, so a resumed run continues bit-exactly where the saved one stopped.
//
// The loop yields to the event loop after each step, so an AbortSignal (Ctrl-C in the CLI) is
// seen between steps: the step in flight finishes, a checkpoint is written, and the run
// returns with `interrupted: true`.
//
// A run holds its folder's lock (run-lock.ts) from before it reads a checkpoint until it
// returns; at the start it refuses a fresh run into a folder that holds a run, removes what
// crashed saves left (run-checkpoints.ts) and cuts metrics.jsonl back to the step it starts
// from (metrics-log.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import { BatchLoader, type LoaderState } from '../data/loader.js';
import { augmentation } from '../data/transforms.js';
import { selectBackend } from '../native.js';
import { checkPrecision, type Precision } from '../nn/forward.js';
import { copyOf, tensor, tidy, type Device } from '../tensor.js';
import { loadCheckpoint, readCheckpointWeights, type CheckpointWeights } from './checkpoint.js';
import { Ema } from './ema.js';
import { NonFiniteError } from './finite.js';
import { appendMetrics, METRICS_FILE, truncateMetrics } from './metrics-log.js';
import { AdamW } from './optimizer.js';
import { checkRunMemory } from './memory.js';
import { fieldKeys, type RecipeField } from './recipe-fields.js';
import { makeRecipe, savedRecipe, sharedRecipe, type Recipe } from './recipe.js';
import { CHECKPOINTS_DIR, latestStep, removeStaleTemps, resolveCheckpoint, saveRunCheckpoint } from './run-checkpoints.js';
import { lockRunFolder } from './run-lock.js';
import { writeFileAtomic } from './safetensors.js';
import { learningRate } from './schedule.js';
import { taskOptimizer, trainStep } from './step.js';
import type { Task, TaskModel } from './task.js';

export { METRICS_FILE };
export const RUN_FILE = 'run.json';

export interface RunOptions<P, Metrics = unknown> {
  /** Recipe fields; the rest are the defaults. With `resume`, the saved recipe is used and any
   * field given here must equal it. */
  recipe?: Partial<Recipe<P>>;
  /** The run folder: checkpoints/, metrics.jsonl, run.json. */
  out: string;
  /** Continue from the run folder's latest checkpoint (or from this checkpoint/run folder). */
  resume?: boolean | string;
  /** Check the checksums of the checkpoint resumed from (default true; see ReadOptions.verify). */
  verify?: boolean;
  /** 'auto' (default): CUDA when present, else CPU. */
  device?: 'auto' | Device;
  /** 'f32' (default) or 'mixed': the blocks' GEMMs and attention in bf16, the rest f32 (Precision). */
  precision?: Precision;
  /** Checked between steps: when aborted, the run saves and returns `interrupted: true`. */
  signal?: AbortSignal;
  /** Progress events (the CLI's progress bar and epoch lines). */
  onEvent?: (event: TrainEvent<P, Metrics>) => void;
  /** A metrics.jsonl step line every this many steps (default 50). */
  logEvery?: number;
  /** Stop (with a checkpoint, as on abort) once this many steps are done; for tests. */
  stopAtStep?: number;
}

export interface EpochRecord<Metrics = unknown> {
  type: 'epoch';
  epoch: number;          // 1-based: epochs completed
  step: number;           // steps completed
  trainLoss: number;      // mean of the task's training loss over the epoch's steps
  lr: number;             // lr of the epoch's last step
  test: Metrics;          // the task's evaluation on the held-out split
  ema?: Metrics;          // the same, with the EMA weights
  seconds: number;        // wall time of the epoch's steps (evaluation excluded)
  imagesPerSecond: number;
}

export interface StartEvent<P = unknown> {
  type: 'start';
  task: string;
  recipe: Readonly<Recipe<P>>;
  /** The model's config, as saved in checkpoints. */
  config: object;
  parameters: number;
  device: Device;
  step: number;
  totalSteps: number;
  stepsPerEpoch: number;
  trainImages: number;
  testImages: number;
}

export type TrainEvent<P = unknown, Metrics = unknown> =
  | StartEvent<P>
  | { type: 'step'; step: number; epoch: number; loss: number; lr: number; imagesPerSecond: number; totalSteps: number; stepsPerEpoch: number }
  | EpochRecord<Metrics>
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'interrupted'; step: number; dir: string };

export interface RunResult<M, Metrics> {
  interrupted: boolean;
  step: number;
  epochs: EpochRecord<Metrics>[];
  /** The last evaluation (of this process), or null when none ran. */
  final: EpochRecord<Metrics> | null;
  checkpoint: string;
  /** The trained model; the caller disposes it. */
  model: M;
}

/** What a checkpoint's train-state metadata holds besides the optimizer. */
interface RunState {
  loader: LoaderState;
  /** Sums over the current epoch's steps so far, so a mid-epoch resume reports the same mean. */
  epochLossSum: number;
  epochSteps: number;
}

/**
 * The saved recipe and precision of a run, checked against what the caller gave explicitly.
 * (Runs saved before the precision was recorded ran in f32.) The model file is read whole and
 * its checksum verified (unless verify is false) before its metadata is used; it is returned
 * so that loadCheckpoint does not read it again.
 */
function resumedRun<P>(task: Task<P, TaskModel, unknown>, dir: string, given: Partial<Recipe<P>>, givenPrecision: Precision | undefined, verify: boolean | undefined):
  { recipe: Readonly<Recipe<P>>; precision: Precision; modelFile: CheckpointWeights } {
  const modelFile = readCheckpointWeights(dir, { verify });
  const meta = modelFile.metadata;
  if (meta.task !== undefined && meta.task !== task.name) throw new RangeError(`resume: ${dir} is a '${String(meta.task)}' run, not '${task.name}'`);
  const recipe = makeRecipe(task.recipe, savedRecipe(task.recipe, meta, dir));
  const kept = (key: string, saved: unknown, value: unknown) => {
    if (value !== undefined && JSON.stringify(saved) !== JSON.stringify(value))
      throw new RangeError(`resume: '${key}' is ${JSON.stringify(saved)} in the checkpoint, got ${JSON.stringify(value)}; a resumed run keeps its recipe and precision (start a new run to change them)`);
  };
  // Recomputation changes memory and time, never a result: a resumed run may switch it (to fit).
  const { recompute, ...rest } = given;
  for (const [key, value] of Object.entries(rest)) kept(key, recipe[key as keyof Recipe<P>], value);
  const precision = (meta.precision ?? 'f32') as Precision;
  kept('precision', precision, givenPrecision);
  return { recipe: recompute === undefined ? recipe : makeRecipe(task.recipe, { ...recipe, recompute }), precision, modelFile };
}

/** A recipe key as its `pit` flag ('batchSize' → '--batch-size'), for messages. */
function recipeFlag<P>(task: Task<P, TaskModel, unknown>): (key: string) => string {
  const flags = new Map<string, string>();
  for (const field of [...sharedRecipe.fields, ...task.recipe.fields] as readonly RecipeField<Record<string, unknown>>[])
    for (const key of fieldKeys(field)) flags.set(key, field.flag.split(' ')[0]!);
  return (key) => flags.get(key) ?? key;
}

/**
 * Trains `task` as its recipe says, in the run folder `options.out`. The caller owns the
 * returned model; when the run throws (a corrupt checkpoint, divergence, out of memory) the
 * model, optimizer and EMA it built are freed before the error propagates.
 */
export async function runTraining<P, M extends TaskModel, Metrics>(task: Task<P, M, Metrics>, options: RunOptions<P, Metrics>): Promise<RunResult<M, Metrics>> {
  const { out } = options;
  if (typeof out !== 'string' || !out) throw new TypeError(`runTraining: 'out' must be a folder path, got ${JSON.stringify(out)}`);
  // Resuming a folder that is not there fails before the lock would create it.
  if (options.resume === true && !existsSync(out)) resolveCheckpoint(out);
  // Taken before anything in the folder is read: a checkpoint another run is writing is not read.
  const lock = lockRunFolder(out);
  try {
    return await lockedRun(task, options);
  } finally {
    lock.release();
  }
}

async function lockedRun<P, M extends TaskModel, Metrics>(task: Task<P, M, Metrics>, options: RunOptions<P, Metrics>): Promise<RunResult<M, Metrics>> {
  const { out, resume = false } = options;
  // A fresh run would rewrite run.json and metrics.jsonl under the old run's `latest`, which a
  // later --resume would continue: refused before anything in the folder changes.
  const held = resume === false ? latestStep(out) : null;
  if (held !== null)
    throw new RangeError(`run folder ${out} holds a run ${Number.isNaN(held) ? `(its ${CHECKPOINTS_DIR}/latest)` : `at step ${held} (its latest checkpoint)`}; ` +
      'pass --resume to continue it, or another --out');
  removeStaleTemps(out);
  const given = options.recipe ?? {};
  const resumeFrom = resume === false ? null : resolveCheckpoint(resume === true ? out : resume);
  const { recipe, precision: runPrecision, modelFile } = resumeFrom
    ? resumedRun(task, resumeFrom, given, options.precision, options.verify)
    : { recipe: makeRecipe(task.recipe, given), precision: options.precision ?? 'f32', modelFile: undefined };

  const device: Device = selectBackend({ device: options.device ?? 'auto' }).backend;
  const precision = checkPrecision(runPrecision);

  // Sizes are checked before anything is read or built (a run too big for the machine is
  // refused in milliseconds, naming its flags, rather than dying minutes later).
  checkRunMemory(task.estimate(recipe, { precision }), device, recipeFlag(task));
  const { train, test, permutation = null } = task.data(recipe);
  if (recipe.permuteSwaps > 0 && !permutation)
    throw new RangeError(`task '${task.name}': the recipe permutes pixels (permuteSwaps ${recipe.permuteSwaps}) but the task's data carries no permutation, ` +
      'so its held-out images would not be permuted (build the splits with loadImageData)');
  const model = task.model(recipe, train, device);
  let optimizer: AdamW | undefined, ema: Ema | null = null;
  try {
    if (!resumeFrom) task.initialize?.(model, recipe);
    optimizer = taskOptimizer(task, model, recipe);
    ema = recipe.ema > 0 ? new Ema(model, recipe.ema) : null;
    return await trainLoop(task, options, { recipe, precision, device, train, test, permutation, model, optimizer, ema, resumeFrom, modelFile });
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    optimizer?.dispose();
    ema?.dispose();
  }
}

interface RunParts<P, M> {
  recipe: Readonly<Recipe<P>>;
  precision: Precision;
  device: Device;
  train: Dataset;
  /** Held out, permuted already (loadImageData). */
  test: Dataset;
  /** The recipe's pixel permutation, applied to each training batch after its augmentation; null: none. */
  permutation: Int32Array | null;
  model: M;
  optimizer: AdamW;
  ema: Ema | null;
  resumeFrom: string | null;
  /** The model file of resumeFrom, read and verified by resumedRun. */
  modelFile: CheckpointWeights | undefined;
}

/** The loop of runTraining, on the model, optimizer and EMA it built. */
async function trainLoop<P, M extends TaskModel, Metrics>(task: Task<P, M, Metrics>, options: RunOptions<P, Metrics>, parts: RunParts<P, M>): Promise<RunResult<M, Metrics>> {
  const { out, signal, onEvent, logEvery = 50, stopAtStep } = options;
  const { recipe, precision, device, train, test, permutation, model, optimizer, ema, resumeFrom, modelFile } = parts;
  const normalization = { mean: Array.from(train.mean), std: Array.from(train.std) };
  const loader = new BatchLoader(train, {
    batchSize: recipe.batchSize,
    seed: recipe.seed,
    dropLast: train.n > recipe.batchSize,
    transform: augmentation(train, { translate: recipe.translate, cropPadding: recipe.cropPadding, flip: recipe.flip, normalize: normalization, permutation }),
  });
  const stepsPerEpoch = loader.batchesPerEpoch;
  const totalSteps = recipe.epochs * stepsPerEpoch;
  const schedule = { baseLr: recipe.lr, warmupSteps: Math.round(recipe.warmupEpochs * stepsPerEpoch), totalSteps, minLr: recipe.minLr };
  const parameters = model.parameterCount();
  const metadata = {
    task: task.name, recipe, precision, config: model.config, normalization,
    data: { name: recipe.data, classes: train.classes, channels: train.channels, height: train.height, width: train.width },
    format: task.checkpointFormat,
  };

  let step = 0;
  let run: RunState = { loader: loader.state(), epochLossSum: 0, epochSteps: 0 };
  if (resumeFrom) {
    const loaded = loadCheckpoint(resumeFrom, { model, optimizer, ema: ema ?? undefined, verify: options.verify, modelFile });
    step = loaded.step;
    run = loaded.trainState as RunState;
    if (!run || typeof run !== 'object' || !run.loader) throw new RangeError(`resume: ${resumeFrom}: train_state holds no loader position`);
    loader.restore(run.loader);
  }

  const metricsPath = join(out, METRICS_FILE);
  truncateMetrics(metricsPath, step);
  const log = (record: object) => appendMetrics(metricsPath, record);
  if (!existsSync(join(out, RUN_FILE)) || !resumeFrom)
    writeFileAtomic(join(out, RUN_FILE), new TextEncoder().encode(JSON.stringify({ ...metadata, parameters, device }, null, 2) + '\n'));

  const save = () => {
    try {
      return saveRunCheckpoint(out, {
        model, optimizer, ema: ema ?? undefined, metadata, step, epoch: loader.epoch,
        trainState: { ...run, loader: loader.state() } satisfies RunState,
      });
    } catch (e) {
      // The loss can stay finite while a weight overflows: that model must not become `latest`.
      if (e instanceof NonFiniteError) throw new RangeError(`training diverged by step ${step}: ${e.message}; lower --lr or set --clip-grad`);
      throw e;
    }
  };
  const evaluate = () => task.evaluate(model, test, { normalization, batchSize: recipe.evalBatchSize, precision });

  onEvent?.({ type: 'start', task: task.name, recipe, config: model.config, parameters, device, step, totalSteps, stepsPerEpoch, trainImages: train.n, testImages: test.n });
  const epochs: EpochRecord<Metrics>[] = [];
  let checkpoint = resumeFrom ?? '';
  let epochSeconds = 0, epochImages = 0;
  const { channels: C, height: H, width: W } = train;
  while (step < totalSteps) {
    const started = performance.now();
    const batch = loader.next();
    const B = batch.labels.length;
    const lr = learningRate(step, schedule);
    const loss = tidy(() => trainStep(task, model, optimizer, { images: tensor(batch.images, [B, C, H, W], { device }), labels: tensor(batch.labels, [B], { device }) },
      { recipe, random: { seed: recipe.seed, offset: step }, precision, lr, ema }));
    if (!Number.isFinite(loss)) throw new RangeError(`training diverged: the loss is ${loss} at step ${step + 1} (lr ${lr.toExponential(3)}); lower --lr or set --clip-grad`);
    step++;
    run.epochLossSum += loss;
    run.epochSteps++;
    const seconds = (performance.now() - started) / 1000;
    epochSeconds += seconds;
    epochImages += B;
    onEvent?.({ type: 'step', step, epoch: loader.epoch + 1, loss, lr, imagesPerSecond: B / seconds, totalSteps, stepsPerEpoch });
    if (step % logEvery === 0) log({ type: 'step', step, epoch: loader.epoch + 1, loss, lr });

    if (step % stepsPerEpoch === 0) {
      const testMetrics = evaluate();
      const emaMetrics = ema ? withWeights(model, ema, evaluate) : undefined;
      const record: EpochRecord<Metrics> = {
        type: 'epoch', epoch: step / stepsPerEpoch, step, trainLoss: run.epochLossSum / run.epochSteps, lr, test: testMetrics,
        ...(emaMetrics ? { ema: emaMetrics } : {}), seconds: epochSeconds, imagesPerSecond: epochImages / epochSeconds,
      };
      run.epochLossSum = 0;
      run.epochSteps = 0;
      epochSeconds = epochImages = 0;
      epochs.push(record);
      log(record);
      onEvent?.(record);
      checkpoint = save();
      onEvent?.({ type: 'checkpoint', step, dir: checkpoint });
    }
    if (signal?.aborted || (stopAtStep !== undefined && step >= stopAtStep)) {
      if (step % stepsPerEpoch !== 0) checkpoint = save();
      onEvent?.({ type: 'interrupted', step, dir: checkpoint });
      return finish(true);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return finish(false);

  function finish(interrupted: boolean): RunResult<M, Metrics> {
    return { interrupted, step, epochs, final: epochs.at(-1) ?? null, checkpoint, model };
  }
}

/** Runs `fn` with the EMA weights in `model`, then puts the trained weights back. */
function withWeights<R>(model: TaskModel, ema: Ema, fn: () => R): R {
  const trained = new Map(model.namedParameters().map(([name, p]) => [name, copyOf(p)]));
  try {
    ema.copyTo(model);
    return fn();
  } finally {
    model.loadStateDict(trained);
    for (const t of trained.values()) t.dispose();
  }
}
