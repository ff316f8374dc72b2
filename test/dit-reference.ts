// A float64 DiT forward written from facebookresearch/DiT's models.py (SPEC §4), independent of
// the library's ops: the oracle dit.test.ts checks the model's forward and, by central finite
// differences, its gradients against.
import type { DitConfig } from '../lib/index.js';

/** Parameter (and buffer) values by DiT's names, in float64. */
export type Weights = Map<string, Float64Array>;

export interface ReferenceInputs {
  x: Float64Array;        // (B, C, H, W)
  t: readonly number[];   // (B)
  y: readonly number[];   // (B), already dropped
}

/** out (n, o) = x (n, i) · W (o, i)ᵀ + b */
function linear(x: Float64Array, n: number, W: Float64Array, b: Float64Array): Float64Array {
  const o = b.length, i = W.length / o;
  const out = new Float64Array(n * o);
  for (let r = 0; r < n; r++)
    for (let k = 0; k < o; k++) {
      let s = b[k]!;
      for (let j = 0; j < i; j++) s += x[r * i + j]! * W[k * i + j]!;
      out[r * o + k] = s;
    }
  return out;
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/** Rows of x (n, d) normalised without affine (eps 1e-6), then ·(1 + scale) + shift, scale/shift (d) per row group. */
function modulatedNorm(x: Float64Array, n: number, d: number, shift: Float64Array, scale: Float64Array): Float64Array {
  const out = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0, v = 0;
    for (let k = 0; k < d; k++) mean += x[r * d + k]!;
    mean /= d;
    for (let k = 0; k < d; k++) v += (x[r * d + k]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / d + 1e-6);
    for (let k = 0; k < d; k++) out[r * d + k] = (x[r * d + k]! - mean) * rstd * (1 + scale[k]!) + shift[k]!;
  }
  return out;
}

/** Multi-head attention of one sample's qkv (L, 3d) laid out (L, 3, H, D) → (L, d). */
function attention(qkv: Float64Array, L: number, d: number, H: number): Float64Array {
  const D = d / H, out = new Float64Array(L * d), p = new Float64Array(L);
  const at = (l: number, part: number, h: number) => l * 3 * d + (part * H + h) * D;
  for (let h = 0; h < H; h++)
    for (let i = 0; i < L; i++) {
      let max = -Infinity;
      for (let j = 0; j < L; j++) {
        let s = 0;
        for (let k = 0; k < D; k++) s += qkv[at(i, 0, h) + k]! * qkv[at(j, 1, h) + k]!;
        p[j] = s / Math.sqrt(D);
        max = Math.max(max, p[j]!);
      }
      let sum = 0;
      for (let j = 0; j < L; j++) sum += (p[j] = Math.exp(p[j]! - max));
      for (let j = 0; j < L; j++) for (let k = 0; k < D; k++) out[i * d + h * D + k] += (p[j]! / sum) * qkv[at(j, 2, h) + k]!;
    }
  return out;
}

/** DiT's forward in float64: (B, C_out, H, W). */
export function ditReference(c: DitConfig, w: Weights, { x, t, y }: ReferenceInputs): Float64Array {
  const [H, W] = typeof c.imageSize === 'number' ? [c.imageSize, c.imageSize] : c.imageSize;
  const { channels: C, patch: p, dim: d, heads } = c;
  const h = H / p, wt = W / p, N = h * wt, B = t.length, Cout = (c.learnSigma ? 2 : 1) * C;
  const get = (name: string) => {
    const v = w.get(name);
    if (!v) throw new Error(`reference: no weight ${name}`);
    return v;
  };
  const out = new Float64Array(B * Cout * H * W);
  for (let b = 0; b < B; b++) {
    // Timestep: [cos(t·f), sin(t·f)], f_j = exp(−ln(10000)·j/128) → Linear → SiLU → Linear.
    const freq = new Float64Array(256);
    for (let j = 0; j < 128; j++) {
      const arg = t[b]! * Math.exp((-Math.log(10000) * j) / 128);
      freq[j] = Math.cos(arg);
      freq[128 + j] = Math.sin(arg);
    }
    const temb = linear(linear(freq, 1, get('t_embedder.mlp.0.weight'), get('t_embedder.mlp.0.bias')).map(silu), 1, get('t_embedder.mlp.2.weight'), get('t_embedder.mlp.2.bias'));
    const table = get('y_embedder.embedding_table.weight');
    const cond = temb.map((v, k) => silu(v + table[y[b]! * d + k]!));  // SiLU(c), what every adaLN sees
    // Patch embedding: the stride-p convolution, weight (d, C, p, p).
    const Wx = get('x_embedder.proj.weight'), bx = get('x_embedder.proj.bias'), pos = w.get('pos_embed');
    let z = new Float64Array(N * d);
    for (let i = 0; i < h; i++) for (let j = 0; j < wt; j++) for (let o = 0; o < d; o++) {
      let s = bx[o]! + (pos ? pos[(i * wt + j) * d + o]! : 0);
      for (let ch = 0; ch < C; ch++) for (let r = 0; r < p; r++) for (let q = 0; q < p; q++)
        s += Wx[((o * C + ch) * p + r) * p + q]! * x[((b * C + ch) * H + i * p + r) * W + j * p + q]!;
      z[(i * wt + j) * d + o] = s;
    }
    for (let k = 0; k < c.depth; k++) {
      const at = (n: string) => get(`blocks.${k}.${n}`);
      const mod = linear(cond, 1, at('adaLN_modulation.1.weight'), at('adaLN_modulation.1.bias'));
      const chunk = (i: number) => mod.subarray(i * d, (i + 1) * d);
      const a = attention(linear(modulatedNorm(z, N, d, chunk(0), chunk(1)), N, at('attn.qkv.weight'), at('attn.qkv.bias')), N, d, heads);
      const attnOut = linear(a, N, at('attn.proj.weight'), at('attn.proj.bias'));
      z = z.map((v, i) => v + chunk(2)[i % d]! * attnOut[i]!);
      const hidden = linear(modulatedNorm(z, N, d, chunk(3), chunk(4)), N, at('mlp.fc1.weight'), at('mlp.fc1.bias')).map(geluTanh);
      const mlpOut = linear(hidden, N, at('mlp.fc2.weight'), at('mlp.fc2.bias'));
      z = z.map((v, i) => v + chunk(5)[i % d]! * mlpOut[i]!);
    }
    const mod = linear(cond, 1, get('final_layer.adaLN_modulation.1.weight'), get('final_layer.adaLN_modulation.1.bias'));
    const o = linear(modulatedNorm(z, N, d, mod.subarray(0, d), mod.subarray(d)), N, get('final_layer.linear.weight'), get('final_layer.linear.bias'));
    // DiT's unpatchify: each token's values in (row, col, channel) order.
    for (let i = 0; i < h; i++) for (let j = 0; j < wt; j++) for (let r = 0; r < p; r++) for (let q = 0; q < p; q++) for (let ch = 0; ch < Cout; ch++)
      out[((b * Cout + ch) * H + i * p + r) * W + j * p + q] = o[(i * wt + j) * p * p * Cout + (r * p + q) * Cout + ch]!;
  }
  return out;
}
