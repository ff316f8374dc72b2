// The locality analyses of SPEC §5 (lib/analysis): attention probabilities from the unfused
// path against float64 softmax(q·kᵀ/√D) of each block's own qkv and the same pass's logits
// against model.forward; mean attention distance and offset against hand-made maps with
// known answers; the centre query's maps; position-embedding similarity; the heat-map PNG;
// and the errors bad inputs get. The CUDA test runs where the CUDA addon sees a GPU.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import {
  attentionDistances, attentionMaps, attentionWithLse, centreQueryFigure, centreQueryMaps, copyOf, heatmapGrid, memory, noGrad,
  positionSimilarity, positionSimilarityFigure, selectBackend, sortHeads, tensor, tidy, tokenGeometry, VisionTransformer, viridis,
  VIRIDIS_STOPS, writePng, type AttentionMap, type Device, type TokenGeometry, type VitConfig,
} from '../lib/index.js';
import { assertClose, randomNormal } from './helpers.js';

const gpu = selectBackend().backend === 'cuda';
const gpuTest = gpu ? test : test.skip;
if (!gpu) console.log(`GPU attention-analysis test skipped: ${selectBackend().reasons.join('; ')}`);

// A tiny ViT/2 (8×8 → 4×4 tokens, L = 17) and a tiny non-square PiT (5×6 pixels, L = 31).
const tinyVit: Partial<VitConfig> = { imageSize: 8, channels: 1, patch: 2, depth: 3, dim: 32, heads: 4, classes: 5, seed: 7 };
const tinyPit: Partial<VitConfig> = { imageSize: [5, 6], channels: 3, patch: 1, depth: 2, dim: 24, heads: 3, classes: 4, pool: 'cls', seed: 9 };

function imagesFor(model: VisionTransformer, B: number, device: Device = model.device) {
  const { channels: C, patch: p } = model.config;
  const [gh, gw] = model.grid;
  return tensor(Float32Array.from(randomNormal(B * C * gh * p * gw * p)), [B, C, gh * p, gw * p], { device });
}

/** Float64 softmax(q·kᵀ·D^-0.5) of packed qkv (B, L, 3, H, D) → (B, H, L, L), written plainly. */
function softmaxReference(qkv: ArrayLike<number>, B: number, L: number, H: number, D: number): Float64Array {
  const at = (b: number, l: number, part: number, h: number, d: number) => qkv[(((b * L + l) * 3 + part) * H + h) * D + d]!;
  const out = new Float64Array(B * H * L * L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L; i++) {
        const s = Array.from({ length: L }, (_, j) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          return dot / Math.sqrt(D);
        });
        const max = Math.max(...s), e = s.map((v) => Math.exp(v - max)), sum = e.reduce((a, v) => a + v, 0);
        e.forEach((v, j) => { out[((b * H + h) * L + i) * L + j] = v / sum; });
      }
  return out;
}

/** Each block's qkv, by running the block's pieces in eval mode: norm1 → qkv Linear, then the block. */
function qkvPerBlock(model: VisionTransformer, images: ReturnType<typeof imagesFor>): Float32Array[] {
  model.eval();
  try {
    return tidy(() => noGrad(() => {
      let x = model.blockInput(images);
      return model.blocks.blocks.map((block) => {
        const qkv = block.attn.qkv.forward(block.norm1.forward(x)).toArray() as Float32Array;
        x = block.forward(x);
        return qkv;
      });
    }));
  } finally {
    model.train();
  }
}

