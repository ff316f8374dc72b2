// The `pit` command end to end: info prints what it promises; bad arguments exit non-zero
// with a message. (The bench and study commands: bench.test.ts.)
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runPit as run } from './helpers.js';


test('pit info --json reports the backend, the reasons and the build', (t) => {
  const r = run('info', '--json', '--device', 'cpu');
  t.is(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  t.is(info.backend, 'cpu');
  t.true(info.reasons.some((s: string) => /CPU requested/.test(s)));
  t.regex(info.build.cpuIsa, /^(amx|avx512bf16|avx512|avx2|scalar)$/);
  t.true(info.build.threads >= 1);
  t.false(info.build.debug, 'the addon is an optimised build');
});

test('bad arguments exit non-zero and say what was wrong', (t) => {
  const r = run('bench', 'kernels', '--device', 'gpu');
  t.not(r.status, 0);
  t.regex(r.stderr, /--device <device>.*Allowed choices are auto, cpu, cuda/);
  const missing = run('nonsense');
  t.not(missing.status, 0);
  t.regex(missing.stderr, /unknown command 'nonsense'/);
});

test('pit study pretrain: bad lists are errors naming the option and what it expects', (t) => {
  const seeds = run('study', 'pretrain', '--seeds', '1,1');
  t.not(seeds.status, 0);
  t.regex(seeds.stderr, /--seeds <list>.*expected different seeds, got 1,1/);
  const model = run('study', 'pretrain', '--models', 'pit-t,vot-t');
  t.not(model.status, 0);
  t.regex(model.stderr, /--models <list>.*vot-t/);
  const decay = run('study', 'pretrain', '--layer-decay', '0');
  t.not(decay.status, 0);
  t.regex(decay.stderr, /--layer-decay <d>.*expected a number in \(0, 1\]/);
});

test('pit study locality: δ flags take an integer ≥ 2 or inf, as --permute-delta does', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-cli-locality-'));
  // inf as the single δ flag (commander keeps a parser's null as ''; this once reached pixelPermutation as "").
  const inf = run('study', 'locality', 'show-permutation', '--delta', 'inf', '--swaps', '8', '--image-size', '8', '--n', '2', '--out', join(dir, 'inf.png'));
  t.is(inf.status, 0, inf.stderr);
  t.regex(inf.stdout, /8 swaps within δ = ∞/);
  t.true(existsSync(join(dir, 'inf.png')));
  const three = run('study', 'locality', 'show-permutation', '--delta', '3', '--swaps', '8', '--image-size', '8', '--n', '2', '--out', join(dir, 'three.png'));
  t.is(three.status, 0, three.stderr);
  t.regex(three.stdout, /within δ = 3 /);
  for (const [flag, value] of [['--delta', '1'], ['--deltas', '2,inf,1']] as const) {
    const bad = run('study', 'locality', 'permute', flag, value, '--out', join(dir, 'never'));
    t.not(bad.status, 0);
    t.regex(bad.stderr, new RegExp(`${flag} <[^>]+>' argument '${value}' is invalid\\. expected an integer ≥ 2 or inf`));
  }
  t.false(existsSync(join(dir, 'never')), 'nothing trained');
});

test('pit study locality passes pit train\'s recipe flags to every run, and refuses a bad one by name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-cli-locality-'));
  const r = run('study', 'locality', 'patch-sweep', '--image-size', '8', '--size', 'd1w16h2', '--patches', '4', '--seeds', '0', '--epochs', '1',
    '--lr', '0.001', '--drop-path', '0.1', '--pool', 'cls', '--out', dir);
  t.is(r.status, 0, r.stderr);
  const recipe = (JSON.parse(readFileSync(join(dir, 'p4-8x8', 'seed-0', 'run.json'), 'utf8')) as { recipe: Record<string, unknown> }).recipe;
  t.like(recipe, { model: 'vit-d1w16h2/4', imageSize: 8, epochs: 1, lr: 0.001, dropPath: 0.1, pool: 'cls', posEmbed: 'learned' });
  const bad = run('study', 'locality', 'pos-embed', '--weight-decay', '-1', '--out', join(dir, 'never'));
  t.not(bad.status, 0);
  t.regex(bad.stderr, /--weight-decay <wd>' argument '-1' is invalid/);
  t.regex(run('study', 'locality', 'pos-embed', '--pe', 'none').stderr, /unknown option '--pe'/, 'pos-embed sweeps the position embedding itself');
});
