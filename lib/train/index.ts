export { AdamW, excludedFromDecay, type AdamWOptions, type OptimizerState, type ParamGroup } from './optimizer.js';
export { learningRate, type ScheduleOptions } from './schedule.js';
export { Ema } from './ema.js';
export { decodeSafetensors, encodeSafetensors, readSafetensors, writeFileAtomic, writeSafetensors, type SafetensorsContents, type SafetensorsEntry } from './safetensors.js';
export { loadCheckpoint, saveCheckpoint, MODEL_FILE, TRAIN_STATE_FILE, type LoadedCheckpoint, type SaveCheckpointOptions } from './checkpoint.js';
