// The safetensors format (huggingface/safetensors), F32 only:
//   [8 bytes: N, u64 little-endian] [N bytes: JSON header, space-padded to 8-byte alignment]
//   [data: every tensor's raw little-endian bytes, back to back]
// header = { "__metadata__": { string: string }, name: { "dtype": "F32", "shape": [..],
//            "data_offsets": [begin, end] } } with offsets relative to the start of data.
// The reader trusts nothing: every violation throws an error naming the file.
// Our writer adds __metadata__["pit.xxh32"] = "<8 hex digits>": XXH32 of the data section,
// seeded with XXH32 of the header JSON written without that entry. The key is namespaced so
// that another writer's metadata (a "checksum" of its own, say) is just metadata to us. It catches what the
// structure checks cannot: flipped data bits, and header edits that stay valid (offsets
// swapped between tensors of one size, a changed shape or metadata value). Files without it
// (other writers, checkpoints saved before it) are read unverified.
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { Tensor } from '../tensor.js';
import { xxh32 } from './checksum.js';

/** A tensor's values outside the addon: row-major f32. */
export interface SafetensorsEntry {
  shape: number[];
  data: Float32Array;
}

export interface ReadOptions {
  /** Check the stored checksum (default true). Hashing runs at ~GB/s (see checksum.ts);
   * skip it only for files so large that this matters. */
  verify?: boolean;
}

export interface SafetensorsContents {
  /** In data-offset order. */
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

// The format's other dtypes: named so that a valid file we cannot read says so.
const KNOWN_DTYPES = new Set(['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64']);
// The reference implementation refuses headers above 100 MB; so do we.
const MAX_HEADER_BYTES = 100_000_000;
const littleEndian = endianness() === 'LE';
export const CHECKSUM_KEY = 'pit.xxh32';
const CHECKSUM_PATTERN = /^[0-9a-f]{8}$/;
const checksumText = (value: number) => value.toString(16).padStart(8, '0');
/** The checksum of a file whose header, without the checksum entry, is `header`. */
const fileChecksum = (header: Record<string, unknown>, data: Uint8Array) => xxh32(data, xxh32(Buffer.from(JSON.stringify(header), 'utf8')));

function toBytes(data: Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  data.forEach((x, i) => view.setFloat32(4 * i, x, true));
  return out;
}

function fromBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  if (littleEndian) new Uint8Array(out.buffer).set(bytes);   // a copy, 4-byte aligned
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  }
  return out;
}

/** The file's bytes for `tensors` (insertion order) and string `metadata`. */
export function encodeSafetensors(tensors: Map<string, Tensor | SafetensorsEntry>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw new TypeError(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
  if (CHECKSUM_KEY in metadata) throw new TypeError(`safetensors: metadata "${CHECKSUM_KEY}" is written by the writer itself`);
  header.__metadata__ = { ...metadata };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new TypeError('safetensors: "__metadata__" cannot name a tensor');
    let shape: number[], data: Float32Array;
    if (t instanceof Tensor) {
      if (t.dtype !== 'f32') throw new TypeError(`safetensors: tensor "${name}" must be f32, got ${t.dtype}`);
      shape = t.shape.slice();
      data = t.toArray() as Float32Array;
    } else {
      shape = t.shape.slice();
      data = t.data;
      if (!(data instanceof Float32Array) || data.length !== shape.reduce((a, b) => a * b, 1))
        throw new TypeError(`safetensors: tensor "${name}" must hold a Float32Array of ${shape.reduce((a, b) => a * b, 1)} values for shape [${shape.join(', ')}]`);
    }
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + data.byteLength] };
    chunks.push(toBytes(data));
    offset += data.byteLength;
  }
  // The checksum text has a fixed length: lay the file out with a placeholder, copy the data
  // in, then hash it where it lies and write the header for real (same length).
  const unsummed = structuredClone(header);
  const withChecksum = (value: number) => {
    (header.__metadata__ as Record<string, string>)[CHECKSUM_KEY] = checksumText(value);
    return Buffer.from(JSON.stringify(header), 'utf8');
  };
  const placeholder = withChecksum(0);
  const padded = Math.ceil(placeholder.length / 8) * 8;   // 8 + padded is a multiple of 8
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.fill(0x20, 8 + placeholder.length, 8 + padded);
  let at = 8 + padded;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  out.set(withChecksum(fileChecksum(unsummed, out.subarray(8 + padded))), 8);
  return out;
}

type Fail = (why: string) => never;

