// The benchmark and study commands end to end on CPU at tiny sizes (output parses, numbers
// follow their formulas, plot files are valid SVG/PNG of non-trivial size), the compare command
// on fixture files, the power-law fit on exact power laws, and the peak-memory counter.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { compareResults, formatComparison } from '../bench/compare.js';
import { parseResults, resultKey, type BenchResult } from '../bench/schema.js';
import { defaultSweep, gemmPath, runKernelBench } from '../bench/kernels.js';
import { fitPowerLaw } from '../bench/study.js';
import { measureTrainStep, parseDecoderName } from '../bench/train.js';
import { empty, memory, native, resetPeakMemory, selectBackend } from '../lib/index.js';
import { runPit as run } from './helpers.js';

selectBackend({ device: 'cpu' });
const scratch = () => mkdtempSync(join(tmpdir(), 'pit-bench-'));

test('bench kernels --quick: every op family, parseable lines, values that follow the formula, copy fractions', (t) => {
  const dir = scratch();
  const out = join(dir, 'kernels.jsonl');
  const r = run('bench', 'kernels', '--device', 'cpu', '--quick', '--json', '--out', out);
  t.is(r.status, 0, r.stderr);
  const printed = parseResults(r.stdout, 'stdout'), written = parseResults(readFileSync(out, 'utf8'), out);
  t.deepEqual(written, printed);
  const ops = new Set(printed.map((x) => x.op));
  for (const op of ['copy', 'layernorm_forward', 'layernorm_backward', 'gelu_forward', 'gelu_backward', 'add', 'softmax_cross_entropy',
    'adamw', 'matmul_forward', 'matmul_backward', 'linear_forward', 'linear_backward', 'attention_forward', 'attention_backward',
    'attention_forward_backward'])
    t.true(ops.has(op), `missing ${op}`);
  for (const x of printed) {
    t.is(x.kind, 'kernel');
    t.is(x.impl, 'pit');
    t.is(x.device, 'cpu');
    t.true(x.ms > 0 && x.value > 0 && x.repeats >= 5, JSON.stringify(x));
    // value = work / t: GFLOP/s or GB/s from ms (to the 2 decimals it is rounded to, and ms's 4).
    t.true(Math.abs(x.value - x.work! / x.ms / 1e6) <= 0.01 + 1e-3 * x.value, JSON.stringify(x));
    t.regex(x.formula, / \/ t/);
    t.truthy(x.env.device && x.env.version && x.env.date);
    if (x.unit === 'GB/s' && x.op !== 'copy') t.true(x.fractionOfCopy! > 0, `${x.op} has no copy fraction`);
    // GEMMs as fractions of the peak of their dtype, measured in the run where this CPU has a peak loop (AVX-512).
    if (/^(matmul|linear)_/.test(x.op) && ops.has('cpu_peak')) t.true(x.fractionOfPeak! > 0, `${x.op} has no peak fraction`);
  }
  const isa = native().buildInfo().cpuIsa;
  if (['amx', 'avx512bf16', 'avx512'].includes(isa)) t.true(ops.has('cpu_peak'), `no cpu_peak at the ${isa} level`);
  const attention = printed.find((x) => x.op === 'attention_forward' && x.shape.L === 97 && x.shape.D === 16)!;
  t.deepEqual(attention.shape, { B: 1, H: 2, L: 97, D: 16 });  // B = max(1, ⌊128 / 97⌋)
  t.is(attention.work, 4 * 1 * 2 * 97 * 97 * 16);
  const ln = printed.find((x) => x.op === 'layernorm_forward')!;
  t.is(ln.work, 2 * 256 * 48 * 4 + 8 * 256 + 2 * 48 * 4);
  rmSync(dir, { recursive: true });
});

