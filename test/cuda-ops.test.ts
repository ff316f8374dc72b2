// Every op of the CUDA op table against the CPU op on the same fresh random inputs, with
// NaN-poisoned outputs on both sides, at token counts L = 1, 97, 1025, 4096 and widths
// 16, 32, 64, 128 (DESIGN: one op table, every backend). f32 ops must agree within 1e-5
// relative (plus a small absolute floor for values near zero); integer-valued and copy ops
// exactly; sums over K terms within reductionTolerance(K). Runs only where the CUDA addon sees
// a GPU; elsewhere every test is skipped.
import test, { type ExecutionContext } from 'ava';
import { GaussianDiffusion, lossCoefficients, stepScalars } from '../lib/index.js';
import { native, selectBackend, type NativeTensor } from '../lib/native.js';
import { randomNormal, rng } from './helpers.js';
import { runNonFiniteCases } from './nonfinite-cases.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU op tests skipped: ${selectBackend().reasons.join('; ')}`);

type Device = 'cpu' | 'cuda';
type Init = { shape: number[]; values: Float32Array | Int32Array; poison?: boolean };

/** Random f32 values (normal), or i32 in [0, max). */
const f32 = (shape: number[], std = 1): Init => ({ shape, values: Float32Array.from(randomNormal(shape.reduce((a, b) => a * b, 1), std)) });
const i32 = (shape: number[], max: number, seed = 7): Init => {
  const r = rng(seed);
  return { shape, values: Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(r() * max)) };
};
/** An output: NaN-filled before the op, so an element the op forgets to write shows up. */
const out = (shape: number[]): Init => ({ shape, values: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), poison: true });

interface Case {
  /** Tensors by name; outputs are poisoned. */
  tensors: Record<string, Init>;
  /** Calls the op with the tensors of one device. */
  call: (a: ReturnType<typeof native>, t: Record<string, NativeTensor>) => unknown;
  /** Names compared after the call (default: every poisoned tensor). */
  compare?: string[];
  rtol?: number;
  atol?: number;
}

function materialise(inits: Record<string, Init>, device: Device): Record<string, NativeTensor> {
  const a = native();
  return Object.fromEntries(Object.entries(inits).map(([name, init]) => [name,
    a.fromArray(init.values, init.shape, init.values instanceof Int32Array ? 'i32' : 'f32', device)]));
}

function parity(t: ExecutionContext, label: string, c: Case): void {
  const cpu = materialise(c.tensors, 'cpu'), cuda = materialise(c.tensors, 'cuda');
  const a = native();
  const r1 = c.call(a, cpu), r2 = c.call(a, cuda);
  const rtol = c.rtol ?? 1e-5, atol = c.atol ?? 1e-6;
  if (typeof r1 === 'number') {
    t.true(Math.abs((r2 as number) - r1) <= atol + rtol * Math.abs(r1), `${label}: ${r2} vs ${r1}`);
  }
  const names = c.compare ?? Object.entries(c.tensors).filter(([, i]) => i.poison).map(([n]) => n);
  for (const name of names) {
    const x = cpu[name]!.toArray(), y = cuda[name]!.toArray();
    let worst = 0, at = -1;
    for (let i = 0; i < x.length; i++) {
      const err = Math.abs(y[i]! - x[i]!) - rtol * Math.abs(x[i]!);
      if (!(err <= atol) && (Number.isNaN(err) ? !(Number.isNaN(x[i]!) && Number.isNaN(y[i]!)) : true)) {
        if (Number.isNaN(err) || err > worst) (worst = Number.isNaN(err) ? Infinity : err), (at = i);
      }
    }
    t.is(at, -1, `${label}: '${name}' differs at ${at}: cuda ${y[at]} vs cpu ${x[at]}`);
  }
  for (const x of [...Object.values(cpu), ...Object.values(cuda)]) x.dispose();
}

/**
 * The absolute tolerance of a sum of K unit-variance f32 terms taken in two different orders.
 * Accumulating them one by one, the partial sums grow like √k and each addition rounds by
 * ~2^-24 of them, so the rounding errors add up to a random walk of std ≈ 2^-24·K/√2: the first
 * GPU run (H200, 2026-12-04) measured 1.4e-4 on a weight gradient summed over K = 4096 rows and
 * 1.9e-5 on a sum over 1,025 tokens, both outside a fixed 1e-4 / 1e-5 while the kernels were
 * right. 4·2^-24·K allows ~6 std; a wrong kernel is off by O(1).
 */
