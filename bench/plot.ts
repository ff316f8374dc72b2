// Line charts for `pit study scaling` and the benchmarks: log-log by default (tokens vs loss,
// size vs GFLOP/s), linear on request. One layout pass turns a PlotChart into a list of shapes
// in pixel coordinates (grid, axes, tick labels, title, axis labels, a legend on the right,
// one polyline, none for a scatter series (lines: false), and one marker per valid point per
// series); renderSvg writes that list as SVG 1.1 and renderPng rasterises the same list itself
// (Bresenham lines, filled discs, an embedded 5×7 bitmap font), so both files show the same
// chart. The y-axis label is written horizontally above the axis so neither renderer needs
// rotated text.
import { PNG } from 'pngjs';

export interface PlotSeries {
  name: string; points: { x: number; y: number; err?: number }[]; dashed?: boolean;  // err: an error bar y ± err (e.g. a std over seeds)
  lines?: boolean;                         // default true; false: markers only (a scatter), in the legend too
}
export interface PlotChart {
  title: string; xLabel: string; yLabel: string;
  logX?: boolean; logY?: boolean;          // default true for both (log-log)
  series: PlotSeries[];
  width?: number; height?: number;         // pixels, default 800 x 520
  xTicks?: { value: number; label: string }[];  // x ticks in place of the automatic ones (categories, 'inf')
}

// Okabe–Ito, reordered so the first colours are the most distinct on white (yellow late).
const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#f0e442', '#000000'];
const INK = '#222222', AXIS = '#555555', GRID = '#e4e4e4', WHITE = '#ffffff';
const MAX_SIDE = 8192;

type Anchor = 'start' | 'middle' | 'end';
type Shape =
  | { kind: 'line'; x1: number; y1: number; x2: number; y2: number; color: string; width: number; dash?: [number, number] }
  | { kind: 'polyline'; points: [number, number][]; color: string; width: number; dash?: [number, number]; name: string }
  | { kind: 'circle'; cx: number; cy: number; r: number; color: string; cls: 'marker' | 'legend-marker' }
  | { kind: 'text'; x: number; y: number; text: string; anchor: Anchor; color: string; cls: string };
// `scale` is the font's pixel size: a glyph cell is 6·scale wide, caps 7·scale tall; y of text is its baseline.
interface Layout { width: number; height: number; scale: number; title: string; shapes: Shape[] }

// ---- validation -------------------------------------------------------------------------------
const received = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? (Array.isArray(v) ? 'an array' : 'an object') : String(v));

function sidePixels(name: 'width' | 'height', v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const expected = `plot: chart.${name} must be a positive integer number of pixels ≤ ${MAX_SIDE}, received ${received(v)}`;
  if (typeof v !== 'number') throw new TypeError(expected);
  if (!Number.isInteger(v) || v <= 0 || v > MAX_SIDE) throw new RangeError(expected);
  return v;
}

function checkChart(chart: PlotChart): void {
  if (typeof chart !== 'object' || chart === null) throw new TypeError(`plot: chart must be an object, received ${received(chart)}`);
  for (const key of ['title', 'xLabel', 'yLabel'] as const) {
    if (typeof chart[key] !== 'string') throw new TypeError(`plot: chart.${key} must be a string, received ${received(chart[key])}`);
  }
  if (!Array.isArray(chart.series)) throw new TypeError(`plot: chart.series must be an array, received ${received(chart.series)}`);
  chart.series.forEach((s, i) => {
    if (typeof s?.name !== 'string') throw new TypeError(`plot: chart.series[${i}].name must be a string, received ${received(s?.name)}`);
    if (s.lines !== undefined && typeof s.lines !== 'boolean') throw new TypeError(`plot: chart.series[${i}].lines must be a boolean, received ${received(s.lines)}`);
    if (!Array.isArray(s.points)) throw new TypeError(`plot: chart.series[${i}].points must be an array, received ${received(s.points)}`);
  });
  if (chart.xTicks !== undefined && (!Array.isArray(chart.xTicks) || chart.xTicks.some((t) => !Number.isFinite(t?.value) || typeof t?.label !== 'string')))
    throw new TypeError(`plot: chart.xTicks must be an array of { value: finite number, label: string }, received ${received(chart.xTicks)}`);
}

