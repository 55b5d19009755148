// A decoding strategy turns "the tokens so far" into "the next committed tokens". Autoregressive decoding commits one
// token per forward; ReDrafter (src/drafter) commits one or more per forward. Both share the model, the KV cache, the
// sampler and the random stream, so their outputs can be compared token for token.

import type { Model } from '../model/model.js';
import type { KvCache } from '../model/kv-cache.js';
import type { PagedKvCache } from '../model/kv-pool.js';
import { createStepBatch, type StepBatch } from './step-batch.js';
import { createSampler, createRng, tokenLogprobs, type EmittedLogprob, type Rng, type Sampler, type SamplingOptions,
  type TokenConstraint } from '../sampling/index.js';

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
  /** Where the drafter drafted: on the host's kernels, or on the model's device (WebGPU). */
  drafterOn?: 'host' | 'device';
}

/** Zeroed stats of a sequence whose trees are at most `maxLength` positions long (made once per sequence). */
export function emptyDecoderStats(maxLength: number, drafterOn: 'host' | 'device'): DecoderStats {
  return { draftSeconds: 0, verifySeconds: 0, bookkeepingSeconds: 0,
    acceptedAtDepth: new Array<number>(Math.max(0, maxLength - 1)).fill(0), shapes: {}, plainSeconds: 0, drafterOn };
}

/**
 * A decoding strategy as the batch scheduler drives it: each step the sequence adds its rows to the step's batch
 * (`plan`), one forward runs every sequence's rows, then the sequence reads its rows back (`complete`). A prompt is
 * fed in chunks first (chunked prefill); `complete` returns 0 until the prompt's last chunk has run, then the first
 * generated token. A Decoder (above) is one stepper driven alone.
 */
export interface SequenceStepper {
  /** Starts on a prompt (with a paged cache, blocks of an earlier identical prefix are reused). */
  start(promptIds: readonly number[]): void;
  /** True while prompt rows remain to be fed. */
  readonly prefilling: boolean;
  /**
   * Adds this step's rows. `budget` bounds the prompt rows of a prefill chunk. For a stepper that chooses its shape
   * each step (`adaptive`), `otherRows` and `otherTokens` are the rows and tokens the sequences with settled shapes
   * bring to the same forward, and `peers` the other adaptive sequences in it (the speculation controller weighs a tree
   * at that load). Returns the rows added.
   */
  plan(batch: StepBatch, budget: number, otherRows: number, otherTokens: number, peers: number): number;
  /**
   * Where planning awaits the device (a drafter on the GPU): plan's asynchronous form, which then replaces it. Only
   * the scheduler's steps on a model whose forward is awaited too (WebGPU) use it; on WebAssembly none awaits.
   */
  readonly planAsync?: (batch: StepBatch, budget: number, otherRows: number, otherTokens: number, peers: number) =>
    Promise<number>;
  /** Chooses its shape per step (a speculation controller); otherwise its rows per step are fixed. */
  readonly adaptive: boolean;
  /** After the forward: commits this step's tokens into `out` and returns how many (0 while the prompt runs). */
  complete(batch: StepBatch, out: Int32Array): number;
  /**
   * After complete: for each token it committed, the output row (model.logitsRow) of the logits it was picked from
   * (for log-probabilities; valid until the next forward).
   */
  readonly committedLogitRows: Int32Array;
  readonly maxTokensPerStep: number;
  readonly stats?: DecoderStats;
  /** Position of the pending token (tokens already in the KV cache). */
  readonly position: number;
  /** Prompt tokens of the latest start whose KV was reused from a paged cache's pool instead of computed. */
  readonly reusedPromptTokens: number;
  /**
   * With SequenceOptions.promptLogprobs: entry i is prompt token i's log-probability given the tokens before it
   * (null for the first), filled as the prompt's chunks run.
   */
  readonly promptLogprobs?: readonly (EmittedLogprob | null)[];
  /** Ends the sequence (the speculation controller learns from it); frees the cache when the stepper made it. */
  dispose(): void;
}

