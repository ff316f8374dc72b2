// `pit study locality <experiment>`: the paper's locality experiments (bench/locality-study.ts,
// SPEC §5) as sets of `pit train` runs over seeds, with tables and charts.
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  classifyTask, fieldKeys, makeRecipe, parseModelName, selectBackend, sharedRecipe, taskSharedFields, writePng, type ClassifierRecipe, type DataName, type RecipeField,
} from '../lib/index.js';
import { permutationFigure, runAttentionAnalysis } from '../bench/locality-analysis.js';
import {
  patchModel, patchSweepPlan, permutePlan, positionKinds, posEmbedPlan, runLocalityStudy, type LocalityPlan,
} from '../bench/locality-study.js';
import { recipeFlags, ruleValue } from './recipe-flags.js';
import { deviceOption, integer, integers, modelNames, names, seedList } from './args.js';
import { runStudyCommand, studyDataOptions, studyRecipe, type StudyDataFlags } from './study-common.js';

/**
 * The defaults, chosen by measurement on the 2-core CPU machine (bench/STUDIES.md): MNIST
 * digits at 12×12 (144 pixel tokens, five patch sizes), the `npm start` model size, and 7
 * epochs, so that each experiment's runs fit in 30 minutes there. At 16×16 a PiT epoch costs
 * 2.4× as much; what this scale can and cannot show is in bench/STUDIES.md.
 */
export const LOCALITY_DEFAULTS = { imageSize: 12, size: 'd4w64h4', epochs: 7, seeds: [0, 1, 2] } as const;

/** Every patch size that divides the side and leaves at least 4 tokens: 12 → 6, 4, 3, 2, 1. */
export const sweepPatches = (side: number) => Array.from({ length: side }, (_, i) => side - i).filter((p) => side % p === 0 && (side / p) ** 2 >= 4);

interface CommonFlags extends StudyDataFlags {
  seeds: number[];
  epochs: number;
  imageSize: number;
  out?: string;
}

/**
 * The recipe fields a study sets itself (data flags, epochs, seeds, the setting's model and
 * permutation); `pit train`'s other flags (--lr, --weight-decay, --drop-path, --pool, …) pass
 * to every run, and `owned` names an experiment's own swept field too (pos-embed's posEmbed).
 */
const studyOwned = ['data', 'dataDir', 'imageSize', 'epochs', 'batchSize', 'seed', 'model', 'depth', 'dim', 'heads', 'patch', 'init', 'layerDecay',
  'permuteSwaps', 'permuteDelta', 'permuteSeed'];
const trainDefaults = makeRecipe(classifyTask.recipe);
type Typed = (command: Command) => Partial<ClassifierRecipe>;

/** The flags every experiment takes, as `pit train` names them; returns the reader of the recipe flags typed. */
function common(command: Command, experiment: string, owned: string[] = []): Typed {
  const fields = [...taskSharedFields(classifyTask.recipe), ...classifyTask.recipe.fields] as RecipeField<ClassifierRecipe>[];
  const flags = recipeFlags(fields.filter((f) => !fieldKeys(f).some((k) => studyOwned.includes(k) || owned.includes(k))), trainDefaults);
  command
    .addOption(new Option('--seeds <list>', 'seeds: each setting is trained once per seed; mean ± std over them').argParser(seedList)
      .default([...LOCALITY_DEFAULTS.seeds], LOCALITY_DEFAULTS.seeds.join(',')))
    .option('--epochs <n>', 'epochs of every run (the rest is `pit train`\'s recipe)', integer(1), LOCALITY_DEFAULTS.epochs)
    .option('--out <dir>', `study folder; the same command again continues it (default runs/study-locality/${experiment})`);
  studyDataOptions(command, LOCALITY_DEFAULTS.imageSize);
  for (const option of flags.options) command.addOption(option);
  return flags.typed;
}

function run(plan: LocalityPlan, f: CommonFlags, given: Partial<ClassifierRecipe>): Promise<void> {
  return runStudyCommand(`pit study locality ${plan.experiment}`, (context) => runLocalityStudy({
    plan, seeds: f.seeds, epochs: f.epochs, recipe: { ...given, ...studyRecipe(f) }, device: selectBackend({ device: f.device }).backend,
    outDir: f.out ?? `runs/study-locality/${plan.experiment}`, ...context,
  }));
}

