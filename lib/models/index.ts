export {
  VisionTransformer, VitEncoder, vit, modelConfig, defaultVitConfig, parameterCount, tokenGrid,
  type BuildOptions, type EncoderConfig, type VitConfig,
} from './vit.js';
export { modelName, modelSizes, parseModelName, vitPresets, type ModelShape } from './names.js';
export { activationsPerToken, estimateInferenceMemory, estimateTrainingMemory, type TrainingMemory, type TrainingMemoryOptions } from './vit-memory.js';