/** The JSON header of a file of `fileLength` bytes whose first bytes are `prefix` (≥ 8 + N). */
function parseHeader(prefix: Uint8Array, fileLength: number, fail: Fail): { header: Record<string, unknown>; headerLength: number } {
  if (fileLength < 8) fail(`file is ${fileLength} bytes, shorter than the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength).getBigUint64(0, true);
  if (n > BigInt(fileLength - 8)) fail(`header length ${n} runs past the end of the file (${fileLength} bytes)`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLength = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(prefix.buffer, prefix.byteOffset + 8, headerLength).toString('utf8'));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) fail('header must be a JSON object');
  return { header: header as Record<string, unknown>, headerLength };
}

/** The header's "__metadata__" (absent: empty), checked to hold strings only. */
function metadataOf(header: Record<string, unknown>, fail: Fail): Record<string, string> {
  const metadata: Record<string, string> = {};
  const value = header.__metadata__;
  if (value === undefined) return metadata;
  if (!value || typeof value !== 'object' || Array.isArray(value)) fail('"__metadata__" must be an object of strings');
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') fail(`"__metadata__"."${k}" must be a string, got ${JSON.stringify(v)}`);
    metadata[k] = v as string;
  }
  return metadata;
}

const failer = (source: string): Fail => (why) => {
  throw new RangeError(`safetensors: ${source}: ${why}`);
};

/**
 * Checks (with `verify`) and removes the header's checksum entry; `metadata` is the header's
 * __metadata__, already checked to hold strings.
 */
function checkChecksum(header: Record<string, unknown>, metadata: Record<string, string>, data: Uint8Array, verify: boolean, fail: Fail): void {
  const stored = metadata[CHECKSUM_KEY];
  if (stored === undefined) return;
  delete metadata[CHECKSUM_KEY];
  if (!verify) return;
  if (!CHECKSUM_PATTERN.test(stored)) fail(`"__metadata__"."${CHECKSUM_KEY}" must be 8 hex digits (XXH32), got ${JSON.stringify(stored)}`);
  const unsummed = { ...header, __metadata__: metadata };
  const actual = checksumText(fileChecksum(unsummed, data));
  if (actual !== stored)
    fail(`checksum mismatch: the header says xxh32:${stored}, the header and data hash to xxh32:${actual}; the file is corrupted (pit's --skip-checksum, or { verify: false } from the library, skips this check)`);
}

/** Parses and validates safetensors bytes; `source` (the file) names every error. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>', options: ReadOptions = {}): SafetensorsContents {
  const fail = failer(source);
  const { header, headerLength } = parseHeader(bytes, bytes.byteLength, fail);
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const metadata = metadataOf(header, fail);
  const entries: { name: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object' || Array.isArray(info)) fail(`tensor "${name}" must be an object with dtype, shape and data_offsets`);
    if (info.dtype !== 'F32') {
      if (typeof info.dtype === 'string' && KNOWN_DTYPES.has(info.dtype)) fail(`tensor "${name}" has dtype "${info.dtype}"; only F32 is supported`);
      fail(`tensor "${name}" has unknown dtype ${JSON.stringify(info.dtype)}`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(`tensor "${name}" shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1])
      fail(`tensor "${name}" data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as [number, number];
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    if (elements * 4 !== end - begin)
      fail(`tensor "${name}" shape [${(shape as number[]).join(', ')}] × 4 bytes = ${elements * 4} does not match its ${end - begin}-byte data_offsets [${begin}, ${end}]`);
    if (end > dataLength) fail(`tensor "${name}" data_offsets [${begin}, ${end}] run past the ${dataLength} bytes of data: the file is truncated or the offsets are out of bounds`);
    entries.push({ name, shape: shape as number[], begin, end });
  }
  // The tensors must tile the data exactly: no overlap, no gap, nothing left over.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.begin < expected) fail(`tensor "${e.name}" data_offsets [${e.begin}, ${e.end}] overlap tensor "${entries[i - 1]!.name}" (which ends at ${expected})`);
    if (e.begin > expected) fail(`data bytes [${expected}, ${e.begin}) belong to no tensor (gap before "${e.name}")`);
    expected = e.end;
  }
  if (expected !== dataLength) fail(`the tensors cover ${expected} bytes but the file holds ${dataLength} bytes of data (trailing bytes)`);
  checkChecksum(header, metadata, bytes.subarray(dataStart), options.verify ?? true, fail);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const e of entries) tensors.set(e.name, { shape: e.shape, data: fromBytes(bytes.subarray(dataStart + e.begin, dataStart + e.end)) });
  return { tensors, metadata };
}

/**
 * Writes `bytes` to `path` atomically: `<path>.tmp-<pid>`, fsync, rename (then fsync the
 * folder, best effort), so a crash leaves the old file or the new one, never half of one.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    for (let at = 0; at < bytes.byteLength;) at += writeSync(fd, bytes, at, bytes.byteLength - at);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch { /* never created */ }
    throw e;
  }
  try {
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch { /* some platforms cannot fsync a folder */ }
}

export function writeSafetensors(path: string, tensors: Map<string, Tensor | SafetensorsEntry>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Throws, naming the path, unless it is a file (a folder's read error, EISDIR, names none). */
function checkIsFile(path: string): void {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new RangeError(`safetensors: ${path}: expected a safetensors file, found nothing there`);
  }
  if (!stats.isFile()) throw new RangeError(`safetensors: ${path}: expected a safetensors file, found ${stats.isDirectory() ? 'a folder' : 'something that is not a file'}`);
}

export function readSafetensors(path: string, options: ReadOptions = {}): SafetensorsContents {
  checkIsFile(path);
  return decodeSafetensors(readFileSync(path), path, options);
}

/** Only the "__metadata__" of a safetensors file, reading just its header. */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  const fail = failer(path);
  checkIsFile(path);
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Buffer.alloc(8);
    readSync(fd, length, 0, Math.min(8, size), 0);
    const n = size < 8 ? 0 : Number(BigInt.asUintN(53, length.readBigUInt64LE(0)));
    const prefix = Buffer.alloc(8 + Math.max(0, Math.min(n, size - 8, MAX_HEADER_BYTES)));
    length.copy(prefix);
    readSync(fd, prefix, 8, prefix.length - 8, 8);
    const metadata = metadataOf(parseHeader(prefix, size, fail).header, fail);
    delete metadata[CHECKSUM_KEY];   // verified when the file is read whole
    return metadata;
  } finally {
    closeSync(fd);
  }
}
