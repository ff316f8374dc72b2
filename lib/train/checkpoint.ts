// A training checkpoint is a folder of safetensors files:
//   model.safetensors        the weights under timm's names; __metadata__ holds the caller's
//                            entries (model config etc.), each as a JSON string
//   ema.safetensors          (with EMA) the averaged weights, same names
//   train-state.safetensors  AdamW's m and v as `m.<name>` / `v.<name>`; __metadata__ holds
//                            step, epoch, optimizer_step and the caller's train state (rng,
//                            data loader) as JSON strings
// The folder is written whole under a temporary name and renamed into place, so a reader
// never sees one file of a new checkpoint beside one of an old (run folders, which re-save a
// step without ever losing `latest`, are run-checkpoints.ts). Weights or moments that are not
// finite are refused on save and named on load. Loading checks every checksum, name and shape
// (model, EMA, optimizer) before copying anything.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tensor, tidy, type Device, type Tensor } from '../tensor.js';
import type { Module } from '../nn/module.js';
import type { Ema } from './ema.js';
import type { AdamW } from './optimizer.js';
import { checkFinite } from './finite.js';
import { readSafetensors, readSafetensorsMetadata, writeSafetensors, type ReadOptions, type SafetensorsEntry } from './safetensors.js';

export const MODEL_FILE = 'model.safetensors';
export const EMA_FILE = 'ema.safetensors';
export const TRAIN_STATE_FILE = 'train-state.safetensors';

export interface SaveCheckpointOptions {
  model: Module;
  optimizer?: AdamW;
  /** Saved as ema.safetensors (with the model's metadata). */
  ema?: Ema;
  /** Model-file metadata, e.g. { config: vitConfig }; each value stored as JSON. */
  metadata?: Record<string, unknown>;
  step?: number;
  epoch?: number;
  /** Anything else needed to resume exactly (rng, data-loader position), stored as JSON. */
  trainState?: unknown;
}

export interface LoadOptions extends ReadOptions {
  model: Module;
  optimizer?: AdamW;
  ema?: Ema;
  /** The checkpoint's model file as readCheckpointWeights(dir) returned it (verified then):
   * used instead of reading the file again. */
  modelFile?: CheckpointWeights;
}

/** One weights file of a checkpoint, read (and verified) whole: its tensors and parsed metadata. */
export interface CheckpointWeights {
  path: string;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  metadata: Record<string, unknown>;
  step: number;
  epoch: number;
  trainState: unknown;
}

/** The temporary folder a save of `dir` writes into: a dead process's is stale (run-checkpoints.ts). */
export const tempFolder = (dir: string) => `${dir}.tmp-${process.pid}`;

/** A map of tensors as values on the host, each copied out of the addon once. */
const onHost = (tensors: Map<string, Tensor>): Map<string, SafetensorsEntry> =>
  new Map([...tensors].map(([n, t]) => [n, { shape: t.shape.slice(), data: t.toArray() as Float32Array }]));

const dataOf = (...maps: Map<string, SafetensorsEntry>[]): [string, Float32Array][] => maps.flatMap((m) => [...m].map(([n, e]): [string, Float32Array] => [n, e.data]));

/**
 * Writes the files of a checkpoint into the existing, empty folder `dir`. Throws before
 * writing anything when a weight or moment is not finite (a diverged model is no checkpoint).
 */
export function writeCheckpointFiles(dir: string, options: SaveCheckpointOptions): void {
  const { model, optimizer, ema, metadata = {}, step = 0, epoch = 0, trainState = null } = options;
  const weights = onHost(model.stateDict());
  const averaged = ema ? onHost(ema.stateDict()) : null;
  const state = new Map<string, SafetensorsEntry>();
  if (optimizer) {
    const { m, v } = optimizer.state();
    for (const [name, e] of onHost(m)) state.set(`m.${name}`, e);
    for (const [name, e] of onHost(v)) state.set(`v.${name}`, e);
  }
  checkFinite(dataOf(weights, averaged ?? new Map(), state), `saveCheckpoint: ${dirname(dir)} at step ${step}`, 'a model that is not finite is not saved as a checkpoint (the run diverged)');
  const modelMeta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, JSON.stringify(v)]));
  writeSafetensors(join(dir, MODEL_FILE), weights, modelMeta);
  if (ema && averaged) writeSafetensors(join(dir, EMA_FILE), averaged, { ...modelMeta, ema_decay: JSON.stringify(ema.decay) });
  writeSafetensors(join(dir, TRAIN_STATE_FILE), state, {
    step: JSON.stringify(step),
    epoch: JSON.stringify(epoch),
    optimizer_step: JSON.stringify(optimizer ? optimizer.stepCount : 0),
    train_state: JSON.stringify(trainState),
  });
}

