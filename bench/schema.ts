// The one result schema every benchmark writes, ours and the PyTorch peer's
// (bench/pytorch/*.py write the same fields): one JSON object per line (JSON Lines).
//
// A result is identified by its key: kind, op or model, device, shape, and for kernels the
// dtype (a bf16 kernel is compared with a bf16 kernel). `impl` says whose code ran ("pit",
// "torch-sdpa-flash", "torch-eager", ...). Training steps pair across precisions, so that our
// mixed-precision step meets PyTorch's bf16 autocast; both dtypes are shown. `pit bench
// compare` pairs results with equal keys across files and reports the ratio of their values.

export type ResultKind = 'kernel' | 'train' | 'scaling';

/** What `value` measures; higher is better for all of them. */
export type ResultUnit = 'GFLOP/s' | 'GB/s' | 'images/s';

export interface BenchEnv {
  /** e.g. "Intel Xeon (Sapphire Rapids), 2 threads, avx512" or "NVIDIA H200, sm_90". */
  device: string;
  /** ISO date-time of the run. */
  date: string;
  /** "pixel-transformer 0.1.0 (commit abc1234)" or "torch 2.5.1". */
  version: string;
  /** Node or Python version, CUDA runtime / driver where present. */
  runtime: string;
}

export interface BenchResult {
  kind: ResultKind;
  /** kernel: the op name ("attention_forward", "layernorm_backward", "copy"); train/scaling: "train_step". */
  op: string;
  /** train/scaling: the model name ("pit-t", "vit-t/2", "pit-d4w64h4": lib/models/names.ts); kernels: absent. */
  model?: string;
  /** train/scaling: the task whose step ran, "classify", "mae" (MAE pre-training; `model` is its encoder), "dit" (DiT training) or "dit-sample" (one guided DDPM step; op "sample_step"). Absent (older lines, peers): "classify". */
  task?: string;
  /** task "mae": the decoder, "d<depth>w<width>h<heads>" ("d8w512h16": MAE's). */
  decoder?: string;
  impl: string;
  device: 'cpu' | 'cuda';
  /** Compute dtype: "f32" or "bf16" (kernels); training: "f32", "mixed" (ours: bf16 attention), "bf16" (PyTorch autocast). */
  dtype: string;
  /** Sizes that define the work: kernels {B, H, L, D} or {m, n, k} or {n}; train {batch, side, channels, tokens}, and for task "mae" visibleTokens (what the encoder sees). */
  shape: Record<string, number>;
  /** Median wall time of one call (kernels) or one training step (train/scaling), ms. */
  ms: number;
  /** Repeats behind the median. */
  repeats: number;
  /** The throughput: GFLOP/s for compute-bound kernels, GB/s for memory-bound ones, images/s for training. */
  value: number;
  unit: ResultUnit;
  /** How `value` was computed from shape and ms, e.g. "4*B*H*L^2*D / t" or "bytes moved / t". */
  formula: string;
  /** The FLOPs or bytes of one call under `formula` (absent for images/s). */
  work?: number;
  /** train/scaling: what the backward recomputed, "mlp" or "block" (--recompute); absent: nothing. */
  recompute?: string;
  /** Peak bytes of live tensors during the measured step (train/scaling), where known. */
  peakBytes?: number;
  /** Memory-bound kernels: value / the copy bandwidth measured in the same run. */
  fractionOfCopy?: number;
  /** CPU GEMMs: value / the multiply-add peak of their dtype measured in the same run (op "cpu_peak"; a bf16 GEMM widened to f32 against the f32 peak). */
  fractionOfPeak?: number;
  /** Our GPU GEMMs: the engine(s) that ran them, e.g. "cublasLt/BIAS", "mma/split-K" or "simt" (bench/kernels.ts). */
  path?: string;
  /** Our bf16 GPU attention: the kernel variant that ran, "v1" or "v2" (PIT_ATTENTION_VARIANT). */
  variant?: string;
  env: BenchEnv;
}

/** "B=1 H=12 L=4096 D=16": a shape as tables print it. */
export const shapeText = (shape: Record<string, number>): string => Object.entries(shape).map(([k, v]) => `${k}=${v}`).join(' ');

/** A training result's task: "classify" when the line does not say (older lines, peers). */
export const resultTask = (r: BenchResult): string => r.task ?? 'classify';

/**
 * The fields that identify a measurement across implementations and files (see the header).
 * An MAE step's key adds the task and decoder; a classification step's key is what it always
 * was, so new lines pair with old ones and with peers that do not write `task`.
 */
export function resultKey(r: BenchResult): string {
  const shape = Object.keys(r.shape).sort().map((k) => `${k}=${r.shape[k]}`).join(' ');
  const task = resultTask(r) === 'classify' ? [] : [`${resultTask(r)}${r.decoder ? ` ${r.decoder}` : ''}`];
  return [r.kind, r.model ?? r.op, ...task, ...(r.recompute ? [`recompute ${r.recompute}`] : []), r.device, shape, ...(r.kind === 'kernel' ? [r.dtype] : [])].join(' | ');
}

const requiredFields: [keyof BenchResult, string][] = [
  ['kind', 'string'], ['op', 'string'], ['impl', 'string'], ['device', 'string'], ['dtype', 'string'],
  ['shape', 'object'], ['ms', 'number'], ['repeats', 'number'], ['value', 'number'], ['unit', 'string'],
  ['formula', 'string'], ['env', 'object'],
];

/** Parses JSON Lines of results; a bad line is an error naming the file, line and field. */
export function parseResults(text: string, source: string): BenchResult[] {
  const out: BenchResult[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new SyntaxError(`${source}:${i + 1}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new TypeError(`${source}:${i + 1}: expected a JSON object, got ${Array.isArray(obj) ? 'an array' : typeof obj}`);
    const rec = obj as Record<string, unknown>;
    for (const [field, type] of requiredFields) {
      if (typeof rec[field] !== type || rec[field] === null)
        throw new TypeError(`${source}:${i + 1}: field "${field}" must be a ${type}, got ${rec[field] === undefined ? 'nothing' : JSON.stringify(rec[field])}`);
    }
    out.push(rec as unknown as BenchResult);
  });
  return out;
}
