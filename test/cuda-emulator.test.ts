// The bf16 tensor-core kernels run on every machine, GPU or not, under a CPU emulator that
// compiles them unchanged as C++ and emulates mma.sync, ldmatrix, shuffles, cp.async and
// barriers from their PTX definitions (native/cuda/dev/warp_emulate.h), checking fragment
// layouts, masking, the copy pipeline and every access's bounds, and the results against
// float64.
// - Attention (native/cuda/attention_bf16.cuh, dev/attention_bf16_emulate.cc). Its --quick
//   set: exp2_poly (v2's polynomial exp2) against exp2f over [-125, 0]; then L = 1 … 400,
//   D = 16 … 128, with cp.async copies landing late and early, two of them with large logits
//   (q, k ×10 and ×6), each in kernel variants v1 and v2 (PIT_ATTENTION_VARIANT), and at
//   D <= 32 in v3; then 36 runs (18 each in v1 and v2) with NaN and ±Inf in q, k, v and dout,
//   whose outputs must be non-finite exactly where the float64 reference's are.
// - The GEMM (native/cuda/gemm_bf16.cuh and split_k.cuh, dev/gemm_bf16_emulate.cc). Its --quick
//   set: 22 cases (odd M, N, K; K = 1; tall and skinny; NN/NT/TN/TT; batches with a shared A or
//   B; accumulate, bias, erf GELU; f32 and bf16 C; padded and unaligned leading dimensions;
//   split-K with 2, 3, 3 and 5 splits and the heuristic's; grids smaller than the work), each
//   under three schedules (copies landing late; at issue with drifting warps; at issue with
//   one warp held back as far as the barriers allow) whose results must agree bit for bit;
//   and 6 checks of the split-K heuristic (cuda/split_k.h).
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const compiler = process.env.CXX ?? 'g++';
const hasCompiler = spawnSync(compiler, ['--version']).status === 0;

/** Builds native/cuda/dev/<name>.cc with the host compiler and runs it with --quick: its stdout. */
function emulate(t: ExecutionContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pit-emu-'));
  try {
    const exe = join(dir, name);
    const build = spawnSync(compiler, ['-std=c++17', '-O2', '-fno-strict-aliasing', '-Wno-unknown-pragmas', '-Inative',
      `native/cuda/dev/${name}.cc`, '-o', exe], { cwd: root, encoding: 'utf8' });
    t.is(build.status, 0, build.stderr);
    const run = spawnSync(exe, ['--quick'], { encoding: 'utf8', timeout: 240_000 });
    t.is(run.status, 0, run.stdout + run.stderr);
    return run.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

(hasCompiler ? test : test.skip)('bf16 attention kernels (v1, v2, v3), emulated on the CPU: forward, lse and backward within the bf16 bound, large logits too; non-finite inputs propagate', (t) => {
  const out = emulate(t, 'attention_bf16_emulate');
  t.regex(out, /^0 of 73 runs failed$/m);
  t.is((out.match(/^ok /gm) ?? []).length, 73);
  t.regex(out, /^ok +exp2_poly /m, 'the polynomial exp2 within 1e-4 of exp2f, special values as ex2.approx');
  for (const v of ['v1', 'v2']) {
    t.is((out.match(new RegExp(`^ok +${v} .* (lazy |eager)`, 'gm')) ?? []).length, 14, `${v}: 7 cases, lazy and eager copies`);
    t.is((out.match(new RegExp(`^ok +${v} .* large-logit `, 'gm')) ?? []).length, 4, `${v}: large logits`);
    t.is((out.match(new RegExp(`^ok +${v} .* non-finite `, 'gm')) ?? []).length, 18, `${v}: NaN and ±Inf in q, k, v and dout`);
  }
  t.is((out.match(/^ok +v3 .* (lazy |eager)/gm) ?? []).length, 8, 'v3: the 4 cases at D <= 32, lazy and eager copies');
});

(hasCompiler ? test : test.skip)('bf16 tensor-core GEMM, emulated on the CPU: every layout, odd shapes, epilogues and split-K against float64, bit-identical under three schedules', (t) => {
  const out = emulate(t, 'gemm_bf16_emulate');
  t.regex(out, /^0 of 66 runs failed; 0 of 6 split-K heuristic checks failed$/m);
  const ok = (re: RegExp) => (out.match(re) ?? []).length;
  t.is(ok(/^ok {3}(NN|NT|TN|TT) /gm), 66);
  for (const schedule of ['lazy', 'eager', 'laggard']) t.is(ok(new RegExp(`^ok .* ${schedule} *:`, 'gm')), 22, schedule);
  t.is(ok(/^ok .*, bits = lazy run's$/gm), 44, 'the eager and laggard runs repeat the lazy run bit for bit');
  t.is(ok(/^ok .* splits=[2-9] /gm), 15, 'five split-K cases, three schedules each');
  t.is(ok(/^ok .* unaligned /gm), 3, 'operands off a 16-byte boundary: the guarded-load form');
  t.is(ok(/^ok {3}split-K heuristic: /gm), 6);
});
