// `pit bench train`: images/s and peak memory of one full training step (the task's forward
// and loss, backward, gradient clipping, AdamW: lib/train/step.ts, the step the runner runs) on
// random images, for ViT/PiT classifiers (task 'classify'), MAE pre-training of the same
// encoders (task 'mae': the encoder on the int(N·(1 − r)) + 1 kept tokens, the decoder on all
// N + 1) or DiT diffusion training (task 'dit': the hybrid diffusion loss of `pit diffuse`, on a
// DiT named dit-… or with the trunk of a named pit-/vit- model) at chosen image sides; and one
// step of DiT sampling (task 'dit-sample': a DDPM step with classifier-free guidance at DiT's
// metric scale 1.5, so the DiT runs on 2·batch, then the fused update: what `pit sample` repeats
// 250 times per image). Also the largest-image-side search that `pit study scaling --find-max` runs.
//
// images/s = batch / t_step (median step; for sampling, batch is the images drawn). Peak memory = the most tensor bytes live at once
// during a step (weights, gradients, optimizer state and activations), as the addon counts
// them (memory().<device>.peakBytes; the same quantity as torch.cuda.max_memory_allocated).
import {
  checkPrecision, classifyTask, decoderSize, diffusionOf, ditModelName, ditTask, maeTokens, makeRecipe, noGrad, parseDitName, parseModelName, pretrainTask, randn,
  recipeMaeConfig, sampleDiffusion, taskOptimizer, tensor, tidy, trainStep, type AdamW, type Device, type ModelShape, type Precision, type Recipe, type Recompute, type Task, type TaskModel,
} from '../lib/index.js';
import { native } from '../lib/native.js';
import { resetPeakMemory, setMemoryCap } from '../lib/tensor.js';
import { benchEnv } from './env.js';
import { round } from './kernels.js';
import type { BenchResult, ResultKind } from './schema.js';
import { timeIt } from './timing.js';

/** The tasks `pit bench train --task` times: classification, MAE pre-training or DiT diffusion (lib/train/tasks). */
export const benchTasks = ['classify', 'mae', 'dit', 'dit-sample'] as const;
export type BenchTask = (typeof benchTasks)[number];

/** An MAE decoder's size; written d<depth>w<width>h<heads> as the model names are. */
export interface DecoderSize {
  depth: number;
  dim: number;
  heads: number;
}

export const decoderName = (d: DecoderSize): string => `d${d.depth}w${d.dim}h${d.heads}`;

/** 'd8w512h16' → { depth: 8, dim: 512, heads: 16 }; anything else is a RangeError naming the grammar. */
export function parseDecoderName(name: string): DecoderSize {
  const m = /^d(\d+)w(\d+)h(\d+)$/.exec(name);
  const [depth, dim, heads] = m ? m.slice(1).map(Number) as [number, number, number] : [0, 0, 0];
  if (!m || depth < 1 || dim < 1 || heads < 1 || dim % heads)
    throw new RangeError(`decoder must be d<depth>w<width>h<heads> with positive sizes and heads dividing width (e.g. d8w512h16), got "${name}"`);
  return { depth, dim, heads };
}

export interface TrainShape {
  /** A model name (lib/models: pit-t, vit-s/2, pit-d4w64h4, …); for 'mae', the encoder. */
  model: string;
  /** 'classify' (default) or 'mae'. */
  task?: BenchTask;
  /** 'mae' only: the decoder; default the task's for the encoder (pretrain.ts decoderSize). */
  decoder?: DecoderSize;
  side: number;
  channels: number;
  classes: number;
  batch: number;
  /** 'f32' (default) or 'mixed' (bf16 GEMMs and attention). */
  precision?: Precision;
  /** What the backward recomputes (default 'none'). */
  recompute?: Recompute;
}

/** The benchmark's data per side: 28×28 is MNIST-like (1 channel, 10 classes); others CIFAR-100-like. */
export function dataShape(side: number): { channels: number; classes: number } {
  return side === 28 ? { channels: 1, classes: 10 } : { channels: 3, classes: 100 };
}

/** The classification recipe the benchmark trains `model` with: the defaults otherwise. */
const benchRecipe = (model: string, recompute?: Recompute) => makeRecipe(classifyTask.recipe, { model, recompute });

/** The shape of a model name, a DiT's (dit-…) or a classifier's (throws a RangeError naming the grammar for an unknown one). */
const modelShape = (model: string): ModelShape => (model.startsWith('dit-') ? parseDitName(model) : parseModelName(model));

/** The patch size of a model name (throws a RangeError naming the grammar for an unknown one). */
export const modelPatch = (model: string): number => modelShape(model).patch;

/** The DiT task 'dit' times for `model`: a dit-… name as it is, or the DiT with a pit-/vit- model's depth, width, heads and patch. */
export const benchDitName = (model: string): string => ditModelName(modelShape(model));

