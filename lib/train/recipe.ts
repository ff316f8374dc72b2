// A training recipe: every choice a run makes, as one flat, JSON-safe object saved in each
// checkpoint, so a resumed run and `pit eval` rebuild exactly the same model and data. It has
// two parts: the shared one below (data, schedule, AdamW, clipping, EMA, seed), which the
// runner reads, and one per task (its model and loss), which only the task reads.
import { maxSeed, RECOMPUTE_MODES, type Recompute } from '../nn/forward.js';
import { LATENT_LABELS_FILE, LATENTS_FILE } from '../data/latents.js';
import { imageDataSize } from './data.js';
import { checkPart, failField, fieldKeys, ruleText, type RecipeField, type RecipePart } from './recipe-fields.js';

export type DataName = 'mnist' | 'cifar10' | 'cifar100' | 'latents';

/** The image data sets, what a task trains on unless its recipe part says otherwise (dataSets). */
export const imageDataSets: readonly DataName[] = Object.freeze(['mnist', 'cifar10', 'cifar100']);

export interface SharedRecipe {
  data: DataName;
  /** Folder of the CIFAR binary files or of the latents (the built-in MNIST needs none). */
  dataDir: string | null;
  /** Side the images are resized to; null keeps the data's own (28 MNIST, 32 CIFAR). */
  imageSize: number | null;
  /** Random translation by up to ± this many pixels (digits). */
  translate: number;
  /** Random crop with this much zero padding (natural images). */
  cropPadding: number;
  flip: boolean;
  /**
   * The pixel-permutation study (SPEC §5): T disjoint pixel pairs swapped, in every image
   * (training batches after augmentation, held-out images when loaded); 0 is off.
   */
  permuteSwaps: number;
  /** δ: each swapped pair within |Δrow|, |Δcol| ≤ δ − 1 (an integer ≥ 2); null is ∞, any pair. */
  permuteDelta: number | null;
  /** Seeds the permutation; not `seed`, so that the seeds of a study share one permutation. */
  permuteSeed: number;
  epochs: number;
  batchSize: number;
  lr: number;
  minLr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  warmupEpochs: number;
  /** Global gradient-norm clip; 0 turns it off. */
  clipGrad: number;
  /** EMA decay of the weights; 0 turns EMA off. */
  ema: number;
  /** Seeds initialisation, data order, augmentation and the step's random stream. */
  seed: number;
  evalBatchSize: number;
  /**
   * What the backward recomputes instead of keeping (nn/forward.ts, Recompute): memory against
   * time, never the result. A resumed run may change it.
   */
  recompute: Recompute;
}

/** A whole recipe: the shared part and a task's part `P`. */
export type Recipe<P> = SharedRecipe & P;

/**
 * The defaults are the `npm start` recipe, chosen by measurement (README, "Training"): the
 * digits resized to 8×8 (65 tokens for a PiT), 36 epochs at lr 3e-3, which reaches ≥ 93% top-1
 * on the 2,000 held-out digits within ten minutes on two CPU cores. 14×14 digits (197 tokens)
 * cost 2.5× more per epoch and, in the measured runs, learned too slowly per epoch to get there
 * in that time.
 */
const defaults: Readonly<SharedRecipe> = Object.freeze({
  data: 'mnist', dataDir: null, imageSize: 8, translate: 0, cropPadding: 0, flip: false, permuteSwaps: 0, permuteDelta: null, permuteSeed: 0,
  epochs: 36, batchSize: 64, lr: 3e-3, minLr: 1e-6, weightDecay: 0.05, beta1: 0.9, beta2: 0.95, warmupEpochs: 1,
  clipGrad: 1, ema: 0, seed: 0, evalBatchSize: 500, recompute: 'none',
});

/**
 * What changes with the data set when not given: CIFAR keeps its 32×32 images and uses
 * crop + flip; digits are never flipped; latents are used as they are (no resizing, no
 * augmentation: zero is not black in a latent space, and a mirrored latent is not the latent
 * of the mirrored image).
 */
export function dataDefaults(data: DataName | undefined): Partial<SharedRecipe> {
  if (data === 'cifar10' || data === 'cifar100') return { data, imageSize: null, translate: 0, cropPadding: 4, flip: true };
  if (data === 'latents') return { data, imageSize: null, translate: 0, cropPadding: 0, flip: false };
  return {};
}

const cifar = dataDefaults('cifar10');
const onOff = (flip: boolean | undefined) => (flip ? 'on' : 'off');

