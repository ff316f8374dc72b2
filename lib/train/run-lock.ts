// One writer per run folder. A run holds <run>/run.lock, which says who holds it (pid, host,
// start time, and where readable the boot id and the process's start time in clock ticks since
// boot). The file is written whole under a temp name and hard-linked into place: link() fails
// when run.lock exists and never shows a half-written lock. A lock on this host is stale (left
// by a crash, and taken over) when its process is gone, or when its pid now names another
// process: the machine rebooted since (another boot id), the process under that pid started at
// another time, or the pid is this process's own and this process does not hold the lock (in
// a container node is often pid 1 on every restart). A lock from another host cannot be
// checked and is reported, like a live one. (Two runs that find the same stale lock at the
// same instant can both take it over: the window is the few microseconds between the removal
// and the link.)
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';

export const LOCK_FILE = 'run.lock';

interface LockHolder {
  pid: number;
  host: string;
  started: string;
  /** /proc/sys/kernel/random/boot_id when the holder wrote the lock (absent where unreadable). */
  boot?: string;
  /** Field 22 of /proc/<pid>/stat: the holder's start time in clock ticks since boot. */
  startTicks?: string;
}

/** The locks this process holds (resolved paths): a lock naming our own pid is ours only if listed. */
const heldLocks = new Set<string>();

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** This machine's boot id, or null where /proc does not say. */
function bootId(): string | null {
  return readText('/proc/sys/kernel/random/boot_id')?.trim() || null;
}

/** A process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or null. */
export function processStartTicks(pid: number): string | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Field 2 (the command) is in parentheses and may hold spaces: count from after the last ')'.
  const ticks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3];
  return ticks && /^\d+$/.test(ticks) ? ticks : null;
}

/** Whether the lock's holder (on this host) may still be running: the same process under its pid. */
function holderRunning(holder: LockHolder, path: string): boolean {
  if (holder.pid === process.pid) return heldLocks.has(path);
  if (!processAlive(holder.pid)) return false;
  const boot = bootId();
  if (holder.boot !== undefined && boot !== null && holder.boot !== boot) return false;
  const ticks = processStartTicks(holder.pid);
  if (holder.startTicks !== undefined && ticks !== null && holder.startTicks !== ticks) return false;
  return true;
}

/** Whether a process with this id exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    if (!Number.isSafeInteger(holder.pid) || typeof holder.host !== 'string' || typeof holder.started !== 'string') return null;
    if (typeof holder.boot !== 'string') delete holder.boot;
    if (typeof holder.startTicks !== 'string') delete holder.startTicks;
    return holder;
  } catch {
    return null;
  }
}

export interface RunLock {
  /** Removes the lock (if it is still this run's). */
  release(): void;
}

/**
 * Takes the run folder's lock, or throws naming who holds it. A folder it creates is removed
 * on release if still empty, so a run that fails before writing anything leaves nothing.
 */
export function lockRunFolder(runDir: string): RunLock {
  const created = !existsSync(runDir);
  mkdirSync(runDir, { recursive: true });
  const path = resolve(runDir, LOCK_FILE);
  const boot = bootId(), startTicks = processStartTicks(process.pid);
  const text = JSON.stringify({
    pid: process.pid, host: hostname(), started: new Date().toISOString(), ...(boot ? { boot } : {}), ...(startTicks ? { startTicks } : {}),
  } satisfies LockHolder) + '\n';
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  try {
    for (;;) {
      try {
        linkSync(tmp, path);
        heldLocks.add(path);
        return {
          release() {
            heldLocks.delete(path);
            if (existsSync(path) && readFileSync(path, 'utf8') === text) rmSync(path, { force: true });
            if (created && readdirSync(runDir).length === 0) rmdirSync(runDir);
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readHolder(path);
      if (!holder) throw new Error(`run folder ${runDir} is locked by ${path}, which cannot be read; if no run is using the folder, delete that file`);
      if (holder.host !== hostname() || holderRunning(holder, path))
        throw new Error(`run folder ${runDir} is in use by pid ${holder.pid} on ${holder.host} since ${holder.started}; ` +
          `wait for that run to end or use another --out (if that process is gone, delete ${path})`);
      rmSync(path, { force: true });   // its process is gone (or its pid reused): a crashed run's lock
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}
