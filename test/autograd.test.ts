// The autograd tape: accumulation, shared inputs, noGrad, detach, freeing, and a whole
// 2-block pre-norm transformer checked against central finite differences.
import test from 'ava';
import {
  add, attention, backward, gelu, layerNorm, linear, mean, memory, mul, noGrad, scale, softmaxCrossEntropy, tensor, tidy, type Tensor,
} from '../lib/index.js';
import { assertClose, randomF32, relativeError, t32 } from './helpers.js';

test('gradients accumulate across backward calls and over shared uses', (t) => {
  tidy(() => {
    const x = t32([1, 2, 3], [3], true);
    backward(mean(mul(x, x)));                // d/dx mean(x²) = 2x/3
    assertClose(t, x.grad!.toArray(), [2 / 3, 4 / 3, 2], { rtol: 1e-6 });
    backward(mean(add(x, x)));                // + 2/3 each
    assertClose(t, x.grad!.toArray(), [4 / 3, 2, 8 / 3], { rtol: 1e-6 });
  });
});

test('noGrad records nothing and detach cuts the graph', (t) => {
  tidy(() => {
    const x = t32([1, 2], [2], true);
    const y = noGrad(() => scale(x, 2));
    t.false(y.requiresGrad);
    t.is(y.gradNode, null);
    const z = scale(x, 3).detach();
    t.false(z.requiresGrad);
    t.throws(() => backward(mean(z)), { instanceOf: TypeError, message: /does not require gradients/ });
  });
});

test('backward from a non-scalar needs an explicit gradient of the same shape', (t) => {
  tidy(() => {
    const x = t32([1, 2, 3, 4], [2, 2], true);
    const y = scale(x, 2);
    t.throws(() => backward(y), { instanceOf: RangeError, message: /must hold one element/ });
    t.throws(() => backward(y, t32([1, 1], [2])), { instanceOf: RangeError, message: /'gradient' must have the root's shape \[2, 2\]/ });
    backward(y, t32([1, 10, 100, 1000], [2, 2]));
    assertClose(t, x.grad!.toArray(), [2, 20, 200, 2000], { rtol: 0, atol: 0 });
  });
});

test('backward frees intermediate gradients and saved tensors; tidy frees the rest', (t) => {
  const before = memory().cpu;
  const w = t32(randomF32(16 * 8), [8, 16], true);
  tidy(() => {
    const x = t32(randomF32(4 * 16), [4, 16]);
    backward(mean(gelu(layerNorm(linear(x, w), null, null))));
  });
  t.truthy(w.grad);
  t.is(memory().cpu.tensors, before.tensors + 2, 'only w and w.grad remain');
  w.grad!.dispose();
  w.dispose();
  t.deepEqual({ tensors: memory().cpu.tensors, bytes: memory().cpu.bytes }, { tensors: before.tensors, bytes: before.bytes });
});

// ---- a 2-block transformer, end to end ------------------------------------------------
interface BlockParams {
  ln1w: Tensor; ln1b: Tensor; qkvW: Tensor; qkvB: Tensor; projW: Tensor; projB: Tensor;
  ln2w: Tensor; ln2b: Tensor; fc1W: Tensor; fc1B: Tensor; fc2W: Tensor; fc2B: Tensor;
}

const B = 2, L = 5, C = 16, H = 2, HIDDEN = 32, K = 3;

function makeParams(values: Map<string, Float64Array>, names: string[], shapes: number[][]): Tensor[] {
  return names.map((n, i) => {
    const v = values.get(n) ?? randomF32(shapes[i]!.reduce((a, b) => a * b, 1), n.includes('ln') && n.endsWith('w') ? 0.1 : 0.3)
      .map((x) => (n.includes('ln') && n.endsWith('w') ? 1 + x : x));
    values.set(n, v);
    return t32(v, shapes[i]!, true);
  });
}

function block(x: Tensor, p: BlockParams): Tensor {
  const h = layerNorm(x, p.ln1w, p.ln1b);
  const qkv = linear(h, p.qkvW, p.qkvB).reshape([B, L, 3, H, C / H]);
  const a = linear(attention(qkv).reshape([B, L, C]), p.projW, p.projB);
  const x1 = add(x, a);
  const m = linear(gelu(linear(layerNorm(x1, p.ln2w, p.ln2b), p.fc1W, p.fc1B)), p.fc2W, p.fc2B);
  return add(x1, m);
}

test('a 2-block transformer: every parameter gradient matches central finite differences', (t) => {
  const names = ['ln1w', 'ln1b', 'qkvW', 'qkvB', 'projW', 'projB', 'ln2w', 'ln2b', 'fc1W', 'fc1B', 'fc2W', 'fc2B'];
  const shapes = [[C], [C], [3 * C, C], [3 * C], [C, C], [C], [C], [C], [HIDDEN, C], [HIDDEN], [C, HIDDEN], [C]];
  const xValues = randomF32(B * L * C);
  const headW = randomF32(K * C, 0.3);
  const targets = new Int32Array([0, 2]);

  // loss(params) in float32 through the library; finite differences in float32 need a
  // moderate step and a loose tolerance, so the check is on the relative error per tensor.
  const lossOf = (blocks: Tensor[][]): Tensor => {
    let x = t32(xValues, [B, L, C]);
    for (const p of blocks) x = block(x, Object.fromEntries(names.map((n, i) => [n, p[i]!])) as unknown as BlockParams);
    const pooled = mean(x, 1);                            // (B, C)
    return softmaxCrossEntropy(linear(pooled, t32(headW, [K, C])), tensor(targets));
  };

  tidy(() => {
    const blockValues = [new Map<string, Float64Array>(), new Map<string, Float64Array>()];
    const blocks = blockValues.map((v) => makeParams(v, names, shapes));
    backward(lossOf(blocks));
    const h = 1e-2;
    for (let bi = 0; bi < 2; bi++) {
      for (let pi = 0; pi < names.length; pi++) {
        const analytic = blocks[bi]![pi]!.grad!.toArray();
        const v = blockValues[bi]!.get(names[pi]!)!;
        // Probe a few entries per tensor (all of them would be slow): first, last, and spread.
        const probes = [...new Set([0, v.length - 1, v.length >> 1, v.length >> 2, (3 * v.length) >> 2])];
        const numeric: number[] = [], picked: number[] = [];
        for (const i of probes) {
          const f = (delta: number) => noGrad(() => tidy(() => {
            const saved = v[i]!;
            v[i] = saved + delta;
            const ps = blockValues.map((m) => names.map((n, k) => t32(m.get(n)!, shapes[k]!)));
            v[i] = saved;
            return lossOf(ps).item();
          }));
          numeric.push((f(h) - f(-h)) / (2 * h));
          picked.push(analytic[i]!);
        }
        const err = relativeError(picked, numeric);
        t.true(err < 2e-2 || Math.max(...numeric.map(Math.abs)) < 1e-4,
          `block ${bi} ${names[pi]}: analytic ${picked.map((x) => x.toExponential(3))} vs numeric ${numeric.map((x) => x.toExponential(3))} (rel err ${err.toExponential(2)})`);
      }
    }
    for (const ps of blocks) for (const p of ps) p.grad!.dispose();
  });
});
