// A seeded, resumable shuffling batch iterator over a Dataset.
//
// The order of epoch e is a Fisher–Yates permutation seeded by mixSeed(seed, e), and a batch
// transform's randomness is seeded by mixSeed(seed, e, position), so (seed, epoch, position)
// fully determine everything that follows: saving them and restoring continues exactly.
import type { Dataset } from './dataset.js';
import { mixSeed, permutation, Rng } from './random.js';

export interface Batch {
  /** (B, C, H, W). */
  images: Float32Array;
  /** (B). */
  labels: Int32Array;
  /** The dataset indices of the batch's examples, (B). */
  indices: Int32Array;
  /** The epoch this batch belongs to. */
  epoch: number;
}

/** Everything needed to resume a loader exactly (with the same dataset and options). */
export interface LoaderState {
  seed: number;
  epoch: number;
  /** Examples of this epoch already handed out. */
  position: number;
  /** The dataset size, checked on restore. */
  n: number;
}

export interface LoaderOptions {
  batchSize: number;
  /** Default 0. */
  seed?: number;
  /** Shuffle each epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  /** Skip an epoch's last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Applied in place to each batch's images, with a generator seeded per batch. */
  transform?: (images: Float32Array, rng: Rng) => void;
}

export class BatchLoader {
  readonly batchSize: number;
  private readonly dataset: Dataset;
  private readonly shuffle: boolean;
  private readonly dropLast: boolean;
  private readonly transform: ((images: Float32Array, rng: Rng) => void) | undefined;
  private seed: number;
  private epochIndex = 0;
  private position = 0;
  private order: Int32Array | null = null;

  constructor(dataset: Dataset, options: LoaderOptions) {
    const { batchSize, seed = 0, shuffle = true, dropLast = false, transform } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`BatchLoader: 'batchSize' must be a positive integer, got ${String(batchSize)}`);
    if (!Number.isInteger(seed)) throw new TypeError(`BatchLoader: 'seed' must be an integer, got ${String(seed)}`);
    if (dataset.n < 1) throw new RangeError(`BatchLoader: dataset '${dataset.name}' is empty`);
    if (dropLast && batchSize > dataset.n) throw new RangeError(`BatchLoader: 'batchSize' ${batchSize} exceeds the ${dataset.n} examples of '${dataset.name}' with dropLast`);
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.shuffle = shuffle;
    this.dropLast = dropLast;
    this.transform = transform;
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.dataset.n / this.batchSize) : Math.ceil(this.dataset.n / this.batchSize);
  }

  get epoch(): number {
    return this.epochIndex;
  }

  state(): LoaderState {
    return { seed: this.seed, epoch: this.epochIndex, position: this.position, n: this.dataset.n };
  }

  restore(state: LoaderState): void {
    const { seed, epoch, position, n } = state;
    if (n !== this.dataset.n) throw new RangeError(`BatchLoader.restore: the state is for ${n} examples, this dataset '${this.dataset.name}' has ${this.dataset.n}`);
    if (!Number.isInteger(seed) || !Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(position) || position < 0 || position > n)
      throw new RangeError(`BatchLoader.restore: invalid state ${JSON.stringify(state)}`);
    this.seed = seed >>> 0;
    this.epochIndex = epoch;
    this.position = position;
    this.order = null;
  }

  /** This epoch's order of dataset indices. */
  private epochOrder(): Int32Array {
    if (!this.order) {
      if (this.shuffle) this.order = permutation(this.dataset.n, mixSeed(this.seed, this.epochIndex));
      else this.order = Int32Array.from({ length: this.dataset.n }, (_, i) => i);
    }
    return this.order;
  }

  /** The next batch, moving to the next epoch when this one is used up. */
  next(): Batch {
    const n = this.dataset.n;
    if (this.position >= n || (this.dropLast && n - this.position < this.batchSize)) {
      this.epochIndex++;
      this.position = 0;
      this.order = null;
    }
    const order = this.epochOrder();
    const b = Math.min(this.batchSize, n - this.position);
    const { channels, height, width } = this.dataset;
    const size = channels * height * width;
    const images = new Float32Array(b * size), labels = new Int32Array(b);
    const indices = order.slice(this.position, this.position + b);
    const src = this.dataset.images;
    for (let k = 0; k < b; k++) {
      const i = indices[k]!;
      images.set(src.subarray(i * size, (i + 1) * size), k * size);
      labels[k] = this.dataset.labels[i]!;
    }
    if (this.transform) this.transform(images, new Rng(mixSeed(this.seed, this.epochIndex, this.position)));
    const epoch = this.epochIndex;
    this.position += b;
    return { images, labels, indices, epoch };
  }

  /** The remaining batches of the current epoch (all of the next one, if this one is done). */
  *epochBatches(): Generator<Batch> {
    const first = this.next();
    yield first;
    while (this.position < this.dataset.n && !(this.dropLast && this.dataset.n - this.position < this.batchSize)) yield this.next();
  }
}
