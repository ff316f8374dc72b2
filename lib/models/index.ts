export {
  VisionTransformer, vit, presetConfig, vitPresets, defaultVitConfig, parameterCount, sincosPositionTable, type VitConfig,
} from './vit.js';