test('bench kernels --ops and the human table; f32 and bf16 attention side by side; a bf16 case without a CPU kernel is skipped and said so', (t) => {
  const r = run('bench', 'kernels', '--device', 'cpu', '--quick', '--ops', 'attention_forward,copy', '--dtype', 'f32,bf16', '--lens', '33', '--head-dims', '16,24');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /GFLOP\/s/);
  t.regex(r.stdout, /4\*B\*H\*L\^2\*D \/ t/);
  t.regex(r.stdout, /attention_forward +f32 +B=3 H=2 L=33 D=16[^\n]*\nattention_forward_backward +f32 [^\n]*\nattention_forward +bf16 +B=3 H=2 L=33 D=16/,
    'bf16 attention runs on the CPU, after f32 at the same shape');
  t.regex(r.stdout, /copy +bf16/, 'bf16 copies run on CPU');
  t.regex(r.stderr, /skipped attention_forward(_backward)? bf16 .*D=24/, 'bf16 attention has no kernel at D = 24');
});

test('bench train: images/s = batch / step time, peak memory at least weights, grads and AdamW moments', (t) => {
  const r = run('bench', 'train', '--device', 'cpu', '--models', 'pit-d1w16h2,vit-d1w16h2/2', '--sides', '8,28', '--batch', '2', '--budget', '50', '--json');
  t.is(r.status, 0, r.stderr);
  const results = parseResults(r.stdout, 'stdout');
  t.is(results.length, 4);
  for (const x of results) {
    t.is(x.kind, 'train');
    t.is(x.op, 'train_step');
    t.is(x.unit, 'images/s');
    t.true(Math.abs(x.value - (2 * 1000) / x.ms) <= 0.01 + 1e-3 * x.value, JSON.stringify(x));
    t.true(x.peakBytes! > 0);
  }
  const pit28 = results.find((x) => x.model === 'pit-d1w16h2' && x.shape.side === 28)!;
  t.deepEqual(pit28.shape, { batch: 2, side: 28, channels: 1, tokens: 784 });
  const vit32 = results.find((x) => x.model === 'vit-d1w16h2/2' && x.shape.side === 8)!;
  t.deepEqual(vit32.shape, { batch: 2, side: 8, channels: 3, tokens: 16 });
  // 784 pixel tokens need more activation memory than 196 ... and than 64.
  t.true(pit28.peakBytes! > results.find((x) => x.model === 'pit-d1w16h2' && x.shape.side === 8)!.peakBytes!);
});

test('measureTrainStep: the peak covers weights + gradients + both AdamW moments (16 bytes per parameter)', (t) => {
  const m = measureTrainStep('cpu', { model: 'pit-d2w32h4', side: 8, channels: 3, classes: 10, batch: 2 }, { budgetMs: 20 });
  t.is(m.tokens, 64);
  t.true(m.peakBytes >= 16 * m.parameters, `${m.peakBytes} < 16 × ${m.parameters}`);
  t.true(m.peakBytes < 16 * m.parameters + 64 * 1024 * 1024, 'a tiny model does not need tens of MiB');
  t.throws(() => measureTrainStep('cpu', { model: 'pit-q', side: 8, channels: 3, classes: 10, batch: 1 }), { instanceOf: RangeError, message: /model name must be pit-<size> or vit-<size>\/<patch>.*got "pit-q"/ });
  t.throws(() => measureTrainStep('cpu', { model: 'vit-t/2', side: 9, channels: 3, classes: 10, batch: 1 }), { message: /9/ });
});