export const sharedRecipe: RecipePart<SharedRecipe> = {
  defaults,
  fields: [
    { key: 'data', flag: '--data <name>', help: 'data set', rule: { kind: 'choice', values: ['mnist', 'cifar10', 'cifar100', 'latents'] } },
    { key: 'dataDir', flag: '--data-dir <dir>', help: 'folder of the CIFAR binary files (cifar-10-batches-bin / cifar-100-binary)', rule: { kind: 'text', nullable: true } },
    { key: 'imageSize', flag: '--image-size <n>', help: 'resize images to n×n', rule: { kind: 'integer', min: 1, nullable: true }, defaultHelp: `${defaults.imageSize} for mnist, the data's own 32 for cifar` },
    { key: 'epochs', flag: '--epochs <n>', help: 'epochs', rule: { kind: 'integer', min: 1 } },
    { key: 'batchSize', flag: '--batch-size <n>', help: 'images per step', rule: { kind: 'integer', min: 1 } },
    { key: 'lr', flag: '--lr <lr>', help: 'peak learning rate', rule: { kind: 'number', min: 0 } },
    { key: 'minLr', flag: '--min-lr <lr>', help: 'learning rate at the end of the cosine', rule: { kind: 'number', min: 0 } },
    { key: 'weightDecay', flag: '--weight-decay <wd>', help: 'AdamW weight decay (not on 1-D parameters, cls, position embeddings)', rule: { kind: 'number', min: 0 } },
    { key: ['beta1', 'beta2'], flag: '--betas <b1,b2>', help: 'AdamW betas', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'warmupEpochs', flag: '--warmup-epochs <n>', help: 'epochs of linear warm-up (fractions allowed)', rule: { kind: 'number', min: 0 } },
    { key: 'clipGrad', flag: '--clip-grad <norm>', help: 'clip the global gradient norm (0: off)', rule: { kind: 'number', min: 0 } },
    { key: 'ema', flag: '--ema <decay>', help: 'keep an EMA of the weights with this decay (0: off)', rule: { kind: 'number', min: 0, max: 1 } },
    { key: 'translate', flag: '--translate <px>', help: 'random translation by up to ±px', rule: { kind: 'integer', min: 0 }, defaultHelp: `${defaults.translate} for mnist, ${cifar.translate} for cifar` },
    { key: 'cropPadding', flag: '--crop-padding <px>', help: 'random crop with this zero padding', rule: { kind: 'integer', min: 0 }, defaultHelp: `${defaults.cropPadding} for mnist, ${cifar.cropPadding} for cifar` },
    { key: 'flip', flag: '--flip', help: 'random horizontal flips', rule: { kind: 'boolean' }, defaultHelp: `${onOff(defaults.flip)} for mnist, ${onOff(cifar.flip)} for cifar` },
    {
      key: 'permuteSwaps', flag: '--permute-swaps <T>',
      help: 'shuffle pixels as the paper\'s locality study does: swap T disjoint pixel pairs, one fixed permutation for every image (train after augmentation, test), before patchification (0: off)',
      rule: { kind: 'integer', min: 0 },
    },
    {
      key: 'permuteDelta', flag: '--permute-delta <δ|inf>',
      help: 'distance of each swapped pair: |Δrow| ≤ δ − 1 and |Δcol| ≤ δ − 1 (δ = 2: one of the 8 neighbours, the paper\'s "2×2 neighbourhood"), inf for any pair',
      rule: { kind: 'integer', min: 2, nullable: true, nullWord: 'inf' }, defaultHelp: 'inf',
    },
    { key: 'permuteSeed', flag: '--permute-seed <s>', help: 'seed of the pixel permutation (not --seed: the seeds of a study share one permutation)', rule: { kind: 'integer', min: 0, max: maxSeed } },
    { key: 'seed', flag: '--seed <n>', help: 'seed of initialisation, data order, augmentation and the step\'s random draws', rule: { kind: 'integer', min: 0, max: maxSeed } },
    { key: 'evalBatchSize', flag: '--eval-batch-size <n>', help: 'images per evaluation batch', rule: { kind: 'integer', min: 1 } },
    {
      key: 'recompute', flag: '--recompute <mode>',
      help: 'activation recomputation, memory for time with the same gradients: none; mlp (LayerNorm outputs and the MLP\'s GELU input rerun in the backward: about a third less activation memory); block (only each block\'s input kept, the block rerun in the backward)',
      rule: { kind: 'choice', values: RECOMPUTE_MODES },
    },
  ],
  check(r) {
    if (r.data !== 'mnist' && (typeof r.dataDir !== 'string' || !r.dataDir))
      failField(r, 'dataDir', r.data === 'latents' ? `the folder of ${LATENTS_FILE} and ${LATENT_LABELS_FILE}` : `the folder of the ${r.data} binary files`);
    if (!(r.warmupEpochs <= r.epochs)) failField(r, 'warmupEpochs', `a number in [0, ${r.epochs}]`);
    if (r.permuteSwaps > 0 && r.data !== 'latents') {
      const { height, width } = imageDataSize(r);
      const most = Math.floor((height * width) / 2);
      if (r.permuteSwaps > most) failField(r, 'permuteSwaps', `an integer in [0, ${most}] (disjoint pixel pairs of the ${height}×${width} images)`);
    }
    if (r.data === 'latents') {
      if (r.imageSize !== null) failField(r, 'imageSize', 'null for latents (they are used at their own size: resize the images before encoding them)');
      if (r.flip) failField(r, 'flip', 'false for latents (a mirrored latent is not the latent of the mirrored image: flip the images before encoding them)');
      if (r.translate) failField(r, 'translate', '0 for latents (zero is not black in a latent space)');
      if (r.cropPadding) failField(r, 'cropPadding', '0 for latents (zero is not black in a latent space)');
    }
  },
};

