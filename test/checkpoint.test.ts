// safetensors (byte layout checked by hand, bit-exact round trips, every corruption a clear
// error naming the file, atomic writes) and training checkpoints of a tiny ViT (weights and
// AdamW state restored bit-exactly; a mismatched checkpoint changes nothing).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { backward, softmaxCrossEntropy, tensor, tidy, type Tensor } from '../lib/index.js';
import { modelConfig, VisionTransformer, type VitConfig } from '../lib/models/vit.js';
import {
  AdamW, decodeSafetensors, encodeSafetensors, loadCheckpoint, readCheckpointMetadata, readSafetensors, readSafetensorsMetadata, saveCheckpoint,
  writeSafetensors, xxh32, type SafetensorsEntry,
} from '../lib/train/index.js';
import { randomF32 } from './helpers.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'pit-ckpt-'));
const bits = (a: Float32Array | Int32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

// ---- safetensors: the format --------------------------------------------------------
test('safetensors bytes: u64 LE header length, space-padded JSON to 8 bytes, raw LE f32 data; the checksum entry', (t) => {
  const bytes = encodeSafetensors(new Map([['a', { shape: [2], data: Float32Array.from([1, -2]) }]]), { format: 'pt' });
  // The checksum: XXH32 of the data, seeded with XXH32 of the header written without it.
  const unsummed = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const sum = xxh32(Uint8Array.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]), xxh32(Buffer.from(unsummed))).toString(16).padStart(8, '0');
  const json = `{"__metadata__":{"format":"pt","pit.xxh32":"${sum}"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`;
  t.is(json.length, 108);
  // 108 bytes of JSON + 4 spaces = 112 = 0x70; 8 + 112 + 8 data bytes.
  t.is(bytes.length, 128);
  t.deepEqual(Array.from(bytes.subarray(0, 8)), [0x70, 0, 0, 0, 0, 0, 0, 0]);
  t.is(Buffer.from(bytes.subarray(8, 120)).toString('latin1'), `${json}    `);
  // 1.0f = 0x3f800000, -2.0f = 0xc0000000, little-endian.
  t.deepEqual(Array.from(bytes.subarray(120)), [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]);
  t.deepEqual(decodeSafetensors(bytes).metadata, { format: 'pt' }, 'the reader checks the checksum and keeps it out of the metadata');
  // The reader accepts another writer's header: no metadata, other key and tensor order,
  // whitespace inside the JSON.
  const other = '{"b":{"data_offsets":[4,8],"shape":[1],"dtype":"F32"}, "a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}';
  const pad = (8 - (other.length % 8)) % 8;
  const file = Buffer.concat([Buffer.alloc(8), Buffer.from(other + ' '.repeat(pad)), Buffer.from(Float32Array.from([3, 4]).buffer)]);
  file.writeBigUInt64LE(BigInt(other.length + pad), 0);
  const read = decodeSafetensors(file);
  t.deepEqual([...read.tensors.keys()], ['a', 'b']);
  t.deepEqual(read.tensors.get('a')!.shape, []);
  t.deepEqual(Array.from(read.tensors.get('b')!.data), [4]);
  t.deepEqual(read.metadata, {});
});

test('safetensors round trip is bit-exact (tensors and raw arrays, NaN payloads, −0, denormals)', (t) => {
  const dir = scratch();
  const specials = new Float32Array(new Uint32Array([0x7fc00001, 0xff800000, 0x80000000, 0x00000001, 0x7f7fffff, 0xffffffff]).buffer);
  const raw: SafetensorsEntry = { shape: [2, 3], data: specials };
  const values = Float32Array.from(randomF32(4 * 5 * 3));
  const path = join(dir, 'x.safetensors');
  tidy(() => {
    writeSafetensors(path, new Map<string, Tensor | SafetensorsEntry>([
      ['blocks.0.attn.qkv.weight', tensor(values, [4, 5, 3])], ['special', raw], ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]), { config: JSON.stringify({ dim: 16 }), note: 'ünïcode ✓' });
  });
  const read = readSafetensors(path);
  t.deepEqual(read.metadata, { config: '{"dim":16}', note: 'ünïcode ✓' });
  t.deepEqual(read.tensors.get('blocks.0.attn.qkv.weight')!.shape, [4, 5, 3]);
  t.deepEqual(bits(read.tensors.get('blocks.0.attn.qkv.weight')!.data), bits(values));
  t.deepEqual(bits(read.tensors.get('special')!.data), bits(specials));
  t.deepEqual(read.tensors.get('empty')!.shape, [0, 4]);
  t.is(readFileSync(path).readBigUInt64LE(0) % 8n, 0n);
  rmSync(dir, { recursive: true });
});

