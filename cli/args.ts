// Flag parsers shared by the subcommands: each throws commander's InvalidArgumentError with
// what was expected, so `pit` prints "error: option '--x <n>' argument 'y' is invalid. expected …".
import { InvalidArgumentError, Option } from 'commander';
import { maxSeed, RECOMPUTE_MODES, type Recompute } from '../lib/index.js';

export function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^[+-]?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}`);
    return n;
  };
}

export function number(lo: number, hi = Infinity, hiOpen = true) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < lo || (hiOpen ? n >= hi : n > hi))
      throw new InvalidArgumentError(`expected a number in [${lo}, ${hi === Infinity ? '∞' : hi}${hiOpen ? ')' : ']'}`);
    return n;
  };
}

/** A comma-separated list of names. */
export function names(value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new InvalidArgumentError('expected a comma-separated list of names');
  return list;
}

/** A comma-separated list of integers ≥ min. */
export function integers(min: number) {
  const one = integer(min);
  return (value: string): number[] => {
    const list = value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!list.length) throw new InvalidArgumentError(`expected a comma-separated list of integers ≥ ${min}`);
    try {
      return list.map(one);
    } catch {
      throw new InvalidArgumentError(`expected a comma-separated list of integers ≥ ${min}, e.g. 256,1024`);
    }
  };
}

/** A comma-separated list of different seeds, each below 2^32. */
export function seedList(value: string): number[] {
  const seeds = integers(0)(value);
  if (seeds.some((s) => s > maxSeed)) throw new InvalidArgumentError(`expected seeds below 2^32, got ${value}`);
  if (new Set(seeds).size !== seeds.length) throw new InvalidArgumentError(`expected different seeds, got ${value}`);
  return seeds;
}

/** A comma-separated list of model names, each checked by `parse` (parseModelName, parseDitName). */
export function modelNames(parse: (name: string) => unknown) {
  return (value: string): string[] => {
    const list = names(value);
    for (const name of list) {
      try {
        parse(name);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    }
    return list;
  };
}

/** A byte count: 1073741824, 1GiB, 512MiB, 8GB. */
export function bytes(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?\s*$/i.exec(value);
  const units: Record<string, number> = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
  if (!m || Number(m[1]) <= 0) throw new InvalidArgumentError('expected a positive size such as 512MiB, 8GiB or a byte count');
  return Math.round(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]!);
}

export const deviceOption = () => new Option('--device <device>', 'backend to use').choices(['auto', 'cpu', 'cuda']).default('auto');

export const precisionOption = () =>
  new Option('--precision <kind>', 'f32, or mixed (torch.autocast bf16): the blocks\' GEMMs and attention in bf16 with fp32 accumulation, the rest f32 (GPU tensor cores; CPU AVX512-BF16 or AMX)').choices(['f32', 'mixed']).default('f32');

/** --recompute for the benchmarks: one mode or several, each measured (training commands take one, from the recipe). */
export const recomputeOption = () =>
  new Option('--recompute <list>', `activation recomputation, each measured: ${RECOMPUTE_MODES.join(', ')} (mlp: LayerNorm outputs and the MLP's GELU input rerun in the backward; block: only each block's input kept)`)
    .argParser((v: string): Recompute[] => {
      const modes = v.split(',').map((s) => s.trim());
      const bad = modes.find((m) => !RECOMPUTE_MODES.includes(m as Recompute));
      if (bad !== undefined) throw new InvalidArgumentError(`expected a comma-separated list of ${RECOMPUTE_MODES.join(', ')}, got "${bad}"`);
      return [...new Set(modes)] as Recompute[];
    }).default(['none'], 'none');

/** --skip-checksum: reading a checkpoint hashes every byte (~3 GB/s, bench/checksum.ts); very large files may skip it. */
export const skipChecksumOption = (which: string) =>
  new Option('--skip-checksum', `do not verify the ${which} checkpoint's checksums (they catch corrupted files; hashing reads every byte at about 3 GB/s, so skip it only for very large files)`).default(false);
