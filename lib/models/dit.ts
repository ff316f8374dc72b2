// DiT (SPEC §4, the PiT paper's case study 3): the class-conditional diffusion transformer of
// Peebles & Xie on p×p patch tokens of an image or latent; patch 1 is the paper's pixel
// generator (PiT-L is dit-l/1). It predicts the noise (and, with learnSigma, the variance
// interpolation) of x_t at timestep t for label y. The diffusion math around it (schedule,
// losses, samplers) lives in lib/diffusion/.
//
// Tensor names are facebookresearch/DiT's, so its checkpoints' names and layouts apply as they
// are: `pos_embed` (a buffer when sin-cos), `x_embedder.proj`, `t_embedder.mlp.0`/`.2`,
// `y_embedder.embedding_table`, `blocks.N.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2,
// adaLN_modulation.1}`, `final_layer.{linear, adaLN_modulation.1}`.
//
// The timestep's frequency embedding (B × 256) and the label dropout are computed on the host in
// float64 / from Philox, then uploaded: both are tiny, and Philox is the same on every backend.
import { add, modulate, silu } from '../ops/index.js';
import { noGrad, rand, Tensor, tensor, tidy } from '../tensor.js';
import { AdaLNBlockStack, AdaLNModulation, plainLayerNorm } from '../nn/adaln_block.js';
import { Embedding } from '../nn/embedding.js';
import { checkPrecision, substream, type ForwardOptions, type RandomStream } from '../nn/forward.js';
import { InitRng, isLinearWeight, redrawParameters } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { PatchEmbed, patchify, unpatchify } from '../nn/patch_embed.js';
import { positionTable, type PositionKind } from '../nn/position.js';
import { ditSizes, parseDitName } from './names.js';
import { positiveInteger, tokenGrid, type BuildOptions } from './vit.js';

export interface DitConfig {
  imageSize: number | readonly [number, number]; // 32: a 256² image's SD-VAE latent; or [H, W]
  channels: number;                              // 4 (latent channels C)
  patch: number;                                 // 2 (DiT-*/2); 1 is the pixel generator (PiT)
  depth: number;                                 // 12 blocks (DiT-S)
  dim: number;                                   // 384 (width d)
  heads: number;                                 // 6
  mlpRatio: number;                              // 4 (MLP hidden = 4d)
  classes: number;                               // 1000; the label table has classes + 1 rows
  classDropout: number;                          // 0.1: share of training labels replaced by the null class
  learnSigma: boolean;                           // true: C_out = 2C (noise, then variance interpolation)
  posEmbed: PositionKind;                        // 'sincos' (DiT's, fixed); 'learned' has no locality prior
  timesteps: number;                             // 1000 (T): t must lie in [0, T)
  seed: number;                                  // 0 (Philox seed of the initialisation)
}

/** DiT-S/2 on a 32×32×4 latent with ImageNet's 1000 classes (DiT's own default is XL/2). */
export const defaultDitConfig: Readonly<DitConfig> = Object.freeze({
  imageSize: 32, channels: 4, patch: 2, ...ditSizes.s, mlpRatio: 4,
  classes: 1000, classDropout: 0.1, learnSigma: true, posEmbed: 'sincos', timesteps: 1000, seed: 0,
});

/** A named DiT's full config (dit-xl/2, dit-l/1, dit-d4w64h4/1; models/names.ts) with `overrides` on top. */
export function ditConfig(name: string, overrides: Partial<DitConfig> = {}): DitConfig {
  return { ...defaultDitConfig, ...parseDitName(name), ...overrides };
}

/** Width of the timestep's frequency embedding: 128 frequencies, [cos, sin]. */
export const timestepFrequencyDim = 256;

/**
 * DiT's timestep_embedding in float64: (B, dim) rows [cos(t·f_0..f_{k−1}), sin(t·f_0..f_{k−1})]
 * with k = dim/2 and f_j = exp(−ln(maxPeriod)·j/k) (SPEC §4: 128 frequencies, 256 values).
 */
export function timestepEmbedding(t: ArrayLike<number>, dim = timestepFrequencyDim, maxPeriod = 10000): Float64Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2) throw new RangeError(`timestepEmbedding: 'dim' must be a positive even integer, got ${String(dim)}`);
  const half = dim / 2;
  const out = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++)
    for (let j = 0; j < half; j++) {
      const arg = t[b]! * Math.exp((-Math.log(maxPeriod) * j) / half);
      out[b * dim + j] = Math.cos(arg);
      out[b * dim + half + j] = Math.sin(arg);
    }
  return out;
}

/**
 * DiT's token_drop: a copy of `labels` with each replaced by the null class `classes` when its
 * u ~ U[0, 1) is below `rate`, u drawn from the step's 'labelDrop' substream (one per sample,
 * at random.offset): the same (seed, step) drops the same labels, on every backend.
 */