// ---- axes -------------------------------------------------------------------------------------
interface Axis { log: boolean; a: number; b: number; ticks: number[]; labels: string[] }  // [a, b]: domain in log10 or linear units

const clean = (v: number) => Number(v.toPrecision(12));  // 0.30000000000000004 → 0.3

function linearTicks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 5, mag = 10 ** Math.floor(Math.log10(raw)), norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;  // ≤ 1.5·raw, so ≥ 3 ticks
  const ticks: number[] = [];
  for (let i = Math.ceil(lo / step); i <= Math.floor(hi / step); i++) ticks.push(clean(i * step));
  return ticks;
}

// Decades; when fewer than 3 fit, add the 2× and 5× multiples, then all of 2..9×, then linear.
function logTicks(a: number, b: number): number[] {
  for (const mults of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const ticks: number[] = [];
    for (let k = Math.floor(a); k <= Math.ceil(b); k++) {
      for (const m of mults) {
        const v = Number(`${m}e${k}`), lv = Math.log10(v);  // `${m}e${k}` is exact, m·10**k may not be
        if (lv >= a - 1e-9 && lv <= b + 1e-9) ticks.push(v);
      }
    }
    if (ticks.length >= 3) return ticks;
  }
  return linearTicks(10 ** a, 10 ** b);
}

// 1k, 16.4k, 1M for large values; 0.5, 25 in the middle; 1e-3, 2.5e-4 below 0.01.
function formatTick(v: number, digits = 3): string {
  const abs = Math.abs(v);
  if (abs === 0) return '0';
  if (abs >= 1e15 || abs < 0.01) return v.toExponential(digits - 1).replace(/\.0+e|(\.\d*?)0+e/, '$1e').replace('e+', 'e');
  for (const [unit, suffix] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (abs >= unit) return `${Number((v / unit).toPrecision(digits))}${suffix}`;
  }
  return String(Number(v.toPrecision(digits)));
}

function makeAxis(values: number[], log: boolean): Axis {
  let a = Infinity, b = -Infinity;
  for (const v of values) { const t = log ? Math.log10(v) : v; a = Math.min(a, t); b = Math.max(b, t); }
  if (a === b) { const half = log ? 0.5 : Math.abs(a) / 2 || 1; a -= half; b += half; }
  const pad = (b - a) * 0.04;
  a -= pad; b += pad;
  const ticks = log ? logTicks(a, b) : linearTicks(a, b);
  let labels = ticks.map((v) => formatTick(v));
  for (let digits = 4; new Set(labels).size < labels.length && digits <= 15; digits++) labels = ticks.map((v) => formatTick(v, digits));
  return { log, a, b, ticks, labels };
}

const fraction = (axis: Axis, v: number) => ((axis.log ? Math.log10(v) : v) - axis.a) / (axis.b - axis.a);
const crisp = (v: number) => Math.floor(v) + 0.5;  // centre of a pixel: 1 px lines stay sharp in SVG

