// Charts for `pit study scaling` and the locality study: the SVG is well-formed and escaped,
// ticks land where promised, the PNG rasterises the same layout, a scatter series draws
// markers only, and bad points or sizes are skipped or refused clearly.
import test from 'ava';
import { PNG } from 'pngjs';
import { localityChart } from '../bench/attention-chart.js';
import { renderPng, renderSvg, type PlotChart } from '../bench/plot.js';

const tokens = [64, 256, 1024, 4096, 16384, 50176];
const scaling = (over: Partial<PlotChart> = {}): PlotChart => ({
  title: 'Loss <&> "tokens" \'L\'', xLabel: 'tokens per image', yLabel: 'val loss',
  series: [
    { name: 'rising', points: tokens.map((x) => ({ x, y: x / 1000 })) },
    { name: 'falling & dashed', points: tokens.map((x) => ({ x, y: 10 * x ** -0.3 })), dashed: true },
    { name: 'nothing valid', points: [{ x: NaN, y: 1 }, { x: 1, y: -1 }] },
  ],
  ...over,
});

// Balanced tags via a stack; every '<' must start a tag, text holds no '>' and only entity '&'.
function checkWellFormed(svg: string): string[] {
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<>]*")*)\s*(\/?)>/g;
  const doc = svg.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [], roots: string[] = [];
  let end = 0;
  for (const m of doc.matchAll(tag)) {
    const between = doc.slice(end, m.index);
    if (/[<>]|&(?!(amp|lt|gt|quot|apos);)/.test(between)) throw new Error(`bad text ${JSON.stringify(between)}`);
    const [, close, name, , selfClose] = m;
    if (close) { if (stack.pop() !== name) throw new Error(`</${name}> closes nothing open`); }
    else {
      if (stack.length === 0) roots.push(name!);
      if (!selfClose) stack.push(name!);
    }
    end = m.index + m[0].length;
  }
  if (doc.slice(end).trim() || stack.length) throw new Error(`unclosed ${stack.join(', ')}`);
  return roots;
}

const attr = (el: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`).exec(el)?.[1];
const elements = (svg: string, kind: string, cls?: string) =>
  [...svg.matchAll(new RegExp(`<${kind}\\b[^>]*>`, 'g'))].map((m) => m[0]).filter((el) => cls === undefined || attr(el, 'class') === cls);
const texts = (svg: string, cls: string) =>
  [...svg.matchAll(new RegExp(`<text class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => m[1]);

test('SVG is a well-formed, escaped document with one polyline per drawn series and a marker per point', (t) => {
  const svg = renderSvg(scaling({ width: 640, height: 480 }));
  t.true(svg.startsWith('<?xml version="1.0"'));
  t.deepEqual(checkWellFormed(svg), ['svg']);
  const root = elements(svg, 'svg')[0]!;
  t.is(attr(root, 'width'), '640');
  t.is(attr(root, 'height'), '480');
  t.is(attr(root, 'version'), '1.1');
  t.true(svg.includes('<title>Loss &lt;&amp;&gt; &quot;tokens&quot; &apos;L&apos;</title>'));
  t.false(svg.includes('<&>'));
  t.deepEqual(texts(svg, 'legend'), ['rising', 'falling &amp; dashed', 'nothing valid']);
  const lines = elements(svg, 'polyline', 'series');
  t.deepEqual(lines.map((el) => attr(el, 'data-series')), ['rising', 'falling &amp; dashed']);
  t.is(attr(lines[0]!, 'stroke-dasharray'), undefined);
  t.truthy(attr(lines[1]!, 'stroke-dasharray'));
  t.is(attr(lines[0]!, 'points')!.split(' ').length, tokens.length);
  t.is(elements(svg, 'circle', 'marker').length, 2 * tokens.length);
  t.is(elements(svg, 'circle', 'legend-marker').length, 3);
  for (const m of svg.matchAll(/\s(?:x|y|x1|y1|x2|y2|cx|cy|r|stroke-width)="([^"]*)"/g)) t.regex(m[1]!, /^-?\d+(\.\d{1,2})?$/);
  for (const m of svg.matchAll(/points="([^"]*)"/g)) t.regex(m[1]!, /^(-?\d+(\.\d{1,2})?,-?\d+(\.\d{1,2})?( |$))+$/);
  t.deepEqual(texts(svg, 'title'), ['Loss &lt;&amp;&gt; &quot;tokens&quot; &apos;L&apos;']);
  t.deepEqual(texts(svg, 'label-x'), ['tokens per image']);
  t.deepEqual(texts(svg, 'label-y'), ['val loss']);
});

