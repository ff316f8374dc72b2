// What a trained model learned about locality (SPEC §5, the paper's appendix A): attention
// probabilities from an unfused path, mean attention distance and offset per head, the centre
// query's maps and the position embeddings' similarities. The pictures are in lib/viz, the
// distance-per-layer chart in bench/attention-chart.ts. A study's use, for a trained model and
// a few normalised held-out images x (B, C, H, W) on its device:
//
//   const { maps } = attentionMaps(model, x, { layers: [0, 1, 2, 3] });   // 0-based blocks.N
//   const geometry = tokenGeometry(model);
//   const perLayer = maps.map((m) => sortHeads(attentionDistances(m, geometry)));  // say LOCALITY_DEFINITION
//   writePng('centre.png', centreQueryFigure(maps.map((m) => centreQueryMaps(m, geometry))));
//   writePng('position.png', positionSimilarityFigure(positionSimilarity(model)));
//   const chart = localityChart([{ name: 'PiT', layers: perLayer }, vitP], 'distance');  // renderSvg / renderPng
export {
  attentionMaps, DEFAULT_MAX_BYTES_PER_LAYER, softmaxFromQkv,
  type AttentionMap, type AttentionMapsOptions, type AttentionMapsResult,
} from './attention-maps.js';
export {
  attentionDistances, centreQueryMaps, LOCALITY_DEFINITION, sortHeads, tokenGeometry,
  type CentreQueryMaps, type CentreQueryOptions, type HeadLocality, type LayerLocality, type TokenGeometry,
} from './locality.js';
export { positionSimilarity, type PositionSimilarity } from './position-similarity.js';