test('bench train --task classify,mae: finite images/s and a peak per task, the JSON says the task, decoder and the 25% the encoder sees', (t) => {
  const r = run('bench', 'train', '--device', 'cpu', '--task', 'classify,mae', '--models', 'pit-d1w16h2', '--sides', '8', '--batch', '2',
    '--decoder', 'd1w16h2,d2w32h4', '--budget', '50', '--json');
  t.is(r.status, 0, r.stderr);
  const results = parseResults(r.stdout, 'stdout');
  t.deepEqual(results.map((x) => [x.task, x.decoder]), [['classify', undefined], ['mae', 'd1w16h2'], ['mae', 'd2w32h4']]);
  for (const x of results) {
    t.is(x.op, 'train_step');
    t.true(Number.isFinite(x.value) && x.value > 0 && Math.abs(x.value - (2 * 1000) / x.ms) <= 0.01 + 1e-3 * x.value, JSON.stringify(x));
    t.true(x.peakBytes! > 0);
  }
  // Mask ratio 0.75 on 8×8 pixels: the encoder sees int(64 · 0.25) = 16 tokens.
  t.deepEqual(results[1]!.shape, { batch: 2, side: 8, channels: 3, tokens: 64, visibleTokens: 16 });
  t.deepEqual(results[0]!.shape, { batch: 2, side: 8, channels: 3, tokens: 64 });
  // An MAE step never pairs with a classification step; a line without `task` is one.
  t.not(resultKey(results[1]!), resultKey(results[0]!));
  t.not(resultKey(results[1]!), resultKey(results[2]!));
  const { task: _task, ...old } = results[0]!;
  t.is(resultKey(old), resultKey(results[0]!));
  const human = run('bench', 'train', '--device', 'cpu', '--task', 'mae', '--models', 'pit-d1w16h2', '--sides', '8', '--batch', '1', '--budget', '20');
  t.is(human.status, 0, human.stderr);
  t.regex(human.stdout, /pit-d1w16h2 +mae d2w16h2 .* 16\/64 /, 'a d…w…h… encoder gets 2 blocks of its width and heads');
  const bad = run('bench', 'train', '--device', 'cpu', '--task', 'mae', '--decoder', 'd8w512');
  t.not(bad.status, 0);
  t.regex(bad.stderr, /d<depth>w<width>h<heads>.*got "d8w512"/);
  t.regex(run('bench', 'train', '--device', 'cpu', '--decoder', 'd1w16h2').stderr, /--decoder is for --task mae/);
});

test('an MAE step at mask 0.75 holds less activation memory than the classification step of the same encoder (the encoder sees 25% of the tokens)', (t) => {
  const shape = { model: 'pit-d2w32h2', side: 16, channels: 3, classes: 10, batch: 4 };
  const classify = measureTrainStep('cpu', shape, { timed: false });
  const mae = measureTrainStep('cpu', { ...shape, task: 'mae', decoder: parseDecoderName('d1w16h2') }, { timed: false });
  t.is(mae.tokens, 256);
  t.is(mae.visibleTokens, 64);
  t.deepEqual(mae.decoder, { depth: 1, dim: 16, heads: 2 });
  // Activations = the peak less weights, gradients and both AdamW moments (16 bytes per parameter).
  const activations = (m: typeof mae) => m.peakBytes - 16 * m.parameters;
  t.true(activations(mae) > 0 && activations(mae) < activations(classify), `MAE ${activations(mae)} B ≥ classification ${activations(classify)} B`);
  t.throws(() => measureTrainStep('cpu', { ...shape, decoder: parseDecoderName('d1w16h2') }), { instanceOf: TypeError, message: /for task 'mae'/ });
  t.throws(() => parseDecoderName('d1w16h3'), { instanceOf: RangeError, message: /heads dividing width.*"d1w16h3"/ });
});

