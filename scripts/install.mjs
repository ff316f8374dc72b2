// The install step (`npm install` runs it): builds the CPU addon always, and the full
// CPU + CUDA addon when nvcc is present. A missing or broken CUDA toolkit never fails the
// install: it prints one line saying why and the CPU addon is used.
//
//   node scripts/install.mjs           # prebuild if one matches, else build from source
//   node scripts/install.mjs --force   # always build from source
//   PIT_SKIP_CUDA=1 ...                # CPU addon only
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCudaAddon } from './build-cuda.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const force = process.argv.includes('--force');
const say = (line) => console.log(`pixel-transformer: ${line}`);

function matchingPrebuild() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return null;
  const file = readdirSync(dir).find((f) => f.endsWith('.node'));
  return file ? path.join(dir, file) : null;
}

function nodeGypCommand() {
  // npm hands its bundled node-gyp to install scripts; fall back to the dev dependency.
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return bundled;
  return require.resolve('node-gyp/bin/node-gyp.js');
}

function buildCpuAddon() {
  const prebuild = force ? null : matchingPrebuild();
  if (prebuild) {
    say(`CPU addon: using prebuild ${path.relative(root, prebuild)}`);
    return;
  }
  const jobs = String(cores());
  const result = spawnSync(process.execPath, [nodeGypCommand(), 'rebuild', '-j', jobs], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    say('CPU addon build failed (see the node-gyp output above)');
    process.exit(result.status ?? 1);
  }
  say('CPU addon built: build/Release/pit_cpu.node');
}

function cores() {
  return Number(process.env.JOBS) || os.availableParallelism();
}

buildCpuAddon();
if (process.env.PIT_SKIP_CUDA) {
  say('CUDA addon skipped (PIT_SKIP_CUDA is set)');
} else {
  const cuda = await buildCudaAddon({ root });
  if (cuda.built) say(`CUDA addon built: ${path.relative(root, cuda.path)}`);
  else if (cuda.skipped) say(`CUDA addon skipped: ${cuda.reason}`);
  else say(`CUDA addon not built: ${cuda.reason}${cuda.log ? ` (full log: ${path.relative(root, cuda.log)})` : ''}; using the CPU addon`);
}
