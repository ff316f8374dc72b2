// Gaussian diffusion for DiT (SPEC §4): the float64 schedule and respacing, the training loss,
// and the samplers. The model plugs in as a Denoiser.
export {
  GaussianDiffusion, linearBetas, linspace, respacedTimesteps, type DiffusionOptions, type Posterior,
} from './schedule.js';
export {
  qSample, qPosteriorMean, lossCoefficients, drawTimesteps, trainingLosses, checkModelOutput,
  type Denoiser, type TrainingLosses, type TrainingLossOptions,
} from './loss.js';
export {
  sampleDiffusion, stepScalars, type Sampler, type GuidedChannels, type FixedVariance, type SamplerStepOptions,
  type SampleOptions, type SampleProgress,
} from './sample.js';
