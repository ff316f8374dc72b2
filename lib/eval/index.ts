// Evaluation of generated images (SPEC §6): Fréchet distance, conditional accuracy, k-NN
// precision / recall in a trained classifier's feature space, the nearest-training-image
// check, and the .npy files samples arrive in.
export { classifierFeatures, labelAgreement, type ClassifierFeatures, type FeatureOptions, type ImageSet } from './features.js';
export { featureStatistics, frechetDistance, type FeatureStatistics, type FrechetDistance } from './frechet.js';
export { eigenFunction, matmul64, symmetricEigen, type SymmetricEigen } from './linalg.js';
export { kthNeighbourRadii, manifoldCoverage, pairwiseDistances, precisionRecall, type PrecisionRecall } from './knn.js';
export { nearestImages, type NearestImages, type NearestOptions } from './nearest.js';
export {
  evaluateGeneration, type DistanceSummary, type GenerationClassifier, type GenerationEvalOptions, type GenerationMetrics, type SampleAndFloor,
} from './generation.js';
export { decodeNpy, encodeNpy, floatToHalf, halfToFloat, npyFloat32, npyInt32, readNpy, readNpyHeader, writeNpy, type NpyArray, type NpyDtype } from './npy.js';
