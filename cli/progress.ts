// What `pit train` shows while it runs: a live bar on a terminal (step, loss, lr, images/s,
// ETA), one plain line per epoch otherwise (logs, CI, pipes). Either way the last line of a
// finished run states the final accuracy.
import { SingleBar } from 'cli-progress';
import type { TrainEvent } from '../lib/train/index.js';

const percent = (x: number) => `${(100 * x).toFixed(2)}%`;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** An onEvent handler; `done()` stops the bar. `json` prints each event as a JSON line. */
export function progressReporter(options: { json: boolean; tty: boolean }): { onEvent: (e: TrainEvent) => void; done: () => void } {
  let bar: SingleBar | null = null;
  let started = 0, firstStep = 0;
  const stopBar = () => {
    bar?.stop();
    bar = null;
  };
  const onEvent = (e: TrainEvent) => {
    if (options.json) {
      if (e.type !== 'step') console.log(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'start': {
        const m = e.config;
        const side = Array.isArray(m.imageSize) ? m.imageSize.join('×') : `${m.imageSize}×${m.imageSize}`;
        console.log(`${e.recipe.model === 'custom' ? 'custom' : e.recipe.model} (${m.patch === 1 ? 'PiT' : `ViT/${m.patch}`}): depth ${m.depth}, dim ${m.dim}, ${m.heads} heads, ` +
          `${e.parameters.toLocaleString('en-US')} parameters on ${side}×${m.channels} ${e.recipe.data}; device ${e.device}`);
        console.log(`${e.trainImages} training / ${e.testImages} test images; ${e.recipe.epochs} epochs × ${e.stepsPerEpoch} steps of ${e.recipe.batchSize}` +
          (e.step ? `; resuming at step ${e.step}` : ''));
        started = performance.now();
        firstStep = e.step;
        if (options.tty) {
          bar = new SingleBar({
            format: 'epoch {epoch} |{bar}| step {value}/{total} loss {loss} lr {lr} {ips} img/s ETA {etaText}',
            barsize: 24, hideCursor: true, stream: process.stderr, etaBuffer: 50,
          });
          bar.start(e.totalSteps, e.step, { epoch: '-', loss: '-', lr: '-', ips: '-', etaText: '?' });
        }
        break;
      }
      case 'step': {
        if (!bar) break;
        const elapsed = (performance.now() - started) / 1000;
        const rate = (e.step - firstStep) / elapsed;
        bar.update(e.step, {
          epoch: `${Math.floor((e.step - 1) / e.stepsPerEpoch) + 1}`, loss: e.loss.toFixed(4), lr: e.lr.toExponential(2),
          ips: e.imagesPerSecond.toFixed(0), etaText: formatDuration((e.totalSteps - e.step) / rate),
        });
        break;
      }
      case 'epoch': {
        const line = `epoch ${String(e.epoch).padStart(3)}  step ${e.step}  train loss ${e.trainLoss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ` +
          `test loss ${e.test.loss.toFixed(4)}  top-1 ${percent(e.test.top1)}  top-5 ${percent(e.test.top5)}` +
          (e.ema ? `  (EMA top-1 ${percent(e.ema.top1)})` : '') + `  ${e.imagesPerSecond.toFixed(0)} img/s  ${formatDuration(e.seconds)}`;
        if (bar) process.stderr.write('\r\x1b[K'); // clear the bar's line; its next update redraws it
        console.log(line);
        break;
      }
      case 'checkpoint':
        break;
      case 'interrupted':
        stopBar();
        console.log(`stopped at step ${e.step}; checkpoint ${e.dir}`);
        break;
    }
  };
  return { onEvent, done: stopBar };
}
