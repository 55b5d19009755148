// The public API of redrafter.
//
//   const loaded = await loadModel({ model: 'stories260K.bin', threads: 2 });
//   for await (const chunk of generate(loaded, { prompt: 'Once upon a time', maxTokens: 64 })) {
//     process.stdout.write(chunk.text);
//   }
//   await loaded.close();

export { loadModel, loadDrafter, type LoadOptions, type LoadedModel, type LoadedDrafter } from './engine/load.js';
export {
  generate, generateText, type GenerateOptions, type Generation, type GenerationChunk, type GenerationResult,
  type GenerationStats, type FinishReason, type ResponseFormat,
} from './engine/generate.js';
export { resolveDefaultModel, type DefaultModelFiles } from './engine/default-model.js';
export { schedulerFor, type Scheduler, type SchedulerOptions, type SchedulerStats } from './engine/scheduler.js';
export type { EmittedLogprob, TokenLogprob } from './sampling/index.js';
export type { Decoder } from './engine/decoder.js';
export { readCheckpoint, type Checkpoint, type TensorSource } from './model/checkpoint.js';
export { createModel, type Model, type ForwardBatch, type ForwardOutput, type ModelOptions } from './model/model.js';
export type { LlamaConfig } from './model/config.js';
export type { KvCache } from './model/kv-cache.js';
export { createKernels } from './kernels/index.js';
export type { Kernels, KernelOptions } from './kernels/types.js';
export type { Tokenizer, StreamingDecoder } from './tokenizer/types.js';
export { FormatError } from './formats/errors.js';

// ReDrafter building blocks (spec §1–§4).
export {
  readDrafter, writeDrafter, writeDrafter as saveDrafter, randomDrafter, createDrafter, beamSearch, packBeams,
  createBeamSearch, buildTree, createPackedTree, acceptExact, acceptApple, createAcceptance, createAppleScratch,
  MAX_BEAM_LENGTH, MAX_BEAM_WIDTH,
  type Drafter, type DrafterConfig, type DrafterWeights, type Beams, type BeamSearchResult, type PackedTree,
  type Acceptance,
} from './drafter/index.js';
export type { AcceptanceRule, RedrafterStep } from './engine/redrafter.js';
export { createSampler, createRng, sample, type Sampler, type SamplingOptions, type Rng } from './sampling/index.js';
export { compileJsonSchema, JsonSchemaError, type JsonSchema } from './sampling/index.js';

// Formats and tokenizers.
export { readGguf, writeGguf, convertToGguf } from './formats/index.js';
export { openTokenizer, readTokenizerFile } from './engine/load.js';
export type { ChatMessage, ChatTemplateOptions } from './tokenizer/types.js';
