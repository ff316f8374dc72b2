// Resizing NCHW image stacks to a new (height, width).
//
// Integer-factor downscaling (28 → 14) averages each factor×factor box (area
// interpolation), which keeps the mean intensity. Any other size is bilinear as Pillow and
// torchvision (antialias=True) do it: separable triangle-filter taps, with the filter
// widened by the scale factor when shrinking, so every source pixel contributes (28 → 8
// averages ~7 pixels per axis instead of point-sampling 2 of them, which would drop thin
// strokes). When enlarging this is exactly torch's bilinear with align_corners = false:
// output pixel d samples (d + 0.5)·(in/out) − 0.5, and the borders clamp.

/** The most values one image stack (a Float32Array) can hold. */
export const maxImageValues = 2 ** 32;

/** Resizes (n·channels) planes of (height, width) to (outHeight, outWidth). */
export function resizeImages(images: Float32Array, planes: number, height: number, width: number, outHeight: number, outWidth: number): Float32Array {
  for (const [name, v] of [['height', height], ['width', width], ['outHeight', outHeight], ['outWidth', outWidth]] as const)
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`resizeImages: '${name}' must be a positive integer, got ${String(v)}`);
  if (images.length !== planes * height * width)
    throw new RangeError(`resizeImages: 'images' has ${images.length} values, expected ${planes}·${height}·${width} = ${planes * height * width}`);
  // A Float32Array holds at most 2^32 values; past that V8 says only "Invalid typed array length".
  const values = planes * outHeight * outWidth;
  if (values > maxImageValues)
    throw new RangeError(`resizeImages: ${planes} planes of ${outHeight}×${outWidth} are ${values.toExponential(2)} values (${(values * 4 / 2 ** 30).toFixed(1)} GiB), more than one Float32Array holds (${maxImageValues}); use a smaller size`);
  if (outHeight === height && outWidth === width) return images.slice();
  if (height % outHeight === 0 && width % outWidth === 0) return boxDownscale(images, planes, height, width, height / outHeight, width / outWidth);
  return bilinear(images, planes, height, width, outHeight, outWidth);
}

/** Mean over each (fy, fx) box. (planes, H, W) → (planes, H/fy, W/fx). */
function boxDownscale(src: Float32Array, planes: number, h: number, w: number, fy: number, fx: number): Float32Array {
  const oh = h / fy, ow = w / fx;
  const out = new Float32Array(planes * oh * ow);
  const row = new Float64Array(ow);
  const scale = 1 / (fy * fx);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++) {
      row.fill(0);
      for (let dy = 0; dy < fy; dy++) {
        const base = (p * h + oy * fy + dy) * w;
        for (let ox = 0; ox < ow; ox++) {
          let s = 0;
          for (let dx = 0; dx < fx; dx++) s += src[base + ox * fx + dx]!;
          row[ox]! += s;
        }
      }
      const o = (p * oh + oy) * ow;
      for (let ox = 0; ox < ow; ox++) out[o + ox] = row[ox]! * scale;
    }
  return out;
}

/** One axis's taps: output d reads source pixels first[d] … first[d] + count[d] − 1 with weights. */
interface Taps {
  first: Int32Array;
  count: Int32Array;
  /** (out, maxCount) row-major, each row summing to 1. */
  weights: Float64Array;
  maxCount: number;
}

/**
 * Triangle-filter taps (Pillow's ImagingResample with the bilinear filter): support
 * s = max(in/out, 1); output d is centred at (d + 0.5)·in/out and weights source j by
 * max(0, 1 − |j + 0.5 − centre| / s), normalised over the pixels inside the image.
 */
function axisTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize, support = Math.max(scale, 1);
  const maxCount = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), count = new Int32Array(outSize), weights = new Float64Array(outSize * maxCount);
  for (let d = 0; d < outSize; d++) {
    const centre = (d + 0.5) * scale;
    const lo = Math.max(0, Math.floor(centre - support + 0.5)), hi = Math.min(inSize, Math.floor(centre + support + 0.5));
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / support));
      weights[d * maxCount + j - lo] = w;
      total += w;
    }
    for (let k = 0; k < hi - lo; k++) weights[d * maxCount + k]! /= total;
    first[d] = lo;
    count[d] = hi - lo;
  }
  return { first, count, weights, maxCount };
}

/** Separable resampling: rows first (into float64), then columns. */
function bilinear(src: Float32Array, planes: number, h: number, w: number, oh: number, ow: number): Float32Array {
  const out = new Float32Array(planes * oh * ow);
  const ys = axisTaps(h, oh), xs = axisTaps(w, ow);
  const rows = new Float64Array(h * ow); // one plane, resized along x
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < h; y++) {
      const base = (p * h + y) * w;
      for (let ox = 0; ox < ow; ox++) {
        let acc = 0;
        const f = xs.first[ox]!, wt = ox * xs.maxCount;
        for (let k = 0; k < xs.count[ox]!; k++) acc += xs.weights[wt + k]! * src[base + f + k]!;
        rows[y * ow + ox] = acc;
      }
    }
    for (let oy = 0; oy < oh; oy++) {
      const f = ys.first[oy]!, wt = oy * ys.maxCount, o = (p * oh + oy) * ow;
      for (let ox = 0; ox < ow; ox++) {
        let acc = 0;
        for (let k = 0; k < ys.count[oy]!; k++) acc += ys.weights[wt + k]! * rows[(f + k) * ow + ox]!;
        out[o + ox] = acc;
      }
    }
  }
  return out;
}
