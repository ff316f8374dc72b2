// `pit pretrain`: MAE pre-training (lib/train/tasks/pretrain.ts) through the shared training
// command (cli/run.ts). With no flags it runs the MNIST recipe of the README.
import { Command } from 'commander';
import { BLR_BATCH, modelName, pretrainTask, type MaeConfig, type MaeRecipe, type ReconstructionMetrics } from '../lib/index.js';
import type { TaskView } from './progress.js';
import { registerTrainingCommand } from './run.js';

const pretrainView: TaskView<ReconstructionMetrics> = {
  modelLine(e) {
    const m = e.config as MaeConfig, recipe = e.recipe as MaeRecipe;
    const side = Array.isArray(m.imageSize) ? m.imageSize.join('×') : `${m.imageSize}×${m.imageSize}`;
    return `MAE on ${modelName(m)} (${m.patch === 1 ? 'PiT' : `ViT/${m.patch}`}): encoder depth ${m.depth}, dim ${m.dim}, ${m.heads} heads; ` +
      `decoder depth ${m.decoderDepth}, dim ${m.decoderDim}, ${m.decoderHeads} heads; mask ${m.maskRatio}; ` +
      `${e.parameters.toLocaleString('en-US')} parameters on ${side}×${m.channels} ${recipe.data}; lr ${recipe.lr.toExponential(2)} (blr ${recipe.blr} × ${recipe.batchSize} / ${BLR_BATCH}); device ${e.device}`;
  },
  metricsText: (test, ema) => `test masked MSE ${test.loss.toFixed(4)}` + (ema ? `  (EMA ${ema.loss.toFixed(4)})` : ''),
  finalLine: (last) => last
    ? `final reconstruction loss: ${last.test.loss.toFixed(4)} (masked MSE on ${last.test.n} held-out images, normalised pixels)`
    : 'final reconstruction loss: none (the run had already finished every step)',
};

export function registerPretrain(program: Command): void {
  registerTrainingCommand(program, {
    name: 'pretrain',
    description: `pre-train a PiT (or ViT/p) encoder as a masked autoencoder (MAE); lr = blr × batch size / ${BLR_BATCH}. ` +
      'With no flags, a pit-d4w64h4 encoder with a 2 × 64 × 4 decoder on the built-in MNIST digits at 8×8',
    task: pretrainTask,
    view: pretrainView,
  });
}
