// The attention kernels (f32, and bf16 in variants v1, v2 and, at D <= 32, v3) once each at small shapes,
// every head dim, finite and non-finite inputs, each call synchronised and printed before and
// after: a hang names its kernel, and under compute-sanitizer (bench/gpu-session.sh, phase
// `sanitize`) the run is short enough for racecheck and synccheck. The bf16 variant is set
// through PIT_ATTENTION_VARIANT, which native/cuda/attention_bf16.cu reads on every call.
// Exits 1 if an output that should be finite is not.
//
//   node dist/bench/gpu-smoke.js            # on a machine with a GPU and the CUDA addon
import { native, selectBackend, type DType } from '../lib/native.js';
import { BF16_HEAD_DIMS } from '../lib/nn/forward.js';

const backend = selectBackend();
if (backend.backend !== 'cuda') {
  process.stderr.write(`gpu-smoke: needs a GPU and the CUDA addon: ${backend.reasons.join('; ')}\n`);
  process.exit(2);
}
const a = native();
const say = (line: string) => process.stderr.write(`${line}\n`);
const prod = (shape: number[]) => shape.reduce((x, y) => x * y, 1);
let seed = 1;
/** Uniform in [-1, 1) from a fixed LCG: the same inputs every run. */
const values = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 31) - 1);

function timed(what: string, call: () => void): void {
  say(`>> ${what}`);
  const t0 = performance.now();
  call();
  a.synchronize('cuda');
  say(`<< ${what}: ${(performance.now() - t0).toFixed(2)} ms`);
}

let failures = 0;
for (const D of BF16_HEAD_DIMS)
  for (const L of [1, 97, 130])
    for (const poison of [null, Number.NaN, Number.POSITIVE_INFINITY]) {
      const B = 2, H = 2;
      const qkvShape = [B, L, 3, H, D], outShape = [B, L, H, D];
      const x = values(prod(qkvShape));
      if (poison !== null) x[5] = poison;  // token 0, q of head 0: row 0 of batch 0 only
      for (const [dtype, variant] of [['f32', null], ['bf16', 'v1'], ['bf16', 'v2'], ...(D <= 32 ? [['bf16', 'v3']] : [])] as [DType, string | null][]) {
        if (variant) process.env.PIT_ATTENTION_VARIANT = variant;
        const label = `${dtype}${variant ? ` ${variant}` : ''} D=${D} L=${L} ${poison === null ? 'finite' : String(poison)}`;
        const qkv = a.fromArray(x, qkvShape, dtype, 'cuda'), dout = a.fromArray(values(prod(outShape)), outShape, dtype, 'cuda');
        const out = a.empty(outShape, dtype, 'cuda'), lse = a.empty([B, H, L], 'f32', 'cuda'), dqkv = a.empty(qkvShape, dtype, 'cuda');
        timed(`${label} forward`, () => a.attentionForward(out, lse, qkv));
        timed(`${label} backward`, () => a.attentionBackward(dqkv, dout, qkv, out, lse));
        // Batch 1 never sees the poisoned value: its outputs must be finite.
        const o = out.toArray(), half = o.length / 2;
        const bad = o.subarray(half).filter((v) => !Number.isFinite(v)).length;
        if (bad) (failures++, say(`!! ${label}: ${bad} non-finite outputs in the clean batch`));
        for (const t of [qkv, dout, out, lse, dqkv]) t.dispose();
      }
    }
say(failures ? `gpu-smoke: ${failures} failures` : 'gpu-smoke: every kernel ran');
process.exit(failures ? 1 : 0);
