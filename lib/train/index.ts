export { AdamW, excludedFromDecay, type AdamWOptions, type OptimizerState, type ParamGroup } from './optimizer.js';
export { learningRate, type ScheduleOptions } from './schedule.js';
export { Ema } from './ema.js';
export {
  CHECKSUM_KEY, decodeSafetensors, encodeSafetensors, readSafetensors, readSafetensorsMetadata, writeFileAtomic, writeSafetensors,
  type ReadOptions, type SafetensorsContents, type SafetensorsEntry,
} from './safetensors.js';
export { xxh32 } from './checksum.js';
export {
  checkpointNormalization, loadCheckpoint, loadModelWeights, modelForEval, saveCheckpoint, readCheckpointMetadata, readCheckpointWeights, EMA_FILE, MODEL_FILE, TRAIN_STATE_FILE,
  type CheckpointWeights, type LoadedCheckpoint, type LoadedModel, type LoadOptions, type ModelLoadOptions, type SaveCheckpointOptions,
} from './checkpoint.js';
export { CHECKPOINTS_DIR, latestStep, removeStaleTemps, resolveCheckpoint, saveRunCheckpoint } from './run-checkpoints.js';
export { LOCK_FILE, lockRunFolder, processStartTicks, type RunLock } from './run-lock.js';
export { checkPart, failField, fieldKeys, obeys, ruleText, textProblem, type FieldRule, type RecipeField, type RecipePart } from './recipe-fields.js';
export { checkRecipe, dataDefaults, imageDataSets, makeRecipe, savedRecipe, sharedRecipe, taskSharedFields, type DataName, type Recipe, type SharedRecipe, type TaskRecipePart } from './recipe.js';
export { imageDataBytes, imageDataSize, loadImageData, recipePermutation, type DataSplits, type ImageDataSize } from './data.js';
export { checkRunMemory, formatBytes, memoryLimit, type MemoryPart, type RunMemory } from './memory.js';
export { countedBytes, fitRun, type RunFit } from './fit.js';
export type { DataShape, EvalContext, StepContext, Task, TaskModel, TrainBatch } from './task.js';
export { taskOptimizer, trainStep, type StepOptions } from './step.js';
export { readMetrics } from './metrics-log.js';
export { METRICS_FILE, RUN_FILE, runTraining, type EpochRecord, type RunOptions, type RunResult, type StartEvent, type TrainEvent } from './runner.js';
export { classifyRecipe, classifyTask, recipeModelConfig, type ClassifierRecipe, type ClassifyRecipe } from './tasks/classify.js';
export { FINETUNE_HEAD_STD, layerDecayScale, layerId, loadPretrainedEncoder, type EncoderInit } from './tasks/finetune.js';
export { classifierFromCheckpoint, type ClassifierCheckpointOptions, type LoadedClassifier } from './tasks/classify-checkpoint.js';
export { evaluate, topKHits, type ClassificationMetrics, type Classifier, type EvaluateOptions } from './tasks/classify-metrics.js';
export {
  BLR_BATCH, decoderSize, EVAL_MASK_SEED, evaluateReconstruction, maeDecoder, maeLearningRate, maeNoDecayNames, pretrainMemory, pretrainRecipe, pretrainTask, recipeMaeConfig,
  type MaeRecipe, type PretrainRecipe, type ReconstructionMetrics,
} from './tasks/pretrain.js';
export {
  DEFAULT_DIT_MODEL, DIT_EMA, diffuseMemory, diffuseRecipe, diffusionData, diffusionNormalization, diffusionOf, ditTask, EVAL_DIFFUSION_SEED, evaluateDiffusion,
  MNIST_DIT_EPOCHS, MNIST_DIT_LR, recipeDitConfig, SD_LATENT_SCALE, SHORT_RUN_EMA, type DiffuseRecipe, type DiffusionMetrics, type DitRecipe,
} from './tasks/diffuse.js';
export { ditFromCheckpoint, generateSamples, type DitCheckpointOptions, type GenerateOptions, type GeneratedSamples, type LoadedDit } from './tasks/diffuse-sample.js';
