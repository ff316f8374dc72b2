// What a training command shows while it runs: a live bar on a terminal (step, loss, lr,
// images/s, ETA), one plain line per epoch otherwise (logs, CI, pipes). The task's view says
// how its model and its metrics read. And `pit sample`'s bar over the sampling steps.
import { SingleBar } from 'cli-progress';
import type { EpochRecord, StartEvent, TrainEvent } from '../lib/index.js';

/** How one task's run reads on the terminal. */
export interface TaskView<Metrics> {
  /** The run's first line: the model, its size, the data and the device. */
  modelLine(start: StartEvent): string;
  /** The epoch line's held-out part, e.g. "test loss 0.3120  top-1 91.20%  top-5 99.05%". */
  metricsText(test: Metrics, ema: Metrics | undefined): string;
  /** The last line of a finished run (e.g. its final accuracy), from its last epoch if any ran. */
  finalLine(last: EpochRecord<Metrics> | null): string;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** An onEvent handler; `done()` stops the bar. `json` prints each event as a JSON line. */
export function progressReporter<Metrics>(view: TaskView<Metrics>, options: { json: boolean; tty: boolean }): { onEvent: (e: TrainEvent<unknown, Metrics>) => void; done: () => void } {
  let bar: SingleBar | null = null;
  let started = 0, firstStep = 0;
  const stopBar = () => {
    bar?.stop();
    bar = null;
  };
  const onEvent = (e: TrainEvent<unknown, Metrics>) => {
    if (options.json) {
      if (e.type !== 'step') console.log(JSON.stringify(e));
      return;
    }
    switch (e.type) {
      case 'start': {
        console.log(view.modelLine(e));
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
          `${view.metricsText(e.test, e.ema)}  ${e.imagesPerSecond.toFixed(0)} img/s  ${formatDuration(e.seconds)}`;
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

/**
 * A bar over sampling steps on stderr when `show` (a terminal, no --json): `onStep(done, total)`
 * for generateSamples, `stop()` when it returns or throws. Without `show`, onStep is undefined.
 */
export function samplingProgress(show: boolean): { onStep?: (done: number, total: number) => void; stop: () => void } {
  if (!show) return { stop: () => undefined };
  const bar = new SingleBar({ format: 'sampling |{bar}| step {value}/{total} ETA {eta_formatted}', barsize: 24, hideCursor: true, stream: process.stderr });
  let started = false;
  return {
    onStep(done, total) {
      if (!started) bar.start(total, done);
      else bar.update(done);
      started = true;
    },
    stop: () => started && bar.stop(),
  };
}