test('bench train --task dit: the diffusion step of the DiT with a classifier\'s trunk or a named DiT; study scaling plots it', (t) => {
  const r = run('bench', 'train', '--device', 'cpu', '--task', 'classify,dit', '--models', 'pit-d1w16h2,dit-d1w16h2/2', '--sides', '8', '--batch', '2', '--budget', '20', '--json');
  t.not(r.status, 0, 'a DiT name is no classifier');
  t.regex(r.stderr, /dit-d1w16h2\/2 is a DiT: time it with task 'dit'/);
  const ok = run('bench', 'train', '--device', 'cpu', '--task', 'dit', '--models', 'pit-d1w16h2,dit-d1w16h2/2', '--sides', '8', '--batch', '2', '--budget', '20', '--json');
  t.is(ok.status, 0, ok.stderr);
  const results = parseResults(ok.stdout, 'stdout');
  t.deepEqual(results.map((x) => [x.task, x.model, x.shape.tokens]), [['dit', 'dit-d1w16h2/1', 64], ['dit', 'dit-d1w16h2/2', 16]]);
  for (const x of results) t.true(x.value > 0 && x.peakBytes! > 0, JSON.stringify(x));
  const step = measureTrainStep('cpu', { model: 'pit-d1w16h2', task: 'dit', side: 8, channels: 1, classes: 10, batch: 2 }, { timed: false });
  t.is(step.model, 'dit-d1w16h2/1');
  t.throws(() => measureTrainStep('cpu', { model: 'dit-d1w16h2/1', task: 'mae', side: 8, channels: 1, classes: 10, batch: 2 }), { message: /is a DiT: time it with task 'dit'/ });
  const dir = scratch();
  const study = run('study', 'scaling', '--device', 'cpu', '--task', 'dit', '--models', 'dit-d1w16h2/1', '--sides', '8,12', '--budget', '20', '--out', dir);
  t.is(study.status, 0, study.stderr);
  t.deepEqual(parseResults(readFileSync(join(dir, 'scaling.jsonl'), 'utf8'), 'scaling.jsonl').map((x) => [x.task, x.model, x.shape.tokens]), [['dit', 'dit-d1w16h2/1', 64], ['dit', 'dit-d1w16h2/1', 144]]);
  t.regex(study.stdout, /fit dit-d1w16h2\/1 \(pit\)/);
  rmSync(dir, { recursive: true });
});

test('bench train --task dit-sample: one guided DDPM step of the DiT, its own op and key', (t) => {
  const ok = run('bench', 'train', '--device', 'cpu', '--task', 'dit,dit-sample', '--models', 'dit-d1w16h2/1', '--sides', '8', '--batch', '4', '--budget', '20', '--json');
  t.is(ok.status, 0, ok.stderr);
  const [train, sample] = parseResults(ok.stdout, 'stdout');
  t.like(train, { op: 'train_step', task: 'dit', model: 'dit-d1w16h2/1', unit: 'images/s', formula: 'batch / t_step' });
  t.like(sample, { op: 'sample_step', task: 'dit-sample', model: 'dit-d1w16h2/1', unit: 'images/s', shape: { batch: 4, side: 8, channels: 3, tokens: 64 } });
  t.regex(sample!.formula, /guidance 1\.5: the DiT on 2·batch/);
  t.true(sample!.value > 0 && sample!.peakBytes! > 0);
  t.not(resultKey(sample!), resultKey(train!), 'a sampling step pairs only with sampling steps');
});

test('study scaling --task mae: the MAE step per side, its series named with the decoder', (t) => {
  const dir = scratch();
  const r = run('study', 'scaling', '--device', 'cpu', '--task', 'mae', '--decoder', 'd1w16h2', '--models', 'pit-d1w16h2', '--sides', '8,12,16', '--budget', '20', '--out', dir);
  t.is(r.status, 0, r.stderr);
  const results = parseResults(readFileSync(join(dir, 'scaling.jsonl'), 'utf8'), 'scaling.jsonl');
  t.deepEqual(results.map((x) => [x.kind, x.task, x.decoder, x.shape.tokens, x.shape.visibleTokens]),
    [['scaling', 'mae', 'd1w16h2', 64, 16], ['scaling', 'mae', 'd1w16h2', 144, 36], ['scaling', 'mae', 'd1w16h2', 256, 64]]);
  t.regex(r.stdout, /fit pit-d1w16h2 MAE d1w16h2 \(pit\)/);
  rmSync(dir, { recursive: true });
});

