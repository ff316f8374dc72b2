// The bf16 attention runs of test/cpu-attention-bf16.test.ts, in a child process (the ISA and
// the thread count are fixed when the addon loads): `node cpu-attention-bf16-cases.js` runs
// every case of CASES under the PIT_CPU_ISA and PIT_NUM_THREADS it was given and prints one JSON
// Report. Not a test file.
import { pathToFileURL } from 'node:url';
import { native, type NativeTensor } from '../lib/native.js';
import { attentionLabel, prod, qkvShape, randomNormal, type AttentionDims } from './helpers.js';

export interface Case {
  dims: AttentionDims;
  /** q and k multiplied by this (large logits: scores in the hundreds). */
  qkScale: number;
  seed: number;
}

/**
 * D = 16, 32, 64, 128 × L = 1, 97, 1025 with small B·H; B·H = 8 at L = 97 (each head one
 * backward item, which writes its own dQ; the others sum partial dQs); large logits at L = 97.
 */
export const CASES: Case[] = [16, 32, 64, 128].flatMap((D, k) => [
  { dims: { B: 2, L: 1, H: 3, D }, qkScale: 1 },
  { dims: { B: 1, L: 97, H: 2, D }, qkScale: 1 },
  { dims: { B: 2, L: 97, H: 4, D }, qkScale: 1 },
  { dims: { B: 1, L: 1025, H: 1, D }, qkScale: 1 },
  { dims: { B: 1, L: 97, H: 2, D }, qkScale: 10 },
].map((c, i) => ({ ...c, seed: 100 * k + 2 * i + 1 })));

export const caseLabel = (c: Case) => `${attentionLabel(c.dims)}${c.qkScale !== 1 ? ` q,k ×${c.qkScale}` : ''}`;
export const outShape = ({ B, L, H, D }: AttentionDims) => [B, L, H, D];
export const lseShape = ({ B, L, H }: AttentionDims) => [B, H, L];

/** The case's qkv and dout as f32 values (not yet rounded to bf16), the same in every process. */
export function inputsOf(c: Case): { qkv: Float32Array; dout: Float32Array } {
  const { H, D } = c.dims;
  const qkv = Float32Array.from(randomNormal(prod(qkvShape(c.dims)), 1, c.seed));
  if (c.qkScale !== 1) for (let i = 0; i < qkv.length; i++) if (Math.floor(i / (H * D)) % 3 < 2) qkv[i]! *= c.qkScale;
  return { qkv, dout: Float32Array.from(randomNormal(prod(outShape(c.dims)), 1, c.seed + 1)) };
}

/** Results as base64 of their f32 values (bf16 outputs widened, exactly). */
export interface Outputs {
  out: string;
  lse: string;
  dqkv: string;
}
export interface CaseReport {
  label: string;
  bf16: Outputs;
  /** The f32 kernels on the same (bf16-rounded) values. */
  f32: Outputs;
  /** A second bf16 forward and backward gave the same bits. */
  bf16Repeatable: boolean;
}
export interface Report {
  cpuIsa: string;
  cpuBf16Attention: string;
  threads: number;
  cases: CaseReport[];
}

export const decode = (x: string) => new Float32Array(new Uint8Array(Buffer.from(x, 'base64')).buffer);
const encode = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');

/** Forward and backward in `dtype` on qkv and dout (tensors of that dtype); outputs NaN-poisoned first. */
function run(dims: AttentionDims, qkv: NativeTensor, dout: NativeTensor): Outputs {
  const a = native(), dtype = qkv.dtype as 'f32' | 'bf16';
  const poison = (shape: number[], dt: 'f32' | 'bf16') => a.fromArray(new Float32Array(prod(shape)).fill(Number.NaN), shape, dt, 'cpu');
  const out = poison(outShape(dims), dtype), lse = poison(lseShape(dims), 'f32'), dqkv = poison(qkvShape(dims), dtype);
  a.attentionForward(out, lse, qkv);
  a.attentionBackward(dqkv, dout, qkv, out, lse);
  const r = { out: encode(out.toArray() as Float32Array), lse: encode(lse.toArray() as Float32Array), dqkv: encode(dqkv.toArray() as Float32Array) };
  for (const x of [out, lse, dqkv]) x.dispose();
  return r;
}

export function runCase(c: Case): CaseReport {
  const a = native(), { qkv, dout } = inputsOf(c);
  const qkv16 = a.fromArray(qkv, qkvShape(c.dims), 'bf16', 'cpu'), dout16 = a.fromArray(dout, outShape(c.dims), 'bf16', 'cpu');
  const bf16 = run(c.dims, qkv16, dout16), again = run(c.dims, qkv16, dout16);
  const qkv32 = a.fromArray(qkv16.toArray(), qkvShape(c.dims), 'f32', 'cpu'), dout32 = a.fromArray(dout16.toArray(), outShape(c.dims), 'f32', 'cpu');
  const f32 = run(c.dims, qkv32, dout32);
  for (const x of [qkv16, dout16, qkv32, dout32]) x.dispose();
  const bf16Repeatable = again.out === bf16.out && again.lse === bf16.lse && again.dqkv === bf16.dqkv;
  return { label: caseLabel(c), bf16, f32, bf16Repeatable };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const info = native().buildInfo();
  const report: Report = { cpuIsa: info.cpuIsa, cpuBf16Attention: info.cpuBf16Attention, threads: info.threads, cases: CASES.map(runCase) };
  process.stdout.write(JSON.stringify(report) + '\n');
}
