// The drafter folder's surface: the ReDrafter head, its checkpoints, beam search, the prefix tree and verification.

export { DEFAULT_TOP_K, LOG_0, drafterTensorShapes, type DrafterConfig } from './config.js';
export {
  canonicalDrafterName, checkDrafterAgainstModel, randomDrafter, readDrafter, writeDrafter, type DrafterWeights,
  type RandomDrafterOptions,
} from './checkpoint.js';
export { createDrafter, type Drafter } from './drafter.js';
export {
  MAX_BEAM_LENGTH, MAX_BEAM_WIDTH, createBeamSearch, drafterLogProbs, validateBeamShape, type BeamSearch,
  type BeamSearchOptions, type BeamSearchResult,
} from './beam-search.js';
export { buildTree, createPackedTree, findChild, type PackedTree } from './tree.js';
export {
  acceptApple, acceptExact, createAcceptance, createAppleScratch, samplerPicker, type Acceptance, type AppleScratch,
  type NodeLogits, type NodePicker,
} from './verify.js';
export { beamSearch, packBeams, type Beams } from './convenience.js';
