// The in-memory image dataset every loader returns, and helpers to build one.

/** Images and labels held in host memory. */
export interface Dataset {
  /** (n, channels, height, width), NCHW, float32. MNIST and CIFAR are scaled to 0..1. */
  readonly images: Float32Array;
  /** (n), each in 0..classes-1. */
  readonly labels: Int32Array;
  readonly n: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly classes: number;
  /** e.g. "mnist-train", "cifar10-test". */
  readonly name: string;
  /** Per-channel mean and standard deviation, (channels): for normalisation. */
  readonly mean: Float32Array;
  readonly std: Float32Array;
}

/** Per-channel mean and (population) standard deviation of NCHW images, summed in float64. */
export function channelStats(images: Float32Array, n: number, channels: number, plane: number): { mean: Float32Array; std: Float32Array } {
  const sum = new Float64Array(channels), sumSq = new Float64Array(channels);
  for (let i = 0; i < n; i++)
    for (let c = 0; c < channels; c++) {
      const base = (i * channels + c) * plane;
      let s = 0, s2 = 0;
      for (let p = 0; p < plane; p++) {
        const v = images[base + p]!;
        s += v;
        s2 += v * v;
      }
      sum[c]! += s;
      sumSq[c]! += s2;
    }
  const mean = new Float32Array(channels), std = new Float32Array(channels);
  const count = n * plane;
  for (let c = 0; c < channels; c++) {
    const m = count ? sum[c]! / count : 0;
    mean[c] = m;
    std[c] = count ? Math.sqrt(Math.max(0, sumSq[c]! / count - m * m)) : 0;
  }
  return { mean, std };
}

/** The examples at `indices`, in that order, as a new dataset (images copied). */
export function selectExamples(d: Dataset, indices: ArrayLike<number>, name: string, stats?: { mean: Float32Array; std: Float32Array }): Dataset {
  const size = d.channels * d.height * d.width;
  const n = indices.length;
  const images = new Float32Array(n * size), labels = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k]!;
    images.set(d.images.subarray(i * size, (i + 1) * size), k * size);
    labels[k] = d.labels[i]!;
  }
  const s = stats ?? channelStats(images, n, d.channels, d.height * d.width);
  return { images, labels, n, channels: d.channels, height: d.height, width: d.width, classes: d.classes, name, mean: s.mean, std: s.std };
}
