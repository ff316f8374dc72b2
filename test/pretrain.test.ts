// MAE pre-training, the runner's 'mae' task and `pit pretrain`: the recipe (defaults, errors
// naming the field, lr = blr · batch / 256), a tiny pre-train whose held-out reconstruction
// loss falls, exact resume, the memory estimate against the measured peak, and the CLI.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { measureTaskStep } from '../bench/train.js';
import {
  AdamW, estimateMaeInferenceMemory, estimateMaeTrainingMemory, evaluateReconstruction, loadImageData, makeRecipe, maeLearningRate,
  pretrainTask, recipeMaeConfig, runTraining, taskOptimizer, type MaeRecipe,
} from '../lib/index.js';
import { assertExactResume } from './same-run.js';
import { cpuPeakOf, expectEstimateWithin, runPit as run, syntheticImages } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-pretrain-'));
/** A tiny MAE on 7×7 digits: 49 pixels, 12 visible. */
const tiny: Partial<MaeRecipe> = { imageSize: 7, model: 'pit-d1w16h2', decoderDepth: 1, decoderDim: 16, decoderHeads: 2 };

test('the default recipe: pit-d4w64h4 with a 2 × 64 × 4 decoder on 8×8 digits, MAE\'s optimizer, lr from blr', (t) => {
  const r = makeRecipe(pretrainTask.recipe);
  t.like(r, {
    data: 'mnist', imageSize: 8, model: 'pit-d4w64h4', maskRatio: 0.75, posEmbed: 'learned', decoderPosEmbed: 'learned', normPixLoss: false,
    beta1: 0.9, beta2: 0.95, weightDecay: 0.05, minLr: 0, warmupEpochs: 1, epochs: 10, batchSize: 64, blr: 1e-2, lr: 1e-2 * 64 / 256,
  });
  t.like(recipeMaeConfig(r, { channels: 1, height: 8, width: 8 }), { depth: 4, dim: 64, heads: 4, patch: 1, decoderDepth: 2, decoderDim: 64, decoderHeads: 4 });
  // A preset encoder gets MAE's 8 × 512 × 16 decoder; a flag overrides one part of it.
  t.like(recipeMaeConfig(makeRecipe(pretrainTask.recipe, { model: 'pit-t', decoderDepth: 4 }), { channels: 3, height: 32, width: 32 }),
    { depth: 12, dim: 192, decoderDepth: 4, decoderDim: 512, decoderHeads: 16 });
});

test('the effective lr is blr × batch size / 256; an lr that disagrees is refused naming the rule', (t) => {
  t.is(makeRecipe(pretrainTask.recipe, { blr: 1.5e-4, batchSize: 4096 }).lr, 1.5e-4 * 16);
  t.is(makeRecipe(pretrainTask.recipe, { blr: 4e-3, batchSize: 128 }).lr, 2e-3);
  t.is(maeLearningRate({ blr: 1e-3, batchSize: 256 }), 1e-3);
  // A saved recipe holds the lr it computed: rebuilding it agrees.
  const saved = makeRecipe(pretrainTask.recipe, { blr: 3e-3, batchSize: 96 });
  t.deepEqual(makeRecipe(pretrainTask.recipe, saved), saved);
  t.throws(() => makeRecipe(pretrainTask.recipe, { lr: 1e-3 }), { message: /recipe: 'lr' is computed for this task \(blr × batchSize \/ 256: set --blr\), got 0\.001 instead of 0\.0025/ });
});

test('recipe errors name the field', (t) => {
  const cases: [Partial<MaeRecipe>, RegExp][] = [
    [{ maskRatio: 1 }, /'maskRatio' must be a number in \[0, 1\), got 1/],
    [{ decoderDepth: 0 }, /'decoderDepth' must be an integer ≥ 1 or null, got 0/],
    [{ decoderHeads: 5 }, /'decoderHeads' must be a divisor of the decoder width 64, got 5/],
    [{ normPixLoss: true }, /'normPixLoss' must be false at patch 1/],
    [{ blr: -1 }, /'blr' must be a number in \[0, ∞\), got -1/],
    [{ model: 'pit-xxl' }, /recipe: 'model': model name must be/],
    [{ decoderPosEmbed: 'rope' as 'none' }, /'decoderPosEmbed' must be "learned", "sincos" or "none", got "rope"/],
  ];
  for (const [given, message] of cases) t.throws(() => makeRecipe(pretrainTask.recipe, given), { instanceOf: RangeError, message }, JSON.stringify(given));
  t.notThrows(() => makeRecipe(pretrainTask.recipe, { model: 'vit-d2w32h2/2', normPixLoss: true }));
});