test('study scaling: CSV, JSON with fits, valid SVG and PNG plots, and the largest side within a memory limit', (t) => {
  const dir = scratch();
  const peer = join(dir, 'torch.jsonl');
  // A peer file as bench/pytorch/vit_train.py --kind scaling writes it (two sides).
  const env = { device: 'test CPU', date: '2026-12-01T00:00:00Z', version: 'torch 0.0', runtime: 'python 3.11' };
  writeFileSync(peer, [8, 12].map((side) => JSON.stringify({ kind: 'scaling', op: 'train_step', model: 'pit-d1w16h2', impl: 'torch-eager', device: 'cpu',
    dtype: 'f32', shape: { batch: 1, side, channels: 3, tokens: side * side }, ms: side, repeats: 5, value: 1000 / side, unit: 'images/s',
    formula: 'batch / t_step', env })).join('\n') + '\n');
  const r = run('study', 'scaling', '--device', 'cpu', '--models', 'pit-d1w16h2', '--sides', '4,6,8,10,12,14', '--budget', '30',
    '--find-max', '--memory-limit', '3MiB', '--peer', peer, '--out', dir);
  t.is(r.status, 0, r.stderr);
  const csv = readFileSync(join(dir, 'scaling.csv'), 'utf8').trim().split('\n');
  t.is(csv[0], 'model,impl,device,dtype,recompute,side,tokens,batch,ms_per_step,images_per_s,peak_bytes');
  t.is(csv.length, 1 + 6 + 2);
  const report = JSON.parse(readFileSync(join(dir, 'scaling.json'), 'utf8'));
  t.is(report.fits.length, 2, 'ours and the peer');
  t.true(report.fits[0].time.length >= 1 && Number.isFinite(report.fits[0].time[0].exponent));
  t.is(report.maxSide.length, 1);
  const max = report.maxSide[0];
  t.true(max.peakBytes <= 3 * 2 ** 20 && max.side >= 14, JSON.stringify(max));
  t.is(max.limitedBy, 'memory');
  // Just past the largest side, the step needs more than the limit.
  const next = measureTrainStep('cpu', { model: 'pit-d1w16h2', side: max.side + 1, channels: 3, classes: 100, batch: 1 }, { timed: false });
  t.true(next.peakBytes > 3 * 2 ** 20);
  for (const name of ['time', 'memory']) {
    const svg = readFileSync(join(dir, `${name}.svg`), 'utf8');
    t.regex(svg, /^<\?xml[^>]*>\s*<svg[\s\S]*<\/svg>\s*$/);
    t.regex(svg, /pit-d1w16h2 \(torch-eager\)/, 'the peer curve is on the same axes');
    const png = readFileSync(join(dir, `${name}.png`));
    t.true(png.length > 5000, `${name}.png is ${png.length} bytes`);
    const image = PNG.sync.read(png);
    t.true(image.width >= 400 && image.height >= 300);
  }
  t.regex(r.stdout, /largest side pit-d1w16h2: \d+×\d+/);
  rmSync(dir, { recursive: true });
});

test('study scaling --recompute none,block: a series and a largest side per mode, block reaching further within the same limit', (t) => {
  const dir = scratch();
  const r = run('study', 'scaling', '--device', 'cpu', '--models', 'pit-d4w16h2', '--sides', '4,8', '--budget', '20', '--recompute', 'none,block',
    '--find-max', '--memory-limit', '3MiB', '--out', dir);
  t.is(r.status, 0, r.stderr);
  const results = parseResults(readFileSync(join(dir, 'scaling.jsonl'), 'utf8'), 'scaling.jsonl');
  t.deepEqual(results.map((x) => [x.recompute ?? 'none', x.shape.side]), [['none', 4], ['none', 8], ['block', 4], ['block', 8]]);
  const report = JSON.parse(readFileSync(join(dir, 'scaling.json'), 'utf8'));
  const [none, block] = report.maxSide;
  t.deepEqual([none.recompute, block.recompute], ['none', 'block']);
  t.true(none.peakBytes <= 3 * 2 ** 20 && block.peakBytes <= 3 * 2 ** 20);
  t.true(block.side > none.side, `block ${block.side} against none ${none.side}`);
  t.regex(readFileSync(join(dir, 'memory.svg'), 'utf8'), new RegExp(`max ${block.side}×${block.side}: pit-d4w16h2 block<`));
  t.regex(r.stdout, /largest side pit-d4w16h2 recompute block: \d+×\d+/);
  t.regex(r.stdout, /fit pit-d4w16h2 recompute block \(pit\)/);
  rmSync(dir, { recursive: true });
});

