// Activation recomputation (--recompute none|mlp|block): the loss and every parameter's gradient
// are bit-identical to a run without it, for PiT (drop path on: its masks are replayed), MAE
// (encoder and decoder stacks) and DiT (adaLN blocks sharing one conditioning vector), in f32
// and mixed precision; a frozen encoder and a forward without gradients record nothing; the
// memory held between forward and backward falls as the modes promise.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  backward, checkpoint, classifyTask, countedBytes, dit, fitRun, mae, makeRecipe, memory, noGrad, readCheckpointWeights, resolveCheckpoint, runTraining, tensor, tidy, vit, vitBlockBytes,
  type Module, type Precision, type Recompute, type Tensor,
} from '../lib/index.js';
import { mul, softmaxCrossEntropy, sum } from '../lib/ops/index.js';
import { randomF32, runPit } from './helpers.js';
import { assertExactResume } from './same-run.js';

const modes: Recompute[] = ['none', 'mlp', 'block'];
const bits = (x: Float32Array | Int32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');

/** The loss and every parameter's gradient (as bits) of one backward of `loss`. */
function gradients(model: Module, loss: () => Tensor): { loss: string; grads: Map<string, string> } {
  for (const p of model.parameters()) p.grad?.dispose(), (p.grad = null);
  const value = tidy(() => {
    const l = loss();
    const v = bits(l.toArray());
    backward(l);
    return v;
  });
  const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad ? bits(p.grad.toArray()) : 'none']));
  for (const p of model.parameters()) p.grad?.dispose(), (p.grad = null);
  return { loss: value, grads };
}

const images = (B: number, C: number, side: number) => tensor(Float32Array.from(randomF32(B * C * side * side)), [B, C, side, side]);

function assertSameGradients(t: import('ava').ExecutionContext, model: Module, loss: (recompute: Recompute) => Tensor, label: string): void {
  const reference = gradients(model, () => loss('none'));
  t.true(reference.grads.size > 0);
  t.false([...reference.grads.values()].includes('none'), `${label}: every parameter takes a gradient`);
  for (const mode of modes.slice(1)) {
    const got = gradients(model, () => loss(mode));
    t.is(got.loss, reference.loss, `${label} ${mode}: loss`);
    const differing = [...reference.grads].filter(([n, g]) => got.grads.get(n) !== g).map(([n]) => n);
    t.deepEqual(differing, [], `${label} ${mode}: gradients differ from no recomputation`);
  }
}

for (const precision of ['f32', 'mixed'] as Precision[]) {
  test(`PiT with drop path: every gradient with recompute mlp and block equals none bit for bit (${precision})`, (t) => {
    // Heads of 16 so that mixed precision runs the bf16 attention kernel.
    const model = vit('pit-t', { imageSize: 6, channels: 2, depth: 3, dim: 32, heads: 2, classes: 5, dropPath: 0.5 }).train();
    const x = images(4, 2, 6);
    const labels = tensor(Int32Array.from([0, 3, 1, 4]));
    assertSameGradients(t, model, (recompute) => {
      const logits = model.forward(x, { precision, recompute, random: { seed: 7, offset: 3 } });
      return softmaxCrossEntropy(logits, labels);
    }, `pit ${precision}`);
  });

  test(`MAE: encoder and decoder gradients with recompute mlp and block equal none bit for bit (${precision})`, (t) => {
    const model = mae('pit-t', { imageSize: 6, channels: 2, depth: 2, dim: 32, heads: 2, decoderDepth: 2, decoderDim: 32, decoderHeads: 2, maskRatio: 0.5, dropPath: 0.2 }).train();
    const x = images(3, 2, 6);
    assertSameGradients(t, model, (recompute) => model.forward(x, { precision, recompute, random: { seed: 5, offset: 2 } }).loss, `mae ${precision}`);
  });

  test(`DiT: gradients with recompute mlp and block equal none bit for bit, conditioning included (${precision})`, (t) => {
    const model = dit('dit-s/1', { imageSize: 4, channels: 2, patch: 1, depth: 3, dim: 32, heads: 2, classes: 3, classDropout: 0.5 }).train();
    // adaLN-Zero starts every gate and the final Linear at zero: redraw them so every path carries gradient.
    tidy(() => model.loadStateDict(new Map(model.namedParameters()
      .filter(([n]) => n.includes('adaLN_modulation.') || n.startsWith('final_layer.linear.'))
      .map(([n, p]) => [n, tensor(Float32Array.from(randomF32(p.size, 0.3)), p.shape)])), { strict: false }));
    const x = images(3, 2, 4);
    assertSameGradients(t, model, (recompute) => {
      const out = model.forward(x, [3, 500, 999], [0, 2, 1], { precision, recompute, random: { seed: 9, offset: 1 } });
      return weightedSum(out);
    }, `dit ${precision}`);
  });
}

