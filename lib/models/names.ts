// Model names: one grammar for the presets and for custom sizes.
//
//   pit-<size>          PiT: one token per pixel (patch 1)
//   vit-<size>/<p>      ViT with p×p patches; vit-<size>/1 is pit-<size>
//   <size>              t | s | b | l (SPEC §1), or d<depth>w<width>h<heads>
//
//   dit-<dsize>/<p>     DiT, the class-conditional diffusion transformer (SPEC §4), with p×p
//                       patches; dit-<dsize>/1 is the paper's pixel generator (dit-l/1 = PiT-L)
//   <dsize>             s | b | l | xl (DiT's own sizes: DiT-S has 6 heads, ViT-S 12), or
//                       d<depth>w<width>h<heads>
//
// e.g. pit-t, vit-s/2, vit-b/4, pit-d4w64h4 (the npm start model), vit-d4w64h4/2, dit-xl/2,
// dit-l/1, dit-d4w64h4/1. A DiT name always states its patch, as DiT's own names do (DiT-XL/2).

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

/** d<depth>w<width>h<heads>, each a positive integer: a custom size in every family. */
const customSize = 'd([1-9]\\d*)w([1-9]\\d*)h([1-9]\\d*)';
const patchSuffix = '(?:\\/([1-9]\\d*))';

/** A size named by its preset key, or the custom size's three numbers. */
function sizeOf<K extends string>(sizes: Readonly<Record<K, Readonly<Omit<ModelShape, 'patch'>>>>, preset: string | undefined, custom: (string | undefined)[]): Omit<ModelShape, 'patch'> {
  if (preset) return { ...sizes[preset as K] };
  const [depth, dim, heads] = custom.map(Number) as [number, number, number];
  return { depth, dim, heads };
}

/** The preset key whose sizes are the shape's, else d…w…h…. */
function sizeName(sizes: Readonly<Record<string, Readonly<Omit<ModelShape, 'patch'>>>>, shape: ModelShape): string {
  return Object.entries(sizes).find(([, s]) => s.depth === shape.depth && s.dim === shape.dim && s.heads === shape.heads)?.[0]
    ?? `d${shape.depth}w${shape.dim}h${shape.heads}`;
}

const grammar = 'pit-<size> or vit-<size>/<patch>, <size> one of t, s, b, l or d<depth>w<width>h<heads> (e.g. pit-t, vit-s/2, pit-d4w64h4)';
const pattern = new RegExp(`^(pit|vit)-(?:([tsbl])|${customSize})${patchSuffix}?$`);

/** The shape a model name stands for; a RangeError naming the grammar otherwise. */
export function parseModelName(name: string): ModelShape {
  const m = typeof name === 'string' ? pattern.exec(name) : null;
  if (name === 'custom') throw new RangeError('model name "custom" is now written pit-d4w64h4 (depth 4, width 64, 4 heads, patch 1)');
  if (!m && typeof name === 'string' && name.startsWith('dit-'))
    throw new RangeError(`model name ${JSON.stringify(name)} is a diffusion transformer (DiT): it is built by dit() (parseDitName), not by the classifier or MAE; here the name must be ${grammar}`);
  if (!m) throw new RangeError(`model name must be ${grammar}; got ${JSON.stringify(name)}`);
  const [, family, size, depth, dim, heads, patch] = m;
  if (family === 'pit' && patch !== undefined && patch !== '1')
    throw new RangeError(`model name ${JSON.stringify(name)}: a PiT has 1×1 patches; write vit-…/${patch} for ${patch}×${patch} patches`);
  if (family === 'vit' && patch === undefined)
    throw new RangeError(`model name ${JSON.stringify(name)}: a ViT names its patch size, e.g. ${name}/2 (or pit-… for 1×1 patches)`);
  return { ...sizeOf(modelSizes, size, [depth, dim, heads]), patch: Number(patch ?? 1) };
}

/** The name of a shape: a preset size where it is one, d…w…h… otherwise. */
export function modelName(shape: ModelShape): string {
  const size = sizeName(modelSizes, shape);
  return shape.patch === 1 ? `pit-${size}` : `vit-${size}/${shape.patch}`;
}

/** DiT's sizes (facebookresearch/DiT's DiT_S … DiT_XL; SPEC §4). */
export const ditSizes: Readonly<Record<'s' | 'b' | 'l' | 'xl', Readonly<Omit<ModelShape, 'patch'>>>> = Object.freeze({
  s: { depth: 12, dim: 384, heads: 6 },
  b: { depth: 12, dim: 768, heads: 12 },
  l: { depth: 24, dim: 1024, heads: 16 },
  xl: { depth: 28, dim: 1152, heads: 16 },
});

const ditGrammar = 'dit-<size>/<patch>, <size> one of s, b, l, xl or d<depth>w<width>h<heads> (e.g. dit-xl/2, dit-l/1, dit-d4w64h4/1)';
const ditPattern = new RegExp(`^dit-(?:(s|b|l|xl)|${customSize})${patchSuffix}?$`);

/** The shape a DiT name stands for (dit-xl/2, dit-l/1, dit-d4w64h4/1); a RangeError naming the grammar otherwise. */
export function parseDitName(name: string): ModelShape {
  const m = typeof name === 'string' ? ditPattern.exec(name) : null;
  if (!m) throw new RangeError(`DiT model name must be ${ditGrammar}; got ${JSON.stringify(name)}`);
  const [, size, depth, dim, heads, patch] = m;
  if (patch === undefined) throw new RangeError(`DiT model name ${JSON.stringify(name)}: a DiT names its patch size, e.g. ${name}/2 (${name}/1 for one token per pixel)`);
  return { ...sizeOf(ditSizes, size, [depth, dim, heads]), patch: Number(patch) };
}

/** The DiT name of a shape: dit-<size>/<p>, a preset size where it is one. */
export function ditModelName(shape: ModelShape): string {
  return `dit-${sizeName(ditSizes, shape)}/${shape.patch}`;
}