// ---- layout -----------------------------------------------------------------------------------
function layout(chart: PlotChart): Layout {
  checkChart(chart);
  const width = sidePixels('width', chart.width, 800), height = sidePixels('height', chart.height, 520);
  const logX = chart.logX ?? true, logY = chart.logY ?? true;
  const valid = chart.series.map((s) => s.points.filter(({ x, y }) =>
    Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0) && (!logY || y > 0)));
  const all = valid.flat();
  if (all.length === 0) throw new RangeError(`plot: no finite positive points to draw in chart ${JSON.stringify(chart.title)}`);
  // The y axis holds the error bars' ends too (on a log axis, the positive ones).
  const bars = (p: { y: number; err?: number }) => (p.err !== undefined && Number.isFinite(p.err) && p.err > 0 ? [p.y - p.err, p.y + p.err] : []);
  const ys = all.flatMap((p) => [p.y, ...bars(p)]).filter((y) => !logY || y > 0);
  const xAxis = makeAxis(all.map((p) => p.x), logX), yAxis = makeAxis(ys, logY);
  if (chart.xTicks) {
    const inside = chart.xTicks.filter((t) => (!logX || t.value > 0) && fraction(xAxis, t.value) >= 0 && fraction(xAxis, t.value) <= 1);
    xAxis.ticks = inside.map((t) => t.value);
    xAxis.labels = inside.map((t) => t.label);
  }

  const u = Math.min(width, height) >= 400 ? 2 : 1;   // font and spacing unit
  const charW = 6 * u, pad = 6 * u, tick = 3 * u;
  const textW = (s: string) => s.length * charW - u;
  const fit = (s: string, px: number) => (textW(s) <= px ? s : s.slice(0, Math.max(1, Math.floor((px + u) / charW) - 2)) + '..');
  const legendNames = chart.series.map((s) => fit(s.name, Math.max(4 * charW, width * 0.4)));
  const legendW = chart.series.length ? 18 * u + Math.max(...legendNames.map(textW)) : 0;
  const left = pad + Math.max(...yAxis.labels.map(textW)) + 2 * u + tick;
  const right = width - pad - legendW - (legendW ? 6 * u : 0);
  const titleBase = pad + 7 * u, yLabelBase = titleBase + 12 * u, top = yLabelBase + 6 * u;
  const bottom = height - pad - 10 * u - 12 * u - 2 * u - tick;
  const xTickBase = bottom + tick + 10 * u, xLabelBase = xTickBase + 12 * u;
  if (right - left < 20) throw new RangeError(`plot: chart.width ${width} leaves no room for the plot area (needs ≥ ${width + 20 - (right - left)})`);
  if (bottom - top < 20) throw new RangeError(`plot: chart.height ${height} leaves no room for the plot area (needs ≥ ${height + 20 - (bottom - top)})`);
  const px = (v: number) => left + fraction(xAxis, v) * (right - left);
  const py = (v: number) => bottom - fraction(yAxis, v) * (bottom - top);

  const shapes: Shape[] = [];
  const line = (x1: number, y1: number, x2: number, y2: number, color: string, w = 1) => shapes.push({ kind: 'line', x1, y1, x2, y2, color, width: w });
  const text = (x: number, y: number, s: string, anchor: Anchor, cls: string) => shapes.push({ kind: 'text', x, y, text: s, anchor, color: INK, cls });
  // Grid at every tick; a label only where it does not collide with the previous label.
  let lastEdge = -Infinity;
  xAxis.ticks.forEach((v, i) => {
    const x = crisp(px(v)), label = xAxis.labels[i]!, half = textW(label) / 2;
    line(x, top, x, bottom, GRID);
    line(x, bottom, x, bottom + tick, AXIS);
    if (x - half >= lastEdge + 2 * charW && x + half <= width) { text(x, xTickBase, label, 'middle', 'tick-x'); lastEdge = x + half; }
  });
  lastEdge = Infinity;
  yAxis.ticks.forEach((v, i) => {
    const y = crisp(py(v));
    line(left, y, right, y, GRID);
    line(left - tick, y, left, y, AXIS);
    if (y + 3.5 * u <= lastEdge - 4 * u) { text(left - tick - 2 * u, y + 3.5 * u, yAxis.labels[i]!, 'end', 'tick-y'); lastEdge = y - 3.5 * u; }
  });
  const [l, r, t, b] = [crisp(left), crisp(right), crisp(top), crisp(bottom)];
  line(l, t, r, t, AXIS); line(l, b, r, b, AXIS); line(l, t, l, b, AXIS); line(r, t, r, b, AXIS);
  text(width / 2, titleBase, fit(chart.title, width - 2 * pad), 'middle', 'title');
  text(pad, yLabelBase, fit(chart.yLabel, width - 2 * pad), 'start', 'label-y');
  text((left + right) / 2, xLabelBase, fit(chart.xLabel, width - 2 * pad), 'middle', 'label-x');

  const dash: [number, number] = [5 * u, 3 * u];
  chart.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!, pts = valid[i]!.map((p): [number, number] => [px(p.x), py(p.y)]);
    const lines = s.lines ?? true;
    if (lines && pts.length >= 2) shapes.push({ kind: 'polyline', points: pts, color, width: 1 + u / 2, name: s.name, ...(s.dashed ? { dash } : {}) });
    valid[i]!.forEach((p, k) => {
      const [lo, hi] = bars(p);
      if (lo === undefined || hi === undefined) return;
      const x = pts[k]![0], y0 = py(!logY || lo > 0 ? lo : 10 ** yAxis.a), y1 = py(hi);
      line(x, y0, x, y1, color, u);
      line(x - 3 * u, y0, x + 3 * u, y0, color, u);
      line(x - 3 * u, y1, x + 3 * u, y1, color, u);
    });
    for (const [cx, cy] of pts) shapes.push({ kind: 'circle', cx, cy, r: 1.5 + u, color, cls: 'marker' });
    const ly = top + 4 * u + i * 12 * u, lx = right + 6 * u;
    if (lines) shapes.push({ kind: 'line', x1: lx, y1: ly, x2: lx + 12 * u, y2: ly, color, width: 1 + u / 2, ...(s.dashed ? { dash } : {}) });
    shapes.push({ kind: 'circle', cx: lx + 6 * u, cy: ly, r: 1.5 + u, color, cls: 'legend-marker' });
    text(lx + 16 * u, ly + 3.5 * u, legendNames[i]!, 'start', 'legend');
  });
  return { width, height, scale: u, title: chart.title, shapes };
}