/** A valid two-tensor file whose header JSON `edit` may rewrite, re-padded and re-measured. */
function fileWith(edit: (h: Record<string, any>) => void = () => {}, data = Buffer.from(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer)): Buffer {
  const header: Record<string, any> = {
    __metadata__: { a: 'b' },
    w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
    b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] },
  };
  edit(header);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  return Buffer.concat([head, Buffer.from(json), data]);
}

test('safetensors reader: every corruption throws an error naming the file and the problem', (t) => {
  const dir = scratch();
  const check = (name: string, bytes: Buffer, message: RegExp) => {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, bytes);
    const error = t.throws(() => readSafetensors(path), { message }, name);
    t.true(error?.message.includes(path), `${name}: the message names the file: ${error?.message}`);
  };
  t.notThrows(() => decodeSafetensors(fileWith()));   // the baseline is valid
  check('tiny', Buffer.from([1, 2, 3]), /3 bytes, shorter than the 8-byte header length/);
  const long = fileWith();
  long.writeBigUInt64LE(10_000n, 0);
  check('header-length', long, /header length 10000 runs past the end of the file \(\d+ bytes\)/);
  const huge = fileWith();
  huge.writeBigUInt64LE(0xffffffffffffffffn, 0);
  check('header-length-u64', huge, /header length 18446744073709551615 runs past the end/);
  const badJson = fileWith();
  badJson.write('{"w":', 8, 'latin1');
  badJson[13] = 0x7b;  // an unbalanced brace where the JSON continues
  check('bad-json', badJson, /header is not valid JSON/);
  const array = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('[1]     ')]);
  check('not-object', array, /header must be a JSON object/);
  check('entry-not-object', fileWith((h) => { h.x = 1; }), /tensor "x" must be an object with dtype, shape and data_offsets/);
  check('dtype-unknown', fileWith((h) => { h.w.dtype = 'F31'; }), /tensor "w" has unknown dtype "F31"/);
  check('dtype-unsupported', fileWith((h) => { h.w.dtype = 'BF16'; h.w.data_offsets = [0, 8]; }), /tensor "w" has dtype "BF16"; only F32 is supported/);
  check('shape', fileWith((h) => { h.w.shape = [2, -2]; }), /"w" shape must be an array of non-negative integers/);
  check('shape-bytes', fileWith((h) => { h.w.shape = [3, 2]; }), /"w" shape \[3, 2\] × 4 bytes = 24 does not match its 16-byte data_offsets \[0, 16\]/);
  check('offsets-reversed', fileWith((h) => { h.b.data_offsets = [24, 16]; }), /"b" data_offsets must be \[begin, end\] with 0 ≤ begin ≤ end/);
  check('offsets-out-of-bounds', fileWith((h) => { h.b.data_offsets = [24, 32]; }), /"b" data_offsets \[24, 32\] run past the 24 bytes of data/);
  check('overlap', fileWith((h) => { h.b.data_offsets = [8, 16]; }), /"b" data_offsets \[8, 16\] overlap tensor "w"|"w" data_offsets \[0, 16\] overlap tensor "b"/);
  check('gap', fileWith((h) => { h.b.data_offsets = [16, 24]; h.w.data_offsets = [0, 16]; h.w.shape = [3]; h.w.data_offsets = [0, 12]; }), /data bytes \[12, 16\) belong to no tensor/);
  check('trailing', fileWith(() => {}, Buffer.alloc(28)), /the tensors cover 24 bytes but the file holds 28 bytes of data/);
  check('truncated', fileWith().subarray(0, fileWith().length - 3), /"b" data_offsets \[16, 24\] run past the 21 bytes of data: the file is truncated/);
  check('metadata', fileWith((h) => { h.__metadata__ = { n: 3 }; }), /"__metadata__"."n" must be a string/);
  rmSync(dir, { recursive: true });
});

