// Differentiable ops: each pairs a native forward with its native backward.
export { matmul, linear, type GemmCompute, type MatmulOptions } from './matmul.js';
export { attention, attentionWithLse, type AttentionPrecision } from './attention.js';
export { layerNorm } from './layernorm.js';
export { gelu, silu } from './activations.js';
export { modulate, gatedResidual } from './modulate.js';
export { add, sub, mul, scale } from './elementwise.js';
export { sum, mean } from './reduce.js';
export { softmaxCrossEntropy, mse, type CrossEntropyOptions } from './losses.js';
export { gatherTokens, concatTokens, sliceTokens, permute } from './tokens.js';
export { adamwStep, gradNorm, type AdamwHyper } from './optim.js';
export {
  perSampleAxpby, diffusionLoss, diffusionVbTerms, diffusionStep, DIFFUSION_LOSS_COEFS, type DiffusionLoss, type DiffusionStepScalars,
} from './diffusion.js';
