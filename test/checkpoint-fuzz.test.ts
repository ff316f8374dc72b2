// Seeded mutations of a valid checkpoint (a tiny ViT with AdamW state): bit flips, truncation,
// byte runs, header edits, offsets swapped between tensors of one size, metadata edits. Each
// must load correctly (every weight, moment and metadata value bit-identical) or throw a clean
// Error naming the file: never a crash, a hang, or a silently different model.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { modelConfig, VisionTransformer } from '../lib/models/vit.js';
import { AdamW, loadCheckpoint, MODEL_FILE, saveCheckpoint, TRAIN_STATE_FILE, type LoadedCheckpoint } from '../lib/train/index.js';
import { backward, softmaxCrossEntropy, tensor, tidy } from '../lib/index.js';
import { randomF32, rng } from './helpers.js';

const CASES = 400;
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

type Header = Record<string, any>;

/** The file with its header JSON rewritten by `edit` (re-padded, re-measured), data unchanged. */
function withHeader(file: Buffer, edit: (h: Header) => void): Buffer {
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8')) as Header;
  edit(header);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  return Buffer.concat([head, Buffer.from(json), file.subarray(8 + n)]);
}

/** One seeded mutation of `file`; returns the mutated bytes and what was done. */
function mutate(file: Buffer, random: () => number): { bytes: Buffer; kind: string } {
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const at = (n: number) => Math.floor(random() * n);
  const bytes = Buffer.from(file);
  const tensorsOf = (h: Header) => Object.keys(h).filter((k) => k !== '__metadata__');
  const kind = pick(['bit-flip', 'bit-flip', 'truncate', 'byte-run', 'header-edit', 'offset-swap', 'metadata-edit']);
  switch (kind) {
    case 'bit-flip': {
      const i = at(bytes.length);
      bytes[i]! ^= 1 << at(8);
      return { bytes, kind };
    }
    case 'truncate':
      return { bytes: bytes.subarray(0, at(bytes.length)), kind };
    case 'byte-run': {
      const start = at(bytes.length), length = 1 + at(64), value = at(256);
      for (let i = start; i < Math.min(bytes.length, start + length); i++) bytes[i] = random() < 0.5 ? value : at(256);
      return { bytes, kind };
    }
    case 'header-edit':
      return { kind, bytes: withHeader(file, (h) => {
        const name = pick(tensorsOf(h));
        const e = h[name];
        const edits = [
          () => { e.shape = e.shape.length ? e.shape.map((d: number, i: number) => (i === 0 ? d + pick([-1, 1]) : d)) : [1, 1]; },
          () => { e.shape = [...e.shape].reverse(); },
          () => { e.dtype = pick(['F16', 'BF16', 'F64', 'I32', 'F31', 7]); },
          () => { e.data_offsets = e.data_offsets.map((o: number) => o + pick([-4, 4, 8])); },
          () => { delete h[name]; },
          () => { h[`${name}.x`] = e; delete h[name]; },
          () => { h[name] = pick([null, [], 'F32', { dtype: 'F32' }]); },
          () => { e.shape = [pick([-1, 1.5, 2 ** 60])]; },
        ];
        pick(edits)();
      }) };
    case 'offset-swap':
      return { kind, bytes: withHeader(file, (h) => {
        // Two tensors of one byte size, e.g. a LayerNorm's weight and bias: still a valid file.
        const names = tensorsOf(h);
        const size = (n: string) => h[n].data_offsets[1] - h[n].data_offsets[0];
        const pairs = names.flatMap((a) => names.filter((b) => b > a && size(a) === size(b) && h[a].shape.join() === h[b].shape.join()).map((b) => [a, b]));
        const [a, b] = pick(pairs)!;
        [h[a!].data_offsets, h[b!].data_offsets] = [h[b!].data_offsets, h[a!].data_offsets];
      }) };
    default:
      return { kind, bytes: withHeader(file, (h) => {
        const meta = h.__metadata__ as Record<string, string>;
        const key = pick(Object.keys(meta));
        const edits = [
          () => { meta[key] = meta[key]!.replace(/\d/, (d) => String((Number(d) + 1) % 10)); },
          () => { delete meta[key]; },
          () => { meta[key] = pick(['', 'null', '{', '"x"', '-1', '1e400']); },
          () => { meta[`${key}_`] = meta[key]!; delete meta[key]; },
          () => { meta.extra = '1'; },
        ];
        pick(edits)();
      }) };
  }
}