for (const [name, config] of [['ViT/2', tinyVit], ['PiT (non-square)', tinyPit]] as const) {
  test(`${name}: probabilities are float64 softmax(q·kᵀ/√D) of each block's qkv; the pass's logits are model.forward's`, (t) => {
    const model = new VisionTransformer(config);
    const B = 2, images = imagesFor(model, B);
    const { heads: H, dim, depth } = model.config;
    const D = dim / H, L = model.grid[0] * model.grid[1] + 1;
    const layers = [depth - 1, 0];   // any order: maps come back in the order asked
    const before = memory().cpu.tensors;
    t.true(model.training);
    const result = attentionMaps(model, images, { layers });
    t.true(model.training, 'train mode restored');
    t.is(memory().cpu.tensors, before, 'nothing left behind');

    const qkvs = qkvPerBlock(model, images);
    t.deepEqual(result.maps.map((m) => m.layer), layers);
    for (const map of result.maps) {
      t.deepEqual(map.shape, [B, H, L, L]);
      const qkv = qkvs[map.layer]!;
      // f32 storage of float64 values in [0, 1]: off by at most 2^-24 relative.
      assertClose(t, map.probs, softmaxReference(qkv, B, L, H, D), { atol: 1e-7, rtol: 1e-6, label: `layer ${map.layer} probabilities` });
      // The fused kernel on the same qkv agrees: Σ_j a_ij v_j is its output (f32 kernel: 1e-5).
      const out = tidy(() => attentionWithLse(tensor(qkv, [B, L, 3, H, D])).out.toArray());
      const av = new Float64Array(B * L * H * D);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < L; i++)
            for (let j = 0; j < L; j++) {
              const a = map.probs[((b * H + h) * L + i) * L + j]!;
              for (let d = 0; d < D; d++) av[((b * L + i) * H + h) * D + d] += a * qkv[(((b * L + j) * 3 + 2) * H + h) * D + d]!;
            }
      assertClose(t, out, av, { atol: 1e-5, rtol: 1e-5, label: `layer ${map.layer}: fused output vs Σ a·v` });
    }
    // The same ops in the same order on the same inputs: bitwise equal when measured (max
    // difference 0 on both models); 1e-6 leaves room for nothing but reordered f32 sums.
    model.eval();
    const logits = tidy(() => noGrad(() => model.forward(images).toArray()));
    model.train();
    assertClose(t, result.logits, logits, { atol: 1e-6, rtol: 1e-6, label: 'logits' });
    images.dispose();
    model.dispose();
  });
}

// ---- distance and offset --------------------------------------------------------------------

/** A map (B = 1) from rows: rowOf(h, i) gives query token i's (incl. cls) row of L values. */
function makeMap(heads: number, L: number, rowOf: (h: number, i: number) => ArrayLike<number>, layer = 0, B = 1): AttentionMap {
  const probs = new Float32Array(B * heads * L * L);
  for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < L; i++) probs.set(rowOf(h, i), ((b * heads + h) * L + i) * L);
  return { layer, shape: [B, heads, L, L], probs };
}

/** Pixel centre of grid token t, written out for the reference. */
const centre = (t: number, gw: number, p: number) => [(Math.floor(t / gw) + 0.5) * p, ((t % gw) + 0.5) * p] as const;

