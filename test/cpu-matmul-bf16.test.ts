// The CPU's bf16 GEMM on every ISA path this CPU can run: the cases (test/cpu-matmul-bf16-cases.ts)
// run in a child process per PIT_CPU_ISA, since the ISA is fixed when the addon loads. The
// packed bf16 kernels (AMX-BF16 where the CPU has it, AVX512-BF16, and the AMX kernel on the
// tile emulator, PIT_CPU_ISA=amx-emulated, on every CPU) must stay within 2× a naive bf16
// GEMM's error; the f32-widened path must also equal the f32 GEMM of the widened operands bit
// for bit.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { native } from '../lib/index.js';
import type { Bf16GemmReport } from './cpu-matmul-bf16-cases.js';

const script = fileURLToPath(new URL('./cpu-matmul-bf16-cases.js', import.meta.url));

function reportFor(isa: string): Promise<Bf16GemmReport> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script], { env: { ...process.env, PIT_CPU_ISA: isa, PIT_DEVICE: 'cpu' }, maxBuffer: 1 << 24 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Bf16GemmReport)));
  });
}

// Which bf16 GEMM each cap must select on this CPU (whether it has AVX512-BF16 and AMX-BF16:
// Linux says in /proc/cpuinfo; elsewhere this process's own level, uncapped unless PIT_CPU_ISA
// is set). amx-emulated runs the AMX kernel on the tile emulator whatever the CPU.
const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : null;
const ownIsa = native().buildInfo().cpuIsa;
const hasBf16 = cpuinfo ? /\bavx512_bf16\b/.test(cpuinfo) : ['amx', 'avx512bf16'].includes(ownIsa);
const hasAmx = cpuinfo ? hasBf16 && /\bamx_bf16\b/.test(cpuinfo) && /\bamx_tile\b/.test(cpuinfo) : ownIsa === 'amx';
const expected: Record<string, string> = {
  'amx-emulated': 'amx-emulated',
  amx: hasAmx ? 'amx' : hasBf16 ? 'avx512bf16' : 'f32-widened',
  avx512bf16: hasBf16 ? 'avx512bf16' : 'f32-widened',
  avx512: 'f32-widened',
  avx2: 'f32-widened',
  scalar: 'f32-widened',
};

for (const isa of Object.keys(expected)) {
  test(`bf16 GEMM, PIT_CPU_ISA=${isa}: the ${expected[isa]} path, within 2× a naive bf16 GEMM's error`, async (t) => {
    const report = await reportFor(isa);
    if (report.cpuIsa !== isa) t.log(`this CPU runs the ${report.cpuIsa} level under PIT_CPU_ISA=${isa}`);
    // A CPU with AMX whose kernel refuses this process the tile state (Linux before 5.16) says so and runs AVX512-BF16.
    const refused = isa === 'amx' && hasAmx && /refused/.test(report.cpuIsaNote);
    if (refused) t.log(report.cpuIsaNote);
    t.is(report.cpuBf16Gemm, refused ? 'avx512bf16' : expected[isa]);
    if (isa === 'amx-emulated') t.regex(report.cpuIsaNote, /emulat/, 'buildInfo().cpuIsaNote says the tiles are emulated');
    t.true(report.cases >= 40, `${report.cases} cases`);
    t.log(`${report.cases} cases; worst error / allowed error ${report.worstRatio.toFixed(3)}`);
    t.deepEqual(report.failures, [], `${report.failures.length} outputs wrong on ${report.cpuBf16Gemm}`);
  });
}

test('buildInfo().cpuBf16Gemm names the bf16 GEMM in use; the emulated AMX kernel only when asked for', (t) => {
  const info = native().buildInfo();
  const paths = ['amx', 'avx512bf16', 'f32-widened'];
  if (process.env.PIT_CPU_ISA === 'amx-emulated') paths.push('amx-emulated');
  t.true(paths.includes(info.cpuBf16Gemm), info.cpuBf16Gemm);
  if (['avx512', 'avx2', 'scalar'].includes(info.cpuIsa)) t.is(info.cpuBf16Gemm, 'f32-widened');
  if (info.cpuBf16Gemm === 'amx') t.is(info.cpuIsa, 'amx');
});
