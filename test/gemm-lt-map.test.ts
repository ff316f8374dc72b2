// The GPU matmul's decomposition and its cuBLASLt mapping, checked on every machine, GPU or
// not: native/cuda/dev/gemm_lt_map_check.cc compiles cuda/matmul_plan.h (matmul_forward /
// matmul_backward as GEMMs, zero fills and column sums) and cuda/gemm_lt_map.h (a row-major GEMM
// as the column-major cuBLASLt problem) as plain C++, runs every plan with each GEMM on an
// emulation of cuBLASLt's documented semantics (with and without the bias-gradient epilogues)
// or of our SIMT kernel, and compares bit for bit with the ops' definition on exact integer
// inputs: every transpose, batched and shared B, bias, accumulate, f32 and bf16, dimensions 0 … 6.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const compiler = process.env.CXX ?? 'g++';
const hasCompiler = spawnSync(compiler, ['--version']).status === 0;
if (!hasCompiler) console.log(`GEMM mapping check skipped: no C++ compiler (${compiler})`);

(hasCompiler ? test : test.skip)('GPU matmul plans and their cuBLASLt mapping, run on the CPU against the ops\' definition', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pit-gemm-map-'));
  try {
    const exe = join(dir, 'gemm_lt_map_check');
    const build = spawnSync(compiler, ['-std=c++17', '-O1', '-Wall', '-Wextra', '-Werror', '-Inative',
      'native/cuda/dev/gemm_lt_map_check.cc', '-o', exe], { cwd: root, encoding: 'utf8' });
    t.is(build.status, 0, build.stderr);
    const run = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 });
    t.is(run.status, 0, run.stdout + run.stderr);
    t.regex(run.stdout, /^ok alignments and epilogues$/m);
    t.regex(run.stdout, /^0 of \d{4,} cases failed$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
