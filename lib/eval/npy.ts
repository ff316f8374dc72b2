// NumPy's .npy format, the arrays generated samples, their labels and latents (SPEC §6) arrive
// in: float32, float16, int32 and int64, little-endian, C order. Format (numpy.lib.format):
//   "\x93NUMPY", major, minor                    6 + 2 bytes
//   header length: uint16 (v1) or uint32 (v2, v3) little-endian
//   header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), }
//           padded with spaces and ended by '\n' so the data starts at a multiple of 64
//   data: prod(shape) values, row-major
// Every way a file can be cut short or damaged is an error naming the file and what was found.
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../train/safetensors.js';

export type NpyDtype = 'float32' | 'float16' | 'int32' | 'int64';

/** An array read from .npy: float16 is widened to float32 on reading (dtype says what the file held). */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);   // \x93NUMPY
const DESCR: Record<string, NpyDtype> = { '<f4': 'float32', '<f2': 'float16', '<i4': 'int32', '<i8': 'int64' };
const CODE: Record<NpyDtype, string> = { float32: '<f4', float16: '<f2', int32: '<i4', int64: '<i8' };
const ITEM: Record<NpyDtype, number> = { float32: 4, float16: 2, int32: 4, int64: 8 };
const SUPPORTED = "'<f4' (float32), '<f2' (float16), '<i4' (int32) or '<i8' (int64)";

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

/** IEEE half bits → the float32 value (exact: every half is a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;               // zero and subnormals
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** float32 value → IEEE half bits, rounded to nearest even; overflow gives ±Infinity. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
  if (exp === 255) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112;                                        // the half's biased exponent (127 − 15)
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;                                 // below half the smallest subnormal
    const m = mant | 0x800000, shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;                                       // a carry into 0x400 is the smallest normal
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry may reach the exponent or 0x7c00 (∞): both right
  return sign | half;
}

function parseHeader(file: string, header: string): { dtype: NpyDtype; shape: number[] } {
  const text = header.trim();
  const fail = (what: string): never => {
    throw new RangeError(`npy: ${file}: ${what}; header: ${JSON.stringify(text.slice(0, 200))}`);
  };
  if (!text.startsWith('{') || !text.endsWith('}')) fail('the header is not a Python dict literal');
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined) fail("the header has no 'descr' (the dtype)");
  if (fortran === undefined) fail("the header has no 'fortran_order' True/False");
  if (shapeText === undefined) fail("the header has no 'shape' tuple");
  const dtype = DESCR[descr!];
  if (!dtype) {
    const big = /^>/.test(descr!) ? ' (big-endian: save it little-endian, e.g. a.astype(a.dtype.newbyteorder("<")))' : '';
    fail(`dtype '${descr}' is not supported${big}; supported: ${SUPPORTED}`);
  }
  if (fortran === 'True') fail('the array is in Fortran (column-major) order; save it in C order (np.ascontiguousarray)');
  const parts = shapeText!.split(',').map((s) => s.trim());
  if (parts.at(-1) === '') parts.pop();
  const shape = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
  if (shape.some((d) => !Number.isSafeInteger(d))) fail(`the shape (${shapeText}) must be non-negative integers`);
  return { dtype: dtype!, shape };
}

/** The magic, version and header of an .npy file: its dtype, shape and where the data start. */
interface NpyPrelude {
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the data. */
  start: number;
  /** Bytes the data must have: prod(shape) · item size. */
  dataBytes: number;
}

/**
 * Parses the prelude from `head` (the file's first bytes, at least through the header when the
 * file has them) of a file of `size` bytes, and checks that the data are exactly as long as the
 * shape says. Every error names `file`.
 */
function parsePrelude(head: Buffer, size: number, file: string): NpyPrelude {
  if (head.length >= 2 && head[0] === 0x50 && head[1] === 0x4b) throw new RangeError(`npy: ${file}: this is a zip archive (an .npz?), not a single .npy array; save with np.save`);
  if (size < 10 || !head.subarray(0, 6).equals(MAGIC))
    throw new RangeError(`npy: ${file}: not an .npy file (it must begin with "\\x93NUMPY"; ${size < 10 ? `the file has only ${size} bytes` : `found ${JSON.stringify(head.subarray(0, 6).toString('latin1'))}`})`);
  const major = head[6]!, minor = head[7]!;
  if (major < 1 || major > 3) throw new RangeError(`npy: ${file}: format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are)`);
  const lengthBytes = major === 1 ? 2 : 4;
  if (size < 8 + lengthBytes) throw new RangeError(`npy: ${file}: truncated: the file ends inside its header length (${size} bytes)`);
  const headerLength = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const start = 8 + lengthBytes + headerLength;
  if (size < start) throw new RangeError(`npy: ${file}: truncated: the header is ${headerLength} bytes but the file ends ${start - size} bytes before its end`);
  const { dtype, shape } = parseHeader(file, head.subarray(8 + lengthBytes, start).toString(major === 3 ? 'utf8' : 'latin1'));
  const dataBytes = shape.reduce((a, b) => a * b, 1) * ITEM[dtype], found = size - start;
  if (found < dataBytes) throw new RangeError(`npy: ${file}: truncated: shape (${shape.join(', ')}) of ${dtype} needs ${dataBytes} bytes of data, the file holds ${found}`);
  if (found > dataBytes) throw new RangeError(`npy: ${file}: ${found - dataBytes} bytes follow the data of shape (${shape.join(', ')}) ${dtype} (a damaged file, or more than one array in it)`);
  return { dtype, shape, start, dataBytes };
}