test('log ticks at decades, with 2×/5× or all multiples when the range is short; linear ticks are 1/2/5×10^k', (t) => {
  const ticks = (points: { x: number; y: number }[], over: Partial<PlotChart> = {}) => {
    const svg = renderSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points }], ...over });
    return { x: texts(svg, 'tick-x'), y: texts(svg, 'tick-y') };
  };
  t.deepEqual(ticks(tokens.map((x) => ({ x, y: 1 / x }))).x, ['100', '1k', '10k']);
  t.deepEqual(ticks([{ x: 1e-4, y: 0.9 }, { x: 1e-2, y: 3 }]), { x: ['1e-4', '1e-3', '0.01'], y: ['0.9', '1', '2', '3'] });
  t.deepEqual(ticks([{ x: 3e5, y: 0.04 }, { x: 4e6, y: 0.6 }]), { x: ['500k', '1M', '2M'], y: ['0.05', '0.1', '0.2', '0.5'] });
  t.deepEqual(ticks([{ x: 0, y: 2.5e9 }, { x: 10, y: 2.5e12 }], { logX: false }), { x: ['0', '2', '4', '6', '8', '10'], y: ['10G', '100G', '1T'] });
  t.deepEqual(ticks([{ x: 100, y: 1 }, { x: 101, y: 1 }]).x, ['100', '100.2', '100.4', '100.6', '100.8', '101'], 'labels gain digits until distinct');
});

test('PNG decodes at the requested size with each series drawn in its colour, rising to the right', (t) => {
  const chart = scaling();
  const buffer = renderPng(chart);
  t.true(buffer.length > 5 * 1024, `${buffer.length} bytes`);
  const img = PNG.sync.read(buffer);
  t.is(img.width, 800);
  t.is(img.height, 520);
  t.is(PNG.sync.read(renderPng(scaling({ width: 333, height: 211 }))).width, 333);

  const svg = renderSvg(chart);
  const colours = elements(svg, 'polyline', 'series').map((el) => attr(el, 'stroke')!);
  const plotRight = Math.min(...elements(svg, 'circle', 'legend-marker').map((el) => Number(attr(el, 'cx')))) - 20;  // left of the legend
  const pixelsOf = (hex: string) => {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const found: { x: number; y: number }[] = [];
    for (let i = 0; i < img.width * img.height; i++) {
      const d = img.data.subarray(i * 4, i * 4 + 4);
      if (d[0] === r && d[1] === g && d[2] === b && d[3] === 255) found.push({ x: i % img.width, y: Math.floor(i / img.width) });
    }
    return found;
  };
  const meanRow = (ps: { x: number; y: number }[]) => ps.reduce((sum, p) => sum + p.y, 0) / ps.length;
  const [rising, falling] = colours.map(pixelsOf) as [{ x: number; y: number }[], { x: number; y: number }[]];
  t.true(rising.length > 300 && falling.length > 300, `${rising.length}, ${falling.length} pixels`);
  for (const [ps, rises] of [[rising, true], [falling, false]] as const) {
    const inPlot = ps.filter((p) => p.x < plotRight), xs = inPlot.map((p) => p.x);
    const lo = Math.min(...xs), hi = Math.max(...xs), quarter = (hi - lo) / 4;
    const left = meanRow(inPlot.filter((p) => p.x < lo + quarter)), right = meanRow(inPlot.filter((p) => p.x > hi - quarter));
    t.is(right < left, rises, `left row ${left}, right row ${right}`);
  }
  const white = img.data.filter((_, i) => i % 4 === 0 && img.data[i] === 255 && img.data[i + 1] === 255 && img.data[i + 2] === 255).length;
  t.true(white > 0.8 * img.width * img.height, 'white background');
});

