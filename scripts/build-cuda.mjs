// Builds the full addon (CPU + CUDA, CMakeLists.txt) with cmake-js into
// build-cuda/Release/pit_cuda.node. Never throws: the install step calls it and goes on
// with the CPU addon whatever happens, saying why once.
//
//   import { buildCudaAddon } from './build-cuda.mjs'
//   await buildCudaAddon({ root, log })  // { built: true, path } | { built: false, skipped, reason, log? }
//
// As a CLI (`node scripts/build-cuda.mjs`) it prints one line and exits 0 when built or
// skipped (no nvcc), 1 when the build failed. The whole log is in build-cuda/build.log.
// CUDAARCHS (CMake's own variable) picks the GPU architectures, e.g. CUDAARCHS=native.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT_DIR = 'build-cuda';
const exe = process.platform === 'win32' ? '.exe' : '';

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

// CUDACXX, then nvcc on PATH, then the toolkit's usual home. Returns { nvcc } or { reason }.
export function findNvcc(env = process.env) {
  if (env.CUDACXX) {
    return isExecutable(env.CUDACXX) ? { nvcc: env.CUDACXX } : { reason: `CUDACXX=${env.CUDACXX} is not an executable file` };
  }
  const onPath = (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, `nvcc${exe}`));
  const nvcc = [...onPath, '/usr/local/cuda/bin/nvcc'].find(isExecutable);
  return nvcc ? { nvcc: path.resolve(nvcc) } : { reason: 'nvcc not found' };
}

// The first line of the log that says what went wrong, made to stand on its own.
export function firstErrorLine(logText) {
  const lines = logText.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (/^CMake Error\b/.test(line)) {
      // "CMake Error at CMakeLists.txt:24 (message):" — the message is on the next lines.
      const next = lines.slice(i + 1).find((l) => l.trim() !== '');
      return next ? `${line} ${next.trim()}` : line;
    }
    if (/\berror( #[\w-]+)?\s*:|undefined reference to/i.test(line)) return line;  // gcc, nvcc, ld
    const cmakeJsError = /^(?:ERR!|ERROR)\s+OMG\s+(.*)$/.exec(line)?.[1];
    if (cmakeJsError) {
      if (/Downloading distribution files/.test(logText))
        return `cmake-js could not download the Node headers (${cmakeJsError}); set npm_config_nodedir to a Node install that has include/node`;
      return `cmake-js: ${cmakeJsError}`;
    }
  }
  return lines.map((l) => l.trim()).filter(Boolean).pop() ?? 'no output';
}

// Catches a CUDACXX or nvcc that is not a working nvcc before CMake turns it into riddles.
function nvccVersion(nvcc) {
  return new Promise((resolve) => {
    execFile(nvcc, ['--version'], { timeout: 60_000 }, (error, stdout, stderr) => {
      const release = /release (\d+\.\d+)/.exec(stdout)?.[1];
      if (release) resolve({ release });
      else resolve({ error: (String(stderr).trim().split('\n')[0] || error?.message || 'no CUDA release in its output').split('\n')[0] });
    });
  });
}

function nodeHeadersEnv(env) {
  // cmake-js takes the Node headers from npm's `nodedir`, and downloads them when it is unset.
  // Point it at this Node's own headers when they are installed, so no network is needed.
  if (env.npm_config_nodedir) return {};
  const prefix = path.dirname(path.dirname(process.execPath));
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: prefix } : {};
}

// CMake keeps what it learnt about the compiler; after a failed configure or with another
// nvcc that knowledge is wrong (seen: empty implicit link directories, so no -lcudart_static),
// so those start over. Configuring from scratch takes a few seconds.
function forgetCMakeState(outDir) {
  for (const name of ['CMakeCache.txt', 'CMakeFiles']) fs.rmSync(path.join(outDir, name), { recursive: true, force: true });
}

