// `pit bench kernels`: one JSON object per line per (op, shape):
//   {op, device, dtype, shape, ms, gflops, formula}
// FLOP conventions: matmul 2·M·N·K (+ M·N with bias); attention 4·B·H·L²·D forward, 2.5× that
// backward, 3.5× forward + backward (the FlashAttention convention, which counts the
// backward's recomputation of the scores as part of its 2.5×).
import { native } from '../lib/native.js';
import { attentionWithLse, randn, tidy, type Device, type Tensor } from '../lib/index.js';
import { timeIt } from './timing.js';

export interface KernelResult {
  op: string;
  device: Device;
  dtype: string;
  shape: Record<string, number>;
  ms: number;
  gflops: number;
  formula: string;
  repeats: number;
}

interface KernelCase {
  op: string;
  shape: Record<string, number>;
  formula: string;
  flops: number;
  /** Allocates inputs on `device`, returns the timed function. Runs inside tidy(). */
  setup(device: Device): () => void;
}

let seed = 1;
const input = (shape: number[], device: Device): Tensor => randn(shape, { seed: seed++, device });

function matmulCase(m: number, n: number, k: number): KernelCase {
  return {
    op: 'matmul',
    shape: { m, n, k },
    formula: '2*m*n*k',
    flops: 2 * m * n * k,
    setup(device) {
      const a = input([m, k], device), b = input([k, n], device), out = input([m, n], device);
      return () => native().matmulForward(out.handle, a.handle, b.handle, null, false, false, false);
    },
  };
}

function attentionCases(B: number, H: number, L: number, D: number): KernelCase[] {
  const shape = { B, H, L, D };
  const fwd = 4 * B * H * L * L * D;
  const prepare = (device: Device) => {
    const qkv = input([B, L, 3, H, D], device);
    return { qkv, ...attentionWithLse(qkv) };
  };
  const prepareBackward = (device: Device) => {
    const dout = input([B, L, H, D], device), dqkv = input([B, L, 3, H, D], device);
    return { ...prepare(device), dout, dqkv };
  };
  return [
    {
      op: 'attention_forward', shape, formula: '4*B*H*L^2*D', flops: fwd,
      setup(device) {
        const { qkv, out, lse } = prepare(device);
        return () => native().attentionForward(out.handle, lse.handle, qkv.handle);
      },
    },
    {
      op: 'attention_backward', shape, formula: '2.5*4*B*H*L^2*D', flops: 2.5 * fwd,
      setup(device) {
        const { qkv, out, lse, dout, dqkv } = prepareBackward(device);
        return () => native().attentionBackward(dqkv.handle, dout.handle, qkv.handle, out.handle, lse.handle);
      },
    },
    {
      op: 'attention_forward_backward', shape, formula: '3.5*4*B*H*L^2*D', flops: 3.5 * fwd,
      setup(device) {
        const { qkv, out, lse, dout, dqkv } = prepareBackward(device);
        return () => {
          native().attentionForward(out.handle, lse.handle, qkv.handle);
          native().attentionBackward(dqkv.handle, dout.handle, qkv.handle, out.handle, lse.handle);
        };
      },
    },
  ];
}

/** The shapes: ViT-T/2-like matmuls, PiT-T/S/B-like attention. */
export function kernelCases(options: { quick?: boolean } = {}): KernelCase[] {
  if (options.quick) return [matmulCase(97, 65, 33), ...attentionCases(1, 2, 65, 16)];
  return [
    matmulCase(6304, 768, 192),
    matmulCase(6304, 192, 768),
    matmulCase(1024, 1024, 1024),
    ...attentionCases(8, 12, 197, 16),
    ...attentionCases(2, 12, 1025, 16),
    ...attentionCases(1, 6, 2049, 64),
  ];
}

export function runKernelBench(options: { device: Device; ops?: string[]; quick?: boolean; budgetMs?: number }): KernelResult[] {
  const results: KernelResult[] = [];
  for (const c of kernelCases(options)) {
    if (options.ops?.length && !options.ops.some((o) => c.op.startsWith(o))) continue;
    const timing = tidy(() => {
      const fn = c.setup(options.device);
      return timeIt(fn, { budgetMs: options.budgetMs ?? 1500 });
    });
    results.push({
      op: c.op,
      device: options.device,
      dtype: 'f32',
      shape: c.shape,
      ms: Number(timing.medianMs.toFixed(4)),
      gflops: Number((c.flops / timing.medianMs / 1e6).toFixed(2)),
      formula: c.formula,
      repeats: timing.repeats,
    });
  }
  return results;
}
