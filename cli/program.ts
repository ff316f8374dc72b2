// The `pit` program: every subcommand registered on one commander Command, built by a
// function so tests can parse arguments in-process (the fuzz of the flags) without a process each.
import { Command } from 'commander';
import { selectBackend, type BuildInfo, type MatmulInfo } from '../lib/native.js';
import { formatBytes } from '../lib/train/memory.js';
import { deviceOption } from './args.js';
import { registerBench, registerStudy } from './bench.js';
import { registerDiffuse, registerSample } from './diffuse.js';
import { registerEvalGen } from './eval-gen.js';
import { registerMae } from './mae-show.js';
import { registerPretrain } from './pretrain.js';
import { registerEval, registerTrain } from './train.js';

/** One line on the GPU GEMM engines: the cuBLASLt library and where it came from, or why none. */
/** What each CPU bf16 GEMM path is, for `pit info`. */
const bf16GemmPaths: Record<BuildInfo['cpuBf16Gemm'], string> = {
  amx: 'AMX-BF16 tiles, tdpbf16ps',
  'amx-emulated': 'the AMX kernel on a scalar tile emulator: PIT_CPU_ISA=amx-emulated, for tests, slow',
  avx512bf16: 'AVX512-BF16, vdpbf16ps',
  'f32-widened': 'the f32 GEMM on widened copies',
};

function matmulSummary(m: MatmulInfo): string {
  const mode = m.mode === 'auto' ? '' : ` (PIT_MATMUL=${m.mode})`;
  const lt = m.cublasLt;
  if (lt.loaded) return `cuBLASLt ${lt.version} from ${lt.path} (found by ${lt.source}; handle ${lt.handle}; declarations ${lt.declarations}), our bf16 tensor-core and SIMT kernels as fallbacks${mode}`;
  return `our bf16 tensor-core kernel (bf16 operands) and SIMT kernel (f32)${mode}: ${lt.reason}`;
}

/** A fresh `pit` program with every subcommand. */
export function pitProgram(): Command {
  const program = new Command();
  program
    .name('pit')
    .description('pixel-transformer: Transformers on individual pixels, trained from Node.js')
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true });

  program
    .command('info')
    .description('print the native addon, devices, build flags and why they were chosen')
    .addOption(deviceOption())
    .option('--json', 'print one JSON object', false)
    .action((opts: { device: 'auto' | 'cpu' | 'cuda'; json: boolean }) => {
      const selection = selectBackend({ device: opts.device });
      const build = selection.addon.buildInfo();
      const memory = selection.addon.memory();
      // The GEMM engines, asked of the CUDA addon whenever it loaded (it finds cuBLASLt without a GPU).
      const matmul = (selection.cudaAddon ?? selection.addon).matmulInfo();
      const report = { backend: selection.backend, addon: selection.path, requested: selection.requested, reasons: selection.reasons,
        build, matmul, memory, node: process.version, platform: `${process.platform}-${process.arch}` };
      if (opts.json) {
        console.log(JSON.stringify(report));
        return;
      }
      console.log(`backend        ${selection.backend} (requested: ${selection.requested})`);
      console.log(`addon          ${selection.path}`);
      for (const r of selection.reasons) console.log(`  because      ${r}`);
      console.log(`CPU            ${build.threads} threads, ${build.cpuIsa} kernels, compiler ${build.compiler}${build.debug ? ', DEBUG build' : ''}`);
      if (build.cpuIsaNote) console.log(`  note         ${build.cpuIsaNote}`);
      console.log(`  bf16 GEMM    ${build.cpuBf16Gemm} (${bf16GemmPaths[build.cpuBf16Gemm]})`);
      console.log(`  bf16 attn    ${build.cpuBf16Attention} (${build.cpuBf16Attention === 'avx512bf16' ? 'AVX512-BF16 kernels' : 'the f32 kernels on widened copies, outputs rounded to bf16'})`);
      if (build.cuda) {
        const c = build.cuda;
        console.log(`CUDA build     runtime ${c.runtimeVersion ?? '?'}, driver ${c.driverVersion ?? 'none'}, archs ${c.architectures ?? '?'}`);
        for (const d of c.devices) console.log(`  GPU          ${d.name}, sm_${d.capability.replace('.', '')}, ${formatBytes(d.memoryBytes)}, ${d.multiprocessors} SMs`);
        if (c.reason) console.log(`  unavailable  ${c.reason}`);
      }
      console.log(`GPU matmul     ${matmulSummary(matmul)}`);
      console.log(`memory         cpu: ${memory.cpu.tensors} tensors, ${formatBytes(memory.cpu.bytes)}` +
        (memory.cuda ? `; cuda: ${memory.cuda.tensors} tensors, ${formatBytes(memory.cuda.bytes)}, ${formatBytes(memory.cuda.free)} free` : ''));
      console.log(`node           ${process.version} ${process.platform}-${process.arch}`);
    });

  registerTrain(program);
  registerEval(program);
  registerEvalGen(program);
  registerPretrain(program);
  registerMae(program);
  registerDiffuse(program);
  registerSample(program);

  registerBench(program);
  registerStudy(program);
  return program;
}