/** The task part a recipe is made with: its table and checks, and the shared defaults it changes. */
export interface TaskRecipePart<P> extends RecipePart<P> {
  /** The data sets this task trains on (`--data`'s choices); default imageDataSets. */
  readonly dataSets?: readonly DataName[];
  /** Shared defaults this task changes (e.g. diffusion's EMA 0.9999). */
  readonly sharedDefaults?: Partial<SharedRecipe>;
  /**
   * Shared defaults that depend on fields the user gave (fine-tuning, `init` set: AdamW β₂
   * 0.999 as SPEC §3); they win over sharedDefaults and lose to anything given.
   */
  defaultsFor?(given: Readonly<Partial<Recipe<P>>>): Partial<SharedRecipe>;
  /** Help lines of shared fields that read differently for this task (e.g. which parameters weight decay skips). */
  readonly sharedHelp?: Readonly<Partial<Record<keyof SharedRecipe, string>>>;
  /** A recipe saved by an earlier version of the task, in today's terms (resume and eval read it). */
  upgrade?(saved: Readonly<Record<string, unknown>>): Record<string, unknown>;
  /**
   * Shared fields this task computes from others (MAE: lr = blr · batchSize / 256), set after
   * every default and given value is merged. They are no flags of the task's command, and a
   * given value that differs from the computed one is an error naming the rule.
   */
  readonly derived?: {
    /** Each key it sets, with its rule in words (for the error). */
    readonly rules: Readonly<Partial<Record<keyof SharedRecipe, string>>>;
    apply(recipe: Readonly<Recipe<P>>): Partial<SharedRecipe>;
  };
}

/** The recipe in a checkpoint's metadata, upgraded by the task; a RangeError when there is none. */
export function savedRecipe<P>(part: TaskRecipePart<P>, metadata: Record<string, unknown>, dir: string): Partial<Recipe<P>> {
  const saved = metadata.recipe;
  if (!saved || typeof saved !== 'object' || Array.isArray(saved))
    throw new RangeError(`checkpoint: ${dir} has no recipe in its metadata (not a pit training checkpoint)`);
  return (part.upgrade?.(saved as Record<string, unknown>) ?? saved) as Partial<Recipe<P>>;
}

/**
 * The shared defaults, the data set's (CIFAR's size, crop and flip), the task's (which know
 * their model best, so they win over the data set's), those the task derives from what was
 * given (defaultsFor), then `given` (undefined fields skipped); checked. A saved recipe is complete, so makeRecipe(part, saved) rebuilds it as it was.
 */
export function makeRecipe<P>(part: TaskRecipePart<P>, given: Partial<Recipe<P>> = {}): Readonly<Recipe<P>> {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const merged = {
    ...sharedRecipe.defaults, ...dataDefaults(given.data), ...part.sharedDefaults, ...part.defaultsFor?.(defined as Partial<Recipe<P>>), ...part.defaults, ...defined,
  } as Recipe<P>;
  if (!part.derived) return checkRecipe(part, merged);
  // The inputs of the rule are checked before it runs, the computed fields after.
  checkRecipe(part, merged);
  const derived = part.derived.apply(merged);
  for (const [key, value] of Object.entries(derived))
    if (key in defined && defined[key] !== value)
      throw new RangeError(`recipe: '${key}' is computed for this task (${part.derived.rules[key as keyof SharedRecipe]}), got ${JSON.stringify(defined[key])} instead of ${JSON.stringify(value)}`);
  return checkRecipe(part, { ...merged, ...derived });
}

/** The shared fields as a task's command shows them: its help lines, and its data sets as --data's choices. */
export function taskSharedFields<P>(part: TaskRecipePart<P>): RecipeField<SharedRecipe>[] {
  return sharedRecipe.fields.map((f) => {
    const key = fieldKeys(f)[0]!;
    const help = part.sharedHelp?.[key] ?? f.help;
    return key === 'data' ? { ...f, help, rule: { kind: 'choice', values: part.dataSets ?? imageDataSets } } : { ...f, help };
  });
}

/** Checks both parts (naming the first field that is wrong) and returns a frozen copy. */
export function checkRecipe<P>(part: TaskRecipePart<P>, recipe: Recipe<P>): Readonly<Recipe<P>> {
  // The task's data sets first: 'latents' for a classifier names what this task takes.
  const dataSets = part.dataSets ?? imageDataSets;
  if (!dataSets.includes(recipe.data)) failField(recipe, 'data', ruleText({ kind: 'choice', values: dataSets }));
  checkPart(sharedRecipe, recipe);
  checkPart(part, recipe);
  return Object.freeze({ ...recipe });
}