const reductionTolerance = (K: number) => 4 * 2 ** -24 * K;

const Ls = [1, 97, 1025, 4096];
const Cs = [16, 32, 64, 128];
/** (B, L, C) shapes covering every L and C without the full product at L = 4096. */
const tokenShapes = Ls.flatMap((L) => Cs.map((C) => [L >= 1025 ? 1 : 3, L, C])).filter(([, L, C]) => L! < 4096 || C === 64);

gpuTest('elementwise: add, mul (broadcast and scalar), scale, axpy, fill', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const s = [B!, L!, C!];
    parity(t, `add ${s}`, { tensors: { o: out(s), a: f32(s), b: f32(s) }, call: (a, x) => a.add(x.o!, x.a!, x.b!) });
    parity(t, `add bias ${s}`, { tensors: { o: out(s), a: f32(s), b: f32([C!]) }, call: (a, x) => a.add(x.o!, x.a!, x.b!) });
    parity(t, `mul scalar ${s}`, { tensors: { o: out(s), a: f32(s), b: f32([1]) }, call: (a, x) => a.mul(x.o!, x.a!, x.b!) });
    parity(t, `scale ${s}`, { tensors: { o: out(s), x: f32(s) }, call: (a, x) => a.scale(x.o!, x.x!, -0.37) });
    parity(t, `axpy ${s}`, { tensors: { y: f32(s), x: f32(s) }, call: (a, x) => a.axpy(x.y!, x.x!, 1.5), compare: ['y'] });
    parity(t, `fill ${s}`, { tensors: { o: out(s) }, call: (a, x) => a.fill(x.o!, 2.5) });
  }
});

gpuTest('activations: gelu (erf, tanh) and silu, forward and backward', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const s = [B!, L!, 4 * C!];
    for (const form of ['none', 'tanh'] as const) {
      parity(t, `gelu ${form} ${s}`, { tensors: { o: out(s), x: f32(s, 3) }, call: (a, x) => a.geluForward(x.o!, x.x!, form) });
      parity(t, `gelu ${form} backward ${s}`, { tensors: { dx: out(s), g: f32(s), x: f32(s, 3) }, call: (a, x) => a.geluBackward(x.dx!, x.g!, x.x!, form) });
    }
    parity(t, `silu ${s}`, { tensors: { o: out(s), x: f32(s, 3) }, call: (a, x) => a.siluForward(x.o!, x.x!) });
    parity(t, `silu backward ${s}`, { tensors: { dx: out(s), g: f32(s), x: f32(s, 3) }, call: (a, x) => a.siluBackward(x.dx!, x.g!, x.x!) });
  }
});

gpuTest('layernorm forward and backward, affine and not', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const N = B! * L!, s = [N, C!];
    for (const affine of [true, false]) {
      const w: Record<string, Init> = affine ? { w: f32([C!]), b: f32([C!]) } : {};
      parity(t, `layernorm ${s} affine=${affine}`, {
        tensors: { o: out(s), mean: out([N]), rstd: out([N]), x: f32(s, 2), ...w },
        call: (a, x) => a.layernormForward(x.o!, x.mean!, x.rstd!, x.x!, x.w ?? null, x.b ?? null, 1e-6),
      });
      parity(t, `layernorm backward ${s} affine=${affine}`, {
        tensors: { dx: out(s), dw: out([C!]), db: out([C!]), g: f32(s), x: f32(s, 2), mean: out([N]), rstd: out([N]), o: out(s), ...w },
        call: (a, x) => {
          a.layernormForward(x.o!, x.mean!, x.rstd!, x.x!, x.w ?? null, x.b ?? null, 1e-6);
          a.layernormBackward(x.dx!, affine ? x.dw! : null, affine ? x.db! : null, x.g!, x.x!, x.w ?? null, x.mean!, x.rstd!);
        },
        compare: affine ? ['dx', 'dw', 'db'] : ['dx'],
        rtol: 1e-4, atol: 1e-5, // dweight/dbias sum over N rows in another order
      });
    }
  }
});

