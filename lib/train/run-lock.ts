// One writer per run folder. A run holds <run>/run.lock, which says who holds it (pid, host,
// start time). The file is written whole under a temp name and hard-linked into place: link()
// fails when run.lock exists and never shows a half-written lock. A lock whose process is gone
// (same host, pid not alive) was left by a crash and is taken over; a lock from another host
// cannot be checked and is reported, like a live one. (Two runs that find the same stale lock
// at the same instant can both take it over: the window is the few microseconds between the
// removal and the link.)
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = 'run.lock';

interface LockHolder {
  pid: number;
  host: string;
  started: string;
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
    return Number.isSafeInteger(holder.pid) && typeof holder.host === 'string' && typeof holder.started === 'string' ? holder : null;
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
  const path = join(runDir, LOCK_FILE);
  const text = JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() } satisfies LockHolder) + '\n';
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  try {
    for (;;) {
      try {
        linkSync(tmp, path);
        return {
          release() {
            if (existsSync(path) && readFileSync(path, 'utf8') === text) rmSync(path, { force: true });
            if (created && readdirSync(runDir).length === 0) rmdirSync(runDir);
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const holder = readHolder(path);
      if (!holder) throw new Error(`run folder ${runDir} is locked by ${path}, which cannot be read; if no run is using the folder, delete that file`);
      if (holder.host !== hostname() || processAlive(holder.pid))
        throw new Error(`run folder ${runDir} is in use by pid ${holder.pid} on ${holder.host} since ${holder.started}; ` +
          `wait for that run to end or use another --out (if that process is gone, delete ${path})`);
      rmSync(path, { force: true });   // its process is gone: a crashed run's lock
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}
