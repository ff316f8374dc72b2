// The learning-rate schedule: linear warm-up, then cosine decay to a floor (nanoGPT's
// get_lr). A pure function of the step, so a resumed run gets the same lr as an unbroken one.

export interface ScheduleOptions {
  baseLr: number;      // peak lr, reached at the last warm-up step (SPEC §1: 0.004, 1e-3 for PiT)
  warmupSteps: number; // steps of linear warm-up (20 epochs' worth in the paper's recipe)
  totalSteps: number;  // the cosine reaches minLr here; later steps stay at minLr
  minLr: number;       // the floor (SPEC §1: 1e-6)
}

function check(name: keyof ScheduleOptions, value: unknown, integer: boolean): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value)))
    throw new TypeError(`learningRate: '${name}' must be a non-negative ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  return value;
}

/**
 * The lr for 0-based `step`:
 *   warm-up   step < warmupSteps:            baseLr·(step + 1)/warmupSteps (never 0; baseLr at
 *                                            step warmupSteps − 1)
 *   cosine    warmupSteps ≤ step < totalSteps: minLr + ½(1 + cos(π·r))·(baseLr − minLr),
 *                                            r = (step − warmupSteps)/(totalSteps − warmupSteps)
 *   floor     step ≥ totalSteps:             minLr
 */
export function learningRate(step: number, options: ScheduleOptions): number {
  check('step' as keyof ScheduleOptions, step, true);
  const baseLr = check('baseLr', options.baseLr, false);
  const warmupSteps = check('warmupSteps', options.warmupSteps, true);
  const totalSteps = check('totalSteps', options.totalSteps, true);
  const minLr = check('minLr', options.minLr, false);
  if (totalSteps < warmupSteps) throw new RangeError(`learningRate: 'totalSteps' (${totalSteps}) must be ≥ 'warmupSteps' (${warmupSteps})`);
  // 1) linear warm-up
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  // 3) past the end: the floor
  if (step >= totalSteps) return minLr;
  // 2) cosine from baseLr (r = 0) down to minLr (r = 1)
  const r = (step - warmupSteps) / (totalSteps - warmupSteps);
  return minLr + 0.5 * (1 + Math.cos(Math.PI * r)) * (baseLr - minLr);
}
