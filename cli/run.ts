// The plumbing every training command shares: flags from the recipe tables (shared part and
// the task's), --device, --precision, --out, --resume, --skip-checksum and --json; Ctrl-C
// or SIGTERM (what schedulers and containers send before a kill) → finish the step, save,
// exit 128 + the signal's number (130, 143; a second signal quits at once); the progress
// bar or epoch lines; the final lines. A command brings only its task and how the task's run reads (TaskView).
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  fieldKeys, fitRun, formatBytes, makeRecipe, runTraining, selectBackend, taskSharedFields, type Device, type MemoryPart, type Precision, type Recipe, type RecipeField, type Task, type TaskModel,
} from '../lib/index.js';
import { bytes, deviceOption, precisionOption, skipChecksumOption } from './args.js';
import { formatDuration, progressReporter, type TaskView } from './progress.js';
import { recipeFlags } from './recipe-flags.js';

export interface TrainingCommand<P, M extends TaskModel, Metrics> {
  /** The subcommand, e.g. 'train'. */
  name: string;
  description: string;
  task: Task<P, M, Metrics>;
  view: TaskView<Metrics>;
}

interface RunFlags {
  data?: string;
  device: 'auto' | 'cpu' | 'cuda';
  precision: Precision;
  out?: string;
  resume?: boolean | string;
  skipChecksum: boolean;
  json: boolean;
  estimate?: true | number;
}

/** The exit status of a process ended by `signal`: 128 + its number. */
const exitStatus = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * Ctrl-C (SIGINT) or SIGTERM aborts `signal`: a run sees it between steps, finishes the step,
 * saves and returns interrupted. A second signal quits at once. `exitStatus()` is the status
 * to end with (130 or 143); `release()` removes the handlers.
 */
