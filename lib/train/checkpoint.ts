// A training checkpoint is a folder of two safetensors files, each written atomically:
//   model.safetensors        the weights under timm's names; __metadata__ holds the caller's
//                            entries (model config etc.), each as a JSON string
//   train-state.safetensors  AdamW's m and v as `m.<name>` / `v.<name>`; __metadata__ holds
//                            step, epoch, optimizer_step and the caller's train state (rng,
//                            data loader) as JSON strings
// Loading checks every name and shape (model and optimizer) before copying anything.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, tidy, type Tensor } from '../tensor.js';
import type { Module } from '../nn/module.js';
import type { AdamW } from './optimizer.js';
import { readSafetensors, writeSafetensors, type SafetensorsEntry } from './safetensors.js';

export const MODEL_FILE = 'model.safetensors';
export const TRAIN_STATE_FILE = 'train-state.safetensors';

export interface SaveCheckpointOptions {
  model: Module;
  optimizer?: AdamW;
  /** Model-file metadata, e.g. { config: vitConfig }; each value stored as JSON. */
  metadata?: Record<string, unknown>;
  step?: number;
  epoch?: number;
  /** Anything else needed to resume exactly (rng, data-loader position), stored as JSON. */
  trainState?: unknown;
}

export interface LoadedCheckpoint {
  metadata: Record<string, unknown>;
  step: number;
  epoch: number;
  trainState: unknown;
}

export function saveCheckpoint(dir: string, options: SaveCheckpointOptions): void {
  const { model, optimizer, metadata = {}, step = 0, epoch = 0, trainState = null } = options;
  mkdirSync(dir, { recursive: true });
  const modelMeta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, JSON.stringify(v)]));
  writeSafetensors(join(dir, MODEL_FILE), model.stateDict(), modelMeta);
  const state = new Map<string, Tensor>();
  if (optimizer) {
    const { m, v } = optimizer.state();
    for (const [name, t] of m) state.set(`m.${name}`, t);
    for (const [name, t] of v) state.set(`v.${name}`, t);
  }
  writeSafetensors(join(dir, TRAIN_STATE_FILE), state, {
    step: JSON.stringify(step),
    epoch: JSON.stringify(epoch),
    optimizer_step: JSON.stringify(optimizer ? optimizer.stepCount : 0),
    train_state: JSON.stringify(trainState),
  });
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

/**
 * Loads a checkpoint saved by saveCheckpoint into `model` (and `optimizer`, which then needs
 * the saved m/v). Everything is read and validated before any weight changes.
 */
export function loadCheckpoint(dir: string, options: { model: Module; optimizer?: AdamW }): LoadedCheckpoint {
  const { model, optimizer } = options;
  const modelPath = join(dir, MODEL_FILE), statePath = join(dir, TRAIN_STATE_FILE);
  const weights = readSafetensors(modelPath);
  const state = readSafetensors(statePath);
  checkEntries(modelPath, 'model', weights.tensors, model.namedParameters());
  const metadata = Object.fromEntries(Object.entries(weights.metadata).map(([k, v]) => [k, parseJson(modelPath, k, v)]));
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
    model.loadStateDict(modelState);
  });
  return { metadata, step, epoch, trainState };
}
