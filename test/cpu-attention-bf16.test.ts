// bf16 attention on the CPU (native/cpu/attention_bf16.cc): attentionForward /
// attentionBackward with bf16 qkv, out, dout, dqkv and f32 lse, on every ISA path.
//
// Each PIT_CPU_ISA (and thread count) runs the cases of test/cpu-attention-bf16-cases.ts in its
// own child process (the ISA is fixed when the addon loads): avx512bf16 (the AVX512-BF16
// kernels, where the CPU has them) and avx512, avx2, scalar (the f32 kernels on widened copies).
// Accuracy (DESIGN.md, testing pattern 2): out and dqkv against float64 attention on the same
// bf16 values, within 2× the error of a naive bf16 computation (test/attention-bf16-reference.ts:
// S, P, O, dP, dS and the gradients rounded to bf16) plus 1e-3·max|ref|; lse within 1e-3
// relative; outputs NaN-poisoned first. Determinism of the one-pass backward: bitwise equal
// on a repeated run, and between PIT_NUM_THREADS=1 and 2 (f32 and bf16 alike). Non-finite
// inputs: test/nonfinite.test.ts ('attention bf16').
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { native } from '../lib/native.js';
import { checkLse, naiveBf16, withinTwiceNaive } from './attention-bf16-reference.js';
import { CASES, caseLabel, decode, inputsOf, outShape, type Report } from './cpu-attention-bf16-cases.js';
import { attentionReference, qkvShape } from './helpers.js';

const script = fileURLToPath(new URL('./cpu-attention-bf16-cases.js', import.meta.url));

const reports = new Map<string, Promise<Report>>();
/** The cases' results under PIT_CPU_ISA = isa and PIT_NUM_THREADS = threads, one child per pair. */
function reportFor(isa: string, threads: number): Promise<Report> {
  const key = `${isa}/${threads}`;
  if (!reports.has(key))
    reports.set(key, new Promise((resolve, reject) => {
      const env = { ...process.env, PIT_CPU_ISA: isa, PIT_NUM_THREADS: String(threads), PIT_DEVICE: 'cpu' };
      execFile(process.execPath, [script], { env, maxBuffer: 1 << 28 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Report)));
    }));
  return reports.get(key)!;
}

/** The float64 and naive bf16 references of every case, computed once (on the bf16 values every child sees). */
const references = CASES.map((c) => {
  let cached: { ref: ReturnType<typeof attentionReference>; naive: ReturnType<typeof naiveBf16> } | undefined;
  return () => {
    if (!cached) {
      const a = native(), { qkv, dout } = inputsOf(c);
      const round = (x: Float32Array, shape: number[]) => {
        const t = a.fromArray(x, shape, 'bf16', 'cpu'), r = t.toArray();
        t.dispose();
        return r;
      };
      const qkv16 = round(qkv, qkvShape(c.dims)), dout16 = round(dout, outShape(c.dims));
      cached = { ref: attentionReference(c.dims, qkv16, dout16), naive: naiveBf16(c.dims, qkv16, dout16) };
    }
    return cached;
  };
});

// Two threads for the accuracy checks (CI's count); avx512bf16 and avx512 also at one thread.
const ISAS = ['avx512bf16', 'avx512', 'avx2', 'scalar'];

for (const isa of ISAS)
  test(`bf16 attention, PIT_CPU_ISA=${isa}: out, lse, dqkv against float64 within 2× the naive bf16 error, D = 16 … 128, L = 1, 97, 1025`, async (t) => {
    const report = await reportFor(isa, 2);
    if (report.cpuIsa !== isa) t.log(`this CPU runs the ${report.cpuIsa} path under PIT_CPU_ISA=${isa}`);
    t.log(`bf16 attention ran as ${report.cpuBf16Attention}`);
    CASES.forEach((c, i) => {
      const got = report.cases[i]!, { ref, naive } = references[i]!();
      const what = `${isa} ${caseLabel(c)}`;
      t.is(got.label, caseLabel(c));
      withinTwiceNaive(t, `${what} out`, decode(got.bf16.out), naive.out, ref.out);
      checkLse(t, what, decode(got.bf16.lse), ref.lse);
      withinTwiceNaive(t, `${what} dqkv`, decode(got.bf16.dqkv), naive.dqkv, ref.dqkv!);
    });
  });

test('bf16 attention dispatch follows PIT_CPU_ISA: AVX512-BF16 kernels at avx512bf16 (where the CPU has it), widened f32 below', async (t) => {
  for (const isa of ISAS) {
    const report = await reportFor(isa, 2);
    const expected = report.cpuIsa === 'avx512bf16' || report.cpuIsa === 'amx' ? 'avx512bf16' : 'f32-widened';
    t.is(report.cpuBf16Attention, expected, `PIT_CPU_ISA=${isa} (cpuIsa ${report.cpuIsa})`);
    if (isa !== 'avx512bf16') t.is(report.cpuBf16Attention, 'f32-widened', `PIT_CPU_ISA=${isa} caps bf16 attention to the widened path`);
  }
});

for (const isa of ['avx512bf16', 'avx512'])
  test(`one-pass backward, PIT_CPU_ISA=${isa}: bitwise repeatable, and identical with 1 and 2 threads (bf16 and f32)`, async (t) => {
    const [one, two] = await Promise.all([reportFor(isa, 1), reportFor(isa, 2)]);
    t.is(one.threads, 1);
    t.is(two.threads, 2);
    CASES.forEach((c, i) => {
      const a = one.cases[i]!, b = two.cases[i]!, what = `${isa} ${caseLabel(c)}`;
      t.true(a.bf16Repeatable && b.bf16Repeatable, `${what}: a repeated bf16 forward and backward gives the same bits`);
      for (const dtype of ['bf16', 'f32'] as const)
        for (const name of ['out', 'lse', 'dqkv'] as const)
          t.true(a[dtype][name] === b[dtype][name], `${what}: ${dtype} ${name} bit for bit with 1 and 2 threads`);
    });
  });