export function dropLabels(labels: Int32Array, classes: number, rate: number, random: RandomStream): Int32Array {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropLabels: 'rate' must be in [0, 1), got ${String(rate)}`);
  const out = Int32Array.from(labels);
  if (rate === 0 || labels.length === 0) return out;
  const u = tidy(() => noGrad(() => rand([labels.length], substream(random, 'labelDrop')).toArray()));
  for (let b = 0; b < out.length; b++) if (u[b]! < rate) out[b] = classes;
  return out;
}

/** Checks a DiT config and returns the token grid (h, w) = (H/p, W/p). */
export function checkDitConfig(config: DitConfig): [number, number] {
  const owner = 'DiT';
  const grid = tokenGrid({ ...config, dropPath: 0 }, owner);
  positiveInteger(owner, 'classes', config.classes);
  positiveInteger(owner, 'timesteps', config.timesteps);
  if (!(typeof config.mlpRatio === 'number' && config.mlpRatio > 0 && Number.isInteger(config.dim * config.mlpRatio)))
    throw new RangeError(`${owner}: 'mlpRatio' must be positive with dim·mlpRatio an integer, got ${String(config.mlpRatio)}`);
  if (!(typeof config.classDropout === 'number' && config.classDropout >= 0 && config.classDropout < 1))
    throw new RangeError(`${owner}: 'classDropout' must be in [0, 1), got ${String(config.classDropout)}`);
  if (typeof config.learnSigma !== 'boolean') throw new TypeError(`${owner}: 'learnSigma' must be true or false, got ${String(config.learnSigma)}`);
  return grid;
}

/** C_out: the noise's C channels, and as many for the variance with learnSigma. */
export const ditOutputChannels = (config: Pick<DitConfig, 'channels' | 'learnSigma'>): number => (config.learnSigma ? 2 : 1) * config.channels;

export interface DitCountOptions {
  /**
   * false (default): trainable values only, what model.parameterCount() reports. true: also the
   * fixed sin-cos pos_embed, as facebookresearch/DiT counts (its pos_embed is an nn.Parameter
   * with requires_grad False, and the published sizes, 675.13 M for DiT-XL/2, include it).
   */
  reference?: boolean;
}

/**
 * depth·(18d² + 15d) at MLP ratio 4 (qkv, proj, fc1, fc2, adaLN Linear(d, 6d)), + (256d + d) +
 * (d² + d) (timestep MLP) + (K + 1)·d (label table) + (p²Cd + d) (patch embedding) + (2d² + 2d)
 * + (dP + P) (final adaLN and Linear, P = p²·C_out) + N·d for a learned table (or, with
 * `reference`, a sin-cos one).
 */
export function ditParameterCount(config: DitConfig, options: DitCountOptions = {}): number {
  const [h, w] = checkDitConfig(config);
  const { dim: d, patch: p, channels: C, classes: K } = config;
  const hidden = Math.round(d * config.mlpRatio);
  const block = (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d) + (6 * d * d + 6 * d);
  const P = p * p * ditOutputChannels(config);
  const position = config.posEmbed === 'learned' || (config.posEmbed === 'sincos' && options.reference) ? h * w * d : 0;
  return config.depth * block + (timestepFrequencyDim * d + d) + (d * d + d) + (K + 1) * d + (p * p * C * d + d)
    + (2 * d * d + 2 * d) + (d * P + P) + position;
}

/** `t_embedder.mlp`: nn.Sequential(Linear(256, d), SiLU, Linear(d, d)), the Linears at 0 and 2. */
class TimestepMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, rng: InitRng) {
    super(rng.device);
    this.fc1 = this.child('0', new Linear(timestepFrequencyDim, dim, rng));
    this.fc2 = this.child('2', new Linear(dim, dim, rng));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(silu(this.fc1.forward(x)));
  }
}

/** `t_embedder`: timesteps (B) → (B, d) through the frequency embedding and its MLP. */
export class TimestepEmbedder extends Module {
  readonly mlp: TimestepMlp;

  constructor(dim: number, rng: InitRng) {
    super(rng.device);
    this.mlp = this.child('mlp', new TimestepMlp(dim, rng));
  }

  /** t (B) on the host, any real values (checked by the model) → (B, d). */
  forward(t: ArrayLike<number>): Tensor {
    const frequencies = tensor(Float32Array.from(timestepEmbedding(t)), [t.length, timestepFrequencyDim], { device: this.device });
    return this.mlp.forward(frequencies);
  }
}

/** `y_embedder`: labels (B) in [0, K] → (B, d) rows of a (K + 1, d) table; row K is the null class. */
export class LabelEmbedder extends Module {
  readonly embeddingTable: Embedding;

  constructor(readonly classes: number, dim: number, rng: InitRng) {
    super(rng.device);
    this.embeddingTable = this.child('embedding_table', new Embedding(classes + 1, dim, rng));
  }

  /** labels (B) on the host, already dropped where training drops them. */
  forward(labels: Int32Array): Tensor {
    return this.embeddingTable.forward(tensor(labels, [labels.length], { device: this.device }));
  }
}

/** `final_layer`: modulate(LN x) by SiLU(c) → Linear(d, 2d) shift and scale, then Linear(d, p²·C_out). */
export class FinalLayer extends Module {
  readonly linear: Linear;
  readonly adaLNModulation: AdaLNModulation;

  constructor(dim: number, outputs: number, rng: InitRng) {
    super(rng.device);
    this.linear = this.child('linear', new Linear(dim, outputs, rng));
    this.adaLNModulation = this.child('adaLN_modulation', new AdaLNModulation(dim, 2, rng));
  }

  /** x (B, N, d), c (B, d) → (B, N, p²·C_out), each token's values in (row, col, channel) order. */
  forward(x: Tensor, c: Tensor): Tensor {
    const [shift, scale] = this.adaLNModulation.forward(c) as [Tensor, Tensor];
    return this.linear.forward(modulate(plainLayerNorm(x), shift, scale));
  }
}

/** A forward's options: the run's precision, and the step's random stream for label dropout. */
export interface DitForwardOptions extends ForwardOptions {
  /**
   * Label dropout on (training) or off; default: the module's train/eval mode. On with
   * classDropout > 0, it draws from substream(random, 'labelDrop'): `random` is then required.
   */
  train?: boolean;
}

/** Timesteps or labels: a (B) tensor on the model's device, or host numbers. */
export type DitInput = Tensor | ArrayLike<number>;

export class DiffusionTransformer extends Module {
  readonly config: Readonly<DitConfig>;
  /** Token grid (H/p, W/p); N = h·w tokens, no cls. */
  readonly grid: readonly [number, number];
  /** (1, N, d): a fixed buffer (sincos), a parameter (learned) or null (none). */
  readonly posEmbed: Tensor | null;
  readonly xEmbedder: PatchEmbed;
  readonly tEmbedder: TimestepEmbedder;
  readonly yEmbedder: LabelEmbedder;
  readonly blocks: AdaLNBlockStack;
  readonly finalLayer: FinalLayer;

  constructor(config: Partial<DitConfig> = {}, options: BuildOptions = {}) {
    const c: DitConfig = { ...defaultDitConfig, ...config };
    const grid = checkDitConfig(c);
    const rng = new InitRng(c.seed, options.device);
    super(rng.device);
    this.config = Object.freeze(c);
    this.grid = grid;
    const [h, w] = grid;
    const { dim: d, patch: p, channels: C } = c;
    // pos_embed first: PyTorch lists a module's own parameters before its children's.
    const table = positionTable(c.posEmbed, h, w, d, rng, 0);
    this.posEmbed = !table ? null : table.trainable ? this.parameter('pos_embed', table.values, [1, h * w, d]) : this.buffer('pos_embed', table.values, [1, h * w, d]);
    this.xEmbedder = this.child('x_embedder', new PatchEmbed(C, p, d, rng));
    this.tEmbedder = this.child('t_embedder', new TimestepEmbedder(d, rng));
    this.yEmbedder = this.child('y_embedder', new LabelEmbedder(c.classes, d, rng));
    this.blocks = this.child('blocks', new AdaLNBlockStack(c.depth, d, c.heads, { mlpRatio: c.mlpRatio, init: rng }));
    this.finalLayer = this.child('final_layer', new FinalLayer(d, p * p * ditOutputChannels(c), rng));
    // DiT's initialize_weights: xavier-uniform Linears (the patch embedding on its flattened
    // view), biases 0 (as built); timestep MLP weights and the label table N(0, 0.02) (the table
    // is built so); every adaLN Linear and the final Linear zero: each block starts as the
    // identity and the output as 0 (adaLN-Zero).
    redrawParameters(this, (name, param) => {
      if (name.includes('adaLN_modulation.') || name.startsWith('final_layer.linear.')) return new Float32Array(param.size);
      if (name.startsWith('t_embedder.mlp.') && name.endsWith('.weight')) return rng.normal(param.shape, 0.02);
      if (name.startsWith('y_embedder.')) return null;
      return isLinearWeight(name, param) ? rng.xavierUniform(param.shape) : null;
    });
  }

  /** N = h·w tokens. */
  get tokens(): number {
    return this.grid[0] * this.grid[1];
  }

  /** C_out channels of the output: 2C with learnSigma (noise first), else C. */
  get outputChannels(): number {
    return ditOutputChannels(this.config);
  }

  /**
   * x (B, C, H, W) f32 noisy inputs, t (B) timesteps in [0, T) (integers in DiT; the embedding
   * takes any real value), y (B) integer labels in [0, K] (K: the null class, for
   * classifier-free guidance) → (B, C_out, H, W). With label dropout on
   * (`train`, default the module's mode) each label becomes K with probability classDropout,
   * drawn from substream(options.random, 'labelDrop').
   */
  forward(x: Tensor, t: DitInput, y: DitInput, options: DitForwardOptions = {}): Tensor {
    const B = this.checkInput(x);
    const { classes: K, timesteps: T, classDropout, patch: p, dim: d } = this.config;
    const steps = this.hostValues('t', t, B), classes = this.hostValues('y', y, B);
    steps.forEach((v, b) => {
      if (!(v >= 0 && v < T)) throw new RangeError(`DiT: 't[${b}]' must be a timestep in [0, ${T}), got ${String(v)}`);
    });
    classes.forEach((v, b) => {
      if (!(Number.isInteger(v) && v >= 0 && v <= K)) throw new RangeError(`DiT: 'y[${b}]' must be a class label in [0, ${K}] (${K}: the null class), got ${String(v)}`);
    });
    const labels = Int32Array.from(classes);
    const precision = options.precision === undefined ? undefined : checkPrecision(options.precision);
    const train = options.train ?? this.training;
    let dropped: Int32Array = labels;
    if (train && classDropout > 0) {
      if (!options.random) throw new TypeError(`DiT: a training forward drops labels (classDropout ${classDropout}) and needs options.random {seed, offset} (offset = the step); pass train: false to evaluate`);
      dropped = dropLabels(labels, K, classDropout, options.random);
    }
    let h = this.xEmbedder.forward(patchify(x, p));                          // (B, N, d)
    if (this.posEmbed) h = add(h, this.posEmbed.reshape([this.tokens, d]));
    const c = add(this.tEmbedder.forward(steps), this.yEmbedder.forward(dropped));  // (B, d)
    h = this.blocks.forward(h, c, { precision, recompute: options.recompute });
    return unpatchify(this.finalLayer.forward(h, c), p, this.grid);        // (B, C_out, H, W)
  }

  /** Checks x (B, C, H, W) (shape, device, not disposed) and returns B. */
  private checkInput(x: Tensor): number {
    if (!(x instanceof Tensor)) throw new TypeError(`DiT: 'x' must be a Tensor (B, C, H, W), got ${x === null ? 'null' : typeof x}`);
    if (x.disposed) throw new TypeError("DiT: 'x' is a disposed tensor (it was used after dispose())");
    const { channels: C, patch: p } = this.config;
    const [H, W] = [this.grid[0] * p, this.grid[1] * p];
    if (x.shape.length !== 4 || x.shape[1] !== C || x.shape[2] !== H || x.shape[3] !== W || x.shape[0] === 0)
      throw new RangeError(`DiT: 'x' must be (B, ${C}, ${H}, ${W}) with B ≥ 1, got shape [${x.shape.join(', ')}]`);
    if (x.dtype !== 'f32') throw new TypeError(`DiT: 'x' must be f32, got ${x.dtype}`);
    this.expectDevice('x', x);
    return x.shape[0]!;
  }

  /** B numbers of t or y: from a (B) tensor on the model's device, or host numbers. */
  private hostValues(name: 't' | 'y', v: DitInput, B: number): number[] {
    if (v instanceof Tensor) {
      if (v.disposed) throw new TypeError(`DiT: '${name}' is a disposed tensor (it was used after dispose())`);
      if (v.shape.length !== 1 || v.shape[0] !== B) throw new RangeError(`DiT: '${name}' must be (B) = (${B}), got shape [${v.shape.join(', ')}]`);
      this.expectDevice(name, v);
      return Array.from(v.toArray());
    }
    if (v === null || typeof v !== 'object' || typeof v.length !== 'number')
      throw new TypeError(`DiT: '${name}' must be a Tensor (B) or an array of ${B} numbers, got ${v === null ? 'null' : typeof v}`);
    if (v.length !== B) throw new RangeError(`DiT: '${name}' must hold B = ${B} values, got ${v.length}`);
    return Array.from(v, Number);
  }
}

/** A DiT by name (models/names.ts), e.g. dit('dit-l/1', { imageSize: 8, channels: 1, classes: 10 }, { device: 'cuda' }). */
export function dit(name: string, overrides: Partial<DitConfig> = {}, options: BuildOptions = {}): DiffusionTransformer {
  return new DiffusionTransformer(ditConfig(name, overrides), options);
}
