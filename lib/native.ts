// The only file that touches the native addon: picks it, loads it and types its surface.
//
// Choice: PIT_DEVICE=cpu|cuda (or selectBackend({ device })) -> the CUDA addon if it loads
// and sees a GPU -> the CPU addon. Both addons carry the full CPU op table; the CUDA addon
// adds the cuda device. `pit info` prints the choice and the reasons.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Package root: two levels above dist/lib/native.js (and above lib/native.ts). */
export const packageRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('pixel-transformer: cannot find package.json above ' + dirname(fileURLToPath(import.meta.url)));
    dir = up;
  }
  return dir;
})();

export type DType = 'f32' | 'bf16' | 'i32';
export type Device = 'cpu' | 'cuda';
export type GeluApproximate = 'none' | 'tanh';

/** A native tensor handle. Public code sees `Tensor` (lib/tensor.ts), never this. */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: Device;
  readonly disposed: boolean;
  dispose(): void;
  toArray(): Float32Array | Int32Array;
  reshape(shape: number[]): NativeTensor;
}

type T = NativeTensor;
type Opt = NativeTensor | null;

export interface MemoryInfo {
  /** poolCached: freed host blocks kept for reuse (at most poolLimit bytes), not in any tensor. */
  cpu: { tensors: number; bytes: number; peakBytes: number; poolCached: number; poolLimit: number };
  cuda?: { tensors: number; bytes: number; peakBytes: number; free: number; total: number; poolReserved: number };
}

export interface CudaBuildInfo {
  /** True when a GPU was found and the backend registered. */
  available: boolean;
  /** CUDA runtime the addon was built with, e.g. "13.0". */
  runtimeVersion: string;
  /** CUDA version the driver supports, or null without a driver. */
  driverVersion: string | null;
  architectures: string;
  devices: { name: string; capability: string; memoryBytes: number; multiprocessors: number }[];
  reason?: string;
}

export interface BuildInfo {
  backend: 'cpu' | 'cuda';
  /** The widest CPU instruction level the kernels use (PIT_CPU_ISA caps it); amx and avx512bf16 only for bf16 kernels. */
  cpuIsa: 'amx' | 'avx512bf16' | 'avx512' | 'avx2' | 'scalar';
  /** Why cpuIsa is below what the CPU could run (PIT_CPU_ISA, or the OS refusing AMX), or ''; under PIT_CPU_ISA=amx-emulated, that the emulator runs. */
  cpuIsaNote: string;
  /**
   * How bf16 GEMMs run on the CPU: packed bf16 panels on AMX tiles (tdpbf16ps) or with vdpbf16ps, or operands widened to f32
   * (exact; the reference path). 'amx-emulated': the AMX kernel on a scalar tile emulator, only under PIT_CPU_ISA=amx-emulated (tests).
   */
  cpuBf16Gemm: 'amx' | 'amx-emulated' | 'avx512bf16' | 'f32-widened';
  /** How the CPU runs bf16 attention: AVX512-BF16 kernels, or the f32 kernels on widened copies with the outputs rounded to bf16. */
  cpuBf16Attention: 'avx512bf16' | 'f32-widened';
  threads: number;
  compiler: string;
  debug: boolean;
  cuda?: CudaBuildInfo;
}

/**
 * The GPU GEMM engines (native/cuda/gemm_lt.cu): cuBLASLt, loaded at run time, our own bf16
 * tensor-core kernel (gemm_bf16.cu) and our own SIMT kernel. matmulInfo() loads cuBLASLt on
 * its first call (no GPU is needed for that).
 */
