// A decoding strategy turns "the tokens so far" into "the next committed tokens". Autoregressive decoding commits one
// token per forward; ReDrafter (src/drafter) commits one or more per forward. Both share the model, the KV cache, the
// sampler and the random stream, so their outputs can be compared token for token.

import type { Model } from '../model/model.js';
import type { KvCache } from '../model/kv-cache.js';
import { createSampler, createRng, type Rng, type Sampler, type SamplingOptions } from '../sampling/index.js';

export interface Decoder {
  /** Runs the prompt through the model; returns the first generated token (not yet in the KV cache). */
  prefill(promptIds: readonly number[]): number;
  /**
   * Feeds the pending token (plus whatever the strategy speculates) and writes the newly committed tokens into `out`;
   * returns how many (at least 1). The first committed token is always the pending one's successor.
   */
  step(out: Int32Array): number;
  /** Most tokens one step can commit (size of `out`). */
  readonly maxTokensPerStep: number;
  /** Strategy-specific measurements (ReDrafter: time split and acceptance), when the strategy keeps them. */
  readonly stats?: DecoderStats;
  /** Position of the pending token (tokens already in the KV cache). */
  readonly position: number;
  dispose(): void;
}

export interface DecoderStats {
  /** Seconds spent drafting (beam search and tree building). */
  draftSeconds: number;
  /** Seconds in the verification forward. */
  verifySeconds: number;
  /** Seconds in acceptance and KV bookkeeping. */
  bookkeepingSeconds: number;
  /** acceptedAtDepth[k] = steps whose accepted path reached draft depth k+1 (k = 0 .. L−2). */
  acceptedAtDepth: number[];
  /** Steps by shape: "WxL" for tree steps, "plain" for plain decoding steps (chosen, or at the end of the context). */
  shapes: Record<string, number>;
  /** Seconds in plain decoding steps. */
  plainSeconds: number;
  /** Seconds the speculation controller spent measuring this machine before the first step (first use only). */
  calibrationSeconds?: number;
}

/** State every strategy shares: KV cache, history for the repetition penalty, sampler and seeded random stream. */
export interface SequenceState {
  readonly model: Model;
  readonly cache: KvCache;
  /** Prompt + generated tokens; history[length - 1] is the pending token once prefill has run. */
  readonly history: Int32Array;
  length: number;
  readonly sampler: Sampler;
  readonly random: Rng;
}

export interface SequenceOptions extends SamplingOptions {
  seed?: number;
  /** KV slots beyond the context that a strategy needs for speculative tokens. */
  extraSlots?: number;
}

export function createSequenceState(model: Model, options: SequenceOptions): SequenceState {
  const capacity = model.contextLength + (options.extraSlots ?? 0);
  return {
    model,
    cache: model.createCache(capacity),
    history: new Int32Array(model.contextLength + 1),
    length: 0,
    sampler: createSampler(options, model.config.vocabSize),
    random: createRng(options.seed ?? 0),
  };
}

const PREFILL_CHUNK = 64;

/**
 * Prefill shared by all strategies: the prompt in chunks of causal rows, logits for the last row only.
 * Afterwards row 0 of `model.output.logits` holds the last prompt token's logits; returns the row of
 * `model.output.hidden` that holds its final-norm hidden state.
 */
export function prefillPrompt(state: SequenceState, promptIds: readonly number[], scratch: PrefillScratch): number {
  const { model, cache } = state;
  if (promptIds.length === 0) throw new RangeError('prompt: expected at least one token, got none');
  if (promptIds.length >= model.contextLength) {
    throw new RangeError(`prompt: ${promptIds.length} tokens do not fit the context of ${model.contextLength} ` +
      `(at most ${model.contextLength - 1}, leaving room for one generated token)`);
  }
  cache.length = 0;
  state.length = 0;
  for (let start = 0; start < promptIds.length; start += PREFILL_CHUNK) {
    const count = Math.min(PREFILL_CHUNK, promptIds.length - start);
    for (let i = 0; i < count; i++) {
      scratch.tokens[i] = promptIds[start + i];
      scratch.positions[i] = start + i;
      scratch.prefixLengths[i] = start + i + 1;
      state.history[start + i] = promptIds[start + i];
    }
    model.forward(cache, {
      count, tokens: scratch.tokens, positions: scratch.positions, writeSlot: start,
      prefixLengths: scratch.prefixLengths, logits: start + count === promptIds.length ? 'last' : 'none',
    });
  }
  cache.length = promptIds.length;
  state.length = promptIds.length;
  return (promptIds.length - 1) % PREFILL_CHUNK;
}

export interface PrefillScratch {
  tokens: Int32Array;
  positions: Int32Array;
  prefixLengths: Int32Array;
}

export function createPrefillScratch(): PrefillScratch {
  return {
    tokens: new Int32Array(PREFILL_CHUNK),
    positions: new Int32Array(PREFILL_CHUNK),
    prefixLengths: new Int32Array(PREFILL_CHUNK),
  };
}

/** Plain autoregressive decoding: one forward, one token. */
export function createAutoregressiveDecoder(model: Model, options: SequenceOptions): Decoder {
  const state = createSequenceState(model, options);
  const scratch = createPrefillScratch();

  const pick = (): number => {
    const token = state.sampler.pick(model.logitsRow(0), state.history, state.length, state.random.nextUniform());
    state.history[state.length] = token;
    state.length++;
    return token;
  };

  return {
    maxTokensPerStep: 1,
    get position() {
      return state.cache.length;
    },
    prefill(promptIds) {
      prefillPrompt(state, promptIds, scratch);
      return pick();
    },
    step(out) {
      const position = state.cache.length;
      scratch.tokens[0] = state.history[state.length - 1];
      scratch.positions[0] = position;
      scratch.prefixLengths[0] = position + 1;
      model.forward(state.cache, {
        count: 1, tokens: scratch.tokens, positions: scratch.positions, writeSlot: position,
        prefixLengths: scratch.prefixLengths, logits: 'last',
      });
      state.cache.length = position + 1;
      out[0] = pick();
      return 1;
    },
    dispose() {
      state.cache.free();
    },
  };
}