/** State every strategy shares: KV cache, history for the repetition penalty, sampler and seeded random stream. */
export interface SequenceState {
  readonly model: Model;
  readonly cache: KvCache;
  /** The cache belongs to this sequence (freed with it), not to whoever passed it in. */
  readonly ownsCache: boolean;
  /** Prompt + generated tokens; history[length - 1] is the pending token once prefill has run. */
  readonly history: Int32Array;
  length: number;
  readonly sampler: Sampler;
  readonly random: Rng;
  /**
   * Tokens are picked from the model's argmax alone (Model.argmaxRow): the sampler is an argmax of the raw logits,
   * nobody reads their values (no log-probabilities) and the backend can read back ids only (WebGPU).
   */
  readonly idsOnly: boolean;
  /** SequenceOptions.promptLogprobs: the prompt tokens' log-probabilities (see SequenceStepper), else null. */
  readonly promptLogprobs: (EmittedLogprob | null)[] | null;
  /** Alternatives kept with each log-probability (SequenceOptions.logprobs). */
  readonly topLogprobs: number;
  readonly constraint: TokenConstraint | null;
}

/**
 * The token at logits row `row` of the latest forward, as the sequence's sampler picks it: from the backend's argmax
 * where the sequence reads ids only, else the sampler over the values (one uniform drawn either way, so the random
 * stream advances alike).
 */
export function pickToken(state: SequenceState, row: number, history: Int32Array, historyLength: number): number {
  const u = state.random.nextUniform();
  if (state.idsOnly) return state.model.argmaxRow!(row);
  return state.sampler.pick(state.model.logitsRow(row), history, historyLength, u);
}

export interface SequenceOptions extends SamplingOptions {
  seed?: number;
  /** KV slots beyond the context that a strategy needs for speculative tokens. */
  extraSlots?: number;
  /**
   * A cache to decode into (the scheduler's paged caches), of at least contextLength + extraSlots slots; the caller
   * frees it. Default: a contiguous cache of its own.
   */
  cache?: KvCache;
  /** Log-probabilities are kept of each token (they need the logits' values: SequenceState.idsOnly). */
  logprobs?: number;
  /**
   * With logprobs: the prompt tokens' log-probabilities too (SequenceStepper.promptLogprobs). The prefill then reads
   * every prompt row's logits and takes no cached prefix blocks (their rows are not computed).
   */
  promptLogprobs?: boolean;
  /** The strategy reads the logits' values beyond its picks (Apple's acceptance rule). */
  readsLogitValues?: boolean;
  /** Restricts the tokens picked (JSON mode), told where the generation starts when the prompt is; one per sequence. */
  constraint?: TokenConstraint;
}

export function createSequenceState(model: Model, options: SequenceOptions): SequenceState {
  const capacity = model.contextLength + (options.extraSlots ?? 0);
  if (options.cache && options.cache.capacity < capacity) {
    throw new RangeError(`cache: ${options.cache.capacity} slots, the sequence needs ${capacity}`);
  }
  const sampler = createSampler(options, model.config.vocabSize, options.constraint);
  return {
    model,
    cache: options.cache ?? model.createCache(capacity),
    ownsCache: options.cache === undefined,
    history: new Int32Array(model.contextLength + 1),
    length: 0,
    sampler,
    random: createRng(options.seed ?? 0),
    idsOnly: sampler.argmaxOnly && options.logprobs === undefined && !options.readsLogitValues &&
      model.argmaxRow !== undefined,
    promptLogprobs: options.promptLogprobs && options.logprobs !== undefined ? [] : null,
    topLogprobs: options.logprobs ?? 0,
    constraint: options.constraint ?? null,
  };
}

/** Prompt rows a sequence decoded alone feeds per forward. */
export const PREFILL_CHUNK = 64;

function isPaged(cache: KvCache): cache is PagedKvCache {
  return 'publish' in cache;
}