export interface MatmulInfo {
  /** PIT_MATMUL as the GEMMs read it: "auto" (cuBLASLt where it can, else our tensor-core kernel for bf16 operands, else SIMT), "simt", "mma", "cublaslt" (or an error). */
  mode: string;
  cublasLt: {
    loaded: boolean;
    /** The file mapped, symlinks resolved. */
    path?: string;
    /** "13.1.0": cublasLtGetVersion(). */
    version?: string;
    /** Where it was found: "PIT_CUBLASLT", "soname" or "python3" (its sys.path's nvidia/<package>/lib folders). */
    source?: 'PIT_CUBLASLT' | 'soname' | 'python3';
    /** "created", "not created yet" (the first GEMM makes it), or why cublasLtCreate failed. */
    handle?: string;
    /** Why no library was loaded. */
    reason?: string;
    /** Every candidate, in search order, and what became of it. */
    tried: string[];
    /** Whether the hand-written declarations were checked against a real cublasLt.h where this addon was built. */
    declarations: string;
  };
  /**
   * GEMMs (and separate bias-gradient sums) so far, per path: "cublasLt", "cublasLt/BIAS", "cublasLt/BGRADA",
   * "cublasLt/BGRADB", "mma", "mma/split-K", "simt", "simt/split-K", "colsum".
   */
  calls: Record<string, number>;
  /** Why GEMMs that could have gone to cuBLASLt (or, for bf16 operands, our tensor-core kernel) did not, with counts. */
  fallbacks: Record<string, number>;
}

/** One entry of the native op table (native/core/op_table.h), as opTable() lists it. */
export interface OpTableEntry {
  /** The op's name in every backend, e.g. "matmul_forward". */
  name: string;
  /** The addon function that dispatches to it, e.g. "matmulForward". */
  export: string;
  /** No CPU counterpart (PIT_GPU_OPS in native/core/op_table.h; none at present). */
  gpuOnly: boolean;
  /** Devices whose backend in this addon has a kernel for it. */
  devices: Device[];
}

/**
 * The scalars of one sampling step (native/core/diffusion.h's Step), the respaced schedule's
 * values at the step's index: lib/diffusion/sample.ts's stepScalars() makes them.
 */
export interface DiffusionStepScalars {
  /** √(1/ᾱ_t) and √(1/ᾱ_t − 1): x̂₀ = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε̂. */
  recipSqrtAlphaBar: number;
  recipM1SqrtAlphaBar: number;
  /** The posterior mean's coefficients of x̂₀ and x_t. */
  meanX0: number;
  meanXt: number;
  /** Learned σ: log σ² = f·logVarMax + (1 − f)·logVarMin, f = (v + 1)/2. Fixed σ: logVarMax. */
  logVarMax: number;
  logVarMin: number;
  /** DDIM (η = 0): √ᾱ_{t−1} and √(1 − ᾱ_{t−1}). */
  sqrtAlphaBarPrev: number;
  sqrtOneMinusAlphaBarPrev: number;
  /** Classifier-free guidance: ε_u + s·(ε_c − ε_u) on output channels [0, guidedChannels). */
  guidanceScale: number;
  guidedChannels: number;
  /** Clip x̂₀ to [−1, 1]. */
  clip: boolean;
  /** A DDIM step instead of an ancestral one. */
  ddim: boolean;
}

/** The addon's exports. Arguments: outputs, then inputs, then sizes and options. */
export interface NativeAddon {
  buildInfo(): BuildInfo;
  matmulInfo(): MatmulInfo;
  /** The CPU's multiply-add peak on all threads: FMA (f32) or vdpbf16ps (bf16) chains in registers, five runs over about `seconds` in all; the fastest run's FLOPs and wall time. Throws a TypeError where this CPU level has no such loop. */
  cpuPeak(kind: 'f32' | 'bf16', seconds: number): { flops: number; seconds: number };
  /** The op table's entries; test/native-surface.test.ts checks them against this interface. */
  opTable(): OpTableEntry[];
  memory(): MemoryInfo;
  /** peakBytes (most tensor bytes live at once) restarts from the bytes live now. */
  resetPeakMemory(): void;
  /** Allocations that would take the bytes live on `device` past `bytes` throw "out of <device> memory"; 0 removes the cap. */
  setMemoryCap(device: Device, bytes: number): void;
  /** Waits for all queued work on the device (no-op on CPU). */
  synchronize(device: Device): void;
  /** Device events around the GPU work queued between start and stop; stop returns ms. CUDA only. */
  deviceTimerStart(): void;
  deviceTimerStop(): number;
  empty(shape: number[], dtype: DType, device: Device): T;
  fromArray(data: Float32Array | Int32Array, shape: number[], dtype: DType, device: Device): T;
  copy(dst: T, src: T): void;
  randomFill(t: T, kind: 'normal' | 'uniform', seed: number, offset: number): void;

