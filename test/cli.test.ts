// The `pit` command end to end: info and the kernel benchmark (tiny shapes) print what they
// promise; bad arguments exit non-zero with a message.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const pit = fileURLToPath(new URL('../cli/pit.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [pit, ...args], { encoding: 'utf8', timeout: 120_000 });

test('pit info --json reports the backend, the reasons and the build', (t) => {
  const r = run('info', '--json', '--device', 'cpu');
  t.is(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  t.is(info.backend, 'cpu');
  t.true(info.reasons.some((s: string) => /CPU requested/.test(s)));
  t.regex(info.build.cpuIsa, /^(avx512|avx2|scalar)$/);
  t.true(info.build.threads >= 1);
  t.false(info.build.debug, 'the addon is an optimised build');
});

test('pit bench kernels --json prints one parseable result per line with its formula', (t) => {
  const r = run('bench', 'kernels', '--device', 'cpu', '--json', '--quick');
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(lines.map((l) => l.op), ['matmul', 'attention_forward', 'attention_backward', 'attention_forward_backward']);
  for (const l of lines) {
    t.is(l.device, 'cpu');
    t.is(l.dtype, 'f32');
    t.true(l.ms > 0 && Number.isFinite(l.gflops) && l.gflops > 0, JSON.stringify(l));
    t.truthy(l.formula);
    t.is(typeof l.shape, 'object');
  }
  t.deepEqual(lines[0].shape, { m: 97, n: 65, k: 33 });
});

test('bad arguments exit non-zero and say what was wrong', (t) => {
  const r = run('bench', 'kernels', '--device', 'gpu');
  t.not(r.status, 0);
  t.regex(r.stderr, /--device <device>.*Allowed choices are auto, cpu, cuda/);
  const missing = run('nonsense');
  t.not(missing.status, 0);
  t.regex(missing.stderr, /unknown command 'nonsense'/);
});