test(`checkpoint fuzz: ${CASES} seeded mutations each load bit-identically or throw a clean error naming the file`, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-fuzz-'));
  const config = modelConfig('pit-t', { imageSize: 4, channels: 1, depth: 1, dim: 16, heads: 2, classes: 3 });
  const model = new VisionTransformer(config);
  const opt = new AdamW(model);
  tidy(() => backward(softmaxCrossEntropy(model.forward(tensor(Float32Array.from(randomF32(2 * 16)), [2, 1, 4, 4])), tensor(Int32Array.from([0, 2])))));
  opt.step(1e-2);
  opt.zeroGrad();
  const trainState = { loader: { epoch: 1, index: 64 } };
  saveCheckpoint(dir, { model, optimizer: opt, metadata: { config }, step: 7, epoch: 1, trainState });
  const snapshot = (m: VisionTransformer, o: AdamW) => JSON.stringify([
    m.namedParameters().map(([n, p]) => [n, bits(p.toArray() as Float32Array)]),
    ...(['m', 'v'] as const).map((k) => [...o.state()[k]].map(([n, x]) => [n, bits(x.toArray() as Float32Array)])),
  ]);
  const expected = snapshot(model, opt);
  const expectedLoad: LoadedCheckpoint = { metadata: JSON.parse(JSON.stringify({ config })), step: 7, epoch: 1, trainState };
  const originals = { [MODEL_FILE]: readFileSync(join(dir, MODEL_FILE)), [TRAIN_STATE_FILE]: readFileSync(join(dir, TRAIN_STATE_FILE)) };

  // The model loaded into starts elsewhere each time, so a load that changed nothing shows.
  const target = new VisionTransformer({ ...config, seed: 99 });
  const targetOpt = new AdamW(target);
  const scrambled = target.namedParameters().map(([n, p]) => [n, p.toArray() as Float32Array] as const);
  const counts = { cases: 0, cleanErrors: 0, correctLoads: 0, crashes: 0 };
  const kinds: Record<string, number> = {};
  const random = rng(20240611);
  for (let c = 0; c < CASES; c++) {
    const file = random() < 0.75 ? MODEL_FILE : TRAIN_STATE_FILE;
    const { bytes, kind } = mutate(originals[file], random);
    kinds[kind] = (kinds[kind] ?? 0) + 1;
    writeFileSync(join(dir, MODEL_FILE), file === MODEL_FILE ? bytes : originals[MODEL_FILE]);
    writeFileSync(join(dir, TRAIN_STATE_FILE), file === TRAIN_STATE_FILE ? bytes : originals[TRAIN_STATE_FILE]);
    tidy(() => target.loadStateDict(new Map(scrambled.map(([n, data]) => [n, tensor(data, target.namedParameters().find(([m]) => m === n)![1].shape)]))));
    counts.cases++;
    let loaded: LoadedCheckpoint;
    try {
      loaded = loadCheckpoint(dir, { model: target, optimizer: targetOpt });
    } catch (e) {
      if (e instanceof Error && e.message.includes(join(dir, file))) counts.cleanErrors++;
      else {
        counts.crashes++;
        t.fail(`case ${c} (${kind} of ${file}): not a clean error naming the file: ${e instanceof Error ? e.stack : String(e)}`);
      }
      continue;
    }
    if (snapshot(target, targetOpt) === expected && JSON.stringify(loaded) === JSON.stringify(expectedLoad)) counts.correctLoads++;
    else {
      counts.crashes++;
      t.fail(`case ${c} (${kind} of ${file}): loaded a different checkpoint without a word`);
    }
  }
  t.log(`cases ${counts.cases}, clean errors ${counts.cleanErrors}, correct loads ${counts.correctLoads}, crashes ${counts.crashes}; by kind ${JSON.stringify(kinds)}`);
  t.is(counts.crashes, 0);
  t.is(counts.cleanErrors + counts.correctLoads, CASES);
  for (const m of [model, target]) m.dispose();
  for (const o of [opt, targetOpt]) o.dispose();
  rmSync(dir, { recursive: true });
});