/** Σ w_i·x_i with pseudo-random weights w, the same for every call of one size: a loss that reaches every output. */
const lossWeights = new Map<number, Float32Array>();
function weightedSum(x: Tensor): Tensor {
  if (!lossWeights.has(x.size)) lossWeights.set(x.size, Float32Array.from(randomF32(x.size)));
  return sum(mul(x, tensor(lossWeights.get(x.size)!, x.shape)));
}

test('recompute with a frozen encoder records nothing for it, and without grad mode the forward just runs', (t) => {
  const model = vit('pit-t', { imageSize: 4, channels: 1, depth: 2, dim: 16, heads: 2, classes: 3 });
  const x = images(2, 1, 4);
  for (const p of model.parameters()) p.requiresGrad = false;
  for (const mode of modes) tidy(() => t.false(model.forward(x, { recompute: mode }).requiresGrad, `${mode}: nothing to record`));
  for (const p of model.parameters()) p.requiresGrad = true;
  const plain = tidy(() => noGrad(() => bits(model.forward(x).toArray())));
  for (const mode of modes) t.is(tidy(() => noGrad(() => bits(model.forward(x, { recompute: mode }).toArray()))), plain, `${mode} without grad mode`);
  t.throws(() => model.forward(x, { recompute: 'blocks' as Recompute }), { instanceOf: TypeError, message: /recompute must be "none", "mlp" or "block", got "blocks"/ });
});

test('checkpoint: the gradient of an input flows through, and a segment reading no trainable tensor is not recorded', (t) => {
  tidy(() => {
    const a = tensor([1, 2, 3], [3], { requiresGrad: true });
    const y = checkpoint('square', [a], false, (a) => mul(a, a));
    t.is(y.gradNode?.op, 'square');
    t.deepEqual(y.gradNode?.saved, []);
    backward(sum(y));
    t.deepEqual(Array.from(a.grad!.toArray()), [2, 4, 6]);
    a.grad!.dispose();
    const b = tensor([1, 2, 3], [3]);
    t.false(checkpoint('square', [b], false, (b) => mul(b, b)).requiresGrad);
  });
});

