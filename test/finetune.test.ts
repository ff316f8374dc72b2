// Fine-tuning (SPEC §3): a classifier started from a pre-trained MAE's encoder (`init`) and
// layer-wise lr decay (`layerDecay`). The MAE checkpoint is a tiny MaskedAutoencoder built
// here and saved with the checkpoint helpers: these tests need no pre-training task.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  AdamW, classifyTask, layerDecayScale, loadPretrainedEncoder, makeRecipe, MaskedAutoencoder, MODEL_FILE, readSafetensors,
  resolveCheckpoint, runTraining, saveCheckpoint, VisionTransformer, type ClassifierRecipe, type MaeConfig, type VitConfig,
} from '../lib/index.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-finetune-'));

// 7×7 MNIST digits, PiT (p = 1): 49 tokens, depth 3, width 16.
const encoder = { imageSize: 7, channels: 1, patch: 1, depth: 3, dim: 16, heads: 2 } as const;
const recipe: Partial<ClassifierRecipe> = { model: 'pit-d3w16h2', imageSize: 7, epochs: 1, batchSize: 64, lr: 1e-3, dropPath: 0.1 };

/** A tiny MAE saved as a checkpoint folder (its weights: MAE's xavier init at seed 7). */
function maeCheckpoint(config: Partial<MaeConfig> = {}): { dir: string; weights: Map<string, Float32Array> } {
  const dir = join(scratch(), 'mae');
  const mae = new MaskedAutoencoder({ ...encoder, decoderDepth: 1, decoderDim: 8, decoderHeads: 2, seed: 7, ...config });
  try {
    saveCheckpoint(dir, { model: mae, metadata: { task: 'mae', config: mae.config } });
    return { dir, weights: new Map(mae.namedParameters().map(([n, p]) => [n, p.toArray() as Float32Array])) };
  } finally {
    mae.dispose();
  }
}

const classifier = (config: Partial<VitConfig> = {}) =>
  new VisionTransformer({ ...encoder, classes: 10, seed: 1, ...config }, { headStd: 2e-5 });

const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);

test('init: every encoder tensor lands bit-identical, the decoder and (avg pool) the final norm are dropped, head and fc_norm fresh', (t) => {
  const { dir, weights } = maeCheckpoint();
  const model = classifier({ classes: 100 });
  try {
    const report = loadPretrainedEncoder(model, dir);
    t.is(report.source, 'mae');
    const encoderNames = model.namedParameters().map(([n]) => n).filter((n) => !/^(head|fc_norm)\./.test(n));
    t.deepEqual(report.loaded, encoderNames);
    t.true(encoderNames.includes('pos_embed') && encoderNames.includes('cls_token') && encoderNames.includes('blocks.2.mlp.fc2.weight'));
    for (const [name, p] of model.namedParameters())
      if (encoderNames.includes(name)) t.deepEqual(p.toArray(), weights.get(name), name);
    t.deepEqual(report.dropped.sort(), [...weights.keys()].filter((n) => /^(decoder_|mask_token|norm\.)/.test(n)).sort());
    t.deepEqual(report.fresh, ['fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']);
    const value = (n: string) => model.stateDict().get(n)!.toArray() as Float32Array;
    t.true(value('fc_norm.weight').every((v) => v === 1) && value('fc_norm.bias').every((v) => v === 0), 'fc_norm (1, 0)');
    t.true(value('head.bias').every((v) => v === 0), 'head bias 0');
    const head = value('head.weight');  // 100 × 16 = 1,600 draws: the sample std is within ~2% of 2e-5
    t.true(Math.abs(std(head) / 2e-5 - 1) < 0.1, `head weight std ${std(head)}, expected 2e-5`);
    t.true(head.every((v) => Math.abs(v) < 1e-4), 'trunc-normal: no draw beyond 5σ here');
  } finally {
    model.dispose();
  }
});