test('study scaling errors: --find-max on cpu needs --memory-limit; an unknown model is named', (t) => {
  const r = run('study', 'scaling', '--device', 'cpu', '--find-max', '--sides', '4');
  t.not(r.status, 0);
  t.regex(r.stderr, /--find-max on cpu needs --memory-limit/);
  const bad = run('study', 'scaling', '--device', 'cpu', '--models', 'pit-z', '--sides', '4', '--out', join(tmpdir(), 'pit-never'));
  t.not(bad.status, 0);
  t.regex(bad.stderr, /got "pit-z"/);
  const ops = run('bench', 'kernels', '--device', 'cpu', '--ops', 'nope');
  t.not(ops.status, 0);
  t.regex(ops.stderr, /--ops nope matches no op; the ops are copy, layernorm_forward, .*attention_forward_backward/);
  const lens = run('bench', 'kernels', '--device', 'cpu', '--lens', '256,x');
  t.not(lens.status, 0);
  t.regex(lens.stderr, /--lens <list>.*integers ≥ 1/);
});

test('fitPowerLaw: one exponent for a power law, two regions for linear-then-quadratic', (t) => {
  const xs = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
  const single = fitPowerLaw(xs.map((x) => ({ x, y: 3 * x ** 1.5 })));
  t.is(single.length, 1);
  t.is(single[0]!.exponent, 1.5);
  t.is(single[0]!.r2, 1);
  const knee = fitPowerLaw(xs.map((x) => ({ x, y: x <= 256 ? x : (x * x) / 256 })));
  t.is(knee.length, 2);
  t.deepEqual(knee.map((r) => [r.fromTokens, r.toTokens, r.exponent]), [[16, 256, 1], [512, 8192, 2]]);
  t.deepEqual(fitPowerLaw([{ x: 1, y: 0 }, { x: 2, y: Number.NaN }]), [], 'too few valid points');
});

const fixture = (over: Partial<BenchResult>): BenchResult => ({
  kind: 'kernel', op: 'attention_forward', impl: 'pit', device: 'cuda', dtype: 'bf16', shape: { B: 1, H: 12, L: 4096, D: 16 },
  ms: 1, repeats: 10, value: 100, unit: 'GFLOP/s', formula: '4*B*H*L^2*D / t', env: { device: 'x', date: 'd', version: 'v', runtime: 'r' }, ...over,
});

