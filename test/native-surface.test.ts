// The native surface agrees in its three places: the op table (native/core/op_table.h, listed
// by the addon's opTable()), the addon's exports (native/binding/, one PIT_BINDING each) and
// the TypeScript interface NativeAddon (lib/native.ts, read here with the TypeScript parser).
// An op added in one place and forgotten in another fails here: a binding not declared in
// NativeAddon (or declared but not exported), an op whose export is missing, a backend whose
// table lacks an op. Checked on the CPU addon always, and on the CUDA addon whenever it is
// built (its table is registered at load, so this needs no GPU).
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';
import { packageRoot, type NativeAddon, type OpTableEntry } from '../lib/native.js';

const require = createRequire(import.meta.url);

// Exports that reach no op of the table: tensor creation, memory, device waits and timers,
// build info, the CPU peak measurement, the listing itself. NativeTensor is the tensor class (typed as NativeTensor).
const notOps = new Set(['NativeTensor', 'empty', 'fromArray', 'memory', 'resetPeakMemory', 'setMemoryCap', 'synchronize',
  'deviceTimerStart', 'deviceTimerStop', 'buildInfo', 'matmulInfo', 'cpuPeak', 'opTable']);

/** NativeAddon's member names, from lib/native.ts's syntax tree. */
function nativeAddonMembers(): string[] {
  const path = join(packageRoot, 'lib', 'native.ts');
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest);
  const decl = source.statements.find((s): s is ts.InterfaceDeclaration =>
    ts.isInterfaceDeclaration(s) && s.name.text === 'NativeAddon');
  if (!decl) throw new Error(`no interface NativeAddon in ${path}`);
  return decl.members.map((m) => {
    if (!m.name || !ts.isIdentifier(m.name)) throw new Error(`NativeAddon has a member without a plain name in ${path}`);
    return m.name.text;
  });
}

interface Loaded {
  label: string;
  addon: NativeAddon;
  /** Devices whose backend this addon compiles: every op must be in their tables. */
  backends: ('cpu' | 'cuda')[];
}

function addons(): Loaded[] {
  const load = require('node-gyp-build') as (dir: string) => NativeAddon;
  const list: Loaded[] = [{ label: 'CPU addon', addon: load(packageRoot), backends: ['cpu'] }];
  const cudaPath = join(packageRoot, 'build-cuda', 'Release', 'pit_cuda.node');
  if (existsSync(cudaPath)) list.push({ label: 'CUDA addon', addon: require(cudaPath) as NativeAddon, backends: ['cpu', 'cuda'] });
  else console.log(`CUDA addon not built (${cudaPath}): its surface is not checked`);
  return list;
}

const loaded = addons();
const declared = nativeAddonMembers();

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();
const missingFrom = (xs: Iterable<string>, from: Set<string>): string[] => sorted([...xs].filter((x) => !from.has(x)));

for (const { label, addon, backends } of loaded) {
  const exported = new Set(Object.keys(addon).filter((k) => typeof (addon as unknown as Record<string, unknown>)[k] === 'function'));
  // (An addon without opTable() fails the first test, by its exports, not by crashing here.)
  const table: OpTableEntry[] = typeof addon.opTable === 'function' ? addon.opTable() : [];

  test(`${label}: its exports are exactly NativeAddon's members (lib/native.ts)`, (t) => {
    const members = new Set(declared);
    t.deepEqual(missingFrom(members, exported), [], 'declared in NativeAddon but not exported (no PIT_BINDING?)');
    t.deepEqual(missingFrom([...exported].filter((e) => e !== 'NativeTensor'), members), [],
      'exported but not declared in NativeAddon (lib/native.ts)');
    t.true(exported.has('NativeTensor'), 'the tensor class is exported');
  });

  test(`${label}: every op of the table has its export, and every other export is a known non-op`, (t) => {
    const names = table.map((op) => op.name);
    t.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'op names are unique');
    const opExports = new Set(table.map((op) => op.export));
    t.deepEqual(missingFrom(opExports, exported), [], 'ops whose export (PIT_OPS in core/op_table.h) the addon lacks');
    const stray = [...exported].filter((e) => !opExports.has(e) && !notOps.has(e));
    t.deepEqual(sorted(stray), [], 'exports that reach no op of the table: add the op to PIT_OPS, or the export to notOps here');
    t.deepEqual(sorted([...notOps].filter((e) => opExports.has(e))), [], 'notOps lists an op\'s export');
  });

  test(`${label}: every backend it compiles has every op (GPU-only ones on the GPU only)`, (t) => {
    for (const device of backends) {
      const lacking = table.filter((op) => !(op.gpuOnly && device === 'cpu') && !op.devices.includes(device));
      t.deepEqual(lacking.map((op) => op.name), [], `ops missing from the ${device} table (cpu/op_table.cc, PIT_CUDA_OP)`);
    }
    t.deepEqual(table.filter((op) => op.gpuOnly && op.devices.includes('cpu')).map((op) => op.name), [],
      'GPU-only ops have no CPU kernel');
    // bf16 attention was GPU-only until the CPU had its kernels (cpu/attention_bf16.cc).
    for (const name of ['attention_forward_bf16', 'attention_backward_bf16']) {
      const op = table.find((o) => o.name === name);
      t.true(op !== undefined && !op.gpuOnly && op.devices.includes('cpu'), `${name}: in PIT_OPS, with a CPU kernel`);
    }
  });
}

// Only where both addons were built (the CUDA one needs nvcc at install time).
(loaded.length > 1 ? test : test.skip)('both addons list the same op table', (t) => {
  const tables = loaded.map(({ addon }) => (typeof addon.opTable === 'function' ? addon.opTable() : []).map(({ name, export: e, gpuOnly }) => ({ name, export: e, gpuOnly })));
  t.is(tables.length, 2);
  t.deepEqual(tables[1], tables[0]);
});
