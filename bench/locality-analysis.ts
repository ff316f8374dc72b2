// The two locality commands that train nothing: `pit study locality show-permutation` (Fig. 4:
// held-out images before and after one pixel permutation) and `pit study locality attention`
// (appendix A, Fig. 6–8: mean attention distance and offset per layer and head of trained
// classifiers side by side, the centre pixel's attention maps of the first layers, and the
// learned position embeddings' similarity maps), over lib/analysis's unfused attention path.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  attentionDistances, attentionMaps, centreQueryFigure, centreQueryMaps, classifierFromCheckpoint, classifyTask, heatmapGrid, LOCALITY_DEFINITION,
  makeRecipe, normalize, permutePixels, pixelPermutation, positionSimilarity, positionSimilarityFigure, sortHeads, tensor, tidy, tokenGeometry,
  writePng, type ClassifierRecipe, type Device, type LayerLocality, type RgbaImage,
} from '../lib/index.js';
import { writeFileAtomic } from '../lib/train/safetensors.js';
import { localityChart } from './attention-chart.js';
import { renderPng, renderSvg } from './plot.js';

/**
 * Fig. 4: the first n held-out images of the recipe's data (row 1) and the same images under the
 * permutation (row 2), in grey (the mean over channels for colour images), each on [0, 1].
 */
export function permutationFigure(o: { recipe: Partial<ClassifierRecipe>; swaps: number; delta: number | null; seed: number; n: number }): ReturnType<typeof heatmapGrid> {
  // The data without a permutation of its own: this figure applies the one asked for.
  const recipe = makeRecipe(classifyTask.recipe, { ...o.recipe, permuteSwaps: 0 });
  const { test } = classifyTask.data(recipe);
  const { channels: C, height: H, width: W } = test;
  if (!Number.isInteger(o.n) || o.n < 1 || o.n > test.n) throw new RangeError(`show-permutation: 'n' must be an integer in [1, ${test.n}], got ${o.n}`);
  const original = test.images.slice(0, o.n * C * H * W);
  const permuted = original.slice();
  permutePixels(permuted, C, H, W, pixelPermutation(H, W, { swaps: o.swaps, delta: o.delta, seed: o.seed }));
  const grey = (images: Float32Array) => Float32Array.from({ length: o.n * H * W }, (_, k) => {
    const i = Math.floor(k / (H * W)), p = k % (H * W);
    let s = 0;
    for (let c = 0; c < C; c++) s += images[(i * C + c) * H * W + p]!;
    return s / C;
  });
  const data = new Float32Array(2 * o.n * H * W);
  data.set(grey(original));
  data.set(grey(permuted), o.n * H * W);
  return heatmapGrid({ data, rows: 2, cols: o.n, height: H, width: W }, { range: [0, 1], colormap: 'grey' });
}

export interface AttentionAnalysisOptions {
  /** Trained classifiers (`pit train` run or checkpoint folders), each with its legend name. */
  checkpoints: { name: string; path: string }[];
  /** Held-out images averaged over. */
  images: number;
  /** Layers of the centre-pixel figure (0-based blocks); default the first two. */
  mapLayers?: number[];
  device: Device;
  outDir: string;
  command: string;
}

export interface AttentionAnalysisReport {
  /** Per checkpoint: each layer's heads sorted by distance. */
  checkpoints: { name: string; path: string; layers: LayerLocality[] }[];
  table: string;
  files: string[];
}

