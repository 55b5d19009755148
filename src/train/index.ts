// The trainer's surface: data (distillation and text), the training graph, AdamW and schedule, checkpoints, the
// training loop and evaluation by ReDrafter decoding.

export { createTrainingGraph } from './graph.js';
export type { BatchResult, GraphOptions, TrainableTensor, TrainingBatch, TrainingGraph } from './graph.js';
export { adamWStep, clipGradients, createAdamWState, gradientNorm, learningRate, ADAMW_DEFAULTS } from './optim.js';
export type { AdamWOptions, AdamWState, OptimizedTensor } from './optim.js';
export { buildDataset, hiddenStates, readDataset, trainingPositions, writeDataset } from './data.js';
export type { BuildSpec, Dataset, DatasetMeta, DistillOptions } from './data.js';
export { sampleSequences } from './sample.js';
export type { SampleJob, SampledSequence } from './sample.js';
export { loadTrainingState, saveTrainingState } from './checkpoint.js';
export type { TrainingRecipe, TrainingState } from './checkpoint.js';
export { trainDrafter } from './trainer.js';
export type { EvalSettings, TrainDrafterOptions, TrainDrafterResult } from './trainer.js';
export { evaluateDecoding } from './evaluate.js';
export type { DecodingEval, DecodingEvalOptions } from './evaluate.js';
export { DEFAULT_RECIPE } from './recipe.js';
export { HELDOUT_PROMPTS, TRAINING_PROMPTS } from './story-prompts.js';
