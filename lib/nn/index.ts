// Layers as modules with timm's parameter names.
export { Module, type StateDict } from './module.js';
export { InitRng, initRng, type Init } from './init.js';
export { Linear, type LinearOptions } from './linear.js';
export { LayerNorm } from './layernorm.js';
export { Attention } from './attention.js';
export { Mlp } from './mlp.js';
export { Block, dropPathResidual, type Noise } from './block.js';