test('non-finite and, on log axes, non-positive points are skipped; a chart with none throws', (t) => {
  const points = [{ x: 1, y: 1 }, { x: NaN, y: 2 }, { x: 0, y: 3 }, { x: -1, y: 4 }, { x: 2, y: Infinity }, { x: 4, y: 2 }, { x: 8, y: 4 }];
  const markers = (over: Partial<PlotChart>) => elements(renderSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points }], ...over }), 'circle', 'marker').length;
  t.is(markers({}), 3);
  t.is(markers({ logX: false }), 5, 'zero and negative x are fine on a linear axis');
  t.is(markers({ logX: false, logY: false }), 5);
  const svg = renderSvg(scaling());
  t.false(/NaN|Infinity/.test(svg));
  t.true(texts(svg, 'legend').includes('nothing valid'));

  const empty: PlotChart = { title: 'Empty "run"', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [{ x: 0, y: 1 }, { x: 1, y: NaN }] }, { name: 'b', points: [] }] };
  const message = 'plot: no finite positive points to draw in chart "Empty \\"run\\""';
  t.throws(() => renderSvg(empty), { instanceOf: RangeError, message });
  t.throws(() => renderPng(empty), { instanceOf: RangeError, message });
  t.throws(() => renderSvg({ ...empty, series: [] }), { instanceOf: RangeError, message });
});

test('bad sizes and shapes throw errors naming the parameter, the expectation and the value', (t) => {
  t.throws(() => renderSvg(scaling({ width: 0 })), { instanceOf: RangeError, message: /chart\.width must be a positive integer .*≤ 8192, received 0$/ });
  t.throws(() => renderPng(scaling({ width: 8193 })), { instanceOf: RangeError, message: /chart\.width .*received 8193$/ });
  t.throws(() => renderSvg(scaling({ height: 1.5 })), { instanceOf: RangeError, message: /chart\.height .*received 1\.5$/ });
  t.throws(() => renderSvg(scaling({ width: '800' as unknown as number })), { instanceOf: TypeError, message: /chart\.width .*received "800"$/ });
  t.throws(() => renderSvg(scaling({ width: 60 })), { instanceOf: RangeError, message: /chart\.width 60 leaves no room/ });
  t.throws(() => renderSvg(scaling({ title: 3 as unknown as string })), { instanceOf: TypeError, message: /chart\.title must be a string, received 3/ });
  t.throws(() => renderSvg(scaling({ series: [{ name: 's', points: 'x' as unknown as [] }] })), { instanceOf: TypeError, message: /chart\.series\[0\]\.points must be an array/ });
});

test('a scatter series (lines: false) draws markers only, in the plot and the legend; lines must be a boolean', (t) => {
  const points = [{ x: 1, y: 0.2 }, { x: 2, y: 0.5 }, { x: 3, y: 0.3 }];
  const chart = (lines?: boolean): PlotChart => ({ title: 't', xLabel: 'layer', yLabel: 'd', logX: false, logY: false, series: [{ name: 'heads', points, ...(lines === undefined ? {} : { lines }) }] });
  const withLines = renderSvg(chart()), scatter = renderSvg(chart(false));
  t.is(elements(withLines, 'polyline', 'series').length, 1);
  t.is(elements(renderSvg(chart(true)), 'polyline', 'series').length, 1);
  t.is(elements(scatter, 'polyline').length, 0);
  t.is(elements(scatter, 'circle', 'marker').length, 3);
  t.is(elements(scatter, 'circle', 'legend-marker').length, 1);
  t.is(elements(scatter, 'line').length, elements(withLines, 'line').length - 1, 'no legend line');
  // PNG: the series colour shows only at the markers (three small discs, no segments between).
  const img = PNG.sync.read(renderPng(chart(false)));
  let blue = 0;
  for (let i = 0; i < img.width * img.height; i++) if (img.data[i * 4] === 0x00 && img.data[i * 4 + 1] === 0x72 && img.data[i * 4 + 2] === 0xb2) blue++;
  const disc = Math.PI * 3.5 ** 2;   // r = 1.5 + u at u = 2
  t.true(blue > 3 * disc && blue < 4 * 1.6 * disc, `${blue} pixels of the series colour: 3 markers and the legend's, nothing more`);
  t.throws(() => renderSvg({ ...chart(), series: [{ name: 's', points, lines: 'no' as unknown as boolean }] }), { instanceOf: TypeError, message: 'plot: chart.series[0].lines must be a boolean, received "no"' });
});