test('uniform attention over a g×g grid gives the analytic mean distance and offset; cls mass is dropped and rows renormalised', (t) => {
  // g = 2, patch 3 (6×6 pixels): from each corner the others are 3, 3 and 3√2 away (and itself 0),
  // so the mean distance is (6 + 3√2)/4 px = (2 + √2)/8 of the side; the centroid is the centre,
  // 3/√2 px from every corner: offset 1/(2√2).
  const uniform = (L: number, clsMass: number) => (_h: number, i: number) =>
    Array.from({ length: L }, (_, j) => (j === 0 ? clsMass : (1 - clsMass) / (L - 1)) + (i === 0 ? 0.01 * j : 0));  // the cls row is junk
  const geometry: TokenGeometry = { grid: [2, 2], patch: 3, cls: true };
  for (const clsMass of [0, 0.5]) {
    const layer = attentionDistances(makeMap(1, 5, uniform(5, clsMass)), geometry);
    t.is(layer.heads[0]!.queries, 4);
    t.true(Math.abs(layer.heads[0]!.distance - (2 + Math.SQRT2) / 8) < 1e-7, `distance ${layer.heads[0]!.distance}, cls mass ${clsMass}`);
    t.true(Math.abs(layer.heads[0]!.offset - 1 / (2 * Math.SQRT2)) < 1e-7, `offset ${layer.heads[0]!.offset}`);
    t.true(Math.abs(layer.heads[0]!.clsMass - clsMass) < 1e-7);
    t.true(layer.clsDropped);
    t.is(layer.unit, 6);
  }
  // g = 7, patch 2: the mean over all ordered pairs of patch centres, enumerated in float64.
  const g = 7, p = 2, N = g * g;
  let sum = 0, off = 0;
  for (let i = 0; i < N; i++) {
    const [yi, xi] = centre(i, g, p);
    for (let j = 0; j < N; j++) { const [yj, xj] = centre(j, g, p); sum += Math.hypot(yi - yj, xi - xj); }
    off += Math.hypot(yi - g, xi - g);   // the centroid of uniform attention is the image centre (g·p/2 = g)
  }
  const layer = attentionDistances(makeMap(1, N + 1, uniform(N + 1, 0.5)), { grid: [g, g], patch: p, cls: true });
  t.true(Math.abs(layer.heads[0]!.distance - sum / (N * N) / (g * p)) < 1e-6, `${layer.heads[0]!.distance} vs ${sum / (N * N) / (g * p)}`);
  t.true(Math.abs(layer.heads[0]!.offset - off / N / (g * p)) < 1e-6);
});

test('one-hot attention at a fixed displacement gives that distance and offset (non-square grid, √(H·W) units)', (t) => {
  // 3×5 grid, patch 2 (6×10 pixels, unit √60): queries that can look (1, 2) tokens away do so
  // one-hot; the others look at themselves (0). Mean = share of movers × 2·√5 px / √60.
  const gh = 3, gw = 5, p = 2, N = gh * gw, L = N + 1;
  const [dr, dc] = [1, 2];
  const target = (i: number) => {
    const r = Math.floor(i / gw), c = i % gw;
    return r + dr < gh && c + dc < gw ? (r + dr) * gw + c + dc : i;
  };
  const map = makeMap(2, L, (h, i) => {
    const row = new Float64Array(L);
    if (i === 0) row.fill(1 / L);
    else if (h === 0) row[1 + target(i - 1)] = 1;
    else row[i] = 1;   // head 1 attends to itself: distance and offset 0
    return row;
  }, 4);
  const movers = (gh - dr) * (gw - dc);
  const expected = (movers / N) * (p * Math.hypot(dr, dc)) / Math.sqrt(60);
  const layer = attentionDistances(map, { grid: [gh, gw], patch: p, imageSize: [6, 10], cls: true });
  t.is(layer.layer, 4);
  t.true(Math.abs(layer.heads[0]!.distance - expected) < 1e-7, `${layer.heads[0]!.distance} vs ${expected}`);
  t.true(Math.abs(layer.heads[0]!.offset - expected) < 1e-7, 'one-hot: offset = distance');
  t.is(layer.heads[1]!.distance, 0);
  t.is(layer.heads[1]!.offset, 0);
  t.deepEqual(sortHeads(layer).heads.map((h) => h.head), [1, 0], 'nearest first');
  t.deepEqual(layer.heads.map((h) => h.head), [0, 1], 'sortHeads copies');
  // Without a cls token the same grid rows give the same numbers.
  const noCls = makeMap(2, N, (h, i) => map.probs.subarray((h * L + i + 1) * L + 1, (h * L + i + 2) * L));
  const plain = attentionDistances(noCls, { grid: [gh, gw], patch: p, cls: false });
  t.deepEqual(plain.heads.map((h) => [h.distance, h.offset]), layer.heads.map((h) => [h.distance, h.offset]));
  t.false(plain.clsDropped);
});

