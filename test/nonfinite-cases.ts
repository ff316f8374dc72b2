// Non-finite inputs through every op, forward and backward, against float64 references: NaN,
// +Inf and -Inf are placed in each input in turn (one at a time, then all three at once), and
// every output must be non-finite exactly where the reference is (finitenessMismatches).
// Where an op's definition absorbs a value (a token outside the MSE mask, a 0 weight, a
// probability clamped at 1e-12, a clipped x̂₀), the reference says so and the op must agree.
//
// Not a test file: test/nonfinite.test.ts runs these cases in child processes under
// PIT_CPU_ISA=avx512bf16|avx512|avx2|scalar (the ISA is fixed when the addon loads), and
// test/cuda-ops.test.ts runs them on the GPU. Run directly (`node dist/test/nonfinite-cases.js`)
// it prints a JSON report for the device in PIT_DEVICE (default cpu).
import { pathToFileURL } from 'node:url';
import { GaussianDiffusion, lossCoefficients, stepScalars } from '../lib/diffusion/index.js';
import { native, selectBackend, type NativeAddon, type NativeTensor } from '../lib/native.js';
import {
  lossCase, modelOutput, numpyBetas, refLoss, refLossGradient, refSchedule, refStep, refXt, splitModelOutput, type LossCase,
} from './diffusion-reference.js';
import { attentionReference, finitenessMismatches, NON_FINITE, prod, randomNormal, rng, type AttentionDims } from './helpers.js';

export type Device = 'cpu' | 'cuda';
type F64 = Float64Array;

interface Poke {
  input: string;
  label: string;
  index: (u: number) => number;
}

/** One op, its inputs and outputs, how to call it and its float64 reference. */
interface Spec {
  /** f32 inputs (and in-place outputs) by name, with their shapes; filled with normal values. */
  f32: Record<string, number[]>;
  /** i32 inputs (token ids, class labels). */
  i32?: Record<string, { shape: number[]; values: Int32Array }>;
  /** Fresh outputs, NaN-poisoned before the call (an unwritten element then fails). */
  outputs?: Record<string, number[]>;
  /** The f32 inputs that receive the non-finite values (anywhere, or where `index` maps a
   *  uniform draw in [0, 1) to). */
  poke: (string | Poke)[];
  /** Overrides for some inputs' values (e.g. a mask of zeros and ones). */
  values?: Record<string, (n: number) => F64>;
  /** Calls the op; a number it returns is compared as 'result'. */
  call(a: NativeAddon, t: Record<string, NativeTensor>): number | void;
  /** Float64 results by the name they are compared under (outputs, in-place inputs, 'result'). */
  reference(x: Record<string, F64>): Record<string, ArrayLike<number> | number>;
}

export interface CaseResult {
  op: string;
  cases: number;
  /** One line per (case, output) whose finiteness differs from the reference. */
  failures: string[];
}

// ---- references -------------------------------------------------------------------------

/** Runs fn on bf16 copies of f32 tensors (rounded to nearest even; NaN and ±Inf kept), then frees them. */
function withBf16Copies(a: NativeAddon, xs: NativeTensor[], fn: (copies: NativeTensor[]) => void): void {
  const copies = xs.map((x) => {
    const h = a.empty(x.shape, 'bf16', x.device);
    a.copy(h, x);
    return h;
  });
  try {
    fn(copies);
  } finally {
    for (const h of copies) h.dispose();
  }
}

/** out (batch, M, N) = a (batch, M, K) · b (K, N) (+ bias (N)). */
function matmulRef(a: F64, b: F64, bias: F64 | null, M: number, N: number, K: number, batch = 1): F64 {
  const out = new Float64Array(batch * M * N);
  for (let s = 0; s < batch; s++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = bias ? bias[j]! : 0;
        for (let k = 0; k < K; k++) acc += a[(s * M + i) * K + k]! * b[k * N + j]!;
        out[(s * M + i) * N + j] = acc;
      }
  return out;
}
/** x (rows, cols) transposed. */
function transpose(x: F64, rows: number, cols: number): F64 {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}
/** x viewed as (outer, n, inner) summed over n (divided by n for the mean). */
function sumRef(x: F64, outer: number, n: number, inner: number, mean = false): F64 {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < n; j++) for (let i = 0; i < inner; i++) out[o * inner + i] += x[(o * n + j) * inner + i]!;
  return mean ? out.map((v) => v / n) : out;
}
const map = (x: F64, f: (v: number, i: number) => number) => Float64Array.from(x, f);
/** Standard normal pdf and cdf, with erf from its Taylor series / continued fraction (|err| < 1e-12). */
const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
function cdf(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  // Φ(x) = ½ erfc(-x/√2); the series converges everywhere it is used here (|x| < 40).
  const z = Math.abs(x) / Math.SQRT2;
  let erf: number;
  if (z < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    erf = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let n = 60; n >= 1; n--) f = (n / 2) / (z + f);
    erf = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
  }
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const GELU_K = Math.sqrt(2 / Math.PI);

// ---- the ops ------------------------------------------------------------------------------

const ATTENTION_DIMS: AttentionDims[] = [
  { B: 1, L: 64, H: 1, D: 32 },   // the shape: one query and one key tile
  { B: 1, L: 97, H: 2, D: 16 },   // ragged tiles, padded query lanes, dQ from partials
  { B: 1, L: 1, H: 1, D: 16 },    // a single key: its score alone sets the max
];

