export {
  VisionTransformer, VitEncoder, vit, modelConfig, defaultVitConfig, parameterCount, tokenGrid, blockParameterCount, trunkParameterCount,
  type BuildOptions, type ClassifierBuildOptions, type EncoderConfig, type VitConfig,
} from './vit.js';
export { ditModelName, ditSizes, modelName, modelSizes, parseDitName, parseModelName, vitPresets, type ModelShape } from './names.js';
export { activationsPerToken, estimateInferenceMemory, estimateTrainingMemory, vitBlockBytes, type TrainingMemory, type TrainingMemoryOptions } from './vit-memory.js';
export {
  MaskedAutoencoder, mae, maeConfig, defaultMaeConfig, maeParameterCount, checkMaeConfig, keptTokens, randomMasking,
  type MaeConfig, type MaeForwardOptions, type MaeOutput, type RandomMasking,
} from './mae.js';
export { estimateMaeInferenceMemory, estimateMaeTrainingMemory, maeTokens } from './mae-memory.js';
export {
  DiffusionTransformer, dit, ditConfig, defaultDitConfig, ditParameterCount, checkDitConfig, ditOutputChannels, dropLabels,
  timestepEmbedding, timestepFrequencyDim, TimestepEmbedder, LabelEmbedder, FinalLayer,
  type DitConfig, type DitCountOptions, type DitForwardOptions, type DitInput,
} from './dit.js';
export { ditActivationsPerToken, estimateDitInferenceMemory, estimateDitTrainingMemory } from './dit-memory.js';