gpuTest('modulate and gated residual, forward and backward', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const s = [B!, L!, C!], bc = [B!, C!];
    parity(t, `modulate ${s}`, { tensors: { o: out(s), x: f32(s), shift: f32(bc), scale: f32(bc) }, call: (a, x) => a.modulateForward(x.o!, x.x!, x.shift!, x.scale!) });
    parity(t, `modulate backward ${s}`, {
      tensors: { dx: out(s), dshift: out(bc), dscale: out(bc), g: f32(s), x: f32(s), scale: f32(bc) },
      call: (a, x) => a.modulateBackward(x.dx!, x.dshift!, x.dscale!, x.g!, x.x!, x.scale!), rtol: 1e-4, atol: 1e-5,
    });
    parity(t, `gated residual ${s}`, { tensors: { o: out(s), x: f32(s), y: f32(s), gate: f32(bc) }, call: (a, x) => a.gatedResidualForward(x.o!, x.x!, x.y!, x.gate!) });
    parity(t, `gated residual backward ${s}`, {
      tensors: { dy: out(s), dgate: out(bc), g: f32(s), y: f32(s), gate: f32(bc) },
      call: (a, x) => a.gatedResidualBackward(x.dy!, x.dgate!, x.g!, x.y!, x.gate!), rtol: 1e-4, atol: 1e-5,
    });
  }
});

gpuTest('losses: softmax cross-entropy (with smoothing and dlogits) and masked mse', (t) => {
  for (const [N, K] of [[1, 10], [97, 10], [1025, 100], [4096, 1000]] as const) {
    parity(t, `softmaxCrossEntropy ${N}x${K}`, {
      tensors: { losses: out([N]), dlogits: out([N, K]), logits: f32([N, K], 4), targets: i32([N], K) },
      call: (a, x) => a.softmaxCrossEntropy(x.losses!, x.dlogits!, x.logits!, x.targets!, 0.1, 1 / N),
    });
  }
  for (const [B, L, P] of [[2, 1, 3], [2, 97, 16], [1, 1025, 48], [1, 4096, 4]] as const) {
    const s = [B, L, P];
    for (const masked of [false, true]) {
      const mask: Record<string, Init> = masked ? { mask: { shape: [B, L], values: Float32Array.from({ length: B * L }, (_, i) => (i % 4 === 0 ? 0 : 1)) } } : {};
      parity(t, `mse ${s} masked=${masked}`, {
        tensors: { loss: out([1]), pred: f32(s), target: f32(s), ...mask }, call: (a, x) => a.mseForward(x.loss!, x.pred!, x.target!, x.mask ?? null), rtol: 1e-5,
      });
      parity(t, `mse backward ${s} masked=${masked}`, {
        tensors: { dpred: out(s), dloss: f32([1]), pred: f32(s), target: f32(s), ...mask },
        call: (a, x) => a.mseBackward(x.dpred!, x.dloss!, x.pred!, x.target!, x.mask ?? null),
      });
    }
  }
});

