// pixel-transformer: the public API.
export * from './tensor.js';
export * from './ops/index.js';
export { selectBackend, native, type BackendChoice, type Selection, type BuildInfo, type MemoryInfo } from './native.js';
export * from './data/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './train/index.js';
export * from './viz/index.js';
export * from './diffusion/index.js';
export * from './eval/index.js';
export * from './analysis/index.js';