  matmulForward(out: T, a: T, b: T, bias: Opt, transA: boolean, transB: boolean, accumulate: boolean): void;
  matmulBackward(da: Opt, db: Opt, dbias: Opt, dout: T, a: T, b: T, transA: boolean, transB: boolean): void;
  attentionForward(out: T, lse: T, qkv: T): void;
  attentionBackward(dqkv: T, dout: T, qkv: T, out: T, lse: T): void;
  layernormForward(out: T, mean: T, rstd: T, x: T, weight: Opt, bias: Opt, eps: number): void;
  layernormBackward(dx: T, dweight: Opt, dbias: Opt, dout: T, x: T, weight: Opt, mean: T, rstd: T): void;
  geluForward(out: T, x: T, approximate: GeluApproximate): void;
  geluBackward(dx: T, dout: T, x: T, approximate: GeluApproximate): void;
  siluForward(out: T, x: T): void;
  siluBackward(dx: T, dout: T, x: T): void;
  modulateForward(out: T, x: T, shift: T, scale: T): void;
  modulateBackward(dx: Opt, dshift: Opt, dscale: Opt, dout: T, x: T, scale: T): void;
  gatedResidualForward(out: T, x: T, y: T, gate: T): void;
  gatedResidualBackward(dy: Opt, dgate: Opt, dout: T, y: T, gate: T): void;
  add(out: T, a: T, b: T): void;
  mul(out: T, a: T, b: T): void;
  scale(out: T, x: T, alpha: number): void;
  axpy(y: T, x: T, alpha: number): void;
  fill(out: T, value: number): void;
  softmaxCrossEntropy(losses: T, dlogits: Opt, logits: T, targets: T, smoothing: number, gradScale: number): void;
  mseForward(loss: T, pred: T, target: T, mask: Opt): void;
  mseBackward(dpred: T, dloss: T, pred: T, target: T, mask: Opt): void;
  perSampleAxpby(out: T, x: T, y: Opt, a: T, c: Opt): void;
  diffusionLossForward(loss: T, terms: Opt, vb: Opt, modelOut: T, x0: T, xt: T, noise: T, coefs: T): void;
  diffusionLossBackward(dout: T, dloss: T, modelOut: T, x0: T, xt: T, noise: T, coefs: T): void;
  diffusionStep(xNext: T, modelOut: T, xt: T, noise: Opt, step: DiffusionStepScalars): void;
  sumForward(out: T, x: T, axis: number, mean: boolean): void;
  sumBackward(dx: T, dout: T, axis: number, mean: boolean): void;
  gatherTokens(out: T, x: T, ids: T): void;
  scatterAddTokens(out: T, src: T, ids: T): void;
  concatTokens(out: T, a: T, b: T): void;
  sliceTokens(out: T, x: T, start: number): void;
  sliceTokensBackward(dx: T, dout: T, start: number): void;
  permute(out: T, x: T, perm: number[]): void;
  adamw(param: T, grad: T, m: T, v: T, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number): void;
  gradNorm(tensors: T[]): number;
}

export type BackendChoice = 'auto' | Device;

