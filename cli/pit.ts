#!/usr/bin/env node
// `pit`: the command line. Each subcommand is a thin layer over the library.
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runKernelBench } from '../bench/kernels.js';
import { selectBackend } from '../lib/native.js';
import { getDefaultDevice } from '../lib/tensor.js';
import { registerEval, registerTrain } from './train.js';

const program = new Command();
program
  .name('pit')
  .description('pixel-transformer: Transformers on individual pixels, trained from Node.js')
  .showHelpAfterError()
  .configureHelp({ showGlobalOptions: true });

const deviceOption = () =>
  new Option('--device <device>', 'backend to use').choices(['auto', 'cpu', 'cuda']).default('auto');

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

program
  .command('info')
  .description('print the native addon, devices, build flags and why they were chosen')
  .addOption(deviceOption())
  .option('--json', 'print one JSON object', false)
  .action((opts: { device: 'auto' | 'cpu' | 'cuda'; json: boolean }) => {
    const selection = selectBackend({ device: opts.device });
    const build = selection.addon.buildInfo();
    const memory = selection.addon.memory();
    const report = { backend: selection.backend, addon: selection.path, requested: selection.requested, reasons: selection.reasons,
      defaultDevice: getDefaultDevice(), build, memory, node: process.version, platform: `${process.platform}-${process.arch}` };
    if (opts.json) {
      console.log(JSON.stringify(report));
      return;
    }
    console.log(`backend        ${selection.backend} (requested: ${selection.requested})`);
    console.log(`addon          ${selection.path}`);
    for (const r of selection.reasons) console.log(`  because      ${r}`);
    console.log(`CPU            ${build.threads} threads, ${build.cpuIsa} kernels, compiler ${build.compiler}${build.debug ? ', DEBUG build' : ''}`);
    if (build.cuda) {
      const c = build.cuda;
      console.log(`CUDA build     runtime ${c.runtimeVersion ?? '?'}, driver ${c.driverVersion ?? 'none'}, archs ${c.architectures ?? '?'}`);
      for (const d of c.devices) console.log(`  GPU          ${d.name}, sm_${d.capability.replace('.', '')}, ${formatBytes(d.memoryBytes)}, ${d.multiprocessors} SMs`);
      if (c.reason) console.log(`  unavailable  ${c.reason}`);
    }
    console.log(`default device ${getDefaultDevice()}`);
    console.log(`memory         cpu: ${memory.cpu.tensors} tensors, ${formatBytes(memory.cpu.bytes)}` +
      (memory.cuda ? `; cuda: ${memory.cuda.tensors} tensors, ${formatBytes(memory.cuda.bytes)}, ${formatBytes(memory.cuda.free)} free` : ''));
    console.log(`node           ${process.version} ${process.platform}-${process.arch}`);
  });

registerTrain(program);
registerEval(program);

const bench = program.command('bench').description('benchmarks (not tests): print tables, write JSON');

function listOption(value: string): string[] {
  const ops = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!ops.length) throw new InvalidArgumentError('expected a comma-separated list of op names');
  return ops;
}

bench
  .command('kernels')
  .description('time the native kernels at the shapes PiT uses (GFLOP/s with the formula printed)')
  .addOption(deviceOption())
  .option('--json', 'print one JSON object per result line instead of a table', false)
  .option('--ops <list>', 'only ops whose names start with one of these (comma-separated)', listOption)
  .option('--quick', 'tiny shapes (a smoke test, not a measurement)', false)
  .option('--out <file>', 'also write the JSON lines to this file')
  .action((opts: { device: 'auto' | 'cpu' | 'cuda'; json: boolean; ops?: string[]; quick: boolean; out?: string }) => {
    const selection = selectBackend({ device: opts.device });
    const device = opts.device === 'auto' ? selection.backend : opts.device;
    const results = runKernelBench({ device, ops: opts.ops, quick: opts.quick, budgetMs: opts.quick ? 50 : 1500 });
    const lines = results.map((r) => JSON.stringify(r));
    if (opts.out) writeFileSync(opts.out, lines.join('\n') + '\n');
    if (opts.json) {
      for (const l of lines) console.log(l);
      return;
    }
    const build = selection.addon.buildInfo();
    console.log(`device ${device} (${build.cpuIsa}, ${build.threads} threads)`);
    console.log('op                           shape                          ms        GFLOP/s  formula');
    for (const r of results) {
      const shape = Object.entries(r.shape).map(([k, v]) => `${k}=${v}`).join(' ');
      console.log(`${r.op.padEnd(28)} ${shape.padEnd(30)} ${r.ms.toFixed(3).padStart(9)} ${r.gflops.toFixed(1).padStart(10)}  ${r.formula}`);
    }
  });

program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`pit: ${err.message}`);
  process.exit(1);
});
