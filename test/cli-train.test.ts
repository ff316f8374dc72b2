// `pit train` and `pit eval` as a user runs them: argument errors, a run to the final line,
// eval agreeing with it, and Ctrl-C or SIGTERM saving a checkpoint that --resume continues.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { pitCli as pit, runPit as run } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-cli-'));
const tiny = ['--image-size', '7', '--depth', '1', '--dim', '16', '--heads', '2', '--device', 'cpu'];

test('pit train: bad arguments exit 1 naming the flag, what was expected and what was given', (t) => {
  const cases: [string[], RegExp][] = [
    [['--lr', 'abc'], /option '--lr <lr>' argument 'abc' is invalid\. expected a number in \[0, ∞\)/],
    [['--epochs', '1.5'], /option '--epochs <n>' argument '1\.5' is invalid\. expected an integer ≥ 1/],
    [['--betas', '0.9'], /option '--betas <b1,b2>' argument '0\.9' is invalid\. expected two values separated by a comma, each a number in \[0, 1\), e.g. 0.9,0.95/],
    [['--model', 'pit-xxl'], /option '--model <name>' argument 'pit-xxl' is invalid\. model name must be pit-<size> or vit-<size>\/<patch>, .*got "pit-xxl"/],
    [['--model', 'pit-t/2'], /argument 'pit-t\/2' is invalid\. model name "pit-t\/2": a PiT has 1×1 patches; write vit-…\/2/],
    [['--model', 'custom'], /argument 'custom' is invalid\. model name "custom" is now written pit-d4w64h4/],
    [['--seed', '4294967296'], /option '--seed <n>' argument '4294967296' is invalid\. expected an integer in \[0, 4294967295\]/],
    [['--data', 'cifar10'], /recipe: 'dataDir' must be the folder of the cifar10 binary files, got null/],
    [['--data', 'cifar10', '--data-dir', '/nonexistent-pit'], /cifar10.*\/nonexistent-pit/],
    [['--resume'], /checkpoint: '.*pit-cli-never' does not exist/],
    [['--heads', '5'], /'heads' 5 must divide 'dim' 64/],
    [['--precision', 'f16'], /option '--precision <kind>' argument 'f16' is invalid\. Allowed choices are f32, mixed/],
  ];
  for (const [args, message] of cases) {
    const r = run('train', ...args, '--out', join(tmpdir(), 'pit-cli-never'));
    t.is(r.status, 1, `${args.join(' ')}: ${r.stdout}`);
    t.regex(r.stderr, message, args.join(' '));
  }
  t.false(existsSync(join(tmpdir(), 'pit-cli-never', 'checkpoints')), 'nothing trained');
  const noFolder = run('train', '--resume');
  t.is(noFolder.status, 1);
  t.regex(noFolder.stderr, /--resume without a folder needs --out <run folder>/);
  const noCheckpoint = run('eval');
  t.is(noCheckpoint.status, 1);
  t.regex(noCheckpoint.stderr, /required option '--checkpoint <path>' not specified/);
  const missing = run('eval', '--checkpoint', '/nonexistent-pit-run');
  t.is(missing.status, 1);
  t.regex(missing.stderr, /checkpoint: '\/nonexistent-pit-run' does not exist/);
});

test('pit train --help shows every default', (t) => {
  const r = run('train', '--help');
  t.is(r.status, 0);
  for (const flag of ['--epochs <n>', '--lr <lr>', '--batch-size <n>', '--warmup-epochs <n>', '--patch <n>', '--pe <kind>', '--pool <kind>', '--ema <decay>', '--resume [dir]'])
    t.true(r.stdout.includes(flag), flag);
  t.regex(r.stdout, /--lr <lr>\s+peak learning rate \(default: 0\.003\)/);
  t.regex(r.stdout, /--image-size <n>\s+resize images to n×n \(default: 8 for mnist/);
});

test('pit train prints one line per epoch and the final accuracy last; pit eval agrees', (t) => {
  const out = scratch();
  const r = run('train', ...tiny, '--patch', '7', '--image-size', '14', '--epochs', '2', '--out', out);
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.filter((l) => /^epoch +\d+ +step \d+ +train loss/.test(l)).length, 2);
  const final = /^final top-1 accuracy: (\d+\.\d\d)% on 2000 held-out images/.exec(lines.at(-1)!);
  t.truthy(final, lines.at(-1));
  const e = run('eval', '--checkpoint', out, '--json');
  t.is(e.status, 0, e.stderr);
  const metrics = JSON.parse(e.stdout);
  t.is((100 * metrics.top1).toFixed(2), final![1]);
  t.is(metrics.n, 2000);
  t.is(metrics.data, 'mnist-test');
  rmSync(out, { recursive: true });
});

// SIGTERM is what schedulers and containers send before a kill: it saves as Ctrl-C does.
for (const [signal, status, said] of [['SIGINT', 130, 'interrupted'], ['SIGTERM', 143, 'terminated \\(SIGTERM\\)']] as const) {
  // Serial: the other tests of this file run the CLI with spawnSync, which blocks this
  // process's event loop; a concurrent one could hold back the child's output until the run
  // had finished, and the signal would come too late.
  test.serial(`${signal === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} finishes the step, saves, exits ${status}; --resume then completes the run`, async (t) => {
    const out = scratch(), epochs = 12;
    const child = spawn(process.execPath, [pit, 'train', ...tiny, '--epochs', String(epochs), '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (b) => {
        stdout += b;
        // Interrupt at the end of the first epoch: the run has eleven more to go, so the signal
        // lands mid-run however slow or busy the machine is (a fixed delay did not).
        if (/^epoch +1 /m.test(stdout) && !child.killed) child.kill(signal);
      });
      child.on('exit', (c) => resolve(c));
    });
    t.is(code, status, stdout + stderr);
    t.regex(stderr, new RegExp(`${said}; finishing this step and saving a checkpoint`));
    t.regex(stdout, /stopped at step \d+; checkpoint .*step-\d+/);
    t.regex(stdout, new RegExp(`resume with: pit train --out ${out} --resume`));
    t.true(existsSync(join(out, 'checkpoints', 'latest')));
    const stoppedAt = Number(/stopped at step (\d+)/.exec(stdout)![1]);
    t.true(stoppedAt >= 125 && stoppedAt < epochs * 125, `stopped at ${stoppedAt}`);
    const resumed = run('train', '--out', out, '--resume', '--device', 'cpu');
    t.is(resumed.status, 0, resumed.stderr);
    t.regex(resumed.stdout, new RegExp(`resuming at step ${stoppedAt}`));
    t.regex(resumed.stdout.trim().split('\n').at(-1)!, /^final top-1 accuracy: /);
    const logged = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'epoch');
    t.deepEqual(logged.map((l) => l.epoch), Array.from({ length: epochs }, (_, i) => i + 1));
    rmSync(out, { recursive: true });
  });
}
