// Resizing NCHW image stacks to a new (height, width).
//
// Integer-factor downscaling (28 → 14) averages each factor×factor box (area
// interpolation), which keeps the mean intensity. Any other size is bilinear with
// align_corners = false, as torch.nn.functional.interpolate(mode='bilinear') without
// antialiasing: output pixel d samples source coordinate (d + 0.5)·(in/out) − 0.5,
// clamped at 0, and the far neighbour is clamped to the last pixel.

/** Resizes (n·channels) planes of (height, width) to (outHeight, outWidth). */
export function resizeImages(images: Float32Array, planes: number, height: number, width: number, outHeight: number, outWidth: number): Float32Array {
  for (const [name, v] of [['height', height], ['width', width], ['outHeight', outHeight], ['outWidth', outWidth]] as const)
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`resizeImages: '${name}' must be a positive integer, got ${String(v)}`);
  if (images.length !== planes * height * width)
    throw new RangeError(`resizeImages: 'images' has ${images.length} values, expected ${planes}·${height}·${width} = ${planes * height * width}`);
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

/** Source index pairs and weights along one axis (PyTorch's align_corners = false rule). */
function axisTaps(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; t: Float64Array } {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), t = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    const src = Math.max(0, (d + 0.5) * scale - 0.5);
    const lo = Math.min(Math.floor(src), inSize - 1);
    i0[d] = lo;
    i1[d] = Math.min(lo + 1, inSize - 1);
    t[d] = src - lo;
  }
  return { i0, i1, t };
}

function bilinear(src: Float32Array, planes: number, h: number, w: number, oh: number, ow: number): Float32Array {
  const out = new Float32Array(planes * oh * ow);
  const ys = axisTaps(h, oh), xs = axisTaps(w, ow);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++) {
      const r0 = (p * h + ys.i0[oy]!) * w, r1 = (p * h + ys.i1[oy]!) * w, ty = ys.t[oy]!;
      const o = (p * oh + oy) * ow;
      for (let ox = 0; ox < ow; ox++) {
        const x0 = xs.i0[ox]!, x1 = xs.i1[ox]!, tx = xs.t[ox]!;
        const top = src[r0 + x0]! + (src[r0 + x1]! - src[r0 + x0]!) * tx;
        const bottom = src[r1 + x0]! + (src[r1 + x1]! - src[r1 + x0]!) * tx;
        out[o + ox] = top + (bottom - top) * ty;
      }
    }
  return out;
}
