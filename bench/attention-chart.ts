// The paper's Fig. 6–7 as charts: mean attention distance (or offset) per layer, one marker per
// head, for several checkpoints side by side (PiT beside ViT/p). x = layer 1..depth (block
// index + 1), each checkpoint nudged left or right of the integer so their heads do not
// overlap, a tick at every layer; y = the metric in units of the image side (lib/analysis
// LOCALITY_DEFINITION).
// renderSvg / renderPng (plot.ts) draw the PlotChart this returns.
import type { LayerLocality } from '../lib/analysis/index.js';
import type { PlotChart } from './plot.js';

export interface LocalityCheckpoint {
  /** Legend name, e.g. "PiT-T" or "ViT-T/2". */
  name: string;
  /** attentionDistances of each analysed layer (any order; any subset of the blocks). */
  layers: readonly LayerLocality[];
}

export type LocalityMetric = 'distance' | 'offset';

/** Horizontal spread of the checkpoints around each layer's integer x. */
const SPREAD = 0.3;

/** A scatter chart (linear axes, markers only) of `metric` per layer and head for each checkpoint. */
export function localityChart(checkpoints: readonly LocalityCheckpoint[], metric: LocalityMetric, options: { title?: string; width?: number; height?: number } = {}): PlotChart {
  if (metric !== 'distance' && metric !== 'offset') throw new TypeError(`localityChart: 'metric' must be "distance" or "offset", received ${JSON.stringify(metric)}`);
  if (!Array.isArray(checkpoints as unknown) || checkpoints.length === 0)
    throw new RangeError(`localityChart: 'checkpoints' must be a non-empty array of { name, layers }, received ${String(checkpoints)}`);
  const K = checkpoints.length;
  const series = checkpoints.map((cp, k) => {
    const shift = K > 1 ? (k / (K - 1) - 0.5) * SPREAD : 0;
    const points = cp.layers.flatMap((layer) => layer.heads.map((h) => ({ x: layer.layer + 1 + shift, y: h[metric] })));
    return { name: cp.name, points, lines: false };
  });
  const what = metric === 'distance' ? 'Mean attention distance' : 'Mean attention offset';
  const depth = Math.max(0, ...checkpoints.flatMap((cp) => cp.layers.map((l) => l.layer + 1)));
  return {
    title: options.title ?? `${what} per layer and head`,
    xLabel: 'layer',
    yLabel: `${metric} / image side (cls dropped, rows renormalised to 1)`,
    logX: false,
    logY: false,
    series,
    xTicks: Array.from({ length: depth }, (_, i) => ({ value: i + 1, label: String(i + 1) })),
    ...(options.width !== undefined ? { width: options.width } : {}),
    ...(options.height !== undefined ? { height: options.height } : {}),
  };
}
