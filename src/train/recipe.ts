// The shipped recipe: the defaults of `redrafter train-drafter`, which trained models/stories260K-drafter
// (see its TRAINING.md for the command, data, time and metrics).

export const DEFAULT_RECIPE = {
  steps: 14000,
  batch: 256,
  lr: 5e-3,
  predict: 5,
  exitDim: 256,
  layers: 2,
  rnn: true,
  weightDecay: 0,
  warmupRatio: 0.05,
  clip: 1.0,
  softWeight: 0.5,
  stepDecay: 0.6,
  seed: 0,
  samples: 5000,
  temperature: 1.0,
  greedyFraction: 0.2,
  leadIn: 32,
  maxTokens: 384,
  evalEvery: 0,
  checkpointEvery: 500,
  evalBeams: 8,
  evalBeamLength: 5,
  evalTokens: 128,
  evalSamples: 4,
} as const;