test('error bars: a bar and two caps per point with err > 0, in the series colour, inside the y axis', (t) => {
  const chart: PlotChart = {
    title: 't', xLabel: 'p', yLabel: 'top-1', logX: false, logY: false,
    series: [{ name: 's', points: [{ x: 1, y: 90, err: 0.5 }, { x: 2, y: 92, err: 4 }, { x: 3, y: 95 }, { x: 4, y: 96, err: 0 }] }],
  };
  const svg = renderSvg(chart);
  const blue = elements(svg, 'line').filter((el) => attr(el, 'stroke') === '#0072b2');
  t.is(blue.length, 2 * 3 + 1, 'two points with err > 0: a bar and two caps each; and the legend line');
  // The tallest bar, 92 ± 4 = [88, 96], sets the axis: its ends lie inside the plot area.
  const bar = blue.filter((el) => attr(el, 'x1') === attr(el, 'x2')).map((el) => [Number(attr(el, 'y1')), Number(attr(el, 'y2'))]);
  const tallest = bar.reduce((a, b) => (Math.abs(b[0]! - b[1]!) > Math.abs(a[0]! - a[1]!) ? b : a));
  const markers = elements(svg, 'circle', 'marker').map((el) => Number(attr(el, 'cy')));
  t.true(Math.max(...tallest) > Math.max(...markers), 'its lower end (88) is below every marker');
  t.true(Math.abs(Math.min(...tallest) - markers[3]!) < 0.02, 'its upper end is level with the marker at 96');
  t.true(Math.abs(Math.abs(tallest[0]! - tallest[1]!) / Math.abs(markers[0]! - markers[1]!) - 8 / 2) < 0.01, 'its length is 2·err in the y scale');
  const plotBottom = Math.max(...elements(svg, 'line').filter((el) => attr(el, 'stroke') === '#555555').map((el) => Number(attr(el, 'y1'))));
  t.true(Math.max(...tallest) < plotBottom, 'inside the axis');
});

test('localityChart: one scatter series per checkpoint, x = layer + 1 nudged apart, linear axes, one point per head', (t) => {
  const layer = (l: number, distances: number[]) => ({ layer: l, clsDropped: true, unit: 16, heads: distances.map((d, h) => ({ head: h, distance: d, offset: d / 2, clsMass: 0.1, queries: 10 })) });
  const pit = { name: 'PiT', layers: [layer(0, [0.1, 0.3]), layer(1, [0.2, 0.4])] };
  const vit = { name: 'ViT/2', layers: [layer(0, [0.15, 0.35]), layer(1, [0.25, 0.45])] };
  const chart = localityChart([pit, vit], 'distance');
  t.like(chart, { logX: false, logY: false, xLabel: 'layer' });
  t.deepEqual(chart.series.map((s) => [s.name, s.lines]), [['PiT', false], ['ViT/2', false]]);
  t.deepEqual(chart.series[0]!.points, [{ x: 0.85, y: 0.1 }, { x: 0.85, y: 0.3 }, { x: 1.85, y: 0.2 }, { x: 1.85, y: 0.4 }]);
  t.deepEqual(chart.series[1]!.points.map((p) => p.x), [1.15, 1.15, 2.15, 2.15]);
  t.deepEqual(chart.xTicks, [{ value: 1, label: '1' }, { value: 2, label: '2' }]);
  t.deepEqual(localityChart([pit], 'offset').series[0]!.points.map((p) => [p.x, p.y]), [[1, 0.05], [1, 0.15], [2, 0.1], [2, 0.2]]);
  const svg = renderSvg(chart);
  t.is(elements(svg, 'polyline').length, 0);
  t.is(elements(svg, 'circle', 'marker').length, 8);
  t.deepEqual(texts(svg, 'tick-x'), ['1', '2'], 'a tick per layer, none between');
  t.true(PNG.sync.read(renderPng(chart)).width > 0);
  t.throws(() => localityChart([pit], 'spread' as never), { instanceOf: TypeError, message: `localityChart: 'metric' must be "distance" or "offset", received "spread"` });
  t.throws(() => localityChart([], 'distance'), { instanceOf: RangeError, message: /'checkpoints' must be a non-empty array/ });
});