/**
 * Prefill shared by all strategies: the prompt in chunks of causal rows, logits for the last prompt row only.
 * With a paged cache, whole blocks of an earlier sequence's identical prefix are taken instead of recomputed (never
 * the last prompt token, whose logits and hidden state the first step needs).
 */
export interface Prefill {
  start(promptIds: readonly number[]): void;
  readonly active: boolean;
  plan(batch: StepBatch, budget: number): number;
  /** After the forward; returns the batch row of the last prompt token once the prompt is done, else −1. */
  complete(batch: StepBatch): number;
  /** Prompt tokens taken from the pool instead of computed, in the latest start. */
  readonly reused: number;
}

export function createPrefill(state: SequenceState): Prefill {
  const { model, cache } = state;
  let prompt: readonly number[] = [];
  let cursor = 0;
  let planned = 0;
  let firstRow = 0;
  let reused = 0;
  return {
    start(promptIds) {
      if (promptIds.length === 0) throw new RangeError('prompt: expected at least one token, got none');
      if (promptIds.length >= model.contextLength) {
        throw new RangeError(`prompt: ${promptIds.length} tokens do not fit the context of ${model.contextLength} ` +
          `(at most ${model.contextLength - 1}, leaving room for one generated token)`);
      }
      prompt = promptIds;
      for (let i = 0; i < promptIds.length; i++) state.history[i] = promptIds[i];
      state.constraint?.start(promptIds.length);
      cache.length = 0;
      const scored = state.promptLogprobs;
      if (scored) {
        scored.length = 0;
        scored.push(null);
      }
      // Scoring the prompt needs every row's logits, so nothing cached is taken.
      reused = isPaged(cache) && cache.blockCount === 0 && !scored
        ? cache.reusePrefix(state.history, promptIds.length - 1) : 0;
      cache.length = reused;
      cursor = reused;
      state.length = reused;
    },
    get active() {
      return cursor < prompt.length;
    },
    get reused() {
      return reused;
    },
    plan(batch, budget) {
      const count = Math.min(budget, prompt.length - cursor);
      if (count <= 0) {
        planned = 0;
        return 0;
      }
      cache.ensure(cursor + count);
      const c = batch.cacheIndex(cache);
      firstRow = batch.count;
      const scoring = state.promptLogprobs !== null;
      for (let i = 0; i < count; i++) {
        const p = cursor + i;
        batch.addRow(c, prompt[p], p, p, p + 1, scoring || p === prompt.length - 1);
      }
      planned = count;
      return count;
    },
    complete(batch) {
      if (planned === 0) return -1;
      const scored = state.promptLogprobs;
      if (scored) {
        // Row p's logits give token p + 1's log-probability; the last row's give the first generated token.
        for (let i = 0; i < planned && cursor + i + 1 < prompt.length; i++) {
          scored.push(tokenLogprobs(model.logitsRow(batch.logitIndex[firstRow + i]), prompt[cursor + i + 1],
            state.topLogprobs));
        }
      }
      cursor += planned;
      cache.length = cursor;
      state.length = cursor;
      if (isPaged(cache)) cache.publish(state.history, cursor);
      const last = firstRow + planned - 1;
      planned = 0;
      return cursor === prompt.length ? last : -1;
    },
  };
}

/** Publishes a paged cache's newly filled blocks for prefix reuse (a no-op for contiguous caches). */
export function publishCommitted(state: SequenceState): void {
  if (isPaged(state.cache)) state.cache.publish(state.history, state.cache.length);
}

/**
 * Drives one stepper alone, one forward per call, as the Decoder interface. The forward is the scheduler's
 * (forwardSequences over a one-sequence batch), so a sequence decoded alone runs exactly the batched code.
 */
