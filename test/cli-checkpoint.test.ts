// `pit eval` and `pit train --resume` on damaged checkpoints: each is an exit 1 naming the
// file, what was expected and what was found (non-finite weights, a folder in place of the
// model file, a corrupted metadata key, a checksum mismatch), and --skip-checksum is offered.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { MODEL_FILE, readSafetensors, writeSafetensors } from '../lib/index.js';
import { fileURLToPath } from 'node:url';
import { runPit as run } from './helpers.js';

const fixture = fileURLToPath(new URL('../../test/fixtures/run-c863a29', import.meta.url));

/** A copy of the fixture run (saved before checksums) and the path of its model file. */
function copyOfFixture(): { out: string; modelPath: string } {
  const out = mkdtempSync(join(tmpdir(), 'pit-cli-ckpt-'));
  cpSync(fixture, out, { recursive: true });
  return { out, modelPath: join(out, 'checkpoints', 'step-00000003', MODEL_FILE) };
}

test('pit eval on non-finite weights exits 1 naming the first bad tensor', (t) => {
  const { out, modelPath } = copyOfFixture();
  const file = readSafetensors(modelPath);
  file.tensors.get('head.weight')!.data[5] = NaN;
  file.tensors.get('head.bias')!.data[0] = Infinity;
  writeSafetensors(modelPath, file.tensors, file.metadata);
  const r = run('eval', '--checkpoint', out, '--device', 'cpu');
  t.is(r.status, 1, r.stdout);
  t.regex(r.stderr, new RegExp(`checkpoint: ${modelPath}: tensor "head.weight" holds NaN at element 5; the weights are not finite`));
  rmSync(out, { recursive: true });
});

test('pit eval: a folder in place of model.safetensors and a corrupted metadata key are named', (t) => {
  const { out, modelPath } = copyOfFixture();
  // One byte of the header changed: "normalization" no longer names the entry (no checksum in this old file).
  const bytes = readFileSync(modelPath);
  const at = bytes.indexOf('"normalization"');
  bytes[at + 1] = 'N'.charCodeAt(0);
  writeFileSync(modelPath, bytes);
  const corrupted = run('eval', '--checkpoint', out, '--device', 'cpu');
  t.is(corrupted.status, 1, corrupted.stdout);
  t.regex(corrupted.stderr, new RegExp(`eval: ${modelPath}: metadata "normalization" must be \\{ mean, std \\} with 1 finite number\\(s\\) each \\(std > 0\\), got nothing`));
  rmSync(modelPath);
  mkdirSync(modelPath);   // a folder where the file was
  const folder = run('eval', '--checkpoint', out, '--device', 'cpu');
  t.is(folder.status, 1);
  t.regex(folder.stderr, new RegExp(`safetensors: ${modelPath}: expected a safetensors file, found a folder`));
  rmSync(out, { recursive: true });
});

/** The fixture run with its model saved again (now with a checksum), then its bytes changed by `damage`. */
function checksummedFixture(damage: (bytes: Buffer) => void): { out: string; modelPath: string } {
  const fixture = copyOfFixture();
  const file = readSafetensors(fixture.modelPath);
  writeSafetensors(fixture.modelPath, file.tensors, file.metadata);
  const bytes = readFileSync(fixture.modelPath);
  damage(bytes);
  writeFileSync(fixture.modelPath, bytes);
  return fixture;
}

test('a checksum mismatch stops pit eval and pit train --resume naming the file; --skip-checksum (in --help) reads it anyway', (t) => {
  const { out, modelPath } = checksummedFixture((bytes) => (bytes[bytes.length - 2]! ^= 0x01));   // a low mantissa bit of the last weight
  for (const args of [['eval', '--checkpoint', out], ['train', '--out', out, '--resume']]) {
    const r = run(...args, '--device', 'cpu');
    t.is(r.status, 1, args[0]);
    t.regex(r.stderr, new RegExp(`safetensors: ${modelPath}: checksum mismatch`), args[0]);
  }
  const skipped = run('eval', '--checkpoint', out, '--device', 'cpu', '--skip-checksum', '--json');
  t.is(skipped.status, 0, skipped.stderr);
  t.like(JSON.parse(skipped.stdout), { n: 2000 });
  for (const command of ['train', 'eval'])
    t.regex(run(command, '--help').stdout.replace(/\s+/g, ' '), /--skip-checksum do not verify the \w+ checkpoint's checksums \(they catch corrupted files; hashing reads every byte at about 3 GB\/s, so skip it only for very large files\)/, command);
  rmSync(out, { recursive: true });
});

test('pit eval: a corrupted metadata key in a checksummed file is a checksum mismatch (verified before the metadata is used)', (t) => {
  const { out, modelPath } = checksummedFixture((bytes) => (bytes[bytes.indexOf('"normalization"') + 1] = 'N'.charCodeAt(0)));
  const r = run('eval', '--checkpoint', out, '--device', 'cpu');
  t.is(r.status, 1, r.stdout);
  t.regex(r.stderr, new RegExp(`safetensors: ${modelPath}: checksum mismatch`));
  rmSync(out, { recursive: true });
});