test('random maps: distance and offset match a plain float64 reference; half the mass on cls changes nothing', (t) => {
  const gh = 4, gw = 3, p = 2, N = gh * gw, L = N + 1, heads = 3, B = 2;
  const raw = randomNormal(B * heads * N * N).map(Math.exp);
  const grid = (b: number, h: number, i: number, j: number) => raw[((b * heads + h) * N + i) * N + j]!;
  const rowSum = (b: number, h: number, i: number) => { let s = 0; for (let j = 0; j < N; j++) s += grid(b, h, i, j); return s; };
  const build = (clsShare: number) => {
    const probs = new Float32Array(B * heads * L * L);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < heads; h++) {
        probs.fill(1 / L, ((b * heads + h) * L) * L, ((b * heads + h) * L + 1) * L);   // the cls query's row
        for (let i = 0; i < N; i++) {
          const row = ((b * heads + h) * L + 1 + i) * L, s = rowSum(b, h, i);
          probs[row] = clsShare;
          for (let j = 0; j < N; j++) probs[row + 1 + j] = ((1 - clsShare) * grid(b, h, i, j)) / s;
        }
      }
    return { layer: 1, shape: [B, heads, L, L] as const, probs };
  };
  const geometry: TokenGeometry = { grid: [gh, gw], patch: p, cls: true };
  const plain = attentionDistances(build(0), geometry), half = attentionDistances(build(0.5), geometry);
  const unit = Math.sqrt(gh * p * gw * p);
  for (let h = 0; h < heads; h++) {
    let distance = 0, offset = 0;
    for (let b = 0; b < B; b++)
      for (let i = 0; i < N; i++) {
        const [yi, xi] = centre(i, gw, p), s = rowSum(b, h, i);
        let cy = 0, cx = 0;
        for (let j = 0; j < N; j++) {
          const a = grid(b, h, i, j) / s, [yj, xj] = centre(j, gw, p);
          distance += a * Math.hypot(yi - yj, xi - xj);
          cy += a * yj; cx += a * xj;
        }
        offset += Math.hypot(yi - cy, xi - cx);
      }
    for (const [label, got] of [['no cls mass', plain], ['half on cls', half]] as const) {
      // The maps are f32: 1e-6 of the unit covers their rounding.
      t.true(Math.abs(got.heads[h]!.distance - distance / (B * N) / unit) < 1e-6, `${label} head ${h} distance`);
      t.true(Math.abs(got.heads[h]!.offset - offset / (B * N) / unit) < 1e-6, `${label} head ${h} offset`);
    }
    t.true(Math.abs(half.heads[h]!.clsMass - 0.5) < 1e-7);
    t.is(half.heads[h]!.queries, B * N);
  }
});

test('a trained-model geometry: tokenGeometry reads grid, patch and image size; a real map gives distances within the image', (t) => {
  const model = new VisionTransformer(tinyVit);
  t.deepEqual(tokenGeometry(model), { grid: [4, 4], patch: 2, imageSize: [8, 8], cls: true });
  const images = imagesFor(model, 2);
  const { maps } = attentionMaps(model, images, { layers: [0, 1, 2] });
  for (const map of maps) {
    const layer = attentionDistances(map, tokenGeometry(model));
    t.is(layer.heads.length, 4);
    for (const h of layer.heads) {
      t.true(h.distance > 0 && h.distance < Math.SQRT2, `distance ${h.distance}`);
      t.true(h.offset >= 0 && h.offset <= h.distance + 1e-12, 'the offset never exceeds the distance (triangle inequality)');
      t.true(h.clsMass > 0 && h.clsMass < 1);
    }
  }
  images.dispose();
  model.dispose();
});

