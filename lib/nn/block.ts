// Pre-norm transformer block with drop path (stochastic depth):
//   x = x + DropPath(attn(norm1 x));  x = x + DropPath(mlp(norm2 x))
import { add, gatedResidual } from '../ops/index.js';
import { checkpoint, noGrad, rand, tensor, tidy, type Tensor } from '../tensor.js';
import { Attention } from './attention.js';
import { releaseUnderMixed, type ForwardOptions, type RandomStream } from './forward.js';
import { initDevice, initRng, type Init } from './init.js';
import { LayerNorm } from './layernorm.js';
import { Mlp } from './mlp.js';
import { Module } from './module.js';

/**
 * x + DropPath(y) for x, y (B, L, C). In training with rate r, each sample keeps its branch
 * with probability 1 − r (u ~ U[0,1) drawn from `random`, kept when u < 1 − r), scaled by
 * 1/(1 − r) so the expectation is unchanged; otherwise x + y.
 */
export function dropPathResidual(x: Tensor, y: Tensor, rate: number, training: boolean, random?: RandomStream): Tensor {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropPath: 'rate' must be in [0, 1), got ${String(rate)}`);
  if (!training || rate === 0) return add(x, y);
  if (!random) throw new TypeError('dropPath: a training forward with drop path needs a random stream {seed, offset} (e.g. offset = step)');
  const [B, , C] = x.shape as [number, number, number];
  const u = tidy(() => noGrad(() => rand([B], { seed: random.seed, offset: random.offset }).toArray()));
  const keep = 1 - rate;
  // gate (B, C): each row is 1/keep or 0 for the whole sample.
  const gate = new Float32Array(B * C);
  for (let b = 0; b < B; b++) if (u[b]! < keep) gate.fill(1 / keep, b * C, (b + 1) * C);
  return gatedResidual(x, y, tensor(gate, [B, C], { device: x.device }));
}

/** Whether any parameter of `modules` takes gradients (a frozen encoder's do not). */
const trainable = (modules: readonly Module[]) => modules.some((m) => m.parameters().some((p) => p.requiresGrad));

/**
 * fn(...inputs), recomputed in the backward (checkpoint) when `recompute` is set: `modules` are
 * those whose parameters fn reads, `op` names the segment in the graph.
 */
export function maybeRecompute(recompute: boolean, op: string, modules: readonly Module[], inputs: readonly Tensor[], fn: (...inputs: Tensor[]) => Tensor): Tensor {
  return recompute ? checkpoint(op, inputs, trainable(modules), fn) : fn(...inputs);
}

/** gemm(normed), then normed released under 'mixed' (the GEMM keeps its bf16 copy; no backward reads a LayerNorm's output). */
export function normThen(normed: Tensor, gemm: (normed: Tensor) => Tensor, options: ForwardOptions): Tensor {
  const y = gemm(normed);
  releaseUnderMixed(options.precision, normed);
  return y;
}

export interface BlockOptions {
  mlpRatio?: number;   // 4: MLP hidden = 4d
  dropPath?: number;   // 0: this block's drop-path rate
  init?: Init;         // 0: seed or the model's generator (which names the device)
}

export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  /** This block's drop-path rate (ViT gives block i rate·i/(depth − 1)). */
  readonly dropPath: number;

  constructor(dim: number, heads: number, options: BlockOptions = {}) {
    super(initDevice(options.init ?? 0));
    const rng = initRng(options.init ?? 0);
    this.dropPath = options.dropPath ?? 0;
    this.norm1 = this.child('norm1', new LayerNorm(dim, rng));
    this.attn = this.child('attn', new Attention(dim, heads, rng));
    this.norm2 = this.child('norm2', new LayerNorm(dim, rng));
    this.mlp = this.child('mlp', new Mlp(dim, Math.round(dim * (options.mlpRatio ?? 4)), rng));
  }

  /**
   * x (B, L, d). In training with drop path, the branches draw at random.offset and offset + 1.
   * With recompute 'mlp', norm1 → qkv and norm2 → fc1 → GELU run again in the backward, so
   * neither LayerNorm output nor the GELU input is kept.
   */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    const { random } = options;
    const second = random && { seed: random.seed, offset: random.offset + 1 };
    const mlp = options.recompute === 'mlp';
    // Under 'mixed' each f32 activation whose readers keep bf16 copies is released once read.
    const qkv = maybeRecompute(mlp, 'norm1·qkv', [this.norm1, this.attn.qkv], [x], (x) => normThen(this.norm1.forward(x), (h) => this.attn.qkv.forward(h, options), options));
    x = dropPathResidual(x, this.attn.fromQkv(qkv, options, true), this.dropPath, this.training, random);
    const hidden = maybeRecompute(mlp, 'norm2·fc1·gelu', [this.norm2, this.mlp.fc1], [x], (x) => normThen(this.norm2.forward(x), (h) => this.mlp.hidden(h, options), options));
    return dropPathResidual(x, this.mlp.fromHidden(hidden, options), this.dropPath, this.training, second);
  }
}