gpuTest('diffusion: perSampleAxpby, the hybrid loss (loss, terms, vb; backward) and one sampling step (guided, DDIM, fixed σ)', (t) => {
  const diffusion = new GaussianDiffusion(), spaced = diffusion.respace(250);
  // Odd element counts (no float4 path), a 32×32 latent, a single pixel; t = 0 and t = 999 in the batch.
  for (const [B, C, H, W] of [[3, 3, 7, 11], [2, 4, 32, 32], [2, 1, 1, 1]] as const) {
    const s = [B, C, H, W], so = [B, 2 * C, H, W], per = C * H * W;
    const ts = Array.from({ length: B }, (_, b) => [0, 999, 417][b % 3]!);
    const coefs: Init = { shape: [B, 7], values: lossCoefficients(diffusion, ts) };
    const v: Init = { shape: so, values: Float32Array.from(randomNormal(2 * B * per, 0.5)) };  // ε̂ and v
    parity(t, `perSampleAxpby ${s}`, {
      tensors: { o: out(s), x: f32(s), y: f32(s), a: f32([B]), c: f32([B]) }, call: (a, x) => a.perSampleAxpby(x.o!, x.x!, x.y!, x.a!, x.c!),
    });
    parity(t, `perSampleAxpby without y ${s}`, { tensors: { o: out(s), x: f32(s), a: f32([B]) }, call: (a, x) => a.perSampleAxpby(x.o!, x.x!, null, x.a!, null) });
    // GPU expf/logf and fused multiply-adds differ in the last bits, and x̂₀ at t = 999 amplifies
    // x_t's rounding by √(1/ᾱ) ≈ 157: 1e-4 relative.
    parity(t, `diffusionLossForward ${s}`, {
      tensors: { loss: out([1]), terms: out([2]), vb: out(s), m: v, x0: f32(s, 0.6), xt: f32(s), noise: f32(s), coefs },
      call: (a, x) => a.diffusionLossForward(x.loss!, x.terms!, x.vb!, x.m!, x.x0!, x.xt!, x.noise!, x.coefs!), rtol: 1e-4, atol: 1e-4,
    });
    parity(t, `diffusionLossBackward ${s}`, {
      tensors: { d: out(so), dloss: f32([1]), m: v, x0: f32(s, 0.6), xt: f32(s), noise: f32(s), coefs },
      call: (a, x) => a.diffusionLossBackward(x.d!, x.dloss!, x.m!, x.x0!, x.xt!, x.noise!, x.coefs!), rtol: 1e-4, atol: 1e-6,
    });
    for (const [label, i, options] of [['guided ancestral', 100, { guidanceScale: 4, guidedChannels: C }], ['guided, DiT slice', 249, { guidanceScale: 1.5, guidedChannels: Math.min(3, 2 * C) }],
      ['DDIM', 3, { sampler: 'ddim' }], ['last step', 0, {}]] as const) {
      const guided = 'guidanceScale' in options;
      const noise = i > 0 && !('sampler' in options);
      parity(t, `diffusionStep ${label} ${s}`, {
        tensors: { o: out(s), m: f32([guided ? 2 * B : B, 2 * C, H, W]), x: f32(s), ...(noise ? { z: f32(s) } : {}) },
        call: (a, x) => a.diffusionStep(x.o!, x.m!, x.x!, x.z ?? null, stepScalars(spaced, i, options)), rtol: 1e-5, atol: 1e-5,
      });
    }
    parity(t, `diffusionStep fixed σ ${s}`, {
      tensors: { o: out(s), m: f32(s), x: f32(s), z: f32(s) },
      call: (a, x) => a.diffusionStep(x.o!, x.m!, x.x!, x.z!, stepScalars(spaced, 17, { learnedSigma: false })), rtol: 1e-5, atol: 1e-5,
    });
  }
});

gpuTest('reductions: sum and mean over each axis, forward and backward; gradNorm', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const s = [B!, L!, C!];
    for (const axis of [0, 1, 2]) {
      const reduced = s.filter((_, i) => i !== axis);
      for (const mean of [false, true]) {
        // A mean divides the sum (and its rounding error) by K.
        const atol = Math.max(1e-5, reductionTolerance(s[axis]!) / (mean ? s[axis]! : 1));
        parity(t, `sum ${s} axis ${axis} mean=${mean}`, { tensors: { o: out(reduced), x: f32(s) }, call: (a, x) => a.sumForward(x.o!, x.x!, axis, mean), rtol: 1e-5, atol });
        parity(t, `sum backward ${s} axis ${axis} mean=${mean}`, { tensors: { dx: out(s), g: f32(reduced) }, call: (a, x) => a.sumBackward(x.dx!, x.g!, axis, mean) });
      }
    }
    parity(t, `gradNorm ${s}`, { tensors: { a: f32(s), b: f32([C!]) }, call: (a, x) => a.gradNorm([x.a!, x.b!]), compare: [], rtol: 1e-12, atol: 0 });
  }
});

gpuTest('tokens: gather, scatter-add (repeated ids), concat (shared cls), slice and its backward; permute', (t) => {
  for (const [B, L, C] of tokenShapes) {
    const s = [B!, L!, C!], K = Math.max(1, Math.floor(L! / 4));
    parity(t, `gather ${s} K=${K}`, { tensors: { o: out([B!, K, C!]), x: f32(s), ids: i32([B!, K], L!) }, call: (a, x) => a.gatherTokens(x.o!, x.x!, x.ids!) });
    parity(t, `scatterAdd ${s} K=${K}`, {
      tensors: { o: f32(s), src: f32([B!, K, C!]), ids: i32([B!, K], Math.max(1, Math.floor(L! / 8))) },
      call: (a, x) => a.scatterAddTokens(x.o!, x.src!, x.ids!), compare: ['o'], rtol: 1e-6,
    });
    parity(t, `concat cls ${s}`, { tensors: { o: out([B!, L! + 1, C!]), a: f32([1, 1, C!]), b: f32(s) }, call: (a, x) => a.concatTokens(x.o!, x.a!, x.b!) });
    const start = Math.floor(L! / 3), Lo = L! - start;
    parity(t, `slice ${s}`, { tensors: { o: out([B!, Lo, C!]), x: f32(s) }, call: (a, x) => a.sliceTokens(x.o!, x.x!, start) });
    parity(t, `slice backward ${s}`, { tensors: { dx: out(s), g: f32([B!, Lo, C!]) }, call: (a, x) => a.sliceTokensBackward(x.dx!, x.g!, start) });
    parity(t, `permute ${s}`, { tensors: { o: out([C!, B!, L!]), x: f32(s) }, call: (a, x) => a.permute(x.o!, x.x!, [2, 0, 1]) });
  }
  // The patchify permute of ViT/2: (B, C, h, p, w, p) -> (B, h, w, C, p, p).
  parity(t, 'permute 6-d', { tensors: { o: out([2, 16, 16, 3, 2, 2]), x: f32([2, 3, 16, 2, 16, 2]) }, call: (a, x) => a.permute(x.o!, x.x!, [0, 2, 4, 1, 3, 5]) });
});