test('bench compare pairs equal keys across files (kernels of one dtype; training steps across precisions) and reports B / A', (t) => {
  const dir = scratch();
  const a = [fixture({ value: 200 }), fixture({ shape: { B: 1, H: 12, L: 1024, D: 16 }, value: 50 }), fixture({ op: 'layernorm_forward', shape: { n: 8, c: 4 }, unit: 'GB/s', value: 10 })];
  const b = [fixture({ impl: 'torch-sdpa-flash', value: 100 }), fixture({ impl: 'torch-sdpa-cudnn', value: 400 }),
    fixture({ impl: 'torch-sdpa-flash', shape: { D: 16, L: 1024, H: 12, B: 1 }, dtype: 'f32', value: 25 }), fixture({ op: 'matmul_forward', shape: { m: 1, n: 1, k: 1 } }),
    fixture({ impl: 'torch-sdpa-flash', shape: { D: 16, L: 1024, H: 12, B: 1 }, value: 25 })];
  const train = (impl: string, dtype: string, value: number) => fixture({ kind: 'train', op: 'train_step', model: 'pit-t', impl, dtype, unit: 'images/s', value,
    shape: { batch: 64, side: 32, channels: 3, tokens: 1024 } });
  a.push(train('pit', 'mixed', 300));
  b.push(train('torch-eager', 'bf16', 200), train('torch-compile', 'bf16', 250));
  writeFileSync(join(dir, 'a.jsonl'), a.map((x) => JSON.stringify(x)).join('\n') + '\n');
  writeFileSync(join(dir, 'b.jsonl'), b.map((x) => JSON.stringify(x)).join('\n') + '\n');
  const c = compareResults(a, b);
  t.deepEqual(c.rows.map((r) => [r.b.impl, r.b.dtype, r.ratio]), [['torch-sdpa-flash', 'bf16', 0.5], ['torch-sdpa-cudnn', 'bf16', 2],
    ['torch-sdpa-flash', 'bf16', 0.5], ['torch-eager', 'bf16', 200 / 300], ['torch-compile', 'bf16', 250 / 300]]);
  t.is(c.onlyA.length, 1, 'the LayerNorm');
  t.is(c.onlyB.length, 2, 'the f32 kernel (no f32 partner) and the matmul');
  t.is(resultKey(a[1]!), resultKey(b[4]!), 'shape key order does not matter');
  t.not(resultKey(a[1]!), resultKey(b[2]!), 'kernels of different dtypes do not pair');
  const table = formatComparison(c, ['a', 'b']);
  t.regex(table, /pit bf16 → torch-sdpa-flash bf16: 2 pairs, geometric mean of B\/A 0\.50×/);
  t.regex(table, /pit bf16 → torch-sdpa-cudnn bf16: 1 pairs, geometric mean of B\/A 2\.00×/);
  t.regex(table, /pit mixed → torch-compile bf16: 1 pairs, geometric mean of B\/A 0\.83×/);
  t.regex(table, /unpaired: 1 only in A, 2 only in B/);
  const r = run('bench', 'compare', join(dir, 'a.jsonl'), join(dir, 'b.jsonl'));
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /torch-sdpa-cudnn bf16 400 GFLOP\/s +2\.00×/);
  writeFileSync(join(dir, 'bad.jsonl'), JSON.stringify(a[0]) + '\n' + JSON.stringify({ ...a[0], value: 'fast' }) + '\n');
  const bad = run('bench', 'compare', join(dir, 'a.jsonl'), join(dir, 'bad.jsonl'));
  t.not(bad.status, 0);
  t.regex(bad.stderr, /bad\.jsonl:2: field "value" must be a number, got "fast"/);
  t.throws(() => parseResults('{"kind":\n', 'f.jsonl'), { instanceOf: SyntaxError, message: /f\.jsonl:1: not valid JSON/ });
  t.throws(() => compareResults(a, [fixture({ unit: 'GB/s' })]), { message: /GFLOP\/s in the first file and GB\/s in the second/ });
  rmSync(dir, { recursive: true });
});

