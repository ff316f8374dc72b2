// Non-finite inputs through every CPU op, forward and backward, on every ISA path: NaN, +Inf
// and -Inf in each input must give non-finite outputs exactly where a float64 reference does
// (the cases: test/nonfinite-cases.ts). The ISA is fixed when the addon loads, so each
// PIT_CPU_ISA runs in its own child process. (Loops compiled with PIT_MULTIVERSION pick their
// clone from the CPU itself, whatever the cap; the hand-written paths follow it.)
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CaseResult } from './nonfinite-cases.js';

const script = fileURLToPath(new URL('./nonfinite-cases.js', import.meta.url));
const OPS = ['matmul', 'matmul bf16', 'attention', 'attention bf16', 'layernorm', 'gelu', 'silu', 'modulate', 'gated residual', 'elementwise',
  'softmax cross-entropy', 'mse', 'reductions', 'tokens and permute', 'adamw', 'grad norm', 'cast', 'per-sample axpby',
  'diffusion loss', 'diffusion step'];

interface Report {
  backend: string;
  cpuIsa: string;
  results: CaseResult[];
}

// The ops with a kernel of each level: f32 kernels see avx512bf16 as avx512, so that level
// runs only the bf16 attention kernels (cpu/attention_bf16.cc).
const ISAS: Record<string, string[]> = { avx512bf16: ['matmul bf16', 'attention bf16'], avx512: OPS, avx2: OPS, scalar: OPS };

const reports = new Map<string, Promise<Report>>();
function reportFor(isa: string): Promise<Report> {
  const only = ISAS[isa] === OPS ? [] : ISAS[isa]!;
  if (!reports.has(isa))
    reports.set(isa, new Promise((resolve, reject) => {
      execFile(process.execPath, [script, ...only], { env: { ...process.env, PIT_CPU_ISA: isa, PIT_DEVICE: 'cpu' }, maxBuffer: 1 << 24 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Report)));
    }));
  return reports.get(isa)!;
}

for (const [isa, ops] of Object.entries(ISAS)) {
  for (const op of ops) {
    test(`non-finite inputs: ${op}, forward and backward, PIT_CPU_ISA=${isa}`, async (t) => {
      const report = await reportFor(isa);
      const result = report.results.find((r) => r.op === op);
      if (!result) return t.fail(`no cases ran for ${op}`);
      if (report.cpuIsa !== isa) t.log(`this CPU runs the ${report.cpuIsa} path under PIT_CPU_ISA=${isa}`);
      t.true(result.cases >= 4, `${op}: ${result.cases} cases`);
      t.deepEqual(result.failures, [], `${op} on ${report.cpuIsa}: ${result.failures.length} of ${result.cases} cases wrong`);
    });
  }
}

test('non-finite cases cover every op listed here', async (t) => {
  const report = await reportFor('scalar');
  t.deepEqual(report.results.map((r) => r.op).sort(), [...OPS].sort());
});