/** δ as `--permute-delta` takes it: an integer ≥ 2, or inf (any pair) as null. */
const deltaRule = sharedRecipe.fields.find((f) => f.key === 'permuteDelta')!.rule;
const delta = (text: string) => ruleValue(deltaRule, text) as number | null;
const deltas = (value: string) => names(value).map(delta);
/** commander keeps a parser's null as '': a single δ flag is checked as it is parsed and kept as typed. */
const deltaText = (text: string) => (delta(text), text.trim());

const sizeName = (value: string) => {
  try {
    parseModelName(`pit-${value}`);
  } catch {
    throw new InvalidArgumentError('expected a model size: t, s, b, l or d<depth>w<width>h<heads>');
  }
  return value;
};

export function registerLocalityStudy(study: Command): void {
  const locality = study.command('locality').description('the paper\'s locality experiments (§5.1, §6, appendix A): patch-size trends, position embeddings, pixel permutations; ' +
    'each setting over several seeds, mean ± std, CSV, JSON lines, charts and a table');

  const patchSweep = locality.command('patch-sweep');
  const patchSweepRecipe = common(patchSweep, 'patch-sweep');
  patchSweep
    .description('accuracy against the patch size p at a fixed input size (Fig. 2b; p = 1 is PiT), or at a fixed sequence length with --fixed-tokens (Fig. 2a)')
    .option('--size <size>', 'model size of every run: t, s, b, l or d<depth>w<width>h<heads>', sizeName, LOCALITY_DEFAULTS.size)
    .option('--patches <list>', 'patch sizes, each dividing the image side (default: every divisor leaving at least 4 tokens)', integers(1))
    .option('--fixed-tokens <L>', 'instead of a fixed input, a fixed number of tokens L (a square): the side is p·√L', integer(1))
    .action((f: CommonFlags & { size: string; patches?: number[]; fixedTokens?: number }, cmd: Command) =>
      run(patchSweepPlan({ size: f.size, patches: f.patches ?? sweepPatches(f.imageSize), imageSize: f.imageSize, fixedTokens: f.fixedTokens }), f, patchSweepRecipe(cmd)));

  const posEmbed = locality.command('pos-embed');
  const posEmbedRecipe = common(posEmbed, 'pos-embed', ['posEmbed']);
  posEmbed
    .description('each model with sincos, learned and no position embedding (the paper\'s §6 table)')
    .option('--models <list>', 'models (default: ViT/2 and PiT of the default size)', modelNames(parseModelName))
    .option('--kinds <list>', 'position embeddings', (v: string) => {
      const list = names(v);
      for (const k of list) if (!(positionKinds as readonly string[]).includes(k)) throw new InvalidArgumentError(`expected ${positionKinds.join(', ')}, got "${k}"`);
      return list as (typeof positionKinds)[number][];
    }, [...positionKinds])
    .action((f: CommonFlags & { models?: string[]; kinds: (typeof positionKinds)[number][] }, cmd: Command) =>
      run(posEmbedPlan({ models: f.models ?? [patchModel(LOCALITY_DEFAULTS.size, 2), patchModel(LOCALITY_DEFAULTS.size, 1)], kinds: f.kinds }), f, posEmbedRecipe(cmd)));

  const permute = locality.command('permute');
  const permuteRecipe = common(permute, 'permute');
  permute
    .description('one fixed pixel permutation of T swaps of disjoint pixel pairs within δ (|Δrow|, |Δcol| ≤ δ − 1; inf: any pair), shared by train and test: ' +
      'accuracy against T (Fig. 5 left) and against δ (right), for ViT/p and PiT')
    .option('--models <list>', 'models swept over every T and δ (default: ViT/4 of the default size)', modelNames(parseModelName))
    .option('--ends-models <list>', 'models run only at the ends of the T sweep, none for none (default: PiT of the default size; ' +
      'with learned position embeddings every shared permutation is the same learning problem for it, SPEC §5)', (v: string) => (v.trim() === 'none' ? [] : modelNames(parseModelName)(v)))
    .option('--swaps <list>', 'T of the left panel (default: 0 to all H·W/2 pairs in quarters)', integers(0))
    .addOption(new Option('--delta <δ>', 'δ of the left panel').argParser(deltaText).default('inf'))
    .addOption(new Option('--deltas <list>', 'δ of the right panel, e.g. 2,4,8,inf').argParser(deltas).default([2, 4, null], '2,4,inf'))
    .option('--fixed-swaps <T>', 'T of the right panel (default: half of H·W/2)', integer(0))
    .option('--permute-seed <s>', 'seed of the permutation, the same for every run', integer(0), 0)
    .action((f: CommonFlags & { models?: string[]; endsModels?: string[]; swaps?: number[]; delta: string; deltas: (number | null)[]; fixedSwaps?: number; permuteSeed: number }, cmd: Command) => {
      const pairs = Math.floor((f.imageSize * f.imageSize) / 2);
      const swaps = f.swaps ?? [0, pairs / 4, pairs / 2, (3 * pairs) / 4, pairs].map(Math.floor);
      return run(permutePlan({
        models: f.models ?? [patchModel(LOCALITY_DEFAULTS.size, 4)], endsModels: f.endsModels ?? [patchModel(LOCALITY_DEFAULTS.size, 1)], swaps, delta: delta(f.delta), deltas: f.deltas,
        fixedSwaps: f.fixedSwaps ?? Math.floor(pairs / 2), permuteSeed: f.permuteSeed,
      }), f, permuteRecipe(cmd));
    });

  locality.command('show-permutation')
    .description('Fig. 4: the first held-out images before (top row) and after (bottom row) one pixel permutation, as a PNG')
    .option('--swaps <T>', 'swaps of disjoint pixel pairs (default: all H·W/2)', integer(0))
    .addOption(new Option('--delta <δ>', 'the swaps\' distance: |Δrow|, |Δcol| ≤ δ − 1, or inf (any pair)').argParser(deltaText).default('inf'))
    .option('--permute-seed <s>', 'seed of the permutation', integer(0), 0)
    .option('--n <k>', 'images shown', integer(1), 8)
    .addOption(new Option('--data <name>', 'data set').choices(['mnist', 'cifar10', 'cifar100']).default('mnist'))
    .option('--data-dir <dir>', 'folder of the CIFAR binary files')
    .option('--image-size <n>', 'resize images to n×n', integer(1), LOCALITY_DEFAULTS.imageSize)
    .requiredOption('--out <file>', 'the PNG to write')
    .action((f: { swaps?: number; delta: string; permuteSeed: number; n: number; data: DataName; dataDir?: string; imageSize: number; out: string }) => {
      const swaps = f.swaps ?? Math.floor((f.imageSize * f.imageSize) / 2);
      const d = delta(f.delta);
      writePng(f.out, permutationFigure({ recipe: { data: f.data, imageSize: f.imageSize, ...(f.dataDir ? { dataDir: f.dataDir } : {}) }, swaps, delta: d, seed: f.permuteSeed, n: f.n }));
      console.log(`wrote ${f.out}: ${f.n} held-out images before (top) and after (bottom) ${swaps} swaps within δ = ${d ?? '∞'} (--permute-seed ${f.permuteSeed})`);
    });

  locality.command('attention')
    .description('appendix A: mean attention distance and offset per layer and head (Fig. 6–7) of trained classifiers side by side, the centre pixel\'s ' +
      'attention in the first layers (Fig. 8) and the position embeddings\' similarity maps; from an unfused analysis path, never the training kernels')
    .requiredOption('--checkpoints <list>', 'pit train run or checkpoint folders, e.g. runs/pit,runs/vit2', names)
    .option('--names <list>', 'their names in the charts (default: the folders)', names)
    .option('--images <k>', 'held-out images averaged over', integer(1), 16)
    .option('--layers <list>', 'blocks (0-based) of the centre-pixel figure', integers(0), [0, 1])
    .addOption(deviceOption())
    .option('--out <dir>', 'output folder', 'runs/study-locality/attention')
    .action((f: { checkpoints: string[]; names?: string[]; images: number; layers: number[]; device: 'auto' | 'cpu' | 'cuda'; out: string }) => {
      if (f.names && f.names.length !== f.checkpoints.length)
        throw new InvalidArgumentError(`--names: expected one name per checkpoint (${f.checkpoints.length}), got ${f.names.length}`);
      const report = runAttentionAnalysis({
        checkpoints: f.checkpoints.map((path, i) => ({ path, name: f.names?.[i] ?? path })), images: f.images, mapLayers: f.layers,
        device: selectBackend({ device: f.device }).backend, outDir: f.out, command: `pit ${process.argv.slice(2).join(' ')}`,
      });
      console.log(report.table);
      console.log(`wrote ${report.files.join(', ')}`);
    });
}
