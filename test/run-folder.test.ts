// A run folder survives crashes and misuse: a kill between any two filesystem operations of a
// re-save leaves `latest` loadable and the run resumable to the same bytes as a straight run;
// temp folders go when a run starts (the lock proves no other writer); metrics.jsonl reads as one clean run
// after a crash; one writer per folder (a live lock is reported, a crashed run's is taken
// over); weights that are not finite never become a checkpoint.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import {
  CHECKPOINTS_DIR, loadCheckpoint, LOCK_FILE, lockRunFolder, METRICS_FILE, MODEL_FILE, resolveCheckpoint, runTraining, type StartEvent,
} from '../lib/index.js';
import type { SaveOperation } from '../lib/train/run-checkpoints.js';
import { regressionTask, Regressor } from './regression-task.js';

const child = fileURLToPath(new URL('./run-child.js', import.meta.url));
const scratch = () => mkdtempSync(join(tmpdir(), 'pit-runfolder-'));
const step5 = 'step-00000005';

/** A run of the regression task, its model disposed; returns the step it started from. */
async function train(out: string, options: Partial<Parameters<typeof runTraining>[1]> = {}): Promise<number> {
  let startedAt = -1;
  const r = await runTraining(regressionTask, { out, device: 'cpu', recipe: options.resume ? undefined : { epochs: 1 }, ...options, onEvent: (e) => {
    if (e.type === 'start') startedAt = (e as StartEvent).step;
  } });
  r.model.dispose();
  return startedAt;
}

const temps = (dir: string) => readdirSync(join(dir, CHECKPOINTS_DIR)).filter((f) => /\.(tmp|old)-\d+$/.test(f));

test('a kill between any two operations of a re-save leaves latest loadable; --resume then ends byte-identical to a straight run', async (t) => {
  const straight = scratch(), base = scratch();
  await train(straight);
  // step-3, then step-5 (latest); resuming step-3 into the same folder re-saves step 5.
  await train(base, { stopAtStep: 3 });
  await train(base, { resume: true, stopAtStep: 5 });
  t.deepEqual(readdirSync(join(base, CHECKPOINTS_DIR)).sort(), ['latest', 'step-00000003', step5]);
  const operations: (SaveOperation | 'none')[] = ['write-files', 'rename-into-place', 'switch-latest', 'remove-replaced', 'prune', 'none'];
  for (const operation of operations) {
    const out = scratch();
    cpSync(base, out, { recursive: true });
    const r = spawnSync(process.execPath, [child, 'crash', out, operation, join(out, CHECKPOINTS_DIR, 'step-00000003'), '5'], { encoding: 'utf8' });
    t.is(r.signal, operation === 'none' ? null : 'SIGKILL', `${operation}: ${r.stderr}`);
    const dir = resolveCheckpoint(out);
    t.regex(dir, /step-00000005(-1)?$/, operation);
    const model = new Regressor({ inputs: 16, hidden: 16, seed: 1 }, 'cpu');
    t.is(loadCheckpoint(dir, { model }).step, 5, `${operation}: latest loads at step 5`);
    model.dispose();
    t.is(await train(out, { resume: true }), 5, `${operation}: --resume starts at step 5`);
    t.deepEqual(temps(out), [], `${operation}: the dead child's temp folders are gone`);
    t.true(readFileSync(join(resolveCheckpoint(out), MODEL_FILE)).equals(readFileSync(join(resolveCheckpoint(straight), MODEL_FILE))), `${operation}: same bytes as the straight run`);
    rmSync(out, { recursive: true });
  }
  for (const dir of [straight, base]) rmSync(dir, { recursive: true });
});

