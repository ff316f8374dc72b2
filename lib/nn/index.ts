// Layers as modules with timm's parameter names, and the parts every model family shares.
export { Module, type LoadStateOptions, type LoadStateReport, type StateDict } from './module.js';
export { InitRng, initDevice, initRng, isLinearWeight, redrawParameters, type Init } from './init.js';
export { attentionPrecision, BF16_HEAD_DIMS, checkPrecision, checkRecompute, gemmCompute, maxSeed, RECOMPUTE_MODES, substream, type ForwardOptions, type Precision, type RandomPurpose, type RandomStream, type Recompute } from './forward.js';
export { Linear, type LinearOptions } from './linear.js';
export { LayerNorm } from './layernorm.js';
export { Attention } from './attention.js';
export { Mlp, type MlpOptions } from './mlp.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { Block, dropPathResidual, maybeRecompute, type BlockOptions } from './block.js';
export { BlockStack, runBlocks, type BlockStackOptions } from './block_stack.js';
export { AdaLNBlock, AdaLNBlockStack, AdaLNModulation, plainLayerNorm, type AdaLNBlockOptions } from './adaln_block.js';
export { PatchEmbed, patchify, unpatchify } from './patch_embed.js';
export { positionKinds, positionTable, sincosPositionTable, type PositionKind } from './position.js';