test('init with cls pooling loads the encoder\'s final norm; a classifier checkpoint works as a source too', (t) => {
  const { dir, weights } = maeCheckpoint();
  const cls = classifier({ pool: 'cls' });
  const second = classifier({ classes: 3, seed: 2 });
  try {
    const report = loadPretrainedEncoder(cls, dir);
    t.true(report.loaded.includes('norm.weight') && report.loaded.includes('norm.bias'));
    t.deepEqual(cls.norm.weight.toArray(), weights.get('norm.weight'));
    t.deepEqual(report.fresh, ['head.weight', 'head.bias']);
    // A classifier's run is a source: its encoder loads, its head (another class count) does not.
    const source = join(scratch(), 'classifier');
    saveCheckpoint(source, { model: cls, metadata: { task: 'classify', config: cls.config } });
    const again = loadPretrainedEncoder(second, source);
    t.is(again.source, 'classifier');
    t.deepEqual(again.dropped, ['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    t.deepEqual(second.blocks.namedParameters().map(([, p]) => p.toArray()), cls.blocks.namedParameters().map(([, p]) => p.toArray()));
  } finally {
    cls.dispose();
    second.dispose();
  }
});

test('init refuses, naming the problem, before any weight changes: shape, config field, a checkpoint of something else, a corrupted file', (t) => {
  const { dir } = maeCheckpoint();
  const check = (config: Partial<VitConfig>, from: string, message: RegExp) => {
    const model = classifier(config);
    try {
      const before = model.namedParameters().map(([, p]) => p.toArray());
      t.throws(() => loadPretrainedEncoder(model, from), { message });
      t.deepEqual(model.namedParameters().map(([, p]) => p.toArray()), before, 'nothing loaded');
    } finally {
      model.dispose();
    }
  };
  // A learned position table fixes the image size: 8×8 has 65 rows, the MAE's 7×7 has 50.
  check({ imageSize: 8 }, dir, /"pos_embed" has shape \[1, 50, 16\] in the checkpoint but \[1, 65, 16\] in the classifier/);
  check({ dim: 32, heads: 2 }, dir, /the pre-trained encoder's 'dim' is 16 but the classifier's is 32/);
  check({ depth: 4 }, dir, /'depth' is 3 but the classifier's is 4/);
  check({ patch: 7 }, dir, /'patch' is 1 but the classifier's is 7/);
  check({ posEmbed: 'sincos' }, dir, /'posEmbed' is "learned" but the classifier's is "sincos"/);
  // Something that is neither an MAE nor a classifier.
  const other = join(scratch(), 'other');
  const stranger = classifier();
  saveCheckpoint(other, { model: stranger, metadata: { task: 'regress', config: { depth: 3 } } });
  stranger.dispose();
  check({}, other, /is not a pre-trained MAE or classifier checkpoint/);
  check({}, join(dir, 'nowhere'), /checkpoint: '.*nowhere' does not exist/);
  // One flipped bit in the weights: the checksum says so.
  const file = join(dir, MODEL_FILE);
  const bytes = readFileSync(file);
  bytes[bytes.length - 5]! ^= 1;
  writeFileSync(file, bytes);
  check({}, dir, /checksum/i);
});

test('layer decay: every parameter of a depth-3 model gets decay^(n − id), n = depth + 1, in its AdamW group', (t) => {
  const decay = 0.65, n = 4;
  const model = classifier();
  try {
    const options = classifyTask.optimizerOptions!(model, makeRecipe(classifyTask.recipe, { ...recipe, layerDecay: decay }));
    const expectedId = (name: string) =>
      ['patch_embed.proj.weight', 'patch_embed.proj.bias', 'cls_token', 'pos_embed'].includes(name) ? 0
        : name.startsWith('blocks.0.') ? 1 : name.startsWith('blocks.1.') ? 2 : name.startsWith('blocks.2.') ? 3
          : (t.true(/^(fc_norm|head)\./.test(name), name), n);
    const optimizer = new AdamW(model, { weightDecay: 0.05, ...options });
    try {
      const groupScale = new Map(optimizer.groups.flatMap((g) => g.names.map((name) => [name, g.lrScale])));
      for (const [name] of model.namedParameters()) {
        const want = decay ** (n - expectedId(name));
        t.is(options.lrScale!(name), want, name);
        t.is(groupScale.get(name), want, `${name}'s group`);
      }
    } finally {
      optimizer.dispose();
    }
    t.is(layerDecayScale(3, decay)('head.weight'), 1);
    t.is(layerDecayScale(3, decay)('blocks.0.attn.qkv.weight'), decay ** 3);
    t.deepEqual(classifyTask.optimizerOptions!(model, makeRecipe(classifyTask.recipe, recipe)), {}, 'layerDecay 1 is off');
  } finally {
    model.dispose();
  }
  const bad = (layerDecay: number) => t.throws(() => makeRecipe(classifyTask.recipe, { layerDecay }), { message: /'layerDecay' must be a number in \(0, 1\]/ });
  bad(0);
  t.throws(() => makeRecipe(classifyTask.recipe, { layerDecay: 1.5 }), { message: /'layerDecay' must be a number in \[0, 1\], got 1.5/ });
  t.throws(() => makeRecipe(classifyTask.recipe, { init: '' }), { message: /'init': must be a run folder or checkpoint folder, got an empty path/ });
});

test('a fine-tuning run starts from the encoder (model and EMA), trains, and resumes bit-exactly without reading the init again', async (t) => {
  const { dir, weights } = maeCheckpoint();
  // lr 0: after one step the weights are still the ones the run started from.
  const still = await runTraining(classifyTask, { recipe: { ...recipe, init: dir, lr: 0, ema: 0.9 }, out: scratch(), device: 'cpu', stopAtStep: 1 });
  try {
    const saved = readSafetensors(join(still.checkpoint, MODEL_FILE)).tensors;
    const ema = readSafetensors(join(still.checkpoint, 'ema.safetensors')).tensors;
    for (const name of ['patch_embed.proj.weight', 'pos_embed', 'cls_token', 'blocks.2.attn.proj.weight']) {
      t.deepEqual(saved.get(name)!.data, weights.get(name), name);
      // EMA 0.9·w + 0.1·w rounds to within an ulp of w: it started as a copy of the encoder.
      const w = weights.get(name)!, e = ema.get(name)!.data;
      t.true(w.every((v, i) => Math.abs(e[i]! - v) <= 1e-6 * Math.abs(v)), `EMA ${name}`);
    }
  } finally {
    still.model.dispose();
  }

  const given = { ...recipe, init: dir, layerDecay: 0.75 };
  const straightOut = scratch(), splitOut = scratch();
  const straight = await runTraining(classifyTask, { recipe: given, out: straightOut, device: 'cpu', stopAtStep: 6 });
  const first = await runTraining(classifyTask, { recipe: given, out: splitOut, device: 'cpu', stopAtStep: 3 });
  first.model.dispose();
  // The init is gone: a resume that read it again would fail.
  rmSync(dir, { recursive: true });
  const resumed = await runTraining(classifyTask, { out: splitOut, resume: true, device: 'cpu', stopAtStep: 6 });
  try {
    t.is(resumed.step, 6);
    const a = readSafetensors(join(resolveCheckpoint(straightOut), MODEL_FILE)).tensors;
    const b = readSafetensors(join(resolveCheckpoint(splitOut), MODEL_FILE)).tensors;
    t.deepEqual([...b.keys()], [...a.keys()]);
    for (const [name, e] of a) t.deepEqual(b.get(name)!.data, e.data, name);
    t.notDeepEqual(a.get('blocks.0.attn.qkv.weight')!.data, weights.get('blocks.0.attn.qkv.weight'), 'the run trained');
  } finally {
    straight.model.dispose();
    resumed.model.dispose();
  }
});

test('fine-tuning defaults AdamW β to (0.9, 0.999) as SPEC §3; given betas and runs without init keep theirs', (t) => {
  const fresh = makeRecipe(classifyTask.recipe, { model: 'pit-d3w16h2' });
  t.deepEqual([fresh.beta1, fresh.beta2], [0.9, 0.95], 'from scratch: the shared recipe');
  const finetune = makeRecipe(classifyTask.recipe, { model: 'pit-d3w16h2', init: 'runs/mae' });
  t.deepEqual([finetune.beta1, finetune.beta2], [0.9, 0.999], 'with init');
  const given = makeRecipe(classifyTask.recipe, { model: 'pit-d3w16h2', init: 'runs/mae', beta2: 0.98 });
  t.is(given.beta2, 0.98, 'a given β₂ wins');
  // A saved recipe is complete: rebuilding it keeps what it saved, whatever today's default.
  t.is(makeRecipe(classifyTask.recipe, { ...finetune, beta2: 0.95 }).beta2, 0.95);
});
