// What the study commands (`pit study pretrain | dit | locality …`) share: the data flags every
// study passes to its runs, and the run itself: stop signals (Ctrl-C saves the run in flight and
// exits 130), progress lines on stderr, then the table and the files written.
import { Option, type Command } from 'commander';
import type { DataName, SharedRecipe } from '../lib/index.js';
import { deviceOption, integer } from './args.js';
import { stopSignals } from './run.js';

export interface StudyDataFlags {
  data: DataName;
  dataDir?: string;
  imageSize?: number;
  batchSize?: number;
  device: 'auto' | 'cpu' | 'cuda';
}

/** --data, --data-dir, --image-size, --batch-size and --device (imageSize: a default, or the recipes'). */
export function studyDataOptions(command: Command, imageSize?: number): Command {
  return command
    .addOption(new Option('--data <name>', 'data set').choices(['mnist', 'cifar10', 'cifar100']).default('mnist'))
    .option('--data-dir <dir>', 'folder of the CIFAR binary files')
    .option('--image-size <n>', imageSize === undefined ? 'resize images to n×n (default: the recipes\', 8 for mnist)' : 'resize images to n×n', integer(1), imageSize)
    .option('--batch-size <n>', 'images per step of every run (default: the recipes\')', integer(1))
    .addOption(deviceOption());
}

/** The recipe fields the data flags give every run of a study. */
export function studyRecipe(f: StudyDataFlags): Partial<SharedRecipe> {
  return { data: f.data, ...(f.dataDir ? { dataDir: f.dataDir } : {}), ...(f.imageSize ? { imageSize: f.imageSize } : {}), ...(f.batchSize ? { batchSize: f.batchSize } : {}) };
}

/** Runs a study under stop signals; prints its table and files, or exits as the signal asks when interrupted. */
export async function runStudyCommand(name: string, study: (context: { signal: AbortSignal; command: string; onLine: (line: string) => void }) =>
  Promise<{ interrupted: boolean; table: string; files: string[] }>): Promise<void> {
  const stop = stopSignals(name);
  try {
    const report = await study({ signal: stop.signal, command: `pit ${process.argv.slice(2).join(' ')}`, onLine: (line) => console.error(line) });
    if (report.interrupted) {
      process.exitCode = stop.exitStatus();
      return;
    }
    console.log(report.table);
    console.log(`wrote ${report.files.join(', ')}`);
  } finally {
    stop.release();
  }
}