/** Non-finite values land in q, k and v (part p of qkv) of a random (b, token, h, d). */
function attentionPokes({ B, L, H, D }: AttentionDims): Poke[] {
  return ['q', 'k', 'v'].map((label, p) => ({ input: 'qkv', label, index: (u: number) => {
    const e = Math.floor(u * B * L * H * D), d = e % D, h = Math.floor(e / D) % H, bl = Math.floor(e / (H * D));
    return (bl * 3 + p) * H * D + h * D + d;
  } }));
}

/**
 * Attention's two cases at `dims`: the forward (out, lse from qkv) and the backward (dqkv
 * from qkv and dout, its forward inside the call), each against float64 attention.
 */
function attentionSpecs(dims: AttentionDims, forward: Spec['call'], backward: Spec['call']): Spec[] {
  const { B, L, H, D } = dims;
  const qkvShape = [B, L, 3, H, D], outShape = [B, L, H, D], pokes = attentionPokes(dims);
  return [{
    f32: { qkv: qkvShape },
    outputs: { out: outShape, lse: [B, H, L] },
    poke: pokes,
    call: forward,
    reference: (x) => {
      const r = attentionReference(dims, x.qkv!);
      return { out: r.out, lse: r.lse };
    },
  }, {
    f32: { qkv: qkvShape, dout: outShape },
    outputs: { dqkv: qkvShape },
    poke: [...pokes, 'dout'],
    call: backward,
    reference: (x) => ({ dqkv: attentionReference(dims, x.qkv!, x.dout!).dqkv! }),
  }];
}

/** Uniform draws u in [0, 1) mapped onto one of `elements` (indices into the input). */
const pokeAt = (input: string, label: string, elements: readonly number[]): Poke =>
  ({ input, label, index: (u) => elements[Math.floor(u * elements.length)]! });
/** Element e of (rows, C, N) as an index of the model output (rows, 2C, N): its ε̂ (part 0) or v (part 1). */
const inModelOutput = (e: number, part: 0 | 1, per: number) => {
  const b = Math.floor(e / per);
  return (2 * b + part) * per + (e - b * per);
};

/**
 * The hybrid diffusion loss, forward and backward: samples at t = 0 (the discretised NLL), 1,
 * 500 and 999 (the KL), x (4, 2, 3, 3); x0 on the 8-bit grid of [−1, 1] with both edges
 * (lossCase), x_t = q_sample(x0, ε), ε̂ near ε, v in [−0.9, 0.9]; the coefficients from the real
 * schedule, never poked (they are float64 schedule values). ε̂ at t = 0 is poked in each branch
 * of the NLL (x0 = −1, x0 = 1, a bin inside), the other inputs at t = 0 and at t > 0.
 */
function diffusionLossSpecs(): Spec[] {
  const schedule = refSchedule(numpyBetas);
  const c = lossCase([0, 1, 500, 999], 2, 3, 61);
  const [B, C, H, W] = c.shape, per = C * H * W, image = [B, C, H, W], outShape = [B, 2 * C, H, W];
  const xt = refXt(schedule, c);
  const coefs = Float64Array.from(lossCoefficients(new GaussianDiffusion(), c.ts));
  const all = Array.from({ length: B * per }, (_, e) => e);
  const atT0 = all.filter((e) => c.ts[Math.floor(e / per)] === 0), later = all.filter((e) => c.ts[Math.floor(e / per)]! > 0);
  /** A poke of the model output's ε̂ (part 0) or v (part 1) at one of `elements` of (B, C, ...). */
  const inModel = (part: 0 | 1, label: string, elements: number[]): Poke =>
    ({ input: 'modelOut', label, index: (u) => inModelOutput(elements[Math.floor(u * elements.length)]!, part, per) });
  const pokes: (string | Poke)[] = [
    inModel(0, 'ε̂ at t = 0, x0 = -1', atT0.filter((e) => c.x0[e]! < -0.999)),
    inModel(0, 'ε̂ at t = 0, x0 = 1', atT0.filter((e) => c.x0[e]! > 0.999)),
    inModel(0, 'ε̂ at t = 0, x0 in a bin', atT0.filter((e) => Math.abs(c.x0[e]!) <= 0.999)),
    inModel(0, 'ε̂ at t > 0', later), inModel(1, 'v at t = 0', atT0), inModel(1, 'v at t > 0', later),
    pokeAt('x0', 'x0 at t = 0', atT0), pokeAt('x0', 'x0 at t > 0', later),
    pokeAt('xt', 'xt at t = 0', atT0), pokeAt('xt', 'xt at t > 0', later),
    'noise',
  ];
  const f32 = { modelOut: outShape, x0: image, xt: image, noise: image, coefs: [B, 7] };
  const values = { modelOut: () => modelOutput(c), x0: () => c.x0, xt: () => xt, noise: () => c.noise, coefs: () => coefs };
  /** The (poked) inputs as a LossCase, ε̂ and v from the model output. */
  const caseOf = (x: Record<string, F64>): LossCase => ({ ...c, x0: x.x0!, noise: x.noise!, ...splitModelOutput(x.modelOut!, c.shape) });
  return [{
    f32, values, outputs: { loss: [1], terms: [2], vb: image }, poke: pokes,
    call: (a, t) => a.diffusionLossForward(t.loss!, t.terms!, t.vb!, t.modelOut!, t.x0!, t.xt!, t.noise!, t.coefs!),
    reference: (x) => {
      const k = caseOf(x);
      const r = refLoss(schedule, k, x.xt!, k.epsHat, k.v, k.epsHat);
      return { loss: [r.mse + r.vb], terms: [r.mse, r.vb], vb: r.vbs };
    },
  }, {
    f32: { ...f32, dloss: [1] }, values: { ...values, dloss: () => Float64Array.of(0.7) }, outputs: { dout: outShape },
    poke: [...pokes, 'dloss'],
    call: (a, t) => a.diffusionLossBackward(t.dout!, t.dloss!, t.modelOut!, t.x0!, t.xt!, t.noise!, t.coefs!),
    reference: (x) => {
      const k = caseOf(x);
      const g = refLossGradient(schedule, k, x.xt!, x.dloss![0]!);
      return { dout: modelOutput(k, g.dEpsHat, g.dv) };
    },
  }];
}

