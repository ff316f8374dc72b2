export { AdamW, excludedFromDecay, type AdamWOptions, type OptimizerState, type ParamGroup } from './optimizer.js';
export { learningRate, type ScheduleOptions } from './schedule.js';
export { Ema } from './ema.js';
export { decodeSafetensors, encodeSafetensors, readSafetensors, readSafetensorsMetadata, writeFileAtomic, writeSafetensors, type SafetensorsContents, type SafetensorsEntry } from './safetensors.js';
export {
  loadCheckpoint, loadModelWeights, saveCheckpoint, saveRunCheckpoint, resolveCheckpoint, readCheckpointMetadata, CHECKPOINTS_DIR, EMA_FILE, MODEL_FILE, TRAIN_STATE_FILE,
  type LoadedCheckpoint, type SaveCheckpointOptions,
} from './checkpoint.js';
export { evaluate, topKHits, type ClassificationMetrics, type Classifier, type EvaluateOptions } from './evaluate.js';
export { checkRecipe, customModel, dataDefaults, defaultRecipe, makeRecipe, loadClassificationData, recipeModelConfig, type ClassificationData, type ClassifierRecipe, type DataName } from './recipe.js';
export { METRICS_FILE, trainClassifier, type EpochRecord, type TrainEvent, type TrainOptions, type TrainResult } from './classifier.js';
export { classifierStep, type StepOptions } from './step.js';