test('centreQueryMaps: the centre token (lower/right middle for even sides), cls dropped, renormalised, batch mean', (t) => {
  const gh = 4, gw = 5, N = gh * gw, L = N + 1, heads = 2, B = 2;
  const probs = new Float32Array(B * heads * L * L);
  const token = 1 + 2 * gw + 2;   // row ⌊4/2⌋ = 2, col ⌊5/2⌋ = 2
  // Query `token` of image b, head h: 0.5 on cls, the rest on grid token (b + h) and (b + h + 10) in 1:3.
  for (let b = 0; b < B; b++)
    for (let h = 0; h < heads; h++) {
      const row = ((b * heads + h) * L + token) * L;
      probs[row] = 0.5;
      probs[row + 1 + b + h] = 0.125;
      probs[row + 1 + b + h + 10] = 0.375;
    }
  const map: AttentionMap = { layer: 3, shape: [B, heads, L, L], probs };
  const maps = centreQueryMaps(map, { grid: [gh, gw], patch: 1, cls: true });
  t.like(maps, { layer: 3, row: 2, col: 2, token });
  t.deepEqual(maps.shape, [heads, gh, gw]);
  for (let h = 0; h < heads; h++) {
    const expected = new Float64Array(N);
    for (let b = 0; b < B; b++) { expected[b + h] += 0.25 / B; expected[b + h + 10] += 0.75 / B; }
    assertClose(t, maps.data.subarray(h * N, (h + 1) * N), expected, { atol: 1e-7, rtol: 0, label: `head ${h}` });
  }
  const one = centreQueryMaps(map, { grid: [gh, gw], patch: 1, cls: true }, { image: 1 });
  t.is(one.data[1], 0.25, 'image 1, head 0: token 1 holds 1/4 after renormalising');
  const odd = centreQueryMaps(makeMap(1, 10, () => new Float64Array(10).fill(0.1)), { grid: [3, 3], patch: 1, cls: true });
  t.like(odd, { row: 1, col: 1, token: 5 });
  t.throws(() => centreQueryMaps(map, { grid: [gh, gw], patch: 1, cls: true }, { query: [4, 0] }), { instanceOf: RangeError, message: /'query' must be \[row, col\] inside the 4×5 grid, received \[4, 0\]/ });
  t.throws(() => centreQueryMaps(map, { grid: [gh, gw], patch: 1, cls: true }, { image: 2 }), { instanceOf: RangeError, message: /'image' must be an integer in \[0, 2\).*received 2/ });
});

test('positionSimilarity: cosines of a hand-set table, diagonal 1, symmetric, cls row excluded; none refused; sincos shown', (t) => {
  const model = new VisionTransformer({ imageSize: 2, channels: 1, patch: 1, depth: 1, dim: 4, heads: 1, classes: 2 });
  // cls row, then positions (0,0), (0,1), (1,0), (1,1).
  const table = [9, 9, 9, 9, 1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, -3, 0, 0, 0];
  model.loadStateDict({ ...Object.fromEntries(model.stateDict()), pos_embed: tensor(Float32Array.from(table), [1, 5, 4]) });
  const sim = positionSimilarity(model);
  t.is(sim.kind, 'learned');
  t.deepEqual(sim.shape, [4, 2, 2]);
  const r = Math.SQRT1_2;
  assertClose(t, sim.data, [1, 0, r, -1, 0, 1, r, 0, r, r, 1, -r, -1, 0, -r, 1], { atol: 1e-7, rtol: 0 });
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) t.is(sim.data[i * 4 + j], sim.data[j * 4 + i]);
  model.dispose();

  const none = new VisionTransformer({ ...tinyVit, posEmbed: 'none' });
  t.throws(() => positionSimilarity(none), { instanceOf: RangeError, message: /no position table \(posEmbed "none"\)/ });
  none.dispose();
  const sincos = new VisionTransformer({ ...tinyVit, posEmbed: 'sincos' });
  const fixed = positionSimilarity(sincos);
  t.is(fixed.kind, 'sincos');
  for (let i = 0; i < 16; i++) t.true(Math.abs(fixed.data[i * 16 + i]! - 1) < 1e-6);
  sincos.dispose();
});