const outOfMemory = (err: unknown): err is RangeError => err instanceof RangeError && /out of .*memory|too large/i.test(err.message);

/**
 * Whether a case is skipped (said so, and the run goes on) rather than failed: its step does not
 * fit in memory, or its side does not tile into the model's patches. Any other error is a bug
 * (a TypeError from a device mismatch, say) and propagates.
 */
export const skippable = (err: unknown): err is RangeError => outOfMemory(err) || (err instanceof RangeError && /is not a multiple of .*'s patch/.test(err.message));

export interface StepMeasurement {
  /** The model that ran, when the task renamed it (task 'dit': its DiT name). */
  model?: string;
  ms: number;
  repeats: number;
  peakBytes: number;
  tokens: number;
  parameters: number;
  /** 'mae': the tokens the encoder sees (int(N·(1 − r)), without cls) and the decoder that ran. */
  visibleTokens?: number;
  decoder?: DecoderSize;
}

export interface StepShape {
  side: number;
  channels: number;
  classes: number;
  batch: number;
  precision?: Precision;
}

/**
 * step(0) under the peak-memory counter (the bytes live at once, weights included), then, unless
 * `timed` is false, steps 1, 2, … timed over the budget (median).
 */
function peakThenTime(step: (i: number) => void, device: Device, parameters: number, options: { budgetMs?: number; timed?: boolean }): Omit<StepMeasurement, 'tokens'> {
  native().synchronize(device);
  resetPeakMemory();
  step(0);
  native().synchronize(device);
  const mem = native().memory();
  const peakBytes = (device === 'cuda' ? mem.cuda?.peakBytes : mem.cpu.peakBytes) ?? 0;
  if (options.timed === false) return { ms: Number.NaN, repeats: 0, peakBytes, parameters };
  const t = timeIt((i) => step(i + 1), { device, warmup: 0, minRepeats: 3, budgetMs: options.budgetMs ?? 3000 });
  return { ms: t.medianMs, repeats: t.repeats, peakBytes, parameters };
}

/**
 * Builds the task's model on `device` and an optimizer, runs warm-up steps, one step under the
 * peak-memory counter, then timed steps: trainStep, exactly the runner's step. Throws RangeError
 * when the step does not fit in memory (everything it allocated is freed first, so the caller
 * can go on). `timed: false` only checks that it fits. `tokens` is left to the caller.
 */
export function measureTaskStep<P, M extends TaskModel>(task: Task<P, M, unknown>, recipe: Readonly<Recipe<P>>, device: Device, s: StepShape,
  options: { budgetMs?: number; timed?: boolean } = {}): Omit<StepMeasurement, 'tokens'> {
  const precision = checkPrecision(s.precision ?? 'f32');
  let model: M | undefined, optimizer: AdamW | undefined;
  try {
    model = task.model(recipe, { channels: s.channels, height: s.side, width: s.side, classes: s.classes }, device);
    optimizer = taskOptimizer(task, model, recipe);
    const [m, opt] = [model, optimizer];
    return tidy(() => {
      // Two batches, alternated: a fixed batch would let the CPU's caches hold the input.
      const batches = [0, 1].map((k) => ({
        images: randn([s.batch, s.channels, s.side, s.side], { seed: 100 + k, device }),
        labels: tensor(Int32Array.from({ length: s.batch }, (_, i) => (i * 31 + k) % s.classes), [s.batch], { device }),
      }));
      const step = (i: number) => trainStep(task, m, opt, batches[i % 2]!, { recipe, random: { seed: recipe.seed, offset: i }, precision, lr: recipe.lr });
      // The first step allocates AdamW's moments; the peak is read over the second. A fit
      // check (timed: false) needs only one step, counted from before the first.
      if (options.timed !== false) step(0);
      return peakThenTime((i) => step(i + 1), device, m.parameterCount(), options);
    });
  } finally {
    optimizer?.dispose();
    model?.dispose();
  }
}

/** The guidance scale of the timed sampling step: DiT's (and the paper's) for metrics. */
export const BENCH_GUIDANCE = 1.5;

/**
 * One DDPM sampling step of the DiT `model` (a dit-… name) at `s`: sampleDiffusion over one
 * respaced step with guidance BENCH_GUIDANCE (the DiT on [x; x] with labels [y; null], then the
 * fused update), no gradients. Peak memory is that of one step, the weights included.
 */
export function measureSampleStep(model: string, device: Device, s: StepShape, options: { budgetMs?: number; timed?: boolean } = {}): Omit<StepMeasurement, 'tokens'> {
  const precision = checkPrecision(s.precision ?? 'f32');
  const recipe = makeRecipe(ditTask.recipe, { model, imageSize: null });
  const dit = ditTask.model(recipe, { channels: s.channels, height: s.side, width: s.side, classes: s.classes }, device);
  try {
    const diffusion = diffusionOf(dit.config.timesteps);
    const labels = Int32Array.from({ length: s.batch }, (_, i) => (i * 31) % s.classes);
    const step = (i: number) => tidy(() => noGrad(() => sampleDiffusion(diffusion, (x, t, y) => dit.forward(x, t, y, { precision, train: false }), {
      shape: [s.batch, s.channels, s.side, s.side], labels, steps: 1, guidanceScale: BENCH_GUIDANCE, nullLabel: s.classes, seed: i, device,
    })));
    return peakThenTime(step, device, dit.parameterCount(), options);
  } finally {
    dit.dispose();
  }
}

/** measureTaskStep for `s.task`'s model (`s.model` the classifier or the MAE's encoder), with its token counts. */
export function measureTrainStep(device: Device, s: TrainShape, options: { budgetMs?: number; timed?: boolean } = {}): StepMeasurement {
  const patch = modelPatch(s.model);
  const tokens = (s.side / patch) ** 2;
  if (!Number.isInteger(tokens)) throw new RangeError(`image side ${s.side} is not a multiple of ${s.model}'s patch ${patch}`);
  const task = s.task ?? 'classify';
  if (s.decoder && task !== 'mae') throw new TypeError(`a decoder (${decoderName(s.decoder)}) is for task 'mae', not '${task}'`);
  if (task === 'classify') {
    if (s.model.startsWith('dit-')) throw new RangeError(`${s.model} is a DiT: time it with task 'dit'`);
    return { ...measureTaskStep(classifyTask, benchRecipe(s.model, s.recompute), device, s, options), tokens };
  }
  if (task === 'dit-sample') {
    const model = benchDitName(s.model);
    return { ...measureSampleStep(model, device, s, options), tokens, model };
  }
  if (task === 'dit') {
    // The step's images come from `s`; the recipe gives the model and the optimizer (imageSize null: no check against a side).
    const model = benchDitName(s.model);
    return { ...measureTaskStep(ditTask, makeRecipe(ditTask.recipe, { model, imageSize: null, recompute: s.recompute }), device, s, options), tokens, model };
  }
  if (s.model.startsWith('dit-')) throw new RangeError(`${s.model} is a DiT: time it with task 'dit'`);
  const recipe = makeRecipe(pretrainTask.recipe, { model: s.model, decoderDepth: s.decoder?.depth, decoderDim: s.decoder?.dim, decoderHeads: s.decoder?.heads, recompute: s.recompute });
  const visibleTokens = maeTokens(recipeMaeConfig(recipe, { channels: s.channels, height: s.side, width: s.side })).encoder - 1;
  return { ...measureTaskStep(pretrainTask, recipe, device, s, options), tokens, visibleTokens, decoder: decoderSize(recipe) };
}

export function trainResult(device: Device, s: TrainShape, m: StepMeasurement, kind: ResultKind = 'train'): BenchResult {
  return {
    kind, op: s.task === 'dit-sample' ? 'sample_step' : 'train_step', model: m.model ?? s.model, task: s.task ?? 'classify', ...(m.decoder ? { decoder: decoderName(m.decoder) } : {}),
    impl: 'pit', device, dtype: s.precision ?? 'f32', ...(s.recompute && s.recompute !== 'none' && s.task !== 'dit-sample' ? { recompute: s.recompute } : {}),
    shape: { batch: s.batch, side: s.side, channels: s.channels, tokens: m.tokens, ...(m.visibleTokens !== undefined ? { visibleTokens: m.visibleTokens } : {}) },
    ms: Number(m.ms.toPrecision(6)), repeats: m.repeats, value: round((s.batch * 1000) / m.ms, 2), unit: 'images/s',
    formula: s.task === 'dit-sample' ? `batch / t_step (one DDPM step with guidance ${BENCH_GUIDANCE}: the DiT on 2·batch)` : 'batch / t_step', peakBytes: m.peakBytes, env: benchEnv(device),
  };
}

export interface TrainBenchOptions {
  device: Device;
  models: string[];
  sides: number[];
  /** Default ['classify']; each model and side is timed for each task. */
  tasks?: BenchTask[];
  /** 'mae': the decoders to time (each its own result); default the task's one for the encoder. */
  decoders?: DecoderSize[];
  /** A fixed batch, or 'auto': the largest power of two with batch·tokens ≤ 2^18 that fits (halving on out-of-memory). */
  batch: number | 'auto';
  precision?: Precision;
  /** Each is timed (default ['none']). */
  recomputes?: Recompute[];
  budgetMs?: number;
  onResult?: (r: BenchResult) => void;
  onSkip?: (what: string, reason: string) => void;
}

/** The (task, decoder) cases of a bench: every decoder for 'mae', none for 'classify'. */
export function taskCases(tasks: readonly BenchTask[] = ['classify'], decoders: readonly DecoderSize[] = []): { task: BenchTask; decoder?: DecoderSize }[] {
  return tasks.flatMap((task) => (task === 'mae' && decoders.length ? decoders.map((decoder) => ({ task, decoder })) : [{ task }]));
}

const caseName = (c: { task: BenchTask; decoder?: DecoderSize }) => (c.task === 'mae' ? ` (mae${c.decoder ? `, decoder ${decoderName(c.decoder)}` : ''})` : '');

/** Measures each (model, side, task, decoder); with batch 'auto', halves the batch until the step fits. */
export function runTrainBench(o: TrainBenchOptions): BenchResult[] {
  const results: BenchResult[] = [];
  for (const model of o.models) {
    for (const side of o.sides) for (const c of taskCases(o.tasks, o.decoders)) for (const recompute of o.recomputes ?? ['none' as const]) {
      const { channels, classes } = dataShape(side);
      const patch = modelPatch(model);
      let batch = o.batch === 'auto' ? 2 ** Math.floor(Math.log2(Math.max(1, 2 ** 18 / (side / patch) ** 2))) : o.batch;
      for (;;) {
        const shape = { model, ...c, side, channels, classes, batch, precision: o.precision, recompute };
        try {
          const r = trainResult(o.device, shape, measureTrainStep(o.device, shape, { budgetMs: o.budgetMs }));
          results.push(r);
          o.onResult?.(r);
          break;
        } catch (err) {
          if (!skippable(err)) throw err;
          if (o.batch === 'auto' && batch > 1 && outOfMemory(err)) {
            batch >>= 1;
            continue;
          }
          o.onSkip?.(`${model}${caseName(c)}${recompute === 'none' ? '' : ` recompute ${recompute}`} at ${side}×${side}, batch ${batch}`, err.message);
          break;
        }
      }
    }
  }
  return results;
}

export interface MaxSideOptions {
  device: Device;
  model: string;
  task?: BenchTask;
  decoder?: DecoderSize;
  /** A side known to fit (the search grows from it). */
  from: number;
  batch?: number;
  precision?: Precision;
  recompute?: Recompute;
  /** Largest peak memory allowed, bytes (CPU: there is no out-of-memory error to catch). */
  memoryLimit?: number;
  /** Stop growing past this side. */
  ceiling?: number;
  onProbe?: (side: number, fits: boolean, peakBytes: number | null) => void;
}

/**
 * The largest image side (a multiple of the patch) at which one training step of `model` fits:
 * grows by ×1.5 from `from` until a step does not fit, then bisects. A step fits when it runs
 * without running out of memory and its peak stays within memoryLimit.
 */
export function findMaxSide(o: MaxSideOptions): { side: number; peakBytes: number; limitedBy: 'memory' | 'ceiling' } {
  const patch = modelPatch(o.model);
  const snap = (x: number) => Math.max(patch, Math.floor(x / patch) * patch);
  const ceiling = snap(o.ceiling ?? 1024);
  const probe = (side: number): number | null => {
    let peak: number | null = null;
    // The limit as a cap: a step that would pass it stops at its first allocation past it
    // (out of memory) instead of running to the end to have its peak compared.
    if (o.memoryLimit !== undefined) setMemoryCap(o.device, Math.floor(o.memoryLimit));
    try {
      peak = measureTrainStep(o.device, { model: o.model, task: o.task, decoder: o.decoder, side, channels: 3, classes: 100, batch: o.batch ?? 1, precision: o.precision, recompute: o.recompute }, { timed: false }).peakBytes;
    } catch (err) {
      if (!outOfMemory(err)) throw err;
    } finally {
      if (o.memoryLimit !== undefined) setMemoryCap(o.device, null);
    }
    const fits = peak !== null && peak <= (o.memoryLimit ?? Infinity);
    o.onProbe?.(side, fits, peak);
    return fits ? peak : null;
  };
  let good = snap(o.from);
  let goodPeak = probe(good);
  if (goodPeak === null) throw new RangeError(`findMaxSide: ${o.model} does not fit even at the starting side ${good}`);
  let bad = 0;
  while (!bad) {
    const next = Math.min(ceiling, Math.max(snap(good * 1.5), good + patch));
    if (next <= good) return { side: good, peakBytes: goodPeak, limitedBy: 'ceiling' };
    const peak = probe(next);
    if (peak === null) bad = next;
    else [good, goodPeak] = [next, peak];
  }
  while (bad - good > patch) {
    const mid = snap((good + bad) / 2);
    if (mid <= good) break;
    const peak = probe(mid);
    if (peak === null) bad = mid;
    else [good, goodPeak] = [mid, peak];
  }
  return { side: good, peakBytes: goodPeak, limitedBy: 'memory' };
}