export function stopSignals(who: string): { signal: AbortSignal; exitStatus(): number; release(): void } {
  const controller = new AbortController();
  let stoppedBy: keyof typeof exitStatus | null = null;
  const onSignal = (signal: keyof typeof exitStatus) => {
    if (stoppedBy) process.exit(exitStatus[signal]);
    stoppedBy = signal;
    const again = signal === 'SIGINT' ? 'Ctrl-C again' : 'another SIGINT or SIGTERM';
    console.error(`\n${who}: ${signal === 'SIGINT' ? 'interrupted' : 'terminated (SIGTERM)'}; finishing this step and saving a checkpoint (${again} to quit without saving)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    exitStatus: () => exitStatus[stoppedBy ?? 'SIGINT'],
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** --estimate's value: a size such as 80GB, or true for the device's own memory. */
const bytesOrTrue = (v: string | undefined): true | number => (v === undefined ? true : bytes(v));

/** `--estimate`: the run's estimated peak by part against a size, and the largest image side that fits. */
function printEstimate<P>(task: Task<P, TaskModel, unknown>, recipe: Readonly<Recipe<P>>, f: RunFlags): void {
  const available = selectBackend({ device: 'auto' }).backend;
  const device: Device = f.device === 'auto' ? available : f.device;
  const limit = f.estimate === true ? undefined : f.estimate;
  if (limit === undefined && device === 'cuda' && available !== 'cuda') throw new InvalidArgumentError('--estimate with --device cuda on a machine without a GPU needs a size, e.g. --estimate 80GB');
  const fit = fitRun(task, recipe, { device, precision: f.precision, limit });
  const line = (p: MemoryPart) => `  ${formatBytes(p.bytes).padStart(10)}  ${p.what}`;
  if (f.json) {
    console.log(JSON.stringify({ device, precision: f.precision, recompute: recipe.recompute, batchSize: recipe.batchSize, imageSize: recipe.imageSize, ...fit }));
    return;
  }
  console.log(`estimated peak of this run on ${device} (${f.precision}, batch ${recipe.batchSize}, --recompute ${recipe.recompute}): ` +
    `${formatBytes(fit.bytes)} of ${formatBytes(fit.limit)}: ${fit.fits ? 'fits' : 'does not fit'}`);
  console.log(device === 'cpu' ? 'RAM:' : `${device} memory:`);
  for (const p of device === 'cpu' ? [...fit.memory.device, ...fit.memory.host] : fit.memory.device) console.log(line(p));
  if (device !== 'cpu' && fit.memory.host.length) console.log(['host (RAM):', ...fit.memory.host.map(line)].join('\n'));
  console.log(fit.largestImageSize === null
    ? 'largest --image-size that fits: none (the data keeps its own size, or not even the smallest side fits)'
    : `largest --image-size that fits in ${formatBytes(fit.limit)}: ${fit.largestImageSize} (${formatBytes(fit.limit)} counted as ${device === 'cpu' ? 'RAM for the model, activations and images' : 'GPU memory for the model and activations'})`);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function registerTrainingCommand<P, M extends TaskModel, Metrics>(program: Command, spec: TrainingCommand<P, M, Metrics>): void {
  const { name, task, view } = spec;
  const defaults = makeRecipe(task.recipe);
  // A shared field the task computes (MAE's lr from --blr) is no flag of its command.
  const computed = (field: RecipeField<Recipe<P>>) => fieldKeys(field).some((k) => k in (task.recipe.derived?.rules ?? {}));
  const fields = [...taskSharedFields(task.recipe), ...task.recipe.fields] as RecipeField<Recipe<P>>[];
  const flags = recipeFlags<Recipe<P>>(fields.filter((f) => !computed(f)), defaults);
  const command = program.command(name).description(spec.description);
  for (const option of flags.options) command.addOption(option);
  command
    .addOption(deviceOption())
    .addOption(precisionOption())
    .option('--out <dir>', 'run folder (default: runs/<data>-<date>-<time>)')
    .option('--resume [dir]', 'continue the run in --out (or in dir) from its latest checkpoint, with its saved recipe')
    .addOption(skipChecksumOption('resumed'))
    .option('--json', 'print JSON lines (start, epoch, checkpoint) instead of text', false)
    .option('--estimate [size]', 'print the run\'s estimated peak memory by part and the largest --image-size that fits in size (e.g. 80GB; default: what the device has) at the same batch, precision and --recompute, then exit without training; --device cuda estimates for a GPU on any machine', bytesOrTrue)
    .action(async (f: RunFlags, cmd: Command) => {
      const given = flags.typed(cmd);
      if (f.estimate !== undefined) {
        if (f.resume !== undefined) throw new InvalidArgumentError('--estimate is for a new run\'s recipe, not --resume');
        printEstimate(task, makeRecipe(task.recipe, given), f);
        return;
      }
      const resume = f.resume;
      const out = f.out ?? (typeof resume === 'string' ? resume : undefined) ?? join('runs', `${f.data ?? defaults.data}-${timestamp()}`);
      if (resume === true && !f.out) throw new InvalidArgumentError('--resume without a folder needs --out <run folder>');
      if (!resume) makeRecipe(task.recipe, given); // fail on a bad combination before loading anything

      const stop = stopSignals(`pit ${name}`);
      const reporter = progressReporter(view, { json: f.json, tty: !f.json && Boolean(process.stderr.isTTY) });
      const started = performance.now();
      try {
        // A resumed run keeps its saved precision unless --precision is given (then it must agree).
        const precision = cmd.getOptionValueSource('precision') === 'default' ? undefined : f.precision;
        const result = await runTraining(task, {
          recipe: given, out, resume: resume ?? false, verify: !f.skipChecksum, device: f.device, precision, signal: stop.signal, onEvent: reporter.onEvent,
        });
        reporter.done();
        result.model.dispose();
        if (result.interrupted) {
          console.log(`resume with: pit ${name} --out ${out} --resume`);
          process.exitCode = stop.exitStatus();
          return;
        }
        if (f.json) return;
        console.log(`run folder ${out} (${formatDuration((performance.now() - started) / 1000)})`);
        console.log(view.finalLine(result.final));
      } finally {
        reporter.done();
        stop.release();
      }
    });
}