function cachedCudaCompiler(outDir) {
  try {
    return /^CMAKE_CUDA_COMPILER:\w+=(.*)$/m.exec(fs.readFileSync(path.join(outDir, 'CMakeCache.txt'), 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

function run(command, args, { cwd, env, logStream }) {
  return new Promise((resolve) => {
    logStream.write(`$ ${[command, ...args].join(' ')}\n`);
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(logStream, { end: false });
    child.stderr.pipe(logStream, { end: false });
    child.on('error', (e) => resolve({ code: -1, error: e.message }));
    child.on('close', (code, signal) => resolve({ code: code ?? -1, error: signal ? `killed by ${signal}` : null }));
  });
}

export async function buildCudaAddon({ root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), log = () => {} } = {}) {
  let logStream;
  try {
    const found = findNvcc();
    if (!found.nvcc) return { built: false, skipped: found.reason === 'nvcc not found', reason: found.reason };
    const version = await nvccVersion(found.nvcc);
    if (version.error) return { built: false, skipped: false, reason: `${found.nvcc} --version failed: ${version.error}` };

    const cmakeJs = path.join(path.dirname(createRequire(path.join(root, 'package.json')).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
    const outDir = path.join(root, OUT_DIR);
    const logPath = path.join(outDir, 'build.log');
    fs.mkdirSync(outDir, { recursive: true });
    logStream = fs.createWriteStream(logPath);
    await new Promise((resolve, reject) => logStream.once('open', resolve).once('error', reject));

    const jobs = String(os.availableParallelism?.() ?? os.cpus().length);
    const env = { ...process.env, ...nodeHeadersEnv(process.env), CUDACXX: found.nvcc };
    const cmakeArgs = ['--out', outDir, '--directory', root, `--CDCMAKE_CUDA_COMPILER=${found.nvcc}`, `--CDNODE_EXECUTABLE=${process.execPath}`];
    // CMake reads CUDAARCHS only into an empty cache; passing it on keeps a changed value.
    if (process.env.CUDAARCHS) cmakeArgs.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.CUDAARCHS}`);
    log(`building the CUDA addon with ${found.nvcc} (CUDA ${version.release}, ${jobs} jobs; log: ${path.relative(root, logPath)})`);

    // Configure every time, so new source files and a changed CUDAARCHS are picked up (to go
    // back to the default architectures after using CUDAARCHS, delete build-cuda/).
    const started = Date.now();
    const cached = cachedCudaCompiler(outDir);
    if (cached !== undefined && cached !== found.nvcc) forgetCMakeState(outDir);
    let result = await run(process.execPath, [cmakeJs, 'configure', ...cmakeArgs], { cwd: root, env, logStream });
    if (result.code !== 0) forgetCMakeState(outDir);
    else result = await run(process.execPath, [cmakeJs, 'build', ...cmakeArgs, '--parallel', jobs], { cwd: root, env, logStream });
    await new Promise((resolve) => logStream.end(resolve));

    const addon = path.join(outDir, 'Release', 'pit_cuda.node');
    if (result.code === 0 && fs.existsSync(addon)) {
      log(`built ${path.relative(root, addon)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      return { built: true, path: addon };
    }
    const text = fs.readFileSync(logPath, 'utf8');
    const reason = result.error ?? firstErrorLine(text);
    return { built: false, skipped: /no CUDA toolkit found/.test(reason), reason: reason.slice(0, 400), log: logPath };
  } catch (e) {
    logStream?.end();
    return { built: false, skipped: false, reason: String(e?.message ?? e).split('\n')[0] };
  }
}

function isMain() {
  try {
    return fs.realpathSync(process.argv[1] ?? '') === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const result = await buildCudaAddon();
  if (result.built) console.log(`CUDA addon built: ${result.path}`);
  else if (result.skipped) console.log(`CUDA addon skipped: ${result.reason}`);
  else console.log(`CUDA addon failed: ${result.reason}${result.log ? ` (see ${path.relative(process.cwd(), result.log)})` : ''}`);
  process.exitCode = result.built || result.skipped ? 0 : 1;
}