test('safetensors writer is atomic: no temp file remains, and a failed rename removes it', (t) => {
  const dir = scratch();
  const path = join(dir, 'm.safetensors');
  const entry = new Map([['a', { shape: [1], data: Float32Array.from([1]) }]]);
  writeSafetensors(path, entry);
  writeSafetensors(path, new Map([['a', { shape: [1], data: Float32Array.from([2]) }]]));   // replaces it
  t.deepEqual(readdirSync(dir), ['m.safetensors']);
  t.deepEqual(Array.from(readSafetensors(path).tensors.get('a')!.data), [2]);
  // The target is a non-empty folder: the rename fails after the temp file was written.
  const blocked = join(dir, 'blocked');
  mkdirSync(blocked);
  writeFileSync(join(blocked, 'keep'), '');
  t.throws(() => writeSafetensors(blocked, entry));
  t.deepEqual(readdirSync(dir).sort(), ['blocked', 'm.safetensors']);
  t.throws(() => encodeSafetensors(new Map([['a', { shape: [2], data: Float32Array.from([1]) }]])), { message: /"a" must hold a Float32Array of 2 values/ });
  rmSync(dir, { recursive: true });
});

// ---- checkpoints -----------------------------------------------------------------------
const tinyConfig = (overrides: Partial<VitConfig> = {}): VitConfig =>
  modelConfig('pit-t', { imageSize: 4, channels: 1, depth: 1, dim: 16, heads: 2, classes: 3, ...overrides });

/** Two AdamW steps on random data, so weights and m, v are all non-trivial. */
function train(model: VisionTransformer, opt: AdamW, steps: number): void {
  for (let s = 0; s < steps; s++) {
    tidy(() => {
      const images = tensor(Float32Array.from(randomF32(2 * 16)), [2, 1, 4, 4]);
      const loss = softmaxCrossEntropy(model.forward(images), tensor(Int32Array.from([0, 2])));
      backward(loss);
    });
    opt.clipGradNorm(1);
    opt.step(1e-2);
    opt.zeroGrad();
  }
}

const snapshot = (model: VisionTransformer) => new Map(model.namedParameters().map(([n, p]) => [n, bits(p.toArray())]));

test('checkpoint round trip of a tiny ViT: weights, AdamW m/v, step, metadata and train state, bit-exact', (t) => {
  const dir = join(scratch(), 'ckpt');
  const model = new VisionTransformer(tinyConfig());
  const opt = new AdamW(model, { weightDecay: 0.3, betas: [0.9, 0.95] });
  train(model, opt, 2);
  const trainState = { rng: { seed: 7, offset: 123 }, loader: { epoch: 1, index: 64 } };
  saveCheckpoint(dir, { model, optimizer: opt, metadata: { config: model.config, arch: 'pit' }, step: 2, epoch: 1, trainState });
  t.deepEqual(readdirSync(dir).sort(), ['model.safetensors', 'train-state.safetensors']);
  // The model file is a plain timm-named state dict.
  const file = readSafetensors(join(dir, 'model.safetensors'));
  t.deepEqual([...file.tensors.keys()], model.namedParameters().map(([n]) => n));
  t.true([...readSafetensors(join(dir, 'train-state.safetensors')).tensors.keys()].includes('m.blocks.0.attn.qkv.weight'));

  const restored = new VisionTransformer(tinyConfig({ seed: 99 }));
  const opt2 = new AdamW(restored, { weightDecay: 0.3, betas: [0.9, 0.95] });
  t.notDeepEqual(snapshot(restored), snapshot(model));
  const loaded = loadCheckpoint(dir, { model: restored, optimizer: opt2 });
  t.deepEqual(snapshot(restored), snapshot(model));
  for (const key of ['m', 'v'] as const)
    for (const [n, x] of opt.state()[key]) t.deepEqual(bits(opt2.state()[key].get(n)!.toArray()), bits(x.toArray()), `${key}.${n}`);
  t.is(opt2.stepCount, 2);
  t.is(loaded.step, 2);
  t.is(loaded.epoch, 1);
  t.deepEqual(loaded.trainState, trainState);
  t.deepEqual(loaded.metadata, { config: JSON.parse(JSON.stringify(model.config)), arch: 'pit' });
  // Resuming: the same next step on both gives the same weights.
  const grads = model.namedParameters().map(([, p]) => Float32Array.from(randomF32(p.size)));
  for (const m of [model, restored]) m.namedParameters().forEach(([, p], i) => { p.grad = tensor(grads[i]!, p.shape); });
  opt.step(1e-2);
  opt2.step(1e-2);
  t.deepEqual(snapshot(restored), snapshot(model));
  for (const o of [opt, opt2]) { o.zeroGrad(); o.dispose(); }
  model.dispose(); restored.dispose();
  rmSync(join(dir, '..'), { recursive: true });
});