gpuTest('adamw: one and several steps in place, with and without weight decay', (t) => {
  for (const n of [1, 97, 1025 * 64, 4096 * 128]) {
    for (const wd of [0, 0.05]) {
      parity(t, `adamw n=${n} wd=${wd}`, {
        tensors: { p: f32([n]), g: f32([n]), m: f32([n], 0.1), v: { shape: [n], values: Float32Array.from(randomNormal(n), (x) => x * x) } },
        call: (a, x) => {
          for (let step = 1; step <= 3; step++) a.adamw(x.p!, x.g!, x.m!, x.v!, 1e-3, 0.9, 0.95, 1e-8, wd, step);
        },
        compare: ['p', 'm', 'v'],
      });
    }
  }
});

gpuTest('bf16 casts on the GPU round exactly as on the CPU (copy f32 <-> bf16)', (t) => {
  const a = native();
  const values = Float32Array.from([...randomNormal(4093, 100), 0, -0, Infinity, -Infinity, NaN, 1e-40, 3.3895314e38]);
  const n = values.length;
  const convert = (device: Device) => {
    const src = a.fromArray(values, [n], 'f32', device);
    const half = a.empty([n], 'bf16', device), back = a.empty([n], 'f32', device);
    a.copy(half, src);
    a.copy(back, half);
    const r = back.toArray();
    for (const x of [src, half, back]) x.dispose();
    return r;
  };
  const cpu = convert('cpu'), cuda = convert('cuda');
  const bits = (x: Float32Array | Int32Array) => Array.from(new Uint32Array(Float32Array.from(x).buffer));
  t.deepEqual(bits(cuda), bits(cpu));
});

gpuTest('Philox on the GPU: the CPU stream, uniform bit for bit, normal to the last bits of logf/sincosf', (t) => {
  const a = native();
  for (const [n, seed, offset] of [[1, 0, 0], [1027, 42, 7], [1 << 20, 2 ** 40 + 3, 2 ** 33]] as const) {
    for (const kind of ['uniform', 'normal'] as const) {
      const draw = (device: Device) => {
        const x = a.empty([n], 'f32', device);
        a.randomFill(x, kind, seed, offset);
        const r = x.toArray();
        x.dispose();
        return r;
      };
      const cpu = draw('cpu'), cuda = draw('cuda');
      if (kind === 'uniform') t.deepEqual(Array.from(cuda), Array.from(cpu), `uniform n=${n}`);
      else {
        let worst = 0;
        for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(cuda[i]! - cpu[i]!) / (1e-3 + Math.abs(cpu[i]!)));
        t.true(worst < 1e-5, `normal n=${n}: worst relative difference ${worst}`);
      }
    }
  }
});