/** The analyses of each checkpoint on its own held-out images; the charts put them side by side. */
export function runAttentionAnalysis(o: AttentionAnalysisOptions): AttentionAnalysisReport {
  if (!o.checkpoints.length) throw new RangeError("study locality attention: 'checkpoints' must name at least one pit train run");
  if (!Number.isInteger(o.images) || o.images < 1) throw new RangeError(`study locality attention: 'images' must be a positive integer, got ${o.images}`);
  mkdirSync(o.outDir, { recursive: true });
  const files: string[] = [];
  const write = (file: string, bytes: Uint8Array | string) => {
    const path = join(o.outDir, file);
    writeFileAtomic(path, typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes);
    files.push(path);
  };
  const figure = (file: string, image: RgbaImage) => {
    const path = join(o.outDir, file);
    writePng(path, image);
    files.push(path);
  };
  const results: AttentionAnalysisReport['checkpoints'] = [];
  const slug = (name: string) => name.replace(/[^A-Za-z0-9.-]+/g, '-');
  for (const cp of o.checkpoints) {
    const loaded = classifierFromCheckpoint(cp.path, { device: o.device, command: 'study locality attention' });
    try {
      const model = loaded.model;
      // The held-out split as the run saw it (its permutation, if it trained on one).
      const { test } = classifyTask.data(makeRecipe(classifyTask.recipe, loaded.recipe));
      const n = Math.min(o.images, test.n);
      const { channels: C, height: H, width: W } = test;
      const pixels = normalize(test.images.slice(0, n * C * H * W), test, loaded.normalization.mean, loaded.normalization.std);
      const depth = model.config.depth;
      const layers = Array.from({ length: depth }, (_, k) => k);
      const { maps } = tidy(() => attentionMaps(model, tensor(pixels, [n, C, H, W], { device: o.device }), { layers }));
      const geometry = tokenGeometry(model);
      const locality = maps.map((m) => sortHeads(attentionDistances(m, geometry)));
      results.push({ name: cp.name, path: cp.path, layers: locality });
      const mapLayers = (o.mapLayers ?? [0, 1]).filter((k) => k < depth);
      // A head's map at 96 pixels or more a side, so a 12×12 grid's pixels can be told apart.
      const centre = mapLayers.map((k) => centreQueryMaps(maps[k]!, geometry));
      figure(`centre-${slug(cp.name)}.png`, centreQueryFigure(centre, centre[0] ? { scale: Math.ceil(96 / Math.min(centre[0].shape[1], centre[0].shape[2])) } : {}));
      if (model.config.posEmbed !== 'none') figure(`position-similarity-${slug(cp.name)}.png`, positionSimilarityFigure(positionSimilarity(model)));
    } finally {
      loaded.model.dispose();
    }
  }
  for (const metric of ['distance', 'offset'] as const) {
    const chart = localityChart(results, metric);
    write(`${metric}.svg`, renderSvg(chart));
    write(`${metric}.png`, renderPng(chart));
  }
  const rows = results.flatMap((cp) => cp.layers.flatMap((l) => l.heads.map((h) => ({ checkpoint: cp.name, layer: l.layer + 1, head: h.head, distance: h.distance, offset: h.offset }))));
  write('heads.jsonl', rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  write('heads.csv', ['checkpoint,layer,head,distance,offset', ...rows.map((r) => `"${r.checkpoint}",${r.layer},${r.head},${r.distance},${r.offset}`)].join('\n') + '\n');
  const mean = (l: LayerLocality, k: 'distance' | 'offset') => l.heads.reduce((a, h) => a + h[k], 0) / l.heads.length;
  const depth = Math.max(...results.map((r) => r.layers.length));
  const table = [
    `| layer | ${results.map((r) => `${r.name} distance | ${r.name} offset`).join(' | ')} |`,
    `|---|${results.map(() => '---|---').join('|')}|`,
    ...Array.from({ length: depth }, (_, k) => `| ${k + 1} | ${results.map((r) => (r.layers[k] ? `${mean(r.layers[k]!, 'distance').toFixed(3)} | ${mean(r.layers[k]!, 'offset').toFixed(3)}` : ' | ')).join(' | ')} |`),
    '', `Means over heads of each layer, on ${o.images} held-out images per checkpoint. ${LOCALITY_DEFINITION}`,
  ].join('\n') + '\n';
  write('study.md', table);
  write('study.json', JSON.stringify({ command: o.command, images: o.images, checkpoints: results }, null, 2) + '\n');
  return { checkpoints: results, table, files };
}