test('loadCheckpoint: a wrong shape, a missing name or missing optimizer state throws and changes nothing', (t) => {
  const root = scratch();
  const model = new VisionTransformer(tinyConfig());
  const opt = new AdamW(model);
  const before = snapshot(model);
  const mBefore = bits(opt.state().m.get('head.weight')!.toArray());

  const other = new VisionTransformer(tinyConfig({ classes: 4, seed: 5 }));
  const otherOpt = new AdamW(other);
  saveCheckpoint(join(root, 'shape'), { model: other, optimizer: otherOpt });
  otherOpt.dispose();
  t.throws(() => loadCheckpoint(join(root, 'shape'), { model, optimizer: opt }), { message: /model.safetensors: "head.weight" must have shape \[3, 16\], got \[4, 16\]/ });

  const sincos = new VisionTransformer(tinyConfig({ posEmbed: 'sincos', seed: 5 }));
  saveCheckpoint(join(root, 'missing'), { model: sincos });
  t.throws(() => loadCheckpoint(join(root, 'missing'), { model }), { message: /model names do not match: missing "pos_embed"/ });

  // The weights fit but the train state holds no optimizer moments: the model must not load.
  const twin = new VisionTransformer(tinyConfig({ seed: 5 }));
  saveCheckpoint(join(root, 'no-moments'), { model: twin });
  t.throws(() => loadCheckpoint(join(root, 'no-moments'), { model, optimizer: opt }), { message: /train-state.safetensors: optimizer state names do not match: missing "m.cls_token"/ });

  t.deepEqual(snapshot(model), before);
  t.deepEqual(bits(opt.state().m.get('head.weight')!.toArray()), mBefore);
  // Without the optimizer the same checkpoint loads.
  loadCheckpoint(join(root, 'no-moments'), { model });
  t.deepEqual(snapshot(model), snapshot(twin));
  for (const m of [model, other, sincos, twin]) m.dispose();
  opt.dispose();
  rmSync(root, { recursive: true });
});

// ---- checksums and file errors -----------------------------------------------------------
test('xxh32 matches the published test vectors', (t) => {
  const text = (s: string) => new TextEncoder().encode(s);
  t.is(xxh32(text('')), 0x02cc5d05);
  t.is(xxh32(text('a')), 0x550d7456);
  t.is(xxh32(text('abc')), 0x32d153ff);
  t.is(xxh32(text('Nobody inspects the spammish repetition')), 0xe2293b2f);
  // An unaligned view hashes the same bytes the same way.
  const padded = new Uint8Array(40);
  padded.set(text('Nobody inspects the spammish repetition'), 1);
  t.is(xxh32(padded.subarray(1)), 0xe2293b2f);
});

test('the checksum catches a flipped data bit and offsets swapped between tensors of one size, naming the file; verify: false skips it', (t) => {
  const dir = scratch();
  const ok = encodeSafetensors(new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }], ['b', { shape: [2], data: Float32Array.from([3, 4]) }]]));
  const flipped = Buffer.from(ok);
  flipped[flipped.length - 1]! ^= 0x01;
  const n = Number(Buffer.from(ok).readBigUInt64LE(0));
  const header = Buffer.from(ok.subarray(8, 8 + n)).toString('latin1');
  // Same length: "[0,8]" and "[8,16]" traded, with the padding absorbing the difference.
  const swappedHeader = header.replace('"data_offsets":[0,8]', '"data_offsets":[8,16]@').replace('"data_offsets":[8,16]}', '"data_offsets":[0,8]}').replace('@', '');
  const swapped = Buffer.concat([ok.subarray(0, 8), Buffer.from(swappedHeader.padEnd(n, ' '), 'latin1'), ok.subarray(8 + n)]);
  for (const [name, bytes] of [['flipped', flipped], ['swapped', swapped]] as const) {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, bytes);
    t.throws(() => readSafetensors(path), { message: new RegExp(`safetensors: ${path}: checksum mismatch: the header says xxh32:[0-9a-f]{8}, the header and data hash to xxh32:[0-9a-f]{8}; the file is corrupted`) }, name);
    t.notThrows(() => readSafetensors(path, { verify: false }), `${name} without verification`);
  }
  t.deepEqual(Array.from(readSafetensors(join(dir, 'swapped.safetensors'), { verify: false }).tensors.get('w')!.data), [3, 4], 'what verification prevents');
  const badText = Buffer.from(Buffer.from(ok).toString('latin1').replace(/"pit.xxh32":"[0-9a-f]{8}"/, '"pit.xxh32":"nothex!!"'), 'latin1');
  t.throws(() => decodeSafetensors(badText, 'f'), { message: /"__metadata__"."pit.xxh32" must be 8 hex digits \(XXH32\), got "nothex!!"/ });
  t.throws(() => encodeSafetensors(new Map(), { 'pit.xxh32': 'x' }), { message: /metadata "pit.xxh32" is written by the writer itself/ });
  rmSync(dir, { recursive: true });
});