test('heat-map grid: panel layout, white gaps, viridis at known values, per-panel and fixed ranges; the PNG decodes to the same pixels', (t) => {
  t.deepEqual(viridis(0), [0x44, 0x01, 0x54]);
  t.deepEqual(viridis(1), [0xfd, 0xe7, 0x25]);
  t.deepEqual(viridis(1 / 9), [0x48, 0x28, 0x78]);
  t.deepEqual(viridis(2), viridis(1), 'clamped');
  t.deepEqual(viridis(NaN), [128, 128, 128]);
  t.is(VIRIDIS_STOPS.length, 10);

  // 2 rows × 3 cols of 2×4 panels, scale 3, gap 2: (3·12 + 2·2) × (2·6 + 2) = 40 × 14.
  const rows = 2, cols = 3, h = 2, w = 4;
  const data = new Float32Array(rows * cols * h * w).map((_, i) => i % (h * w));   // each panel 0..7
  data[(1 * cols + 2) * h * w + 5] = NaN;
  const image = heatmapGrid({ data, rows, cols, height: h, width: w }, { scale: 3 });
  t.like(image, { width: 40, height: 14 });
  t.like(image.layout, { panelWidth: 12, panelHeight: 6, gap: 2 });
  t.deepEqual(image.layout.panel(1, 2), { x: 28, y: 8 });
  const dir = mkdtempSync(join(tmpdir(), 'pit-heatmap-'));
  try {
    writePng(join(dir, 'grid.png'), image);
    const png = PNG.sync.read(readFileSync(join(dir, 'grid.png')));
    t.is(png.width, 40);
    const px = (x: number, y: number) => [...png.data.subarray((y * 40 + x) * 4, (y * 40 + x) * 4 + 4)];
    t.deepEqual(px(0, 0), [0x44, 0x01, 0x54, 255], 'each panel min is viridis(0)');
    t.deepEqual(px(11, 5), [0xfd, 0xe7, 0x25, 255], 'each panel max (value 7, bottom right) is viridis(1)');
    t.deepEqual(px(12, 0), [255, 255, 255, 255], 'gap column');
    t.deepEqual(px(0, 6), [255, 255, 255, 255], 'gap row');
    t.deepEqual(px(28 + 1 * 3 + 1, 8 + 1 * 3 + 2), [128, 128, 128, 255], 'NaN: grey, nearest-neighbour block');
    const v = viridis(3 / 7);
    t.deepEqual(px(14 + 3 * 3, 0), [...v, 255], 'panel (0, 1), value 3 of 0..7');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const fixed = heatmapGrid({ data: [0, 0.5, 1, 2], rows: 1, cols: 1, height: 2, width: 2 }, { scale: 1, range: [0, 2] });
  t.deepEqual([...fixed.data.subarray(0, 3)], viridis(0));
  t.deepEqual([...fixed.data.subarray(4, 7)], viridis(0.25));
  t.deepEqual([...fixed.data.subarray(12, 15)], viridis(1));
  t.is(heatmapGrid({ data: [5, 5, 5, 5], rows: 1, cols: 1, height: 2, width: 2 }).layout.scale, 16, 'default: panels ≥ 32 px');
  t.throws(() => heatmapGrid({ data: [1, 2, 3], rows: 1, cols: 1, height: 2, width: 2 }), { instanceOf: RangeError, message: /'data' must hold rows·cols·height·width = 1·1·2·2 = 4 values, received 3/ });
  t.throws(() => heatmapGrid({ data: [1, 2, 3, 4], rows: 1, cols: 1, height: 2, width: 2 }, { range: [1, 1] }), { instanceOf: RangeError, message: /'range' must be "panel" or \[lo, hi\] with lo < hi, received \[1,1\]/ });
});

test('figures: centre-query rows = layers, cols = heads; the similarity grid is gh × gw panels on [-1, 1]', (t) => {
  const model = new VisionTransformer(tinyVit);
  const images = imagesFor(model, 1);
  const { maps } = attentionMaps(model, images, { layers: [0, 1] });
  const geometry = tokenGeometry(model);
  const figure = centreQueryFigure(maps.map((m) => centreQueryMaps(m, geometry)), { scale: 2, gap: 1 });
  t.like(figure.layout, { rows: 2, cols: 4, panelWidth: 8, panelHeight: 8 });
  t.like(figure, { width: 4 * 8 + 3, height: 2 * 8 + 1 });
  const sim = positionSimilarityFigure(positionSimilarity(model), { scale: 1 });
  t.like(sim.layout, { rows: 4, cols: 4, panelWidth: 4, panelHeight: 4 });
  // Panel (0, 0), pixel (0, 0): position 0 against itself, cosine 1: the top of the scale.
  t.deepEqual([...sim.data.subarray(0, 3)], viridis(1));
  t.throws(() => centreQueryFigure([]), { instanceOf: RangeError, message: /'layers' must be a non-empty array/ });
  images.dispose();
  model.dispose();
});

test('bad inputs: layers, images and size limits are refused with the parameter, the expectation and the value', (t) => {
  const model = new VisionTransformer(tinyVit);
  const images = imagesFor(model, 2);
  t.throws(() => attentionMaps(model, images, { layers: [3] }), { instanceOf: RangeError, message: "attentionMaps: 'layers[0]' must be an integer block index in [0, 3) (0-based, as blocks.N; the model has depth 3), received 3" });
  t.throws(() => attentionMaps(model, images, { layers: [0, -1] }), { instanceOf: RangeError, message: /'layers\[1\]' .*received -1$/ });
  t.throws(() => attentionMaps(model, images, { layers: [1.5] }), { instanceOf: RangeError, message: /'layers\[0\]' .*received 1\.5$/ });
  t.throws(() => attentionMaps(model, images, { layers: [1, 1] }), { instanceOf: RangeError, message: /'layers' must be distinct, received \[1, 1\]/ });
  t.throws(() => attentionMaps(model, images, { layers: [] }), { instanceOf: TypeError, message: /'layers' must be a non-empty array of block indices in \[0, 3\), received \[\]/ });
  const wrong = tensor(new Float32Array(2 * 8 * 7), [2, 1, 8, 7]);
  t.throws(() => attentionMaps(model, wrong, { layers: [0] }), { instanceOf: RangeError, message: "attentionMaps: 'images' must be (B, 1, 8, 8) f32 with B ≥ 1, received [2, 1, 8, 7] f32" });
  t.throws(() => attentionMaps(model, new Float32Array(128) as never, { layers: [0] }), { instanceOf: TypeError, message: /'images' must be a tensor \(B, 1, 8, 8\)/ });
  t.throws(() => attentionMaps({} as never, images, { layers: [0] }), { instanceOf: TypeError, message: /'model' must be a VisionTransformer/ });
  t.throws(() => attentionMaps(model, images, { layers: [0], precision: 'bf16' as never }), { instanceOf: TypeError, message: /precision must be "f32" or "mixed", got "bf16"/ });
  // L = 17, 4 heads: 2·4·17²·4 = 9,248 bytes a layer.
  t.throws(() => attentionMaps(model, images, { layers: [0], maxBytesPerLayer: 9000 }), {
    instanceOf: RangeError,
    message: "attentionMaps: one layer's probabilities (B·heads·L²·4 bytes: 2·4·17²·4 = 9,248 bytes) exceed 'maxBytesPerLayer' 9,000 bytes; use fewer images (at most 1)",
  });
  t.notThrows(() => attentionMaps(model, images, { layers: [0], maxBytesPerLayer: 9248 }));
  t.throws(() => attentionMaps(model, images, { layers: [0], maxBytesPerLayer: 4000 }), { instanceOf: RangeError, message: /exceed 'maxBytesPerLayer' 4,000 bytes; even one image does not fit: raise the limit$/ });
  // The default limit, 1 GiB: 22 images of a 32×32 PiT with 12 heads need 22·12·1025²·4 ≈ 1.11e9 bytes.
  const pit = new VisionTransformer({ imageSize: 32, channels: 1, patch: 1, depth: 1, dim: 12, heads: 12, classes: 2 });
  const many = tensor(new Float32Array(22 * 1024), [22, 1, 32, 32]);
  t.throws(() => attentionMaps(pit, many, { layers: [0] }), { instanceOf: RangeError, message: /22·12·1025²·4 = 1,109,460,000 bytes\) exceed 'maxBytesPerLayer' 1,073,741,824 bytes; use fewer images \(at most 21\)/ });
  // Distances: a map that does not fit the geometry.
  const map = makeMap(1, 17, () => new Float64Array(17).fill(1 / 17));
  t.throws(() => attentionDistances(map, { grid: [4, 5], patch: 2, cls: true }), { instanceOf: RangeError, message: "attentionDistances: 'map.shape' must be [B, heads, 21, 21] for a 4×5 grid plus cls, received [1, 1, 17, 17]" });
  t.throws(() => attentionDistances(map, { grid: [4, 4], patch: 2, imageSize: [8, 9], cls: true }), { instanceOf: RangeError, message: /'imageSize' must be grid·patch = \[8, 8\] \(grid \[4, 4\], patch 2\), received \[8, 9\]/ });
  t.throws(() => attentionDistances(map, { grid: [4, 0], patch: 2, cls: true }), { instanceOf: RangeError, message: /'grid' must be \[gh, gw\] of positive integers, received \[4, 0\]/ });
  [images, wrong, many].forEach((x) => x.dispose());
  model.dispose();
  pit.dispose();
});