test('bench compare pairs MAE steps only with MAE steps of the same decoder (a peer\'s classify lines may omit task) and names the decoder in the table', (t) => {
  const shape = { batch: 8, side: 32, channels: 3, tokens: 1024 };
  const step = (impl: string, value: number, over: Partial<BenchResult> = {}) => fixture({ kind: 'train', op: 'train_step', model: 'pit-t', impl, dtype: 'f32', device: 'cpu',
    unit: 'images/s', value, shape, ...over });
  const mae = (decoder: string) => ({ task: 'mae', decoder, shape: { ...shape, visibleTokens: 256 } });
  const ours = [step('pit', 5, { task: 'classify' }), step('pit', 2, mae('d8w512h16')), step('pit', 30, mae('d1w64h4'))];
  const torch = [step('torch-eager', 2.5), step('torch-eager', 1, mae('d8w512h16')), step('torch-eager', 10, mae('d1w64h4')), step('torch-eager', 9, mae('d2w64h4'))];
  const c = compareResults(ours, torch);
  t.deepEqual(c.rows.map((r) => [r.a.task, r.a.decoder, r.b.task ?? 'classify', r.b.decoder, r.ratio]),
    [['classify', undefined, 'classify', undefined, 0.5], ['mae', 'd8w512h16', 'mae', 'd8w512h16', 0.5], ['mae', 'd1w64h4', 'mae', 'd1w64h4', 10 / 30]]);
  t.deepEqual(c.onlyB.map((r) => r.decoder), ['d2w64h4']);
  const table = formatComparison(c, ['ours', 'torch']);
  t.regex(table, /train pit-t mae d8w512h16 \(cpu\) +batch=8 side=32 channels=3 tokens=1024 visibleTokens=256 /);
  t.regex(table, /train pit-t \(cpu\) +batch=8 side=32 channels=3 tokens=1024 +pit f32 5 images\/s/);
});

test('memory(): peakBytes tracks the most bytes live at once; resetPeakMemory restarts it from the live bytes', (t) => {
  const before = memory().cpu;
  resetPeakMemory();
  t.is(memory().cpu.peakBytes, before.bytes);
  const a = empty([1024, 256]);  // 1 MiB
  const b = empty([512, 256]);   // 0.5 MiB
  a.dispose();
  b.dispose();
  const after = memory().cpu;
  t.is(after.bytes, before.bytes);
  t.is(after.peakBytes, before.bytes + 1.5 * 2 ** 20);
  resetPeakMemory();
  t.is(memory().cpu.peakBytes, before.bytes);
});

test('a case that fails leaves nothing behind: skipped bf16 kernels, a step at a precision that does not exist', (t) => {
  const before = memory().cpu.tensors;
  const skipped: string[] = [];
  // bf16 attention has kernels for head dims 16, 32, 64, 128 only.
  runKernelBench({ device: 'cpu', sweep: { ...defaultSweep('cpu', true), dtypes: ['bf16'], headDims: [24], ops: ['attention'] }, budgetMs: 5,
    onSkip: (c) => skipped.push(c.op) });
  t.deepEqual([...new Set(skipped)], ['attention_forward', 'attention_backward', 'attention_forward_backward']);
  t.is(memory().cpu.tensors, before, 'the inputs of skipped cases are freed');
  t.throws(() => measureTrainStep('cpu', { model: 'pit-d1w16h2', side: 8, channels: 3, classes: 10, batch: 1, precision: 'f16' as never }), { message: /precision must be "f32" or "mixed", got "f16"/ });
  t.is(memory().cpu.tensors, before);
});

test('gemmPath: the GEMM paths whose counts moved while a case ran; none off the GPU', (t) => {
  t.is(gemmPath(null, null), undefined, 'not a GPU GEMM case');
  t.is(gemmPath({ simt: 3 }, { simt: 3 }), undefined, 'nothing moved');
  t.is(gemmPath({ cublasLt: 2, simt: 1 }, { cublasLt: 9, 'cublasLt/BGRADB': 7, simt: 1 }), 'cublasLt + cublasLt/BGRADB');
  const line = (impl: string, path?: string): BenchResult => ({ kind: 'kernel', op: 'linear_forward', impl, device: 'cuda', dtype: 'bf16',
    shape: { m: 1, n: 2, k: 3 }, ms: 1, repeats: 5, value: 10, unit: 'GFLOP/s', formula: '2*m*n*k / t', ...(path ? { path } : {}),
    env: { device: 'gpu', date: '', version: '', runtime: '' } });
  const table = formatComparison(compareResults([line('pit', 'cublasLt/BIAS')], [line('torch')]), ['ours', 'torch']);
  t.regex(table, /pit \[cublasLt\/BIAS\] bf16 10 GFLOP\/s/, 'compare shows the path beside the impl');
});