for (const precision of ['f32', 'mixed'] as Precision[]) {
  test(`bytes held from forward to backward fall by exactly what the modes drop, per token and block (PiT-T width, 8 blocks, ${precision})`, (t) => {
    const model = vit('pit-t', { imageSize: 16, channels: 3, depth: 8, classes: 10 });
    const x = images(2, 3, 16);
    const held: Record<string, number> = {};
    for (const mode of modes) {
      tidy(() => {
        const before = memory().cpu.bytes;
        const logits = model.forward(x, { recompute: mode, precision });
        held[mode] = memory().cpu.bytes - before;
        backward(sum(logits));
        for (const p of model.parameters()) p.grad?.dispose(), (p.grad = null);
      });
    }
    t.log(Object.entries(held).map(([m, b]) => `${m} ${(b / 2 ** 20).toFixed(2)} MiB`).join(', '));
    // Per token and block (d = 192, r = 4, H = 12): none keeps (10 + 2r)·d + 4 + H f32 values and,
    // mixed, (7 + r)·d bf16 ones; mlp drops norm1's and norm2's outputs and statistics and fc1's
    // output, (2 + r)·d + 4 f32 values (mixed: r·d + 4, the outputs being released anyway), and,
    // mixed, the bf16 copies qkv and fc1 read, 2d; block keeps its input, d.
    const tokensTimesBlocks = 2 * 257 * 8, d = 192, r = 4;
    // Mixed releases the f32 tensors only bf16 copies are read from: both LayerNorm outputs, qkv,
    // the attention output and the GELU output, (6 + r)·d.
    const mixed = precision === 'mixed';
    const full = ((10 + 2 * r) * d + 4 + 12 - (mixed ? (6 + r) * d : 0)) * 4 + (mixed ? (7 + r) * d * 2 : 0);
    const dropped = ((mixed ? r : 2 + r) * d + 4) * 4 + (mixed ? 2 * d * 2 : 0);
    // Mixed precision also keeps each block's bf16 weight copies: qkv 3d², proj d², fc1 and fc2 r·d²; mlp drops qkv's and fc1's.
    const weights = precision === 'mixed' ? (3 + 1 + 2 * r) * d * d * 2 : 0, weightsDropped = precision === 'mixed' ? (3 + r) * d * d * 2 : 0;
    t.is(held.none! - held.mlp!, tokensTimesBlocks * dropped + 8 * weightsDropped);
    t.is(held.none! - held.block!, tokensTimesBlocks * (full - d * 4) + 8 * weights);
    t.deepEqual([vitBlockBytes({ dim: d, heads: 12, mlpRatio: 4 }, precision, 'none').kept, vitBlockBytes({ dim: d, heads: 12, mlpRatio: 4 }, precision, 'mlp').kept,
      vitBlockBytes({ dim: d, heads: 12, mlpRatio: 4 }, precision, 'block').kept], [full, full - dropped, d * 4]);
  });
}

// ---- runs: the recipe saves the mode, a resume may switch it, the weights never notice ----------

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-recompute-'));
const stateful = { imageSize: 7, depth: 2, dim: 16, heads: 2, epochs: 1, batchSize: 128, dropPath: 0.2, ema: 0.9, translate: 1, clipGrad: 0.5 };

/** The tensors of a checkpoint's file, as bits by name (the metadata, which names the recipe, left out). */
function tensorBits(dir: string, ema = false): Map<string, string> {
  const file = readCheckpointWeights(resolveCheckpoint(dir), { ema });
  return new Map([...file.tensors].map(([name, entry]) => [name, bits(entry.data)]));
}

test('a run with --recompute block, stopped and resumed with --recompute mlp, ends with the weights of a straight run without recomputation', async (t) => {
  const straight = scratch(), split = scratch();
  try {
    const a = await runTraining(classifyTask, { recipe: stateful, out: straight, device: 'cpu' });
    const b1 = await runTraining(classifyTask, { recipe: { ...stateful, recompute: 'block' }, out: split, device: 'cpu', stopAtStep: 40 });
    t.true(b1.interrupted);
    b1.model.dispose();
    t.is((readCheckpointWeights(resolveCheckpoint(split)).metadata.recipe as { recompute: string }).recompute, 'block', 'the mode is saved in the recipe');
    // A changed recompute is the one recipe change a resume accepts: it changes memory, not results.
    const b2 = await runTraining(classifyTask, { recipe: { recompute: 'mlp' }, out: split, resume: true, device: 'cpu' });
    t.is(b2.step, a.step);
    t.is((readCheckpointWeights(resolveCheckpoint(split)).metadata.recipe as { recompute: string }).recompute, 'mlp');
    t.deepEqual(tensorBits(split), tensorBits(straight), 'model weights bit for bit');
    t.deepEqual(tensorBits(split, true), tensorBits(straight, true), 'EMA weights bit for bit');
    a.model.dispose();
    b2.model.dispose();
  } finally {
    rmSync(straight, { recursive: true, force: true });
    rmSync(split, { recursive: true, force: true });
  }
});