/**
 * Writes the checkpoint folder `dir` (replacing one already there): every file goes into a
 * temporary sibling folder, which is then renamed to `dir`. Replacing has a moment with no
 * `dir`; a run folder's saves (saveRunCheckpoint) have none.
 */
export function saveCheckpoint(dir: string, options: SaveCheckpointOptions): void {
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = tempFolder(dir);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeCheckpointFiles(tmp, options);
    if (existsSync(dir)) {
      // rename() cannot replace a non-empty folder: move the old one aside first.
      const old = `${dir}.old-${process.pid}`;
      rmSync(old, { recursive: true, force: true });
      renameSync(dir, old);
      renameSync(tmp, dir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, dir);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function parseJson(file: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new RangeError(`loadCheckpoint: ${file}: metadata "${key}" is missing`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RangeError(`loadCheckpoint: ${file}: metadata "${key}" is not valid JSON (${(e as Error).message})`);
  }
}

function nonNegativeInteger(file: string, key: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
    throw new RangeError(`loadCheckpoint: ${file}: metadata "${key}" must be a non-negative integer, got ${JSON.stringify(value)}`);
  return value;
}

/** Throws unless `entries` has exactly `expected`'s names and shapes. */
function checkEntries(file: string, what: string, entries: Map<string, SafetensorsEntry>, expected: [string, Tensor][]): void {
  const own = new Map(expected);
  const missing = [...own.keys()].filter((n) => !entries.has(n)).map((n) => `"${n}"`);
  const unexpected = [...entries.keys()].filter((n) => !own.has(n)).map((n) => `"${n}"`);
  if (missing.length || unexpected.length)
    throw new RangeError(`loadCheckpoint: ${file}: ${what} names do not match:${missing.length ? ` missing ${missing.join(', ')};` : ''}${unexpected.length ? ` unexpected ${unexpected.join(', ')}` : ''}`);
  for (const [name, t] of own) {
    const e = entries.get(name)!;
    if (e.shape.join() !== t.shape.join())
      throw new RangeError(`loadCheckpoint: ${file}: "${name}" must have shape [${t.shape.join(', ')}], got [${e.shape.join(', ')}]`);
  }
}

function checkLoadedFinite(file: string, tensors: Map<string, SafetensorsEntry>): void {
  checkFinite(dataOf(tensors), `checkpoint: ${file}`, 'the weights are not finite (the run diverged before this checkpoint was saved)');
}

/**
 * Loads a checkpoint saved by saveCheckpoint into `model` (and `optimizer`, which then needs
 * the saved m/v). Everything is read and validated before any weight changes.
 */
export function loadCheckpoint(dir: string, options: LoadOptions): LoadedCheckpoint {
  const { model, optimizer, ema, verify } = options;
  const modelPath = join(dir, MODEL_FILE), statePath = join(dir, TRAIN_STATE_FILE), emaPath = join(dir, EMA_FILE);
  const weights = options.modelFile ?? readCheckpointWeights(dir, { verify });
  const state = readSafetensors(statePath, { verify });
  checkEntries(modelPath, 'model', weights.tensors, model.namedParameters());
  checkLoadedFinite(modelPath, weights.tensors);
  const emaWeights = ema ? readSafetensors(emaPath, { verify }) : null;
  if (emaWeights) {
    checkEntries(emaPath, 'EMA', emaWeights.tensors, model.namedParameters());
    checkLoadedFinite(emaPath, emaWeights.tensors);
  }
  const metadata = weights.metadata;
  const step = nonNegativeInteger(statePath, 'step', parseJson(statePath, 'step', state.metadata.step));
  const epoch = nonNegativeInteger(statePath, 'epoch', parseJson(statePath, 'epoch', state.metadata.epoch));
  const optimizerStep = nonNegativeInteger(statePath, 'optimizer_step', parseJson(statePath, 'optimizer_step', state.metadata.optimizer_step));
  const trainState = parseJson(statePath, 'train_state', state.metadata.train_state);
  if (optimizer) {
    const params = new Map(model.namedParameters());
    const expected = optimizer.names.flatMap((n): [string, Tensor][] => {
      const p = params.get(n);
      if (!p) throw new RangeError(`loadCheckpoint: the optimizer's parameter "${n}" is not in the model`);
      return [[`m.${n}`, p], [`v.${n}`, p]];
    });
    checkEntries(statePath, 'optimizer state', state.tensors, expected);
    checkLoadedFinite(statePath, state.tensors);
  }
  tidy(() => {
    const toTensors = (prefix: string, names: string[], from: Map<string, SafetensorsEntry>) =>
      new Map(names.map((n) => {
        const e = from.get(prefix + n)!;
        return [n, tensor(e.data, e.shape)];
      }));
    const modelState = toTensors('', [...weights.tensors.keys()], weights.tensors);
    // Both validated above, so neither call can throw half way.
    if (optimizer) optimizer.loadState({ step: optimizerStep, m: toTensors('m.', optimizer.names, state.tensors), v: toTensors('v.', optimizer.names, state.tensors) });
    if (ema && emaWeights) ema.loadStateDict(toTensors('', [...emaWeights.tensors.keys()], emaWeights.tensors));
    model.loadStateDict(modelState);
  });
  return { metadata, step, epoch, trainState };
}

const parsedMetadata = (path: string, metadata: Record<string, string>) =>
  Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, parseJson(path, k, v)]));