export interface Selection {
  addon: NativeAddon;
  /** 'cuda' when the CUDA addon is loaded and sees a GPU. */
  backend: Device;
  path: string;
  requested: BackendChoice;
  /** Why this addon was picked, and why the others were not. */
  reasons: string[];
  /** The CUDA addon whenever it loaded, picked or not (`pit info` asks it about cuBLASLt). */
  cudaAddon?: NativeAddon;
}

const cudaAddonPath = join(packageRoot, 'build-cuda', 'Release', 'pit_cuda.node');

function loadCpuAddon(): { addon: NativeAddon; path: string } {
  // node-gyp-build: a matching prebuild in prebuilds/, else build/Release.
  const load = require('node-gyp-build') as ((dir: string) => NativeAddon) & { resolve(dir: string): string };
  return { addon: load(packageRoot), path: load.resolve(packageRoot) };
}

/** The CUDA addon if it loads (`loaded`), and whether it sees a GPU (`usable`: the same addon, or null). */
function tryCudaAddon(reasons: string[]): { loaded: NativeAddon | null; usable: NativeAddon | null } {
  if (!existsSync(cudaAddonPath)) {
    reasons.push(`CUDA addon not built (${cudaAddonPath} missing; it is built when nvcc is present at install)`);
    return { loaded: null, usable: null };
  }
  let addon: NativeAddon;
  try {
    addon = require(cudaAddonPath) as NativeAddon;
  } catch (err) {
    reasons.push(`CUDA addon failed to load: ${(err as Error).message.split('\n')[0]}`);
    return { loaded: null, usable: null };
  }
  const cuda = addon.buildInfo().cuda;
  if (!cuda || !cuda.available) {
    reasons.push(`CUDA addon loaded but sees no usable GPU: ${cuda?.reason ?? 'no devices'}`);
    return { loaded: addon, usable: null };
  }
  reasons.push(`CUDA addon loaded; GPU 0: ${cuda.devices[0]!.name} (sm_${cuda.devices[0]!.capability.replace('.', '')})`);
  return { loaded: addon, usable: addon };
}

function parseChoice(value: string | undefined, source: string): BackendChoice {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'cpu' || value === 'cuda') return value;
  throw new TypeError(`${source} must be "auto", "cpu" or "cuda", got "${value}"`);
}

let selection: Selection | null = null;

/**
 * Loads the addon once. `device` (or PIT_DEVICE) forces a backend: "cuda" fails with the
 * reason when no GPU addon can be used; "cpu" skips the CUDA addon entirely.
 */
export function selectBackend(options: { device?: BackendChoice } = {}): Selection {
  const requested = options.device !== undefined ? parseChoice(options.device, "option 'device'")
    : parseChoice(process.env.PIT_DEVICE, 'PIT_DEVICE');
  if (selection) {
    if (requested !== 'auto' && requested !== selection.requested && requested !== selection.backend)
      throw new Error(`backend already selected (${selection.backend}); a process uses one addon, cannot switch to ${requested}`);
    return selection;
  }
  const reasons: string[] = [];
  let cudaAddon: NativeAddon | undefined;
  if (requested === 'cpu') {
    reasons.push('CPU requested (' + (options.device ? "option 'device'" : 'PIT_DEVICE=cpu') + ')');
  } else {
    const cuda = tryCudaAddon(reasons);
    if (cuda.usable) {
      selection = { addon: cuda.usable, backend: 'cuda', path: cudaAddonPath, requested, reasons, cudaAddon: cuda.usable };
      return selection;
    }
    if (requested === 'cuda') throw new Error('device "cuda" requested but unavailable: ' + reasons.join('; '));
    cudaAddon = cuda.loaded ?? undefined;
  }
  const cpu = loadCpuAddon();
  reasons.push(`CPU addon: ${cpu.path}`);
  selection = { addon: cpu.addon, backend: 'cpu', path: cpu.path, requested, reasons, ...(cudaAddon ? { cudaAddon } : {}) };
  return selection;
}

/** The loaded addon (loading it on first use). */
export function native(): NativeAddon {
  return (selection ?? selectBackend()).addon;
}