/** The id of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

test('temp folders and files are removed when a run starts, whatever their pid (the lock proves no other writer); a live process\'s lock temp stays', async (t) => {
  const out = scratch();
  await train(out, { stopAtStep: 3 });
  const dead = deadPid();
  const root = join(out, CHECKPOINTS_DIR);
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], { stdio: 'ignore' });
  await new Promise((resolve) => sleeper.on('spawn', resolve));
  const stale = [`step-00000004.tmp-${dead}`, `step-00000003.old-${dead}`, `step-00000009.tmp-${sleeper.pid}`];
  for (const name of stale) {
    mkdirSync(join(root, name));
    writeFileSync(join(root, name, MODEL_FILE), 'partial');
  }
  writeFileSync(join(root, `latest.tmp-${dead}`), 'step-0000');
  writeFileSync(join(out, `run.json.tmp-${dead}`), '{');
  // A process about to take the lock writes this; a dead one's is stale.
  writeFileSync(join(out, `${LOCK_FILE}.tmp-${sleeper.pid}`), '{}');
  writeFileSync(join(out, `${LOCK_FILE}.tmp-${dead}`), '{}');
  try {
    await train(out, { resume: true, stopAtStep: 4 });
  } finally {
    sleeper.kill('SIGKILL');
  }
  t.deepEqual(temps(out), []);
  t.deepEqual(readdirSync(out).filter((f) => /\.tmp-\d+$/.test(f)), [`${LOCK_FILE}.tmp-${sleeper.pid}`]);
  rmSync(out, { recursive: true });
});

test('metrics.jsonl after a crash and resume reads as one clean run (no line past the resumed step, no torn line)', async (t) => {
  const straight = scratch(), split = scratch();
  await train(straight, { recipe: { epochs: 3 }, logEvery: 1 });
  await train(split, { recipe: { epochs: 3 }, logEvery: 1, stopAtStep: 13 });
  // What a kill after the lines of steps 14–20 (and half of 21) but before their checkpoint leaves.
  const lines = readFileSync(join(straight, METRICS_FILE), 'utf8').split('\n').filter((l) => l && JSON.parse(l).step > 13 && JSON.parse(l).step <= 20);
  appendFileSync(join(split, METRICS_FILE), lines.join('\n') + '\n{"type":"step","st');
  await train(split, { resume: true, logEvery: 1 });
  const records = (dir: string) => readFileSync(join(dir, METRICS_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);
  t.deepEqual(records(split), records(straight));
  for (const dir of [straight, split]) rmSync(dir, { recursive: true });
});

test('one writer per run folder: a second run is refused naming the holder; a crashed run\'s lock is taken over', async (t) => {
  const out = scratch();
  const holder = spawn(process.execPath, [child, 'hold', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  holder.stderr.on('data', (b) => (stderr += b));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on('data', (b) => String(b).includes('started') && resolve());
    holder.on('exit', () => reject(new Error(`the holding run exited: ${stderr}`)));
  });
  const message = new RegExp(`run folder ${out} is in use by pid ${holder.pid} on ${hostname()} since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z`);
  await t.throwsAsync(train(out), { message });
  await t.throwsAsync(train(out, { resume: true }), { message });
  const exited = new Promise((resolve) => holder.on('exit', resolve));
  holder.kill('SIGKILL');
  await exited;
  t.true(existsSync(join(out, LOCK_FILE)), 'the killed run left its lock');
  // Whatever it saved is not this test's concern (a fresh run into a folder holding a run is refused).
  rmSync(join(out, CHECKPOINTS_DIR), { recursive: true, force: true });
  await train(out, { stopAtStep: 3 });
  t.false(existsSync(join(out, LOCK_FILE)), 'released at the end');
  // A lock naming a dead process is stale too.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: deadPid(), host: hostname(), started: '2020-01-01T00:00:00.000Z' }));
  t.is(await train(out, { resume: true, stopAtStep: 4 }), 3);
  // One from another host cannot be checked: it is reported.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', started: '2020-01-01T00:00:00.000Z' }));
  await t.throwsAsync(train(out, { resume: true }), { message: /is in use by pid 1 on elsewhere since 2020-01-01T00:00:00.000Z/ });
  rmSync(out, { recursive: true });
});

test('weights that go non-finite with a finite loss are never saved: the run fails naming the tensor', async (t) => {
  const out = scratch();
  // lr 1e39 is Infinity in f32: the first step's loss is finite, the weights after it are not.
  await t.throwsAsync(train(out, { recipe: { epochs: 1, lr: 1e39 }, stopAtStep: 1 }),
    { message: /training diverged by step 1: saveCheckpoint: .* at step 1: tensor "fc1\.weight" holds -?(Infinity|NaN) at element \d+; a model that is not finite is not saved/ });
  t.false(existsSync(join(out, CHECKPOINTS_DIR, 'latest')));
  t.deepEqual(readdirSync(join(out, CHECKPOINTS_DIR)), [], 'no temp folder either');
  rmSync(out, { recursive: true });
});

// ---- review fixes: PID reuse, a fresh run into a run's folder, metadata verified first -----
/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null off Linux. */
function startTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
const bootId = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
})();

