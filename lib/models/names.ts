// Model names: one grammar for the presets and for custom sizes.
//
//   pit-<size>          PiT: one token per pixel (patch 1)
//   vit-<size>/<p>      ViT with p×p patches; vit-<size>/1 is pit-<size>
//   <size>              t | s | b | l (SPEC §1), or d<depth>w<width>h<heads>
//
// e.g. pit-t, vit-s/2, vit-b/4, pit-d4w64h4 (the npm start model), vit-d4w64h4/2.

/** The architecture a name fixes; everything else (image size, classes, …) is config. */
export interface ModelShape {
  depth: number;
  dim: number;
  heads: number;
  patch: number;
}

/** SPEC §1's sizes. */
export const modelSizes: Readonly<Record<'t' | 's' | 'b' | 'l', Readonly<Omit<ModelShape, 'patch'>>>> = Object.freeze({
  t: { depth: 12, dim: 192, heads: 12 },
  s: { depth: 12, dim: 384, heads: 12 },
  b: { depth: 12, dim: 768, heads: 12 },
  l: { depth: 24, dim: 1024, heads: 16 },
});

/** The paper's presets: PiT-T/S/B/L (p = 1) and its ViT baselines vit-t/2 … vit-l/2 (p = 2). */
export const vitPresets: Readonly<Record<string, Readonly<ModelShape>>> = Object.freeze(Object.fromEntries(
  Object.entries(modelSizes).flatMap(([k, s]) => [[`pit-${k}`, { ...s, patch: 1 }], [`vit-${k}/2`, { ...s, patch: 2 }]]),
));

const grammar = 'pit-<size> or vit-<size>/<patch>, <size> one of t, s, b, l or d<depth>w<width>h<heads> (e.g. pit-t, vit-s/2, pit-d4w64h4)';
const pattern = /^(pit|vit)-(?:([tsbl])|d([1-9]\d*)w([1-9]\d*)h([1-9]\d*))(?:\/([1-9]\d*))?$/;

/** The shape a model name stands for; a RangeError naming the grammar otherwise. */
export function parseModelName(name: string): ModelShape {
  const m = typeof name === 'string' ? pattern.exec(name) : null;
  if (name === 'custom') throw new RangeError('model name "custom" is now written pit-d4w64h4 (depth 4, width 64, 4 heads, patch 1)');
  if (!m) throw new RangeError(`model name must be ${grammar}; got ${JSON.stringify(name)}`);
  const [, family, size, depth, dim, heads, patch] = m;
  if (family === 'pit' && patch !== undefined && patch !== '1')
    throw new RangeError(`model name ${JSON.stringify(name)}: a PiT has 1×1 patches; write vit-…/${patch} for ${patch}×${patch} patches`);
  if (family === 'vit' && patch === undefined)
    throw new RangeError(`model name ${JSON.stringify(name)}: a ViT names its patch size, e.g. ${name}/2 (or pit-… for 1×1 patches)`);
  const shape = size ? modelSizes[size as keyof typeof modelSizes] : { depth: Number(depth), dim: Number(dim), heads: Number(heads) };
  return { ...shape, patch: Number(patch ?? 1) };
}

/** The name of a shape: a preset size where it is one, d…w…h… otherwise. */
export function modelName(shape: ModelShape): string {
  const size = Object.entries(modelSizes).find(([, s]) => s.depth === shape.depth && s.dim === shape.dim && s.heads === shape.heads)?.[0]
    ?? `d${shape.depth}w${shape.dim}h${shape.heads}`;
  return shape.patch === 1 ? `pit-${size}` : `vit-${size}/${shape.patch}`;
}