gpuTest('CUDA: the same probabilities as the CPU model and logits equal to the CUDA forward (f32 and mixed); images on the wrong device refused', (t) => {
  // Head dim 16 (2 heads of 32), so 'mixed' runs the bf16 attention kernels.
  const config = { ...tinyVit, heads: 2 };
  const cpu = new VisionTransformer(config);
  const cuda = new VisionTransformer(config, { device: 'cuda' });
  const images = imagesFor(cpu, 3);
  const onGpu = copyOf(images, { device: 'cuda' });
  const layers = [0, 2];
  const ref = attentionMaps(cpu, images, { layers });
  for (const precision of ['f32', 'mixed'] as const) {
    const got = attentionMaps(cuda, onGpu, { layers, precision });
    // The qkv differ only by the GEMMs' summation order (the probabilities always come from
    // the f32 qkv, even under 'mixed'): 1e-5 is f32 rounding, a wrong path is off by O(0.1).
    got.maps.forEach((m, i) => assertClose(t, m.probs, ref.maps[i]!.probs, { atol: 1e-5, rtol: 1e-4, label: `${precision} layer ${m.layer}` }));
    cuda.eval();
    const logits = tidy(() => noGrad(() => cuda.forward(onGpu, { precision }).toArray()));
    cuda.train();
    // The same kernels on the same inputs in the same order: equal but for any nondeterminism
    // in the GPU's reductions, far below 1e-5.
    assertClose(t, got.logits, logits, { atol: 1e-5, rtol: 1e-5, label: `${precision} logits` });
  }
  t.throws(() => attentionMaps(cuda, images, { layers }), { instanceOf: TypeError, message: "attentionMaps: 'images' must be on cuda (the model's device), received a tensor on cpu" });
  t.throws(() => attentionMaps(cpu, onGpu, { layers }), { instanceOf: TypeError, message: "attentionMaps: 'images' must be on cpu (the model's device), received a tensor on cuda" });
  [images, onGpu].forEach((x) => x.dispose());
  cpu.dispose();
  cuda.dispose();
});