test('PID reuse: a lock naming this process (which does not hold it) is stale, and once the lock is held every temp goes, whatever its pid', async (t) => {
  const out = scratch();
  await train(out, { stopAtStep: 3 });
  // A restarted container: node is pid 1 again on the same host, and the crashed run's lock
  // and temps name pid 1. Here: this process's pid.
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), started: '2020-01-01T00:00:00.000Z' }));
  const root = join(out, CHECKPOINTS_DIR);
  mkdirSync(join(root, `step-00000004.tmp-${process.pid}`));
  writeFileSync(join(root, `latest.tmp-${process.pid}`), 'step-0000');
  writeFileSync(join(out, `run.json.tmp-${process.pid}`), '{');
  t.is(await train(out, { resume: true, stopAtStep: 4 }), 3);
  t.deepEqual(temps(out), []);
  t.deepEqual(readdirSync(out).filter((f) => /\.tmp-\d+$/.test(f)), []);
  // A lock this process holds is not stale to it.
  const held = lockRunFolder(out);
  await t.throwsAsync(train(out, { resume: true }), { message: new RegExp(`run folder ${out} is in use by pid ${process.pid}`) });
  held.release();
  t.false(existsSync(join(out, LOCK_FILE)));
  rmSync(out, { recursive: true });
});

// Needs /proc (the boot id and process start times); elsewhere it is reported as skipped.
(startTicks(process.pid) === null || bootId === null ? test.skip : test)('PID reuse: a live pid whose start time or boot differs from the lock\'s is stale; the same process is not', async (t) => {
  const out = scratch();
  await train(out, { stopAtStep: 3 });
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120000)'], { stdio: 'ignore' });
  await new Promise((resolve) => sleeper.on('spawn', resolve));
  const pid = sleeper.pid!;
  const lock = (fields: object) => writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid, host: hostname(), started: '2020-01-01T00:00:00.000Z', ...fields }));
  try {
    lock({ boot: bootId, startTicks: startTicks(pid) });
    await t.throwsAsync(train(out, { resume: true, stopAtStep: 4 }), { message: new RegExp(`is in use by pid ${pid}`) }, 'the holder itself');
    lock({ boot: bootId, startTicks: String(Number(startTicks(pid)) - 1) });
    t.is(await train(out, { resume: true, stopAtStep: 4 }), 3, 'another process under the same pid');
    lock({ boot: 'another-boot', startTicks: startTicks(pid) });
    t.is(await train(out, { resume: true, stopAtStep: 5 }), 4, 'a lock from before a reboot');
    // What a run writes into its lock: this boot and this process's start time.
    const held = lockRunFolder(out);
    t.like(JSON.parse(readFileSync(join(out, LOCK_FILE), 'utf8')), { pid: process.pid, host: hostname(), boot: bootId, startTicks: startTicks(process.pid) });
    held.release();
  } finally {
    sleeper.kill('SIGKILL');
  }
  rmSync(out, { recursive: true });
});

test('a fresh run into a folder that holds a run is refused before anything in it changes', async (t) => {
  const out = scratch();
  await train(out, { stopAtStep: 3, logEvery: 1 });
  const files = ['run.json', METRICS_FILE, join(CHECKPOINTS_DIR, 'latest')];
  const before = files.map((f) => readFileSync(join(out, f), 'utf8'));
  await t.throwsAsync(train(out, { recipe: { epochs: 2 } }),
    { message: `run folder ${out} holds a run at step 3 (its latest checkpoint); pass --resume to continue it, or another --out` });
  t.deepEqual(files.map((f) => readFileSync(join(out, f), 'utf8')), before);
  t.false(existsSync(join(out, LOCK_FILE)), 'the lock is released');
  t.is(await train(out, { resume: true, stopAtStep: 4 }), 3, 'the run is still there to resume');
  rmSync(out, { recursive: true });
});

test('resume: a corrupted metadata key in the checkpoint is a checksum mismatch, not a recipe error', async (t) => {
  const out = scratch();
  await train(out, { stopAtStep: 3 });
  const path = join(resolveCheckpoint(out), MODEL_FILE);
  const bytes = readFileSync(path);
  bytes[bytes.indexOf('"recipe"') + 1] = 'R'.charCodeAt(0);
  writeFileSync(path, bytes);
  await t.throwsAsync(train(out, { resume: true }), { message: new RegExp(`safetensors: ${path}: checksum mismatch`) });
  rmSync(out, { recursive: true });
});
