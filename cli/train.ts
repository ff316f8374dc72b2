// `pit train` (the classification task through the shared training command, cli/run.ts) and
// `pit eval`. Flags and defaults come from the recipe tables, so the CLI cannot drift from
// `npm start`.
import { Command } from 'commander';
import { selectBackend } from '../lib/native.js';
import {
  classifierFromCheckpoint, classifyTask, evaluate, makeRecipe, modelName, sharedRecipe,
  type ClassificationMetrics, type ClassifierRecipe, type VitConfig,
} from '../lib/index.js';
import { deviceOption, integer, skipChecksumOption } from './args.js';
import type { TaskView } from './progress.js';
import { registerTrainingCommand } from './run.js';

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

const classifyView: TaskView<ClassificationMetrics> = {
  modelLine(e) {
    const m = e.config as VitConfig, recipe = e.recipe as ClassifierRecipe;
    const side = Array.isArray(m.imageSize) ? m.imageSize.join('×') : `${m.imageSize}×${m.imageSize}`;
    return `${modelName(m)} (${m.patch === 1 ? 'PiT' : `ViT/${m.patch}`}): depth ${m.depth}, dim ${m.dim}, ${m.heads} heads, ` +
      `${e.parameters.toLocaleString('en-US')} parameters on ${side}×${m.channels} ${recipe.data}; device ${e.device}`;
  },
  metricsText: (test, ema) =>
    `test loss ${test.loss.toFixed(4)}  top-1 ${percent(test.top1)}  top-5 ${percent(test.top5)}` + (ema ? `  (EMA top-1 ${percent(ema.top1)})` : ''),
  finalLine: (last) => last
    ? `final top-1 accuracy: ${percent(last.test.top1)} on ${last.test.n} held-out images (top-5 ${percent(last.test.top5)})`
    : 'final top-1 accuracy: none (the run had already finished every step)',
};

export function registerTrain(program: Command): void {
  registerTrainingCommand(program, {
    name: 'train',
    description: 'train a PiT (or ViT/p) classifier; with no flags, the npm start recipe on the built-in MNIST digits',
    task: classifyTask,
    view: classifyView,
  });
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a checkpoint on its data set\'s held-out split (loss, top-1, top-5)')
    .requiredOption('--checkpoint <path>', 'a run folder (its latest checkpoint) or a checkpoint folder')
    .option('--data-dir <dir>', 'folder of the CIFAR binary files, if not where the run found them')
    .option('--ema', 'evaluate the EMA weights (ema.safetensors)', false)
    .option('--batch-size <n>', 'images per batch', integer(1), sharedRecipe.defaults.evalBatchSize)
    .addOption(deviceOption())
    .addOption(skipChecksumOption('evaluated'))
    .option('--json', 'print one JSON object', false)
    .action((flags: { checkpoint: string; dataDir?: string; ema: boolean; batchSize: number; device: 'auto' | 'cpu' | 'cuda'; skipChecksum: boolean; json: boolean }) => {
      // The weights file is read once, its checksum verified before its metadata (recipe,
      // config, normalization; ema.safetensors holds the model's) is used.
      const device = selectBackend({ device: flags.device }).backend;
      const { model, normalization, checkpoint: dir, recipe: saved } =
        classifierFromCheckpoint(flags.checkpoint, { ema: flags.ema, verify: !flags.skipChecksum, device, command: 'eval' });
      try {
        const recipe = makeRecipe(classifyTask.recipe, { ...saved, ...(flags.dataDir ? { dataDir: flags.dataDir } : {}) });
        const { test } = classifyTask.data(recipe);
        const metrics = evaluate(model, test, { normalization, batchSize: flags.batchSize });
        if (flags.json) {
          console.log(JSON.stringify({ checkpoint: dir, weights: flags.ema ? 'ema' : 'model', data: test.name, ...metrics }));
          return;
        }
        console.log(`${dir} (${flags.ema ? 'EMA' : 'trained'} weights) on ${test.name}, ${metrics.n} images`);
        console.log(`loss ${metrics.loss.toFixed(4)}  top-1 ${percent(metrics.top1)}  top-5 ${percent(metrics.top5)}`);
      } finally {
        model.dispose();
      }
    });
}
