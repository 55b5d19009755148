// The sampling layer's surface: a seeded random stream and the logit-processing token picker. Depends on nothing.
export { createRng, createRngFromState, seedState, splitmix32 } from './random.js';
export type { Rng, RngState } from './random.js';
export {
  createSampler,
  DEFAULT_SAMPLING_OPTIONS,
  resolveSamplingOptions,
  sample,
  validateSamplingOptions,
} from './sampler.js';
export type { ResolvedSamplingOptions, Sampler, SamplingOptions } from './sampler.js';
export { tokenLogprobs, type EmittedLogprob, type TokenLogprob } from './logprobs.js';
export { bothConstraints, createJsonConstraint, createMinTokensConstraint, type TokenConstraint } from './constraints.js';
export { buildTokenTrie, createGrammarConstraint, GrammarBuilder, matchGrammar, type Grammar, type GrammarSymbol,
  type TokenTrie } from './grammar.js';
export { compileJsonSchema, JsonSchemaError, type JsonSchema } from './json-schema.js';