gpuTest('matmul (f32 path): every transpose, a shared and a batched B, bias, accumulate; backward', (t) => {
  for (const [M, N, K] of [[1, 48, 16], [97, 96, 32], [1025, 192, 64], [4096, 128, 128], [300, 64, 256]] as const) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const aShape = transA ? [K, M] : [M, K], bShape = transB ? [N, K] : [K, N];
      parity(t, `matmul ${M}x${N}x${K} tA=${transA} tB=${transB}`, {
        tensors: { o: out([M, N]), a: f32(aShape), b: f32(bShape), bias: f32([N]) },
        call: (a, x) => a.matmulForward(x.o!, x.a!, x.b!, x.bias!, transA, transB, false), rtol: 1e-4, atol: 1e-4,
      });
      parity(t, `matmul backward ${M}x${N}x${K} tA=${transA} tB=${transB}`, {
        tensors: { da: out(aShape), db: out(bShape), dbias: out([N]), g: f32([M, N]), a: f32(aShape), b: f32(bShape) },
        // da sums over N terms, db and dbias over M.
        call: (a, x) => a.matmulBackward(x.da!, x.db!, x.dbias!, x.g!, x.a!, x.b!, transA, transB), rtol: 1e-4,
        atol: Math.max(1e-4, reductionTolerance(Math.max(M, N))),
      });
    }
  }
  // Batched: (4, 97, 32) · (4, 32, 48), and accumulate into an existing output.
  parity(t, 'matmul batched + accumulate', {
    tensors: { o: f32([4, 97, 48]), a: f32([4, 97, 32]), b: f32([4, 32, 48]) },
    call: (a, x) => a.matmulForward(x.o!, x.a!, x.b!, null, false, false, true), compare: ['o'], rtol: 1e-4, atol: 1e-4,
  });
  parity(t, 'matmul batched backward', {
    tensors: { da: out([4, 97, 32]), db: out([4, 32, 48]), g: f32([4, 97, 48]), a: f32([4, 97, 32]), b: f32([4, 32, 48]) },
    call: (a, x) => a.matmulBackward(x.da!, x.db!, null, x.g!, x.a!, x.b!, false, false), rtol: 1e-4, atol: 1e-4,
  });
});

gpuTest('attention (f32 path): forward (out, lse) and backward at L = 1, 97, 1025, 4096 and D = 16, 32, 64, 128', (t) => {
  const shapes: [number, number, number, number][] = [];
  for (const L of [1, 97, 1025]) for (const D of [16, 32, 64, 128]) shapes.push([2, L, 3, D]);
  shapes.push([1, 4096, 2, 64], [1, 4096, 1, 16], [3, 197, 12, 24]);
  for (const [B, L, H, D] of shapes) {
    const s = `{${B},${L},${H},${D}}`;
    parity(t, `attention ${s}`, {
      tensors: { o: out([B, L, H, D]), lse: out([B, H, L]), qkv: f32([B, L, 3, H, D]) },
      call: (a, x) => a.attentionForward(x.o!, x.lse!, x.qkv!), rtol: 1e-5, atol: 1e-5,
    });
    parity(t, `attention backward ${s}`, {
      tensors: { dqkv: out([B, L, 3, H, D]), g: f32([B, L, H, D]), qkv: f32([B, L, 3, H, D]), o: out([B, L, H, D]), lse: out([B, H, L]) },
      call: (a, x) => {
        a.attentionForward(x.o!, x.lse!, x.qkv!);
        a.attentionBackward(x.dqkv!, x.g!, x.qkv!, x.o!, x.lse!);
      },
      compare: ['dqkv'], rtol: 1e-4, atol: 1e-5,
    });
  }
});

gpuTest('attention at L = 16,384 forward and backward against the chunked fp32 CPU kernel', (t) => {
  const [B, L, H, D] = [1, 16384, 1, 64];
  parity(t, 'attention L=16384', {
    tensors: { dqkv: out([B, L, 3, H, D]), g: f32([B, L, H, D]), qkv: f32([B, L, 3, H, D]), o: out([B, L, H, D]), lse: out([B, H, L]) },
    call: (a, x) => {
      a.attentionForward(x.o!, x.lse!, x.qkv!);
      a.attentionBackward(x.dqkv!, x.g!, x.qkv!, x.o!, x.lse!);
    },
    compare: ['o', 'lse', 'dqkv'], rtol: 1e-4, atol: 1e-5,
  });
});

// Non-finite inputs on the GPU (issue 11): the cases of test/nonfinite-cases.ts (NaN, +Inf and
// -Inf in every input of every op, forward and backward), outputs non-finite exactly where the
// float64 reference's are. The CPU runs the same cases on every ISA (nonfinite.test.ts).
gpuTest('non-finite inputs propagate through every CUDA op as in float64', (t) => {
  for (const r of runNonFiniteCases('cuda')) {
    t.true(r.cases >= 4, `${r.op}: ${r.cases} cases`);
    t.deepEqual(r.failures, [], `${r.op} on cuda: ${r.failures.length} of ${r.cases} cases wrong`);
  }
});
