// What a model family brings to the training runner (runner.ts): its part of the recipe, its
// data, its model, its loss on a batch and its evaluation. Everything else (run folder,
// loader, schedule, backward, clipping, AdamW, EMA, checkpoints, resume, metrics, abort) is
// the runner's and is the same for every task.
//
// The tasks today:
//   classify  (tasks/classify.ts) cross-entropy of the logits; eval = loss, top-1, top-5;
//             fine-tuning is classify with `init` (initialize() loads a pre-trained encoder)
//             and `layerDecay` (optimizerOptions() gives a per-parameter lrScale)
//   mae       (tasks/pretrain.ts) MSE on the masked pixels, masks from substream(random,
//             'mask'); eval = the held-out masked MSE
//   dit       (tasks/diffuse.ts) the hybrid diffusion loss, timesteps and noise from their
//             substreams, label dropout from the model's; recipe.sharedDefaults set DiT's
//             optimisation and EMA 0.9999, defaultsFor the short MNIST run's, derived a constant
//             lr, dataSets adds latents; eval = the held-out loss at fixed draws
import type { Dataset } from '../data/dataset.js';
import type { Module } from '../nn/module.js';
import type { Device, Tensor } from '../tensor.js';
import type { DataSplits } from './data.js';
import type { RunMemory } from './memory.js';
import type { AdamWOptions } from './optimizer.js';
import type { Recipe, TaskRecipePart } from './recipe.js';
import type { Precision, RandomStream } from '../nn/forward.js';

/** A model the runner trains: a Module whose `config` (saved in each checkpoint) rebuilds it. */
export interface TaskModel extends Module {
  readonly config: object;
}

/** The images a model is built for. */
export interface DataShape {
  channels: number;
  height: number;
  width: number;
  classes: number;
}

/** One training batch, on the run's device. */
export interface TrainBatch {
  /** (B, C, H, W) f32, augmented and normalised. */
  images: Tensor;
  /** (B,) i32 class labels (a task that needs none ignores them). */
  labels: Tensor;
}

/** What the loss of one step needs besides the model and the batch. */
export interface StepContext<P> {
  recipe: Readonly<Recipe<P>>;
  /**
   * The step's Philox stream, { seed: recipe.seed, offset: step }. Drop path draws from it as
   * it is; every other draw takes its own substream(random, purpose) (nn/forward.ts), so no
   * two purposes or steps share numbers.
   */
  random: RandomStream;
  precision: Precision;
}

/** What an evaluation needs besides the model and the held-out data. */
export interface EvalContext {
  /** Per-channel statistics of the train split, to normalise the held-out images with. */
  normalization: { mean: number[]; std: number[] };
  batchSize: number;
  precision: Precision;
}

export interface Task<P, M extends TaskModel = TaskModel, Metrics = unknown> {
  /** Names the task in run.json and checkpoint metadata, e.g. 'classify'. */
  readonly name: string;
  /** Checkpoint metadata 'format', e.g. 'pixel-transformer classifier checkpoint v1'. */
  readonly checkpointFormat: string;
  /** The task's part of the recipe: fields (and so its CLI flags), defaults, checks. */
  readonly recipe: TaskRecipePart<P>;
  /**
   * The train and held-out splits (usually loadImageData(recipe), which permutes the held-out
   * pixels as the recipe says and returns the permutation the runner applies to training batches).
   */
  data(recipe: Readonly<Recipe<P>>): DataSplits;
  /**
   * The run's peak memory from the recipe alone (nothing loaded or built); the runner refuses a
   * run that cannot fit before it reads the data. Every task has one: an unchecked task is where
   * `--depth 1000000000` would run for minutes and then kill the process.
   */
  estimate(recipe: Readonly<Recipe<P>>, context: { precision: Precision }): RunMemory;
  /** Builds the model, every parameter on `device`, for images of `shape`. */
  model(recipe: Readonly<Recipe<P>>, shape: DataShape, device: Device): M;
  /**
   * Fresh runs only, right after model() and before the optimizer and EMA see the weights:
   * starting weights from elsewhere (fine-tuning loads a pre-trained encoder). A resumed run
   * skips it: its checkpoint holds the weights, and the source may be gone. Optional.
   */
  initialize?(model: M, recipe: Readonly<Recipe<P>>): void;
  /** AdamW options that depend on the model (e.g. layer-wise lr decay as lrScale); optional. */
  optimizerOptions?(model: M, recipe: Readonly<Recipe<P>>): Pick<AdamWOptions, 'lrScale' | 'noDecayNames'>;
  /** Forward on a batch → the scalar loss tensor (1 element) that the step backpropagates. */
  loss(model: M, batch: TrainBatch, context: StepContext<P>): Tensor;
  /** Metrics on the held-out split (JSON-safe: they go to metrics.jsonl). */
  evaluate(model: M, data: Dataset, context: EvalContext): Metrics;
}
