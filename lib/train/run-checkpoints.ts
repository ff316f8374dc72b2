// A run folder's checkpoints: checkpoints/step-<8 digits>/ and a `latest` file naming the one
// to resume from. Every state on disk between two filesystem operations of a save is a
// loadable one, so a kill at any moment leaves `latest` naming a complete checkpoint:
//   1. write the new checkpoint into step-N.tmp-<pid>/ (a crash leaves a stale temp folder)
//   2. rename it to a name not in use: step-N, or step-N-<k> when step N was saved before
//      (resuming from an older checkpoint into the same run re-saves its steps)
//   3. point `latest` at it (write latest.tmp-<pid>, rename over latest: atomic)
//   4. remove the folders it replaced (same step), then all but the newest `keep` steps.
// Temp folders and files that crashed saves left are removed when a run starts (removeStaleTemps).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MODEL_FILE, tempFolder, writeCheckpointFiles, type SaveCheckpointOptions } from './checkpoint.js';
import { LOCK_FILE, processAlive } from './run-lock.js';
import { writeFileAtomic } from './safetensors.js';

export const CHECKPOINTS_DIR = 'checkpoints';
const LATEST_FILE = 'latest';
/** step-<step> or step-<step>-<k>: the k-th re-save of that step. */
const STEP_FOLDER = /^step-(\d+)(?:-(\d+))?$/;
/** saveCheckpoint's temp folders, writeFileAtomic's temp files: `<name>.tmp-<pid>`, `<name>.old-<pid>`. */
const TEMP_NAME = /\.(?:tmp|old)-(\d+)$/;

/** The filesystem operations of saveRunCheckpoint, in order. */
export type SaveOperation = 'write-files' | 'rename-into-place' | 'switch-latest' | 'remove-replaced' | 'prune';
let beforeOperation: ((operation: SaveOperation) => void) | null = null;

/**
 * For crash-injection tests only: `hook` runs before each filesystem operation of a run save;
 * killing the process there (or throwing) is a crash between two operations. null removes it.
 */
export function setSaveOperationHook(hook: ((operation: SaveOperation) => void) | null): void {
  beforeOperation = hook;
}

interface StepFolder {
  name: string;
  step: number;
  generation: number;
}

function stepFolders(root: string): StepFolder[] {
  return readdirSync(root).flatMap((name) => {
    const m = STEP_FOLDER.exec(name);
    return m ? [{ name, step: Number(m[1]), generation: Number(m[2] ?? 0) }] : [];
  });
}

/**
 * Saves a run's checkpoint as <runDir>/checkpoints/step-<step>/ (or step-<step>-<k> when that
 * step is already saved), points `latest` at it (atomically), removes what it replaced and all
 * but the newest `keep` steps. Returns the folder. Throws, saving nothing, when the weights are
 * not finite.
 */
export function saveRunCheckpoint(runDir: string, options: SaveCheckpointOptions & { keep?: number }): string {
  const { keep = 2, step = 0 } = options;
  const root = join(runDir, CHECKPOINTS_DIR);
  mkdirSync(root, { recursive: true });
  const replaced = stepFolders(root).filter((f) => f.step === step);
  const base = `step-${String(step).padStart(8, '0')}`;
  const name = replaced.length ? `${base}-${Math.max(...replaced.map((f) => f.generation)) + 1}` : base;
  const dir = join(root, name), tmp = tempFolder(dir);

  beforeOperation?.('write-files');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeCheckpointFiles(tmp, options);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  beforeOperation?.('rename-into-place');
  renameSync(tmp, dir);
  beforeOperation?.('switch-latest');
  writeFileAtomic(join(root, LATEST_FILE), new TextEncoder().encode(name + '\n'));
  // Removing the replaced folders is its own step, although the prune below would remove them
  // too: a crash between the two (tests inject one at each) leaves a distinct state on disk.
  beforeOperation?.('remove-replaced');
  for (const old of replaced) rmSync(join(root, old.name), { recursive: true, force: true });
  beforeOperation?.('prune');
  const others = stepFolders(root).filter((f) => f.name !== name);
  const steps = [...new Set([step, ...others.map((f) => f.step)])].sort((a, b) => b - a);
  const kept = new Set(steps.slice(0, keep));
  for (const old of others) if (old.step === step || !kept.has(old.step)) rmSync(join(root, old.name), { recursive: true, force: true });
  return dir;
}

/**
 * Removes the temp folders and files (`*.tmp-<pid>`, `*.old-<pid>`) in a run folder and its
 * checkpoints/, whatever their pid: call it only while holding the folder's lock, which proves
 * no other process writes there (and a pid proves nothing: pids are reused, and in a container
 * a restarted run often has the crashed one's). The one exception is the lock's own temp file
 * (run.lock.tmp-<pid>), which a process about to take the lock may be writing: it goes only
 * when its process is gone. Returns the paths removed.
 */
export function removeStaleTemps(runDir: string): string[] {
  const removed: string[] = [];
  for (const folder of [runDir, join(runDir, CHECKPOINTS_DIR)]) {
    if (!existsSync(folder)) continue;
    for (const name of readdirSync(folder)) {
      const m = TEMP_NAME.exec(name);
      if (!m) continue;
      if (folder === runDir && name.startsWith(`${LOCK_FILE}.`) && processAlive(Number(m[1]))) continue;
      rmSync(join(folder, name), { recursive: true, force: true });
      removed.push(join(folder, name));
    }
  }
  return removed;
}

/**
 * What a run folder's checkpoints/latest says: null when there is none (the folder holds no
 * run), else the step of the folder it names (NaN when that name is not a checkpoint's).
 */
export function latestStep(runDir: string): number | null {
  const latest = join(runDir, CHECKPOINTS_DIR, LATEST_FILE);
  if (!existsSync(latest)) return null;
  const m = STEP_FOLDER.exec(readFileSync(latest, 'utf8').trim());
  return m ? Number(m[1]) : NaN;
}

/**
 * The checkpoint folder `path` names: a checkpoint folder itself (it holds model.safetensors),
 * or a run folder whose checkpoints/latest names one. Throws, saying what was looked for.
 */
export function resolveCheckpoint(path: string): string {
  if (!existsSync(path)) throw new RangeError(`checkpoint: '${path}' does not exist`);
  if (!statSync(path).isDirectory()) {
    if (basename(path) === MODEL_FILE) return dirname(path);
    throw new RangeError(`checkpoint: '${path}' must be a run folder or a checkpoint folder, got a file`);
  }
  if (existsSync(join(path, MODEL_FILE))) return path;
  const latest = join(path, CHECKPOINTS_DIR, LATEST_FILE);
  if (!existsSync(latest)) throw new RangeError(`checkpoint: '${path}' holds neither ${MODEL_FILE} nor ${CHECKPOINTS_DIR}/${LATEST_FILE}`);
  const name = readFileSync(latest, 'utf8').trim();
  const dir = join(path, CHECKPOINTS_DIR, name);
  if (!STEP_FOLDER.test(name) || !existsSync(join(dir, MODEL_FILE)))
    throw new RangeError(`checkpoint: ${latest} names "${name}", which is not a checkpoint folder beside it`);
  return dir;
}