// ---- SVG --------------------------------------------------------------------------------------
const escapeXml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
const n = (v: number) => String(Math.round(v * 100) / 100 || 0);  // ≤ 2 decimals, no "-0"

export function renderSvg(chart: PlotChart): string {
  const { width, height, scale, title, shapes } = layout(chart);
  const dashAttr = (d?: [number, number]) => (d ? ` stroke-dasharray="${n(d[0])} ${n(d[1])}"` : '');
  const body = shapes.map((s) => {
    switch (s.kind) {
      case 'line': return `<line x1="${n(s.x1)}" y1="${n(s.y1)}" x2="${n(s.x2)}" y2="${n(s.y2)}" stroke="${s.color}" stroke-width="${n(s.width)}"${dashAttr(s.dash)}/>`;
      case 'polyline': return `<polyline class="series" data-series="${escapeXml(s.name)}" points="${s.points.map(([x, y]) => `${n(x)},${n(y)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="${n(s.width)}" stroke-linejoin="round"${dashAttr(s.dash)}/>`;
      case 'circle': return `<circle class="${s.cls}" cx="${n(s.cx)}" cy="${n(s.cy)}" r="${n(s.r)}" fill="${s.color}" stroke="${WHITE}"/>`;
      case 'text': return `<text class="${s.cls}" x="${n(s.x)}" y="${n(s.y)}" text-anchor="${s.anchor}" fill="${s.color}">${escapeXml(s.text)}</text>`;
    }
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="${10 * scale}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="${WHITE}"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

// ---- PNG --------------------------------------------------------------------------------------
// 5×7 glyphs (plus a descender row) for ASCII 32..126, then '×', then the box drawn for any other
// character. Each glyph is 8 rows, each row one base-32 digit whose bit 4 is the leftmost column.
const FONT =
  '0000000044444040aa000000aavavaa04fke5u40op248j30cik8lid044000000' +
  '248884208422248004lel400044v440000000c48000v000000000cc001248g00' +
  'ehjlphe04c4444e0eh1248v0v2421he026aiv220vgu11he068guhhe0v1248880' +
  'ehhehhe0ehhf12c00cc0cc000cc0c480248g842000v0v00084212480eh124040' +
  'eh1dlle0ehhvhhh0uhhuhhu0ehggghe0sihhhis0vgguggv0vgguggg0ehgnhhf0' +
  'hhhvhhh0e44444e072222ic0hikokih0ggggggv0hrllhhh0hhpljhh0ehhhhhe0' +
  'uhhuggg0ehhhlid0uhhukih0fgge11u0v4444440hhhhhhe0hhhhha40hhhllla0' +
  'hha4ahh0hhha4440v1248gv0e88888e00g842100e22222e04ah000000000000v' +
  '8400000000e1fhf0ggmphhu000egghe011djhhf000ehvge0698s888000fhhf1e' +
  'ggmphhh040c444e0206222icggikoki0c44444e000qllll000mphhh000ehhhe0' +
  '00uhhugg00fhhf1100mpggg000fge1u088s8896000hhhjd000hhha4000hhlla0' +
  '00ha4ah000hhhf1e00v248v0244844204444444084424480008l20000ha4ah00' +
  'vhhhhhv0';
const glyphIndex = (c: string) => { const k = c.codePointAt(0)!; return k >= 32 && k <= 126 ? k - 32 : c === '×' ? 95 : 96; };

class Raster {
  readonly data: Buffer;
  constructor(readonly width: number, readonly height: number) { this.data = Buffer.alloc(width * height * 4, 255); }
  fill(x0: number, y0: number, w: number, h: number, rgb: number[]): void {
    for (let y = Math.max(0, y0); y < Math.min(this.height, y0 + h); y++) {
      for (let x = Math.max(0, x0); x < Math.min(this.width, x0 + w); x++) this.data.set(rgb, (y * this.width + x) * 4);
    }
  }
  // Bresenham from (x1,y1) to (x2,y2), stamping a w×w square per step; `phase` carries the dash
  // pattern across the segments of a polyline. Returns the phase at the end of the segment.
  line(x1: number, y1: number, x2: number, y2: number, rgb: number[], w: number, dash?: [number, number], phase = 0): number {
    let x = Math.floor(x1), y = Math.floor(y1);
    const xe = Math.floor(x2), ye = Math.floor(y2), dx = Math.abs(xe - x), dy = -Math.abs(ye - y);
    const sx = x < xe ? 1 : -1, sy = y < ye ? 1 : -1, steps = Math.max(dx, -dy), stepLen = steps ? Math.hypot(x2 - x1, y2 - y1) / steps : 0;
    const off = Math.floor((w - 1) / 2);
    for (let err = dx + dy, i = 0; ; i++) {
      if (!dash || phase % (dash[0] + dash[1]) < dash[0]) this.fill(x - off, y - off, w, w, rgb);
      if (i === steps) return phase;
      phase += stepLen;
      const e2 = 2 * err;
      if (e2 >= dy) { err += dy; x += sx; }
      if (e2 <= dx) { err += dx; y += sy; }
    }
  }
  disc(cx: number, cy: number, r: number, rgb: number[]): void {
    for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++) {
      for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++) {
        if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r) this.fill(x, y, 1, 1, rgb);
      }
    }
  }
  text(s: string, x: number, baseline: number, anchor: Anchor, scale: number, rgb: number[]): void {
    const chars = [...s], w = chars.length * 6 * scale - scale;
    let left = Math.round(anchor === 'start' ? x : anchor === 'middle' ? x - w / 2 : x - w);
    const top = Math.round(baseline) - 7 * scale;
    for (const c of chars) {
      const g = glyphIndex(c) * 8;
      for (let row = 0; row < 8; row++) {
        const bits = parseInt(FONT[g + row]!, 32);
        for (let col = 0; col < 5; col++) if (bits & (16 >> col)) this.fill(left + col * scale, top + row * scale, scale, scale, rgb);
      }
      left += 6 * scale;
    }
  }
}

const rgba = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)).concat(255);

export function renderPng(chart: PlotChart): Buffer {
  const { width, height, scale, shapes } = layout(chart);
  const img = new Raster(width, height);
  for (const s of shapes) {
    const rgb = rgba(s.color);
    switch (s.kind) {
      case 'line': img.line(s.x1, s.y1, s.x2, s.y2, rgb, Math.round(s.width), s.dash); break;
      case 'polyline': {
        let phase = 0;
        for (let i = 1; i < s.points.length; i++) phase = img.line(...s.points[i - 1]!, ...s.points[i]!, rgb, Math.round(s.width), s.dash, phase);
        break;
      }
      case 'circle': img.disc(s.cx, s.cy, s.r + 1, rgba(WHITE)); img.disc(s.cx, s.cy, s.r, rgb); break;
      case 'text': img.text(s.text, s.x, s.y, s.anchor, scale, rgb); break;
    }
  }
  const png = new PNG({ width, height });
  img.data.copy(png.data);
  return PNG.sync.write(png);
}
