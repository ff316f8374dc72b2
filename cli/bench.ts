// `pit bench kernels | train | compare` and `pit study scaling`: benchmarks, not tests. Each
// prints a table as results arrive (or JSON lines with --json) and writes JSON lines with
// --out; every result carries the formula behind its number (bench/schema.ts).
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { selectBackend, type DType } from '../lib/native.js';
import type { Device } from '../lib/tensor.js';
import type { Precision, Recompute } from '../lib/index.js';
import { formatComparison, compareResults } from '../bench/compare.js';
import { defaultSweep, kernelCases, runKernelBench, type KernelSweep } from '../bench/kernels.js';
import { parseResults, shapeText, type BenchResult } from '../bench/schema.js';
import { runScalingStudy } from '../bench/study.js';
import { benchTasks, parseDecoderName, runTrainBench, type BenchTask, type DecoderSize } from '../bench/train.js';
import { bytes, deviceOption, integer, integers, names, precisionOption, recomputeOption } from './args.js';
import { registerDitStudy } from './study-dit.js';
import { registerLocalityStudy } from './study-locality.js';
import { registerPretrainStudy } from './study-pretrain.js';

function resolveDevice(requested: 'auto' | Device): Device {
  const selection = selectBackend({ device: requested });
  return requested === 'auto' ? selection.backend : requested;
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** Prints each result as a table row or a JSON line, and appends it to --out. */
function reporter(opts: { json: boolean; out?: string }, columns: (r: BenchResult) => string, header: string) {
  if (opts.out) writeFileSync(opts.out, '');
  let printedHeader = false;
  return (r: BenchResult) => {
    const line = JSON.stringify(r);
    if (opts.out) appendFileSync(opts.out, line + '\n');
    if (opts.json) return console.log(line);
    if (!printedHeader) {
      console.log(`${r.env.device}; ${r.env.version}; ${r.env.runtime}`);
      console.log(header);
      printedHeader = true;
    }
    console.log(columns(r));
  };
}

/** " 81%", or blanks when there is no fraction. */
const percent = (fraction: number | undefined) => (fraction !== undefined ? `${(100 * fraction).toFixed(0).padStart(4)}%` : '     ');
const skipped = (what: string, reason: string) => console.error(`skipped ${what}: ${reason}`);

function tasks(value: string): BenchTask[] {
  const list = names(value);
  for (const t of list) if (!(benchTasks as readonly string[]).includes(t)) throw new InvalidArgumentError(`expected ${benchTasks.join(' or ')} (comma-separated), got "${t}"`);
  return list as BenchTask[];
}

function decoders(value: string): DecoderSize[] {
  try {
    return names(value).map(parseDecoderName);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** "classify", or "mae d8w512h16": the task column of the tables. */
const taskText = (r: BenchResult) => `${r.task === 'mae' ? `mae ${r.decoder}` : r.task ?? 'classify'}${r.recompute ? ` rc:${r.recompute}` : ''}`;
/** "1024", or "256/1024" for an MAE step (visible / all): what the encoder sees. */
const tokensText = (r: BenchResult) => (r.shape.visibleTokens !== undefined ? `${r.shape.visibleTokens}/${r.shape.tokens}` : String(r.shape.tokens));
const maeDecoderHelp = 'MAE decoder(s), d<depth>w<width>h<heads> each (default: the task\'s, MAE\'s d8w512h16 for the presets t, s, b, l: at p = 1 it runs on every pixel and costs ~20× a PiT-T encoder; 2 blocks of the encoder\'s width for d…w…h… encoders)';

interface KernelFlags {
  device: 'auto' | Device; json: boolean; quick: boolean; out?: string; ops?: string[]; dtype?: DType[]; lens?: number[];
  headDims?: number[]; heads?: number; tokens?: number; rows?: number; channels?: number[]; budget: number;
}

function dtypes(value: string): DType[] {
  const list = names(value);
  for (const d of list) if (d !== 'f32' && d !== 'bf16') throw new InvalidArgumentError('expected f32, bf16 or both (comma-separated)');
  return list as DType[];
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks (not tests): print tables, write JSON lines');

  bench
    .command('kernels')
    .description('time every op at PiT shapes: GFLOP/s for matmul and attention, GB/s (and the fraction of the measured copy bandwidth) for memory-bound ops')
    .addOption(deviceOption())
    .option('--ops <list>', 'only ops whose names start with one of these, e.g. attention,layernorm,copy', names)
    .option('--dtype <list>', 'f32 and/or bf16 (default: f32 on cpu, with attention and linear_* GEMMs also in bf16; bf16,f32 on cuda)', dtypes)
    .option('--lens <list>', 'attention sequence lengths L (default: 256,1024 on cpu; 256 … 65536 on cuda)', integers(1))
    .option('--head-dims <list>', 'attention head dims D (default 16,32,64,128)', integers(1))
    .option('--heads <n>', 'attention heads H (default 12)', integer(1))
    .option('--tokens <n>', 'attention batch B = max(1, tokens / L) (default 2048 on cpu, 16384 on cuda)', integer(1))
    .option('--rows <n>', 'rows of the memory-bound ops (default 16384 on cpu, 262144 on cuda)', integer(1))
    .option('--channels <list>', 'channels of LayerNorm and copy (default 192,384,768)', integers(1))
    .option('--budget <ms>', 'time budget per case for the repeats after warm-up', integer(1), 1500)
    .option('--quick', 'tiny shapes (a smoke test, not a measurement)', false)
    .option('--json', 'print one JSON object per result instead of a table', false)
    .option('--out <file>', 'also write the JSON lines to this file')
    .action((f: KernelFlags) => {
      const device = resolveDevice(f.device);
      const base = defaultSweep(device, f.quick);
      const sweep: KernelSweep = {
        ...base, ops: f.ops, dtypes: f.dtype ?? base.dtypes, attentionDtypes: f.dtype ?? base.attentionDtypes, lens: f.lens ?? base.lens, headDims: f.headDims ?? base.headDims,
        heads: f.heads ?? base.heads, tokens: f.tokens ?? base.tokens, rows: f.rows ?? base.rows, channels: f.channels ?? base.channels,
        gemmDtypes: f.dtype ?? base.gemmDtypes,
      };
      if (!kernelCases(sweep).length) {
        const known = [...new Set(kernelCases({ ...sweep, ops: undefined }).map((c) => c.op))];
        throw new InvalidArgumentError(`--ops ${f.ops!.join(',')} matches no op; the ops are ${known.join(', ')}`);
      }
      const print = reporter(f, (r) =>
        `${r.op.padEnd(27)} ${r.dtype.padEnd(5)} ${shapeText(r.shape).padEnd(26)} ${r.ms.toFixed(3).padStart(10)} ` +
        `${r.value.toFixed(1).padStart(10)} ${r.unit.padEnd(8)}${percent(r.fractionOfCopy ?? r.fractionOfPeak)}  ${r.formula}${r.path ? `  [${r.path}]` : ''}${r.variant ? `  [${r.variant}]` : ''}`,
      'op                          dtype shape                              ms      value unit  copy|peak%  formula  (peak%: CPU GEMMs, of their dtype\'s cpu_peak)');
      runKernelBench({ device, sweep, budgetMs: f.quick ? 20 : f.budget, onResult: print, onSkip: (c, why) => skipped(`${c.op} ${c.dtype} ${shapeText(c.shape)}`, why) });
    });

  bench
    .command('train')
    .description('images/s and peak memory of a full training step (forward, backward, clipping, AdamW) on random images: classification, MAE pre-training of the same encoders, or DiT diffusion training')
    .addOption(deviceOption())
    .option('--models <list>', 'model names: pit-<size> or vit-<size>/<p>, <size> t, s, b, l or d<depth>w<width>h<heads> (default: pit-t,vit-t/2 on cpu; pit-t,pit-s,pit-b,vit-t/2 on cuda); for mae, the encoders; for dit, also dit-<size>/<p>', names)
    .option('--task <list>', 'classify, mae (MAE pre-training: the encoder on the kept 25% of the tokens, then the decoder on all) and/or dit (DiT diffusion training, the step of pit diffuse, on the DiT with each model\'s depth, width, heads and patch, or a dit-… name) and/or dit-sample (one DDPM sampling step of that DiT with guidance 1.5: the DiT on twice the batch), each timed for every model and side', tasks, ['classify'] as BenchTask[])
    .option('--decoder <list>', maeDecoderHelp, decoders)
    .option('--sides <list>', 'image sides; 28 is 1-channel/10 classes, others 3-channel/100 classes (default: 28,32 on cpu; 28,32,64 on cuda)', integers(1))
    .addOption(new Option('--batch <n>', 'batch size, or "auto": the largest power of two with batch·tokens ≤ 2^18, halved while the GPU runs out of memory (default: 8 on cpu, auto on cuda)')
      .argParser((v: string) => (v === 'auto' ? 'auto' : integer(1)(v))))
    .addOption(precisionOption())
    .addOption(recomputeOption())
    .option('--budget <ms>', 'time budget per shape for the timed steps', integer(1), 3000)
    .option('--json', 'print one JSON object per result instead of a table', false)
    .option('--out <file>', 'also write the JSON lines to this file')
    .action((f: { device: 'auto' | Device; models?: string[]; task: BenchTask[]; decoder?: DecoderSize[]; sides?: number[]; batch?: number | 'auto'; precision: Precision;
      recompute: Recompute[]; budget: number; json: boolean; out?: string }) => {
      const device = resolveDevice(f.device);
      const cuda = device === 'cuda';
      if (f.decoder && !f.task.includes('mae')) throw new InvalidArgumentError('--decoder is for --task mae');
      const print = reporter(f, (r) =>
        `${r.model!.padEnd(12)} ${taskText(r).padEnd(16)} ${r.dtype.padEnd(5)} ${String(r.shape.side).padStart(4)} ${tokensText(r).padStart(9)} ${String(r.shape.batch).padStart(6)} ` +
        `${r.ms.toFixed(2).padStart(10)} ${r.value.toFixed(1).padStart(10)} ${mib(r.peakBytes ?? 0).padStart(12)}  ${r.formula}`,
      'model        task             dtype side    tokens  batch    ms/step   images/s  peak memory  formula');
      runTrainBench({
        tasks: f.task, decoders: f.decoder,
        device, models: f.models ?? (cuda ? ['pit-t', 'pit-s', 'pit-b', 'vit-t/2'] : ['pit-t', 'vit-t/2']),
        sides: f.sides ?? (cuda ? [28, 32, 64] : [28, 32]), batch: f.batch ?? (cuda ? 'auto' : 8), precision: f.precision, recomputes: f.recompute, budgetMs: f.budget,
        onResult: print, onSkip: skipped,
      });
    });

  bench
    .command('compare')
    .description('pair the results of two JSON-lines files (ours, PyTorch\'s, another run) and print them side by side with ratios')
    .argument('<a>', 'first results file (A)')
    .argument('<b>', 'second results file (B); the ratio is B / A')
    .option('--json', 'print the pairs as JSON lines {key, a, b, ratio}', false)
    .action((a: string, b: string, f: { json: boolean }) => {
      const read = (file: string) => parseResults(readFileSync(file, 'utf8'), file);
      const comparison = compareResults(read(a), read(b));
      if (f.json) for (const row of comparison.rows) console.log(JSON.stringify(row));
      else console.log(formatComparison(comparison, [a, b]));
    });
}

export function registerStudy(program: Command): void {
  const study = program.command('study').description('studies: long-sequence scaling, MAE pre-training against training from scratch, PiT against DiT/2 as generators, locality');
  registerPretrainStudy(study);
  registerDitStudy(study);
  registerLocalityStudy(study);
  study
    .command('scaling')
    .description('training-step time and peak memory against image side, power-law fits per region, CSV/JSON and log-log plots (SVG, PNG)')
    .addOption(deviceOption())
    .option('--models <list>', 'model names: pit-<size> or vit-<size>/<p>, <size> t, s, b, l or d<depth>w<width>h<heads>; for --task dit, also dit-<size>/<p>', names, ['pit-t', 'vit-t/2'])
    .option('--sides <list>', 'image sides (default: 8,12,16,20,24,28,32 on cpu; 8,16,32,48,64,96,128,160,192,224 on cuda)', integers(1))
    .option('--batch <n>', 'batch size', integer(1), 1)
    .addOption(new Option('--task <task>', 'the step to time: classify, mae (MAE pre-training of the models as encoders), dit (DiT diffusion training of the DiT with each model\'s trunk, or dit-… names) or dit-sample (one guided DDPM step of that DiT)').choices([...benchTasks]).default('classify'))
    .option('--decoder <name>', 'for --task mae: the decoder, d<depth>w<width>h<heads> (default the task\'s: MAE\'s d8w512h16 for presets)', (v: string) => decoders(v)[0]!)
    .addOption(precisionOption())
    .addOption(recomputeOption())
    .option('--budget <ms>', 'time budget per side for the timed steps', integer(1), 2000)
    .option('--find-max', 'also find the largest side each model trains at (bisection on out-of-memory, or on --memory-limit)', false)
    .option('--memory-limit <size>', 'for --find-max: the most peak memory a step may use, e.g. 16GiB (required on cpu)', bytes)
    .option('--ceiling <side>', 'for --find-max: do not search past this side', integer(1), 1024)
    .option('--peer <file>', 'PyTorch results (bench/pytorch/vit_train.py --kind scaling) to draw on the same axes')
    .option('--out <dir>', 'output folder', 'runs/scaling')
    .option('--json', 'print each result as a JSON line', false)
    .action((f: { device: 'auto' | Device; models: string[]; sides?: number[]; batch: number; task: BenchTask; decoder?: DecoderSize; precision: Precision; recompute: Recompute[]; budget: number;
      findMax: boolean; memoryLimit?: number; ceiling: number; peer?: string; out: string; json: boolean }) => {
      const device = resolveDevice(f.device);
      if (f.decoder && f.task !== 'mae') throw new InvalidArgumentError('--decoder is for --task mae');
      if (f.findMax && device === 'cpu' && f.memoryLimit === undefined)
        throw new InvalidArgumentError('--find-max on cpu needs --memory-limit (a CPU cannot report running out of memory before it swaps)');
      const print = reporter({ json: f.json }, (r) =>
        `${r.model!.padEnd(12)} ${taskText(r).padEnd(16)} ${String(r.shape.side).padStart(4)} ${tokensText(r).padStart(9)} ${r.ms.toFixed(2).padStart(10)} ${mib(r.peakBytes ?? 0).padStart(12)}`,
      'model        task             side    tokens    ms/step  peak memory');
      const report = runScalingStudy({
        device, models: f.models, task: f.task, decoder: f.decoder, sides: f.sides ?? (device === 'cuda' ? [8, 16, 32, 48, 64, 96, 128, 160, 192, 224] : [8, 12, 16, 20, 24, 28, 32]),
        batch: f.batch, precision: f.precision, recomputes: f.recompute, budgetMs: f.budget, findMax: f.findMax, memoryLimit: f.memoryLimit, ceiling: f.ceiling,
        peer: f.peer ? parseResults(readFileSync(f.peer, 'utf8'), f.peer) : undefined, outDir: f.out,
        command: `pit ${process.argv.slice(2).join(' ')}`, onResult: print, onSkip: skipped,
        onProbe: (model, side, fits, peak) => console.error(`find-max ${model}: side ${side} ${fits ? 'fits' : 'does not fit'}${peak !== null ? ` (peak ${mib(peak)})` : ''}`),
      });
      if (f.json) return;
      for (const fit of report.fits) {
        const show = (rs: typeof fit.time) => rs.map((r) => `N^${r.exponent.toFixed(2)} for ${r.fromTokens}–${r.toTokens} tokens (r² ${r.r2})`).join('; ') || 'too few points';
        console.log(`fit ${fit.model}${fit.task === 'mae' ? ` MAE ${fit.decoder}` : ''}${fit.recompute ? ` recompute ${fit.recompute}` : ''} (${fit.impl}): time ${show(fit.time)}; memory ${show(fit.memory)}`);
      }
      for (const m of report.maxSide)
        console.log(`largest side ${m.model}${m.recompute === 'none' ? '' : ` recompute ${m.recompute}`}: ${m.side}×${m.side} (${m.tokens} tokens, batch ${m.batch}, peak ${mib(m.peakBytes)}; limited by ${m.limitedBy})`);
      console.log(`wrote ${report.files.join(', ')}`);
    });
}