/** Decodes the bytes of an .npy file; `file` names it in errors. */
export function decodeNpy(bytes: Uint8Array, file = '<bytes>'): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { dtype, shape, start } = parsePrelude(buf, buf.length, file);
  const count = shape.reduce((a, b) => a * b, 1);
  // A copy, so the typed array is aligned whatever the header length was. The data are
  // little-endian, as every platform Node runs on here is.
  const raw = new Uint8Array(buf.subarray(start)).buffer;
  if (dtype === 'float32') return { dtype, shape, data: new Float32Array(raw) };
  if (dtype === 'int32') return { dtype, shape, data: new Int32Array(raw) };
  if (dtype === 'int64') return { dtype, shape, data: new BigInt64Array(raw) };
  const halves = new Uint16Array(raw), data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = halfToFloat(halves[i]!);
  return { dtype, shape, data };
}

/**
 * The dtype and shape of an .npy file from its header alone (the data are not read), after the
 * same checks as readNpy: a damaged header, or data shorter or longer than the shape, is an error
 * naming the file. For sizing a run before loading it.
 */
export function readNpyHeader(path: string): { dtype: NpyDtype; shape: number[] } {
  if (statSync(path).isDirectory()) throw new RangeError(`npy: ${path}: expected an .npy file, found a folder`);
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const first = Buffer.alloc(Math.min(size, 12));
    readSync(fd, first, 0, first.length, 0);
    // The header length sits at bytes 8..10 (v1) or 8..12 (v2, v3); read through the header's end.
    const declared = first.length < 12 ? 0 : first[6] === 1 ? first.readUInt16LE(8) : first.readUInt32LE(8);
    const head = Buffer.alloc(Math.min(size, 12 + declared));
    readSync(fd, head, 0, head.length, 0);
    const { dtype, shape } = parsePrelude(head, size, path);
    return { dtype, shape };
  } finally {
    closeSync(fd);
  }
}

/** Reads an .npy file (see decodeNpy). */
export function readNpy(path: string): NpyArray {
  if (statSync(path).isDirectory()) throw new RangeError(`npy: ${path}: expected an .npy file, found a folder`);
  return decodeNpy(readFileSync(path), path);
}

/**
 * The bytes of an .npy file (version 1.0, or 2.0 when the header needs it) holding `data` of
 * `shape` as `dtype`: numbers are rounded to float32 / float16, or must be integers in range.
 */
export function encodeNpy(array: { dtype: NpyDtype; shape: readonly number[]; data: ArrayLike<number> | BigInt64Array }): Buffer {
  const { dtype, shape, data } = array;
  if (!(dtype in ITEM)) throw new TypeError(`npy: 'dtype' must be one of ${Object.keys(ITEM).join(', ')}, got ${JSON.stringify(dtype)}`);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new RangeError(`npy: 'shape' must be non-negative integers, got [${shape.join(', ')}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new RangeError(`npy: shape [${shape.join(', ')}] holds ${count} values, 'data' has ${data.length}`);
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${CODE[dtype]}', 'fortran_order': False, 'shape': ${tuple}, }`;
  const pad = (prefix: number) => dict.padEnd(Math.ceil((prefix + dict.length + 1) / 64) * 64 - prefix - 1, ' ') + '\n';
  const v1 = pad(10).length <= 0xffff;   // version 1.0 stores the header length in 16 bits
  const prefix = v1 ? 10 : 12, padded = pad(prefix);
  const out = Buffer.alloc(prefix + padded.length + count * ITEM[dtype]);
  MAGIC.copy(out, 0);
  out[6] = v1 ? 1 : 2;
  out[7] = 0;
  if (v1) out.writeUInt16LE(padded.length, 8);
  else out.writeUInt32LE(padded.length, 8);
  out.write(padded, prefix, 'latin1');
  const at = prefix + padded.length;
  for (let i = 0; i < count; i++) {
    const v = data[i]!;
    if (dtype === 'float32') out.writeFloatLE(Number(v), at + 4 * i);
    else if (dtype === 'float16') out.writeUInt16LE(floatToHalf(Number(v)), at + 2 * i);
    else if (dtype === 'int32') {
      if (!Number.isInteger(Number(v)) || Number(v) < -(2 ** 31) || Number(v) >= 2 ** 31) throw new RangeError(`npy: data[${i}] = ${v} is not an int32`);
      out.writeInt32LE(Number(v), at + 4 * i);
    } else {
      if (typeof v !== 'bigint' && !Number.isSafeInteger(v)) throw new RangeError(`npy: data[${i}] = ${v} is not an integer (int64 takes safe integers or bigints)`);
      out.writeBigInt64LE(BigInt(v), at + 8 * i);
    }
  }
  return out;
}

/** Writes an .npy file (see encodeNpy), atomically. */
export function writeNpy(path: string, array: Parameters<typeof encodeNpy>[0]): void {
  writeFileAtomic(path, encodeNpy(array));
}

/** The array's values as int32 (int32 or int64 files; int64 values must fit), for labels. */
export function npyInt32(array: NpyArray, what: string): Int32Array {
  if (array.data instanceof Int32Array) return array.data;
  if (array.data instanceof BigInt64Array) {
    const out = new Int32Array(array.data.length);
    array.data.forEach((v, i) => {
      if (v < -(2n ** 31n) || v >= 2n ** 31n) throw new RangeError(`${what}: value ${v} at index ${i} does not fit in int32`);
      out[i] = Number(v);
    });
    return out;
  }
  throw new RangeError(`${what}: expected an integer array (int32 or int64), got ${array.dtype}`);
}

/** The array's values as float32 (float32 or float16 files), for images. */
export function npyFloat32(array: NpyArray, what: string): Float32Array {
  if (array.data instanceof Float32Array) return array.data;
  throw new RangeError(`${what}: expected a float array (float32 or float16), got ${array.dtype}`);
}