/**
 * One sampling step's cases on the real schedule (T = 1000), x (2, 3, 4, 5): ancestral with
 * learned σ, guidance and noise; DDIM with guidance, unclipped (as for latents); the last
 * ancestral step (t = 0), which adds no noise. Guided steps read the model output (2B, 2C, ...),
 * conditional rows first; the variance always comes from the conditional half (SPEC §4).
 */
function diffusionStepSpecs(): Spec[] {
  const schedule = refSchedule(numpyBetas), diffusion = new GaussianDiffusion();
  const B = 2, C = 3, H = 4, W = 5, per = C * H * W, image = [B, C, H, W];
  /** Element e of x (B, C, ...) in the model output: ε̂ or v, in the conditional (half 0) or unconditional rows. */
  const at = (e: number, part: 0 | 1, half: 0 | 1) => inModelOutput(half * B * per + e, part, per);
  const pokeOut = (label: string, part: 0 | 1, half: 0 | 1): Poke =>
    ({ input: 'modelOut', label, index: (u) => at(Math.floor(u * B * per), part, half) });
  const cases = [
    { index: 600, ddim: false, clip: true, scale: 4, noise: true },
    { index: 300, ddim: true, clip: false, scale: 1.5, noise: false },
    { index: 0, ddim: false, clip: true, scale: null, noise: false },
  ];
  return cases.map(({ index, ddim, clip, scale, noise }): Spec => {
    const step = stepScalars(diffusion, index, { sampler: ddim ? 'ddim' : 'ddpm', clipDenoised: clip, guidanceScale: scale ?? undefined,
      guidedChannels: scale === null ? 0 : C });
    const halves: [0 | 1, string][] = scale === null ? [[0, '']] : [[0, ' (conditional)'], [1, ' (unconditional)']];
    return {
      f32: { modelOut: [halves.length * B, 2 * C, H, W], xt: image, ...(noise ? { noise: image } : {}) },
      outputs: { xNext: image },
      poke: [...halves.flatMap(([half, name]) => [pokeOut(`ε̂${name}`, 0, half), pokeOut(`v${name}`, 1, half)]), 'xt', ...(noise ? ['noise'] : [])],
      call: (a, t) => a.diffusionStep(t.xNext!, t.modelOut!, t.xt!, t.noise ?? null, step),
      reference: (x) => ({ xNext: map(x.xt!, (xt, e) => {
        const out = x.modelOut!, cond = out[at(e, 0, 0)]!;
        // SPEC §4's guidance on the C noise channels, ε = ε_u + s·(ε_c − ε_u): an infinite ε_u
        // gives NaN (∞ − ∞), which clipping x̂₀ does not hide.
        const eps = scale === null ? cond : out[at(e, 0, 1)]! + scale * (cond - out[at(e, 0, 1)]!);
        return refStep(schedule, index, eps, out[at(e, 1, 0)]!, xt, noise ? x.noise![e]! : null, clip, ddim);
      }) }),
    };
  });
}