test('a folder or nothing where a safetensors file should be is an error naming the path (not a bare EISDIR)', (t) => {
  const dir = scratch();
  mkdirSync(join(dir, 'model.safetensors'));
  for (const read of [readSafetensors, readSafetensorsMetadata])
    t.throws(() => read(join(dir, 'model.safetensors')), { message: `safetensors: ${join(dir, 'model.safetensors')}: expected a safetensors file, found a folder` });
  t.throws(() => readSafetensors(join(dir, 'none.safetensors')), { message: `safetensors: ${join(dir, 'none.safetensors')}: expected a safetensors file, found nothing there` });
  rmSync(dir, { recursive: true });
});

// ---- review fixes: the checksum key, the mismatch message, metadata verified first ---------
/** Safetensors bytes as another writer lays them out: `header` JSON, then `data`. */
function rawSafetensors(header: object, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, ' ')]);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(padded.length));
  return Buffer.concat([length, padded, data]);
}

test('a file from another writer with its own "checksum" metadata loads (our checksum key is namespaced)', (t) => {
  const data = new Uint8Array(Float32Array.from([1, 2]).buffer);
  const foreign = rawSafetensors({ __metadata__: { checksum: 'sha256:0123abcd', format: 'pt' }, w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data);
  const read = decodeSafetensors(foreign, 'foreign');
  t.deepEqual(read.metadata, { checksum: 'sha256:0123abcd', format: 'pt' });
  t.deepEqual(Array.from(read.tensors.get('w')!.data), [1, 2]);
  // Our writer keeps a caller's "checksum" entry like any other and still checks its own.
  const ours = encodeSafetensors(new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }]]), { checksum: 'sha256:0123abcd' });
  t.deepEqual(decodeSafetensors(ours).metadata, { checksum: 'sha256:0123abcd' });
  const flipped = Buffer.from(ours);
  flipped[flipped.length - 1]! ^= 0x01;
  t.throws(() => decodeSafetensors(flipped, 'f'), { message: /checksum mismatch/ });
});

test('a checksum mismatch names how to skip the check: --skip-checksum, or { verify: false } from the library', (t) => {
  const flipped = Buffer.from(encodeSafetensors(new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }]])));
  flipped[flipped.length - 1]! ^= 0x01;
  t.throws(() => decodeSafetensors(flipped, 'f'), { message: /the file is corrupted \(pit's --skip-checksum, or \{ verify: false \} from the library, skips this check\)$/ });
});

test('readCheckpointMetadata verifies the checksum before any metadata is used; verify: false reads the header only', (t) => {
  const dir = scratch();
  const config = tinyConfig();
  const model = new VisionTransformer(config, { device: 'cpu' });
  saveCheckpoint(dir, { model, metadata: { config, normalization: { mean: [0.5], std: [0.25] } } });
  model.dispose();
  const path = join(dir, 'model.safetensors');
  const bytes = readFileSync(path);
  const at = bytes.indexOf('"normalization"');
  bytes[at + 1] = 'N'.charCodeAt(0);   // one byte of a metadata key: the header stays valid
  writeFileSync(path, bytes);
  t.throws(() => readCheckpointMetadata(dir), { message: new RegExp(`safetensors: ${path}: checksum mismatch`) });
  const unverified = readCheckpointMetadata(dir, { verify: false });
  t.false('normalization' in unverified);
  t.true('Normalization' in unverified);
  rmSync(dir, { recursive: true });
});
