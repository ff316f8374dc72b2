// Where and with what a benchmark ran: stamped on every result line (bench/schema.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../lib/native.js';
import type { Device } from '../lib/tensor.js';
import type { BenchEnv } from './schema.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: string | null = null;

/** "pixel-transformer 0.1.0 (commit abc1234)"; the commit only inside a git checkout. */
export function libraryVersion(): string {
  if (cached) return cached;
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { name: string; version: string };
  let commit = '';
  // Only our own checkout: an installed package inside another project's repository would
  // otherwise report that project's commit.
  if (existsSync(join(packageRoot, '.git'))) {
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      // git missing: the version alone
    }
  }
  cached = `${pkg.name} ${pkg.version}${commit ? ` (commit ${commit})` : ''}`;
  return cached;
}

export function benchEnv(device: Device): BenchEnv {
  const build = native().buildInfo();
  let name: string;
  if (device === 'cuda' && build.cuda?.devices[0]) {
    const d = build.cuda.devices[0];
    name = `${d.name}, sm_${d.capability.replace('.', '')}, ${d.multiprocessors} SMs`;
  } else {
    name = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${build.threads} threads, ${build.cpuIsa}`;
  }
  const cuda = build.cuda ? `, CUDA runtime ${build.cuda.runtimeVersion}, driver ${build.cuda.driverVersion ?? 'none'}` : '';
  return { device: name, date: new Date().toISOString(), version: libraryVersion(), runtime: `node ${process.version}${cuda}` };
}