function specs(): Record<string, Spec[]> {
  const M = 37, N = 45, K = 70;     // GEMM tails in every dimension
  const R = 6, C = 80;              // rows, width: a ragged last vector at 16 and 8 lanes
  const B = 2, L = 9;               // batch, tokens for the per-sample ops
  const n = 100;                    // elementwise length
  const rowsOf = (x: F64, rows: number, cols: number, r: number) => x.subarray(r * cols, (r + 1) * cols);
  const adam = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.05, step: 3 };
  const ids = Int32Array.from([0, 4, 4, 8, 2, 7, 1, 1]);  // (B, 4): repeats, for scatter-add

  const layernormRef = (x: F64, w: F64, b: F64) => {
    const out = new Float64Array(R * C), mean = new Float64Array(R), rstd = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      const row = rowsOf(x, R, C, r);
      const mu = row.reduce((s, v) => s + v, 0) / C;
      const v = row.reduce((s, v) => s + (v - mu) ** 2, 0) / C;
      mean[r] = mu;
      rstd[r] = 1 / Math.sqrt(v + 1e-5);
      for (let c = 0; c < C; c++) out[r * C + c] = (row[c]! - mu) * rstd[r]! * w[c]! + b[c]!;
    }
    return { out, mean, rstd };
  };
  const modShape = [B, L, C], perSample = [B, C];
  const image = [3, 3, 5, 7], perImage = 105;  // per-sample ops: (B, C, H, W), ragged at 16 and 8 lanes

  return {
    matmul: [{
      f32: { a: [M, K], b: [K, N], bias: [N] },
      outputs: { out: [M, N] },
      poke: ['a', 'b', 'bias'],
      call: (a, t) => a.matmulForward(t.out!, t.a!, t.b!, t.bias!, false, false, false),
      reference: (x) => ({ out: matmulRef(x.a!, x.b!, x.bias!, M, N, K) }),
    }, {
      // Both operands transposed, batched (out (2, M, N) = Aᵀ·Bᵀ per batch).
      f32: { a: [2, K, M], b: [N, K] },
      outputs: { out: [2, M, N] },
      poke: ['a', 'b'],
      call: (a, t) => a.matmulForward(t.out!, t.a!, t.b!, null, true, true, false),
      reference: (x) => {
        const at = new Float64Array(2 * M * K);
        for (let s = 0; s < 2; s++) at.set(transpose(x.a!.subarray(s * K * M, (s + 1) * K * M), K, M), s * M * K);
        return { out: matmulRef(at, transpose(x.b!, N, K), null, M, N, K, 2) };
      },
    }, {
      f32: { a: [M, K], b: [K, N], dout: [M, N] },
      outputs: { da: [M, K], db: [K, N], dbias: [N] },
      poke: ['a', 'b', 'dout'],
      call: (a, t) => a.matmulBackward(t.da!, t.db!, t.dbias!, t.dout!, t.a!, t.b!, false, false),
      reference: (x) => ({
        da: matmulRef(x.dout!, transpose(x.b!, K, N), null, M, K, N),
        db: matmulRef(transpose(x.a!, M, K), x.dout!, null, K, N, M),
        dbias: sumRef(x.dout!, 1, M, N),
      }),
    }],

    // bf16 operands (rounded copies of the f32 inputs; non-finite values survive the rounding),
    // f32 outputs: the CPU's packed bf16 GEMM where it has one, else the widened f32 GEMM.
    'matmul bf16': [{
      f32: { a: [M, K], b: [N, K], bias: [N] },
      outputs: { out: [M, N] },
      poke: ['a', 'b', 'bias'],
      call: (a, t) => withBf16Copies(a, [t.a!, t.b!], ([a16, b16]) => a.matmulForward(t.out!, a16!, b16!, t.bias!, false, true, false)),
      reference: (x) => ({ out: matmulRef(x.a!, transpose(x.b!, N, K), x.bias!, M, N, K) }),
    }, {
      // Transposed A, batched over one shared B, accumulating: out (2, M, N) += Aᵀ·B per batch.
      f32: { a: [2, K, M], b: [K, N], out: [2, M, N] },
      poke: ['a', 'b', 'out'],
      call: (a, t) => withBf16Copies(a, [t.a!, t.b!], ([a16, b16]) => a.matmulForward(t.out!, a16!, b16!, null, true, false, true)),
      reference: (x) => {
        const at = new Float64Array(2 * M * K);
        for (let s = 0; s < 2; s++) at.set(transpose(x.a!.subarray(s * K * M, (s + 1) * K * M), K, M), s * M * K);
        const prod = matmulRef(at, x.b!, null, M, N, K, 2);
        return { out: prod.map((v, i) => v + x.out![i]!) };
      },
    }, {
      // da comes out bf16: copied back into an f32 output for the comparison.
      f32: { a: [M, K], b: [N, K], dout: [M, N] },
      outputs: { da: [M, K], db: [N, K], dbias: [N] },
      poke: ['a', 'b', 'dout'],
      call: (a, t) => withBf16Copies(a, [t.a!, t.b!, t.dout!], ([a16, b16, dout16]) => {
        const da16 = a.empty([M, K], 'bf16', t.a!.device);
        a.matmulBackward(da16, t.db!, t.dbias!, dout16!, a16!, b16!, false, true);
        a.copy(t.da!, da16);
        da16.dispose();
      }),
      reference: (x) => ({
        da: matmulRef(x.dout!, x.b!, null, M, K, N),
        db: matmulRef(transpose(x.dout!, M, N), x.a!, null, N, K, M),
        dbias: sumRef(x.dout!, 1, M, N),
      }),
    }],

    attention: ATTENTION_DIMS.flatMap((dims) => {
      const { B, L, H, D } = dims;
      return attentionSpecs(dims, (a, t) => a.attentionForward(t.out!, t.lse!, t.qkv!), (a, t) => {
        const out = a.empty([B, L, H, D], 'f32', t.qkv!.device), lse = a.empty([B, H, L], 'f32', t.qkv!.device);
        a.attentionForward(out, lse, t.qkv!);
        a.attentionBackward(t.dqkv!, t.dout!, t.qkv!, out, lse);
        out.dispose();
        lse.dispose();
      });
    }),

    // bf16 attention: the f32 inputs copied (rounded) to bf16, the bf16 kernels, their outputs
    // copied back to f32 (rounding normal values to bf16 changes no value's finiteness, so the
    // f32 reference holds). One more shape with B·H = 8 (each head one backward item) at D = 64.
    'attention bf16': [...ATTENTION_DIMS, { B: 2, L: 33, H: 4, D: 64 }].flatMap((dims) => {
      const { B, L, H, D } = dims;
      const qkvShape = [B, L, 3, H, D], outShape = [B, L, H, D];
      /** A bf16 copy of x, or a NaN-poisoned bf16 tensor of `shape`. */
      const bf16 = (a: NativeAddon, shape: number[], x?: NativeTensor) => {
        const r = a.fromArray(new Float32Array(prod(shape)).fill(Number.NaN), shape, 'bf16', x?.device ?? 'cpu');
        if (x) a.copy(r, x);
        return r;
      };
      /** The bf16 forward (and backward, given dout) on bf16 copies; outputs copied into the f32 ones given. */
      const run = (a: NativeAddon, t: Record<string, NativeTensor>) => {
        const qkv = bf16(a, qkvShape, t.qkv!), out = bf16(a, outShape), device = t.qkv!.device;
        const lse = t.lse ?? a.empty([B, H, L], 'f32', device);
        a.attentionForward(out, lse, qkv);
        const made = [qkv, out];
        if (t.out) a.copy(t.out, out);
        if (t.dqkv) {
          const dout = bf16(a, outShape, t.dout!), dqkv = bf16(a, qkvShape);
          a.attentionBackward(dqkv, dout, qkv, out, lse);
          a.copy(t.dqkv, dqkv);
          made.push(dout, dqkv);
        }
        if (!t.lse) made.push(lse);
        for (const x of made) x.dispose();
      };
      return attentionSpecs(dims, run, run);
    }),

    layernorm: [{
      f32: { x: [R, C], weight: [C], bias: [C] },
      outputs: { out: [R, C], mean: [R], rstd: [R] },
      poke: ['x', 'weight', 'bias'],
      call: (a, t) => a.layernormForward(t.out!, t.mean!, t.rstd!, t.x!, t.weight!, t.bias!, 1e-5),
      reference: (x) => layernormRef(x.x!, x.weight!, x.bias!),
    }, {
      f32: { x: [R, C], weight: [C], dout: [R, C] },
      outputs: { dx: [R, C], dweight: [C], dbias: [C] },
      poke: ['x', 'weight', 'dout'],
      call: (a, t) => {
        const dev = t.x!.device;
        const out = a.empty([R, C], 'f32', dev), mean = a.empty([R], 'f32', dev), rstd = a.empty([R], 'f32', dev);
        a.layernormForward(out, mean, rstd, t.x!, t.weight!, null, 1e-5);
        a.layernormBackward(t.dx!, t.dweight!, t.dbias!, t.dout!, t.x!, t.weight!, mean, rstd);
        for (const x of [out, mean, rstd]) x.dispose();
      },
      reference: (x) => {
        // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w; dw = Σ dout·x̂; db = Σ dout.
        const { mean, rstd } = layernormRef(x.x!, x.weight!, new Float64Array(C));
        const dx = new Float64Array(R * C), dweight = new Float64Array(C), dbias = new Float64Array(C);
        for (let r = 0; r < R; r++) {
          const xhat = map(rowsOf(x.x!, R, C, r), (v) => (v - mean[r]!) * rstd[r]!);
          const g = map(rowsOf(x.dout!, R, C, r), (v, c) => v * x.weight![c]!);
          const gMean = g.reduce((s, v) => s + v, 0) / C;
          const gxMean = g.reduce((s, v, c) => s + v * xhat[c]!, 0) / C;
          for (let c = 0; c < C; c++) {
            dx[r * C + c] = rstd[r]! * (g[c]! - gMean - xhat[c]! * gxMean);
            dweight[c] += x.dout![r * C + c]! * xhat[c]!;
            dbias[c] += x.dout![r * C + c]!;
          }
        }
        return { dx, dweight, dbias };
      },
    }],

    gelu: (['none', 'tanh'] as const).flatMap((form): Spec[] => {
      // The written-out definitions: x·Φ(x) and x·σ(2u), u = √(2/π)(x + 0.044715x³).
      const twoU = (v: number) => 2 * GELU_K * (v + 0.044715 * v ** 3);
      const f = form === 'none' ? (v: number) => v * cdf(v) : (v: number) => v * sigmoid(twoU(v));
      const df = form === 'none'
        ? (v: number) => cdf(v) + v * pdf(v)
        : (v: number) => {
          const s = sigmoid(twoU(v));
          return s + v * s * (1 - s) * 2 * GELU_K * (1 + 3 * 0.044715 * v * v);
        };
      return [{
        f32: { x: [n] }, outputs: { out: [n] }, poke: ['x'],
        call: (a, t) => a.geluForward(t.out!, t.x!, form),
        reference: (x) => ({ out: map(x.x!, f) }),
      }, {
        f32: { x: [n], dout: [n] }, outputs: { dx: [n] }, poke: ['x', 'dout'],
        call: (a, t) => a.geluBackward(t.dx!, t.dout!, t.x!, form),
        reference: (x) => ({ dx: map(x.x!, (v, i) => x.dout![i]! * df(v)) }),
      }];
    }),

    silu: [{
      f32: { x: [n] }, outputs: { out: [n] }, poke: ['x'],
      call: (a, t) => a.siluForward(t.out!, t.x!),
      reference: (x) => ({ out: map(x.x!, (v) => v * sigmoid(v)) }),
    }, {
      f32: { x: [n], dout: [n] }, outputs: { dx: [n] }, poke: ['x', 'dout'],
      call: (a, t) => a.siluBackward(t.dx!, t.dout!, t.x!),
      reference: (x) => ({ dx: map(x.x!, (v, i) => x.dout![i]! * (sigmoid(v) + v * sigmoid(v) * (1 - sigmoid(v)))) }),
    }],

    modulate: [{
      f32: { x: modShape, shift: perSample, scale: perSample }, outputs: { out: modShape }, poke: ['x', 'shift', 'scale'],
      call: (a, t) => a.modulateForward(t.out!, t.x!, t.shift!, t.scale!),
      reference: (x) => ({ out: map(x.x!, (v, i) => {
        const bc = Math.floor(i / (L * C)) * C + (i % C);
        return v * (1 + x.scale![bc]!) + x.shift![bc]!;
      }) }),
    }, {
      f32: { x: modShape, scale: perSample, dout: modShape },
      outputs: { dx: modShape, dshift: perSample, dscale: perSample },
      poke: ['x', 'scale', 'dout'],
      call: (a, t) => a.modulateBackward(t.dx!, t.dshift!, t.dscale!, t.dout!, t.x!, t.scale!),
      reference: (x) => ({
        dx: map(x.dout!, (g, i) => g * (1 + x.scale![Math.floor(i / (L * C)) * C + (i % C)]!)),
        dshift: sumRef(x.dout!, B, L, C),
        dscale: sumRef(map(x.dout!, (g, i) => g * x.x![i]!), B, L, C),
      }),
    }],

    'gated residual': [{
      f32: { x: modShape, y: modShape, gate: perSample }, outputs: { out: modShape }, poke: ['x', 'y', 'gate'],
      call: (a, t) => a.gatedResidualForward(t.out!, t.x!, t.y!, t.gate!),
      reference: (x) => ({ out: map(x.x!, (v, i) => v + x.gate![Math.floor(i / (L * C)) * C + (i % C)]! * x.y![i]!) }),
    }, {
      f32: { y: modShape, gate: perSample, dout: modShape }, outputs: { dy: modShape, dgate: perSample },
      poke: ['y', 'gate', 'dout'],
      call: (a, t) => a.gatedResidualBackward(t.dy!, t.dgate!, t.dout!, t.y!, t.gate!),
      reference: (x) => ({
        dy: map(x.dout!, (g, i) => g * x.gate![Math.floor(i / (L * C)) * C + (i % C)]!),
        dgate: sumRef(map(x.dout!, (g, i) => g * x.y![i]!), B, L, C),
      }),
    }],

    elementwise: [
      ...([[R, C], [C], [1]] as const).flatMap((bShape): Spec[] => {
        const nb = prod(bShape);
        return [{
          f32: { a: [R, C], b: [...bShape] }, outputs: { out: [R, C] }, poke: ['a', 'b'],
          call: (a, t) => a.add(t.out!, t.a!, t.b!),
          reference: (x) => ({ out: map(x.a!, (v, i) => v + x.b![i % nb]!) }),
        }, {
          f32: { a: [R, C], b: [...bShape] }, outputs: { out: [R, C] }, poke: ['a', 'b'],
          call: (a, t) => a.mul(t.out!, t.a!, t.b!),
          reference: (x) => ({ out: map(x.a!, (v, i) => v * x.b![i % nb]!) }),
        }];
      }),
      {
        f32: { x: [n] }, outputs: { out: [n] }, poke: ['x'],
        call: (a, t) => a.scale(t.out!, t.x!, -0.37),
        reference: (x) => ({ out: map(x.x!, (v) => v * -0.37) }),
      }, {
        f32: { y: [n], x: [n] }, poke: ['y', 'x'],
        call: (a, t) => a.axpy(t.y!, t.x!, 1.5),
        reference: (x) => ({ y: map(x.y!, (v, i) => v + 1.5 * x.x![i]!) }),
      },
    ],

    'softmax cross-entropy': [0, 0.1].map((smoothing): Spec => ({
      f32: { logits: [R, C] },
      i32: { targets: { shape: [R], values: Int32Array.from({ length: R }, (_, r) => (r * 29) % C) } },
      outputs: { losses: [R], dlogits: [R, C] },
      poke: ['logits'],
      call: (a, t) => a.softmaxCrossEntropy(t.losses!, t.dlogits!, t.logits!, t.targets!, smoothing, 1 / R),
      reference: (x) => {
        // loss = lse − (1−s)·x_y − (s/K)·Σ x (the smoothing term only when s > 0);
        // dlogits = (softmax − target)/N. A -Inf logit has probability 0, and its loss term
        // is infinite only when smoothing puts weight on it.
        const losses = new Float64Array(R), dlogits = new Float64Array(R * C);
        for (let r = 0; r < R; r++) {
          const row = rowsOf(x.logits!, R, C, r), y = (r * 29) % C;
          const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
          const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
          losses[r] = lse - (1 - smoothing) * row[y]! - (smoothing > 0 ? (smoothing / C) * row.reduce((s, v) => s + v, 0) : 0);
          for (let c = 0; c < C; c++)
            dlogits[r * C + c] = (Math.exp(row[c]! - lse) - (c === y ? 1 - smoothing : 0) - smoothing / C) / R;
        }
        return { losses, dlogits };
      },
    })),

    mse: [null, 'mask'].flatMap((masked): Spec[] => {
      const P = 12, tokens = B * L;
      // A mask of ones and zeros: tokens outside it are not part of the loss, whatever they hold.
      const values = masked ? { mask: (k: number) => Float64Array.from({ length: k }, (_, i) => (i % 3 === 1 ? 0 : 1)) } : undefined;
      const f32: Record<string, number[]> = { pred: [B, L, P], target: [B, L, P], ...(masked ? { mask: [B, L] } : {}) };
      const poke = ['pred', 'target', ...(masked ? ['mask'] : [])];
      const weightOf = (x: Record<string, F64>, tok: number) => (x.mask ? x.mask[tok]! : 1);
      const total = (x: Record<string, F64>) => Array.from({ length: tokens }, (_, k) => weightOf(x, k)).reduce((s, w) => s + w, 0);
      const lossRef = (x: Record<string, F64>) => {
        let s = 0;
        for (let k = 0; k < tokens; k++) {
          if (weightOf(x, k) === 0) continue;
          let e = 0;
          for (let p = 0; p < P; p++) e += (x.pred![k * P + p]! - x.target![k * P + p]!) ** 2;
          s += (weightOf(x, k) * e) / P;
        }
        return s / total(x);
      };
      return [{
        f32, values, outputs: { loss: [1] }, poke,
        call: (a, t) => a.mseForward(t.loss!, t.pred!, t.target!, t.mask ?? null),
        reference: (x) => ({ loss: [lossRef(x)] }),
      }, {
        f32: { ...f32, dloss: [1] }, values, outputs: { dpred: [B, L, P] }, poke: [...poke, 'dloss'],
        call: (a, t) => a.mseBackward(t.dpred!, t.dloss!, t.pred!, t.target!, t.mask ?? null),
        reference: (x) => ({
          dpred: map(x.pred!, (v, i) => {
            const k = Math.floor(i / P), w = weightOf(x, k);
            return w === 0 ? 0 : (x.dloss![0]! * 2 * w * (v - x.target![i]!)) / (total(x) * P);
          }),
        }),
      }];
    }),

    reductions: [1, 2].flatMap((axis) => [false, true].flatMap((mean): Spec[] => {
      const shape = [3, 50, 7];
      const outer = axis === 1 ? 3 : 150, len = axis === 1 ? 50 : 7, inner = axis === 1 ? 7 : 1;
      const outShape = shape.filter((_, i) => i !== axis);
      return [{
        f32: { x: shape }, outputs: { out: outShape }, poke: ['x'],
        call: (a, t) => a.sumForward(t.out!, t.x!, axis, mean),
        reference: (x) => ({ out: sumRef(x.x!, outer, len, inner, mean) }),
      }, {
        f32: { dout: outShape }, outputs: { dx: shape }, poke: ['dout'],
        call: (a, t) => a.sumBackward(t.dx!, t.dout!, axis, mean),
        reference: (x) => ({ dx: Float64Array.from({ length: 3 * 50 * 7 }, (_, i) =>
          x.dout![Math.floor(i / (len * inner)) * inner + (i % inner)]! / (mean ? len : 1)) }),
      }];
    })),

    'tokens and permute': [{
      f32: { x: [B, L, C] }, i32: { ids: { shape: [B, 4], values: ids } }, outputs: { out: [B, 4, C] }, poke: ['x'],
      call: (a, t) => a.gatherTokens(t.out!, t.x!, t.ids!),
      reference: (x) => ({ out: Float64Array.from({ length: B * 4 * C }, (_, i) => {
        const b = Math.floor(i / (4 * C)), k = Math.floor(i / C) % 4;
        return x.x![(b * L + ids[b * 4 + k]!) * C + (i % C)]!;
      }) }),
    }, {
      f32: { out: [B, L, C], src: [B, 4, C] }, i32: { ids: { shape: [B, 4], values: ids } }, poke: ['out', 'src'],
      call: (a, t) => a.scatterAddTokens(t.out!, t.src!, t.ids!),
      reference: (x) => {
        const out = Float64Array.from(x.out!);
        for (let b = 0; b < B; b++)
          for (let k = 0; k < 4; k++)
            for (let c = 0; c < C; c++) out[(b * L + ids[b * 4 + k]!) * C + c] += x.src![(b * 4 + k) * C + c]!;
        return { out };
      },
    }, {
      f32: { a: [1, 2, C], b: [B, L, C] }, outputs: { out: [B, L + 2, C] }, poke: ['a', 'b'],
      call: (a, t) => a.concatTokens(t.out!, t.a!, t.b!),
      reference: (x) => ({ out: Float64Array.from({ length: B * (L + 2) * C }, (_, i) => {
        const b = Math.floor(i / ((L + 2) * C)), l = Math.floor(i / C) % (L + 2);
        return l < 2 ? x.a![l * C + (i % C)]! : x.b![(b * L + l - 2) * C + (i % C)]!;
      }) }),
    }, {
      f32: { x: [B, L, C] }, outputs: { out: [B, 5, C] }, poke: ['x'],
      call: (a, t) => a.sliceTokens(t.out!, t.x!, 3),
      reference: (x) => ({ out: Float64Array.from({ length: B * 5 * C }, (_, i) => {
        const b = Math.floor(i / (5 * C)), l = Math.floor(i / C) % 5;
        return x.x![(b * L + l + 3) * C + (i % C)]!;
      }) }),
    }, {
      f32: { dout: [B, 5, C] }, outputs: { dx: [B, L, C] }, poke: ['dout'],
      call: (a, t) => a.sliceTokensBackward(t.dx!, t.dout!, 3),
      reference: (x) => ({ dx: Float64Array.from({ length: B * L * C }, (_, i) => {
        const b = Math.floor(i / (L * C)), l = Math.floor(i / C) % L;
        return l >= 3 && l < 8 ? x.dout![(b * 5 + l - 3) * C + (i % C)]! : 0;
      }) }),
    }, {
      f32: { x: [B, L, C] }, outputs: { out: [C, B, L] }, poke: ['x'],
      call: (a, t) => a.permute(t.out!, t.x!, [2, 0, 1]),
      reference: (x) => ({ out: transpose(x.x!, B * L, C) }),
    }],

    adamw: [{
      f32: { param: [n], grad: [n], m: [n], v: [n] },
      values: { v: (k) => Float64Array.from(randomNormal(k), (x) => x * x) },  // v ≥ 0
      poke: ['param', 'grad', 'm', 'v'],
      call: (a, t) => a.adamw(t.param!, t.grad!, t.m!, t.v!, adam.lr, adam.beta1, adam.beta2, adam.eps, adam.wd, adam.step),
      reference: (x) => {
        const bc1 = 1 - adam.beta1 ** adam.step, bc2 = 1 - adam.beta2 ** adam.step;
        const m = map(x.m!, (v, i) => adam.beta1 * v + (1 - adam.beta1) * x.grad![i]!);
        const v = map(x.v!, (v, i) => adam.beta2 * v + (1 - adam.beta2) * x.grad![i]! ** 2);
        const param = map(x.param!, (p, i) => p * (1 - adam.lr * adam.wd) - (adam.lr * m[i]! / bc1) / (Math.sqrt(v[i]! / bc2) + adam.eps));
        return { param, m, v };
      },
    }],

    'grad norm': [{
      f32: { a: [n], b: [R, C] }, poke: ['a', 'b'],
      call: (a, t) => a.gradNorm([t.a!, t.b!]),
      reference: (x) => ({ result: Math.sqrt([...x.a!, ...x.b!].reduce((s, v) => s + v * v, 0)) }),
    }],

    cast: [{
      f32: { x: [n] }, poke: ['x'],
      call: (a, t) => {
        const h = a.empty([n], 'bf16', t.x!.device);
        a.copy(h, t.x!);
        a.copy(t.x!, h);  // back into x: compared as 'x'
        h.dispose();
      },
      reference: (x) => ({ x: x.x! }),
    }],

    'per-sample axpby': [true, false].map((withY): Spec => ({
      f32: { x: image, a: [3], ...(withY ? { y: image, c: [3] } : {}) },
      outputs: { out: image },
      poke: withY ? ['x', 'y', 'a', 'c'] : ['x', 'a'],
      call: (a, t) => a.perSampleAxpby(t.out!, t.x!, t.y ?? null, t.a!, t.c ?? null),
      reference: (x) => ({ out: map(x.x!, (v, i) => {
        const b = Math.floor(i / perImage);
        return withY ? x.a![b]! * v + x.c![b]! * x.y![i]! : x.a![b]! * v;
      }) }),
    })),

    'diffusion loss': diffusionLossSpecs(),

    'diffusion step': diffusionStepSpecs(),
  };
}

