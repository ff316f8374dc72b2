// The AMX tile emulator (native/cpu/amx_emulator.h), on which the bf16 GEMM's AMX kernel runs
// on every machine (PIT_CPU_ISA=amx-emulated, test/cpu-matmul-bf16.test.ts), checked against
// the Intel SDM's definitions by native/cpu/dev/amx_emulator_check.cc, built here with the
// host compiler: LDTILECFG's limits (palette 1, <= 16 rows, <= 64 bytes per row, reserved
// bytes zero), the faults of tiles used unconfigured and of mismatched TDPBF16PS shapes,
// TDPBF16PS's values against float64 with strided loads and stores, its pairing (even with
// even), DAZ and FTZ, the order of its sums, per-thread state, and poisoned stores after a fault.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const compiler = process.env.CXX ?? 'g++';
const hasCompiler = spawnSync(compiler, ['--version']).status === 0;

(hasCompiler ? test : test.skip)('AMX tile emulator: configuration limits, faults and TDPBF16PS semantics as the SDM defines them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-amx-'));
  try {
    const exe = join(dir, 'amx_emulator_check');
    const build = spawnSync(compiler, ['-std=c++17', '-O2', '-Inative', 'native/cpu/dev/amx_emulator_check.cc',
      'native/cpu/amx_emulator.cc', '-pthread', '-o', exe], { cwd: root, encoding: 'utf8' });
    t.is(build.status, 0, build.stderr);
    const run = spawnSync(exe, [], { encoding: 'utf8', timeout: 60_000 });
    t.is(run.status, 0, run.stdout + run.stderr);
    const out = run.stdout;
    t.regex(out, /^0 of 24 checks failed$/m);
    const ok = (re: RegExp) => (out.match(re) ?? []).length;
    t.is(ok(/^ok ldtilecfg: .*\(#GP\)$/gm), 6, 'six invalid configurations refused');
    t.is(ok(/^ok .*\(#UD\)$/gm), 7, 'seven uses the hardware faults on');
    t.is(ok(/^ok tdpbf16ps: /gm), 12);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