test('weight decay skips the 1-D parameters only (SPEC §3): cls, mask token and position tables decay', (t) => {
  const recipe = makeRecipe(pretrainTask.recipe, tiny);
  const model = pretrainTask.model(recipe, { channels: 1, height: 7, width: 7, classes: 10 }, 'cpu');
  const optimizer: AdamW = taskOptimizer(pretrainTask, model, recipe);
  const decayed = new Set(optimizer.groups.filter((g) => g.weightDecay > 0).flatMap((g) => g.names));
  for (const name of ['cls_token', 'mask_token', 'pos_embed', 'decoder_pos_embed', 'decoder_embed.weight', 'blocks.0.attn.qkv.weight']) t.true(decayed.has(name), name);
  for (const name of ['decoder_embed.bias', 'norm.weight', 'decoder_norm.bias', 'blocks.0.norm1.weight']) t.false(decayed.has(name), name);
  optimizer.dispose();
  model.dispose();
});

test('a tiny pre-train on MNIST: the held-out reconstruction loss falls, under the same fixed masks every epoch', async (t) => {
  const out = scratch();
  const recipe = makeRecipe(pretrainTask.recipe, { ...tiny, epochs: 3 });
  const { train, test: heldOut } = loadImageData(recipe);
  const normalization = { mean: Array.from(train.mean), std: Array.from(train.std) };
  const fresh = pretrainTask.model(recipe, train, 'cpu');
  const context = { normalization, batchSize: 500, precision: 'f32' as const };
  const before = evaluateReconstruction(fresh, heldOut, context);
  t.deepEqual(evaluateReconstruction(fresh, heldOut, context), before, 'the evaluation masks are fixed');
  fresh.dispose();
  const r = await runTraining(pretrainTask, { recipe: { ...tiny, epochs: 3 }, out, device: 'cpu' });
  const losses = r.epochs.map((e) => e.test.loss);
  t.log(`held-out masked MSE: untrained ${before.loss.toFixed(4)}, epochs ${losses.map((l) => l.toFixed(4)).join(', ')}`);
  t.is(r.final!.test.n, 2000);
  t.true(losses[0]! < before.loss * 0.8, `untrained ${before.loss} → epoch 1 ${losses[0]}`);
  t.true(losses.at(-1)! < losses[0]!, `epoch 1 ${losses[0]} → epoch 3 ${losses.at(-1)}`);
  t.like(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')), { task: 'mae', format: 'pixel-transformer MAE checkpoint v1', config: { decoderDim: 16, maskRatio: 0.75 } });
  r.model.dispose();
  rmSync(out, { recursive: true });
});

test('k steps, stop, resume, N − k steps: bit-identical to N straight (model, EMA, train state, metrics)', async (t) => {
  const { straight, split } = await assertExactResume(t, pretrainTask, { ...tiny, epochs: 2, ema: 0.99 }, 130, scratch);
  await t.throwsAsync(runTraining(pretrainTask, { recipe: { blr: 1 }, out: split, resume: true, device: 'cpu' }), { message: /resume: 'blr' is 0\.01 in the checkpoint, got 1/ });
  rmSync(straight, { recursive: true });
  rmSync(split, { recursive: true });
});

// (encoder, side, channels, batch, decoder depth/dim/heads, mask ratio): PiT and ViT/2, thin
// and wide decoders, learned and no position tables. Same bound as the classifier's estimate
// (test/memory-estimate.test.ts).
const shapes = [
  ['pit-d4w64h4', 8, 1, 64, 2, 64, 4, 0.75], ['pit-d2w32h2', 16, 3, 8, 4, 128, 8, 0.75], ['vit-d4w64h4/2', 16, 3, 16, 2, 32, 2, 0.5],
  ['pit-d1w16h2', 12, 1, 32, 8, 64, 4, 0.9], ['pit-d6w96h3', 8, 3, 16, 1, 16, 2, 0.75],
] as const;

test('estimateMaeTrainingMemory is within [0.85, 1.25]× the measured peak of a CPU training step, with each recompute mode and precision', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, batch, decoderDepth, decoderDim, decoderHeads, maskRatio] of shapes) for (const recompute of ['none', 'mlp', 'block'] as const) for (const precision of ['f32', 'mixed'] as const) {
    if (precision === 'mixed' && model !== 'pit-d4w64h4') continue;
    const recipe = makeRecipe(pretrainTask.recipe, { model, decoderDepth, decoderDim, decoderHeads, maskRatio, imageSize: side, batchSize: batch, recompute });
    const measured = measureTaskStep(pretrainTask, recipe, 'cpu', { side, channels, classes: 10, batch, precision }, { timed: false }).peakBytes;
    const estimate = estimateMaeTrainingMemory(recipeMaeConfig(recipe, { channels, height: side, width: side }), { batch, recompute, precision }).total;
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch} decoder ${decoderDepth}×${decoderDim} mask ${maskRatio} ${recompute} ${precision}`, measured, estimate);
  }
  t.log(rows.join('\n'));
});

test('estimateMaeInferenceMemory is within [0.85, 1.25]× the measured peak of an evaluation batch', (t) => {
  const rows: string[] = [];
  for (const [model, side, channels, batch, decoderDepth, decoderDim, decoderHeads, maskRatio] of shapes) {
    const recipe = makeRecipe(pretrainTask.recipe, { model, decoderDepth, decoderDim, decoderHeads, maskRatio, imageSize: side });
    const config = recipeMaeConfig(recipe, { channels, height: side, width: side });
    const net = pretrainTask.model(recipe, { channels, height: side, width: side, classes: 10 }, 'cpu');
    const data = syntheticImages(batch, channels, side, 10);
    const normalization = { mean: Array.from(data.mean), std: Array.from(data.std) };
    const measured = cpuPeakOf(() => evaluateReconstruction(net, data, { normalization, batchSize: batch, precision: 'f32' }));
    expectEstimateWithin(t, rows, `${model} ${side}×${side}×${channels} batch ${batch}`, measured, estimateMaeInferenceMemory(config, { batch }));
    net.dispose();
  }
  t.log(rows.join('\n'));
});

test('runTraining refuses an MAE that cannot fit, naming the flags', async (t) => {
  const out = scratch();
  const err = await t.throwsAsync(runTraining(pretrainTask, { recipe: { decoderDepth: 1_000_000, decoderDim: 4096, decoderHeads: 16, epochs: 1 }, out, device: 'cpu' }), { instanceOf: RangeError });
  t.regex(err!.message, /^memory: this run needs an estimated .* of cpu memory \(RAM\).*--decoder-depth/);
  rmSync(out, { recursive: true, force: true });
});


test('pit pretrain --help shows the MAE flags, the lr rule and the decoder cost; --lr is no flag of it', (t) => {
  const r = run('pretrain', '--help');
  t.is(r.status, 0);
  for (const flag of ['--model <name>', '--mask-ratio <r>', '--decoder-depth <n>', '--decoder-dim <n>', '--decoder-heads <n>', '--decoder-pe <kind>', '--pe <kind>', '--norm-pix-loss', '--blr <lr>', '--epochs <n>', '--resume [dir]'])
    t.true(r.stdout.includes(flag), flag);
  t.false(r.stdout.includes('--lr <lr>'));
  t.regex(r.stdout.replace(/\s+/g, ' '), /--blr <lr> base learning rate: the peak lr is blr × batch size \/ 256/);
  t.regex(r.stdout.replace(/\s+/g, ' '), /costs ~20× a PiT-T encoder/);
  const lr = run('pretrain', '--lr', '0.1', '--out', join(tmpdir(), 'pit-pretrain-never'));
  t.is(lr.status, 1);
  t.regex(lr.stderr, /unknown option '--lr'/);
});

test('pit pretrain --epochs 1 with tiny sizes runs end to end and prints the final reconstruction loss', (t) => {
  const out = scratch();
  const r = run('pretrain', '--epochs', '1', '--image-size', '7', '--model', 'pit-d1w16h2', '--decoder-depth', '1', '--decoder-dim', '16', '--decoder-heads', '2', '--device', 'cpu', '--out', out);
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.regex(lines[0]!, /^MAE on pit-d1w16h2 \(PiT\): encoder depth 1, dim 16, 2 heads; decoder depth 1, dim 16, 2 heads; mask 0\.75; .*lr 2\.50e-3 \(blr 0\.01 × 64 \/ 256\)/);
  t.is(lines.filter((l) => /^epoch +1 +step 125 +train loss .* test masked MSE \d\.\d{4}/.test(l)).length, 1);
  t.regex(lines.at(-1)!, /^final reconstruction loss: \d\.\d{4} \(masked MSE on 2000 held-out images/);
  rmSync(out, { recursive: true });
});