// ---- running ------------------------------------------------------------------------------

/** Each op's cases on `device`: per poked input, NaN, +Inf and -Inf one at a time, then together. */
export function runNonFiniteCases(device: Device, only?: string[]): CaseResult[] {
  const a = native();
  const results: CaseResult[] = [];
  for (const [op, list] of Object.entries(specs())) {
    if (only && !only.includes(op)) continue;
    const result: CaseResult = { op, cases: 0, failures: [] };
    list.forEach((spec, s) => {
      const pokes = spec.poke.map((x): Poke => (typeof x === 'string'
        ? { input: x, label: x, index: (u) => Math.floor(u * prod(spec.f32[x]!)) } : x));
      const placements: { poke: Poke | null; values: readonly number[] }[] = pokes.length
        ? pokes.flatMap((poke) => [...NON_FINITE.map((v) => ({ poke, values: [v] })), { poke, values: NON_FINITE }])
        : [{ poke: null, values: [] }];
      for (const [p, { poke, values }] of placements.entries()) {
        const pick = rng(1000 * s + p + 1);
        const inputs: Record<string, F64> = {};
        for (const [name, shape] of Object.entries(spec.f32)) {
          const size = prod(shape);
          const x = spec.values?.[name]?.(size) ?? randomNormal(size);
          inputs[name] = Float64Array.from(Float32Array.from(x));
        }
        const where: string[] = [];
        if (poke) {
          const x = inputs[poke.input]!;
          for (const v of values) {
            const i = poke.index(pick());
            x[i] = v;
            where.push(`${poke.label} (${poke.input}[${i}])=${v}`);
          }
        }
        const tensors: Record<string, NativeTensor> = {};
        for (const [name, shape] of Object.entries(spec.f32)) tensors[name] = a.fromArray(Float32Array.from(inputs[name]!), shape, 'f32', device);
        for (const [name, { shape, values: v }] of Object.entries(spec.i32 ?? {})) tensors[name] = a.fromArray(v, shape, 'i32', device);
        for (const [name, shape] of Object.entries(spec.outputs ?? {}))
          tensors[name] = a.fromArray(new Float32Array(prod(shape)).fill(Number.NaN), shape, 'f32', device);
        try {
          const returned = spec.call(a, tensors);
          const expected = spec.reference(inputs);
          for (const [name, ref] of Object.entries(expected)) {
            const got = name === 'result' ? [returned as number] : tensors[name]!.toArray();
            const { count, first } = finitenessMismatches(got, typeof ref === 'number' ? [ref] : ref);
            if (count) result.failures.push(`${op} #${s} ${where.join(', ') || '(scalar argument)'}: '${name}' ${count}/${got.length} differ in finiteness: ${first.slice(0, 4).join('; ')}`);
          }
        } finally {
          for (const x of Object.values(tensors)) x.dispose();
        }
        result.cases++;
      }
    });
    results.push(result);
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const device = (process.env.PIT_DEVICE ?? 'cpu') as Device;
  const info = native().buildInfo();
  const results = runNonFiniteCases(device, process.argv.slice(2).length ? process.argv.slice(2) : undefined);
  process.stdout.write(JSON.stringify({ backend: selectBackend().backend, cpuIsa: info.cpuIsa, results }) + '\n');
}