/**
 * Reads a checkpoint's model.safetensors (with `ema`, its ema.safetensors: an error when the
 * run kept no EMA) whole, checking its checksum (unless verify: false) before its metadata is
 * parsed, so a corrupted file is reported as corrupted rather than by what its metadata lacks.
 */
export function readCheckpointWeights(dir: string, options: { ema?: boolean } & ReadOptions = {}): CheckpointWeights {
  const path = join(dir, options.ema ? EMA_FILE : MODEL_FILE);
  if (options.ema && !existsSync(path)) throw new RangeError(`checkpoint: ${dir} has no ${EMA_FILE} (the run was trained without --ema)`);
  const file = readSafetensors(path, { verify: options.verify });
  return { path, tensors: file.tensors, metadata: parsedMetadata(path, file.metadata) };
}

/**
 * The metadata of a checkpoint's model file, parsed (each entry JSON). The file is read whole
 * and its checksum verified first; with verify: false only its header is read (unchecked).
 */
export function readCheckpointMetadata(dir: string, options: ReadOptions = {}): Record<string, unknown> {
  if (options.verify ?? true) return readCheckpointWeights(dir, options).metadata;
  const path = join(dir, MODEL_FILE);
  return parsedMetadata(path, readSafetensorsMetadata(path));
}

/**
 * Loads only weights into `model`: the checkpoint's model.safetensors, or with `ema` its
 * ema.safetensors (an error when the run kept no EMA); or `from`, a file readCheckpointWeights
 * already read. Names and shapes checked first.
 */
export function loadModelWeights(from: string | CheckpointWeights, model: Module, options: { ema?: boolean } & ReadOptions = {}): void {
  const weights = typeof from === 'string' ? readCheckpointWeights(from, options) : from;
  const ema = basename(weights.path) === EMA_FILE;
  checkEntries(weights.path, ema ? 'EMA' : 'model', weights.tensors, model.namedParameters());
  checkLoadedFinite(weights.path, weights.tensors);
  tidy(() => model.loadStateDict(new Map([...weights.tensors].map(([n, e]) => [n, tensor(e.data, e.shape)]))));
}

/** How a command loads a trained model (classifierFromCheckpoint, ditFromCheckpoint). */
export interface ModelLoadOptions {
  /** Load ema.safetensors instead of model.safetensors (an error when the run kept no EMA); the default is the loader's. */
  ema?: boolean;
  /** Check the weights file's checksum before using its metadata. Default true. */
  verify?: boolean;
  /** Where the model is built; default 'cpu'. */
  device?: Device;
  /** The command named in errors about the checkpoint; the default is the loader's. */
  command?: string;
}

/** A trained model back from a checkpoint, for a command that uses it (pit eval, eval-gen, sample). */
export interface LoadedModel<M, R, C> {
  /** In eval mode; the caller disposes it. */
  model: M;
  /** The per-channel mean and std the model's inputs were normalised by: x_model = (x − mean)/std. */
  normalization: { mean: number[]; std: number[] };
  /** The checkpoint folder read (a run folder resolves to its latest). */
  checkpoint: string;
  /** Which weights: the trained model's or its EMA. */
  weights: 'model' | 'ema';
  /** The run's recipe as saved. */
  recipe: R;
  config: C;
}

/** `model` with the weights `from` holds, in eval mode; disposed (and the error passed on) when they do not fit it. */
export function modelForEval<M extends Module>(model: M, from: CheckpointWeights): M {
  try {
    loadModelWeights(from, model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return model;
}

/** The saved per-channel normalization, checked: a corrupted entry is named, not dereferenced. */
export function checkpointNormalization(file: string, value: unknown, channels: number, command = 'eval'): { mean: number[]; std: number[] } {
  const perChannel = (v: unknown, positive: boolean) =>
    Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
  const n = value as { mean?: unknown; std?: unknown } | null | undefined;
  if (!n || typeof n !== 'object' || !perChannel(n.mean, false) || !perChannel(n.std, true))
    throw new RangeError(`${command}: ${file}: metadata "normalization" must be { mean, std } with ${channels} finite number(s) each (std > 0), got ${JSON.stringify(value) ?? 'nothing'}`);
  return n as { mean: number[]; std: number[] };
}
