// A task the runner has never heard of, shared by the runner tests and the child processes of
// the run-folder tests: an MLP fitting a fixed linear function of random images, with a
// per-sample loss mask drawn from the step's random stream (as MAE's masks will be).
import {
  channelStats, gelu, InitRng, Linear, linear, Module, mse, noGrad, rand, substream, tensor, tidy,
  type Dataset, type Device, type Task, type TaskRecipePart, type Tensor,
} from '../lib/index.js';

export interface RegressionRecipe {
  hidden: number;
  /** Fraction of the samples whose error counts in a step (drawn per step, like MAE's mask). */
  keep: number;
}

interface RegressorConfig {
  inputs: number;
  hidden: number;
  seed: number;
}

/** images (B, C, H, W) → (B, 1, 1): flatten, Linear, GELU, Linear. */
export class Regressor extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly config: RegressorConfig, device: Device) {
    super(device);
    const rng = new InitRng(config.seed, device);
    this.fc1 = this.child('fc1', new Linear(config.inputs, config.hidden, rng));
    this.fc2 = this.child('fc2', new Linear(config.hidden, 1, rng));
  }

  forward(images: Tensor): Tensor {
    const B = images.shape[0]!;
    return this.fc2.forward(gelu(this.fc1.forward(images.reshape([B, this.config.inputs])))).reshape([B, 1, 1]);
  }
}

export const [C, S] = [1, 4];
const D = C * S * S;
/** The function to learn: y = Σ w_i x_i over the normalised pixels, w fixed. */
const trueWeights = Float32Array.from({ length: D }, (_, i) => Math.sin(1 + i) / 2);

function randomImages(n: number, seed: number, name: string): Dataset {
  const images = Float32Array.from({ length: n * D }, (_, i) => (Math.sin(seed * 7919 + i * 12.9898) * 43758.5453) % 1 + 0.5);
  return { images, labels: new Int32Array(n), n, channels: C, height: S, width: S, classes: 1, name, ...channelStats(images, n, C, S * S) };
}

/** (B, C, H, W) → the target (B, 1, 1), no gradient. */
const target = (images: Tensor): Tensor =>
  noGrad(() => linear(images.reshape([images.shape[0]!, D]), tensor(trueWeights, [1, D], { device: images.device })).reshape([images.shape[0]!, 1, 1]));

const regressionRecipe: TaskRecipePart<RegressionRecipe> = {
  defaults: { hidden: 16, keep: 0.75 },
  sharedDefaults: { imageSize: null, epochs: 10, batchSize: 20, lr: 2e-2, warmupEpochs: 0, ema: 0.9, evalBatchSize: 50 },
  fields: [
    { key: 'hidden', flag: '--hidden <n>', help: 'hidden width', rule: { kind: 'integer', min: 1 } },
    { key: 'keep', flag: '--keep <fraction>', help: 'fraction of samples in the loss', rule: { kind: 'number', min: 0, max: 1, maxClosed: true } },
  ],
  check(r) {
    if (r.keep === 0) throw new RangeError("recipe: 'keep' must be > 0, got 0");
  },
};

export const regressionTask: Task<RegressionRecipe, Regressor, { mse: number }> = {
  name: 'regress',
  checkpointFormat: 'runner test regression v1',
  recipe: regressionRecipe,
  data: (recipe) => {
    const train = randomImages(200, recipe.seed + 1, 'random-train');
    return { train, test: { ...randomImages(100, recipe.seed + 2, 'random-test'), mean: train.mean, std: train.std } };
  },
  // The regressor's parameters with gradients, AdamW's moments and the EMA, a batch's
  // activations, and the 300 images: kilobytes, but checked like any task's.
  estimate: (recipe) => {
    const parameters = (D * recipe.hidden + 2 * recipe.hidden + 1) * 4;
    return {
      device: [
        { what: 'the regressor with its gradients, AdamW moments and EMA', bytes: 5 * parameters, keys: ['hidden'] },
        { what: 'activations of a batch', bytes: recipe.batchSize * (D + 2 * recipe.hidden + 1) * 4, keys: ['batchSize', 'hidden'] },
      ],
      host: [{ what: '300 images', bytes: 300 * D * 4, keys: [] }],
    };
  },
  model: (recipe, shape, device) => new Regressor({ inputs: shape.channels * shape.height * shape.width, hidden: recipe.hidden, seed: recipe.seed }, device),
  loss(model, batch, { recipe, random }) {
    const B = batch.images.shape[0]!;
    // (1, B) mask of the samples that count this step, from the step's Philox stream.
    const u = noGrad(() => rand([B], substream(random, 'mask')).toArray());
    const mask = tensor(Float32Array.from(u, (x) => (x < recipe.keep ? 1 : 0)), [1, B], { device: model.device });
    return mse(model.forward(batch.images).reshape([1, B, 1]), target(batch.images).reshape([1, B, 1]), mask);
  },
  evaluate(model, data, { normalization }) {
    const images = Float32Array.from(data.images, (x) => (x - normalization.mean[0]!) / normalization.std[0]!);
    return tidy(() => noGrad(() => {
      const x = tensor(images, [data.n, C, S, S], { device: model.device });
      return { mse: mse(model.forward(x), target(x)).toArray()[0]! };
    }));
  },
};
