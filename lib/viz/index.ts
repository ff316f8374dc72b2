// Pictures of what a model does: the MAE reconstruction grid and figure, the grid of generated samples,
// heat-map grids of attention and position similarity.
export {
  defaultScale, gridLayout, maeReconstruct, maeReconstructionGrid, MASK_GREY, PANEL_SEPARATOR, TRIPLET_GAP, writePng,
  type GridLayout, type GridOptions, type ReconstructionInputs, type RgbaImage,
} from './mae-grid.js';
export { maeFigure, type MaeFigure, type MaeFigureOptions } from './mae-figure.js';
export { SAMPLE_GAP, sampleGrid, sampleGridLayout, sampleImage, type SampleGridInputs, type SampleGridLayout } from './sample-grid.js';
export {
  centreQueryFigure, HEATMAP_GAP, HEATMAP_MISSING, heatmapGrid, heatmapLayout, positionSimilarityFigure, viridis, VIRIDIS_STOPS,
  type HeatmapGridInputs, type HeatmapGridOptions, type HeatmapLayout,
} from './heatmap.js';