export function decoderOf(model: Model, stepper: SequenceStepper): Decoder {
  const batch = createStepBatch();
  const first = new Int32Array(1);
  const forwardOnce = (): void => {
    const started = performance.now();
    model.forwardSequences(batch);
    batch.forwardSeconds = (performance.now() - started) / 1000;
  };
  return {
    get maxTokensPerStep() {
      return stepper.maxTokensPerStep;
    },
    get stats() {
      return stepper.stats;
    },
    get position() {
      return stepper.position;
    },
    prefill(promptIds) {
      stepper.start(promptIds);
      for (;;) {
        batch.reset();
        stepper.plan(batch, PREFILL_CHUNK, 0, 0, 0);
        forwardOnce();
        if (stepper.complete(batch, first) > 0) return first[0];
      }
    },
    step(out) {
      batch.reset();
      stepper.plan(batch, PREFILL_CHUNK, 0, 0, 0);
      forwardOnce();
      return stepper.complete(batch, out);
    },
    dispose() {
      stepper.dispose();
    },
  };
}

/** Plain autoregressive decoding: one forward, one token. */
export function createAutoregressiveDecoder(model: Model, options: SequenceOptions): Decoder {
  return decoderOf(model, createAutoregressiveStepper(model, options));
}

/**
 * What an autoregressive stepper that stands in for ReDrafter reports (generate.ts: a speculation controller that
 * rules trees out): its steps as plain ones in `stats`, and, when the sequence ends having run alone, its decoding
 * steps' mean seconds to `observe` (the controller's plain cost). Per step only a count and a clock read: the time is
 * the span from the first decoding step's plan to the last step's completion.
 */
export interface PlainReport {
  stats: DecoderStats;
  observe(secondsPerStep: number): void;
}

export function createAutoregressiveStepper(model: Model, options: SequenceOptions, report?: PlainReport):
  SequenceStepper {
  const state = createSequenceState(model, options);
  const { cache } = state;
  const prefill = createPrefill(state);
  let row = -1;
  const committedLogitRows = new Int32Array(1);
  let steps = 0;
  let firstPlan = 0;
  let lastComplete = 0;
  /** Every step's forward carried this sequence alone (only then is a step's time the plain cost). */
  let alone = true;

  const pick = (logitsRow: number): number => {
    committedLogitRows[0] = logitsRow;
    const token = pickToken(state, logitsRow, state.history, state.length);
    state.history[state.length] = token;
    state.length++;
    return token;
  };

  return {
    maxTokensPerStep: 1,
    adaptive: false,
    committedLogitRows,
    get position() {
      return cache.length;
    },
    get reusedPromptTokens() {
      return prefill.reused;
    },
    ...(state.promptLogprobs ? { promptLogprobs: state.promptLogprobs } : {}),
    get prefilling() {
      return prefill.active;
    },
    start(promptIds) {
      prefill.start(promptIds);
    },
    plan(batch, budget) {
      batch.declareReads(!state.idsOnly, false);
      if (prefill.active) return prefill.plan(batch, budget);
      if (report && steps === 0) firstPlan = performance.now();
      const position = cache.length;
      cache.ensure(position + 1);
      row = batch.addRow(batch.cacheIndex(cache), state.history[state.length - 1], position, position, position + 1,
        true);
      return 1;
    },
    complete(batch, out) {
      if (prefill.active) {
        const last = prefill.complete(batch);
        if (last < 0) return 0;
        out[0] = pick(batch.logitIndex[last]);
        return 1;
      }
      cache.length++;
      publishCommitted(state);
      out[0] = pick(batch.logitIndex[row]);
      if (report) {
        steps++;
        report.stats.shapes['plain'] = steps;
        lastComplete = performance.now();
        if (batch.count !== 1) alone = false;
      }
      return 1;
    },
    ...(report ? { stats: report.stats } : {}),
    dispose() {
      if (report && steps > 0) {
        // From the first plan to the last completion: the steps' forwards and picks, and the scheduler's and the
        // caller's turns between them (a little more than a plain step's cost, which leans towards trying trees).
        report.stats.plainSeconds = (lastComplete - firstPlan) / 1000;
        if (alone) report.observe(report.stats.plainSeconds / steps);
      }
      if (state.ownsCache) state.cache.free();
    },
  };
}