test('a run recomputing blocks resumes bit for bit (checkpoints, train state, metrics)', async (t) => {
  const { straight, split } = await assertExactResume(t, classifyTask, { ...stateful, recompute: 'block' }, 40, scratch);
  rmSync(straight, { recursive: true });
  rmSync(split, { recursive: true });
});

test('pit train --recompute: the flag sets the recipe, a wrong mode is refused naming the choices', (t) => {
  const out = scratch();
  try {
    const ok = runPit('train', '--device', 'cpu', '--image-size', '7', '--depth', '1', '--dim', '16', '--heads', '2', '--epochs', '1', '--recompute', 'block', '--out', out);
    t.is(ok.status, 0, ok.stderr);
    t.is((readCheckpointWeights(resolveCheckpoint(out)).metadata.recipe as { recompute: string }).recompute, 'block');
    const bad = runPit('train', '--device', 'cpu', '--recompute', 'blocks', '--out', join(out, 'x'));
    t.not(bad.status, 0);
    t.regex(bad.stderr, /--recompute.*'blocks' is invalid.*none, mlp, block/s);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// ---- what fits: the estimate knows each mode ---------------------------------------------------

test('fitRun: the largest side within a limit grows with recomputation (PiT-T, 1 GiB), and is the edge of the estimate', (t) => {
  const limit = 2 ** 30;
  const sides = modes.map((recompute) => {
    const recipe = makeRecipe(classifyTask.recipe, { model: 'pit-t', batchSize: 1, evalBatchSize: 1, recompute });
    const fit = fitRun(classifyTask, recipe, { device: 'cuda', precision: 'f32', limit });
    const side = fit.largestImageSize!;
    const at = (s: number) => countedBytes(classifyTask.estimate(makeRecipe(classifyTask.recipe, { ...recipe, imageSize: s }), { precision: 'f32' }), 'cuda');
    t.true(at(side) <= limit && at(side + 1) > limit, `${recompute}: ${side} is the last side within the limit`);
    return side;
  });
  t.log(`largest sides within 1 GiB: ${modes.map((m, i) => `${m} ${sides[i]}`).join(', ')}`);
  t.true(sides[0]! < sides[1]! && sides[1]! < sides[2]!);
  t.true(sides[2]! ** 2 >= 2 * sides[0]! ** 2, 'block at least doubles the tokens that fit');
});

test('pit train --estimate prints the fit without training, and a refused run names --recompute', async (t) => {
  const r = runPit('train', '--model', 'pit-t', '--batch-size', '1', '--eval-batch-size', '1', '--recompute', 'block', '--device', 'cuda', '--estimate', '1GiB', '--json');
  t.is(r.status, 0, r.stderr);
  const printed = JSON.parse(r.stdout);
  const recipe = makeRecipe(classifyTask.recipe, { model: 'pit-t', batchSize: 1, evalBatchSize: 1, recompute: 'block' });
  t.is(printed.largestImageSize, fitRun(classifyTask, recipe, { device: 'cuda', precision: 'f32', limit: 2 ** 30 }).largestImageSize);
  t.is(printed.recompute, 'block');
  t.regex(runPit('train', '--device', 'cuda', '--estimate').stderr, /needs a size, e\.g\. --estimate 80GB/);
  const out = scratch();
  try {
    await t.throwsAsync(runTraining(classifyTask, { recipe: { imageSize: 100_000, epochs: 1, evalBatchSize: 1 }, out, device: 'cpu' }),
      { message: /Lower the flags named \(--recompute mlp or block keeps fewer activations for the same gradients\)/ });
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
