// generate(): an async iterator of text chunks and token ids, with stop conditions (EOS, stop strings, max tokens,
// AbortSignal) that behave the same whatever the decoding strategy and however many tokens a step commits.

import { performance } from 'node:perf_hooks';
import { bothConstraints, buildTokenTrie, compileJsonSchema, createGrammarConstraint, createJsonConstraint,
  createMinTokensConstraint, validateSamplingOptions, type EmittedLogprob, type Grammar, type JsonSchema,
  type SamplingOptions, type TokenConstraint, type TokenTrie } from '../sampling/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { LoadedDrafter, LoadedModel } from './load.js';
import type { ChatMessage } from '../tokenizer/types.js';
import { createAutoregressiveStepper, emptyDecoderStats, type DecoderStats, type SequenceStepper } from './decoder.js';
import { createRedrafterStepper, type AcceptanceRule, type RedrafterStep } from './redrafter.js';
import { inModelTurn, schedulerFor, type SequenceRequest } from './scheduler.js';
import { drafterPlacement } from './drafter-placement.js';
import type { DeviceBeamSearch } from '../drafter/beam-search.js';
import { CONTROLLER_MAX_LENGTH, CONTROLLER_MAX_NODES } from './speculation-costs.js';
import type { KvCache } from '../model/kv-cache.js';
import { validateBeamShape } from '../drafter/beam-search.js';
import { prepareSpeculationController, speculationController } from './speculation.js';
import { decodingMode } from './tuning.js';

export interface GenerateOptions extends SamplingOptions {
  /** Text prompt, encoded with BOS (special tokens written in it, such as "</s>", become their ids). */
  prompt?: string;
  /** A conversation rendered with the model's chat template (the template writes BOS itself). */
  messages?: readonly ChatMessage[];
  /** Token ids fed as they are (no BOS added); takes precedence over `prompt`. */
  promptIds?: readonly number[];
  /** Most tokens to generate (default: until EOS or the context is full). */
  maxTokens?: number;
  /** Seed of the sampling random stream (default 0). */
  seed?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  stop?: readonly string[];
  /** Tokens that end generation (default: the model's EOS ids; llama2.c models also stop at BOS, as run.c does). */
  stopTokens?: readonly number[];
  signal?: AbortSignal;
  /** Decode with ReDrafter using this drafter (from loadDrafter); omit for autoregressive decoding. */
  drafter?: LoadedDrafter;
  /**
   * Beam width W of a fixed tree. Without beams and beamLength the speculation controller chooses every step's tree,
   * or plain decoding, from this machine's measured costs and the running acceptance (the default); give either to
   * force a shape (the other defaults to W 4 / L 5).
   */
  beams?: number;
  /** Beam length L counting g0, of a fixed tree (see beams). */
  beamLength?: number;
  /** ReDrafter verification rule (default "exact", which reproduces autoregressive output token for token). */
  acceptance?: AcceptanceRule;
  /** ReDrafter only: called after every tree step with what it drafted and accepted. */
  onStep?: (step: RedrafterStep) => void;
  /**
   * Report each generated token's log-probability and this many most likely alternatives (0–20) in the chunks'
   * `logprobs`: the model's distribution (log-softmax of the raw logits), the same with and without ReDrafter.
   */
  logprobs?: number;
  /**
   * With logprobs: also score the prompt (Generation.promptLogprobs), as evaluation harnesses ask a server with
   * `echo`. Every prompt row's logits are then computed (no cached prefix is reused). maxTokens 0 scores the prompt
   * and generates nothing.
   */
  promptLogprobs?: boolean;
  /**
   * 'json_object' (OpenAI's JSON mode): only tokens that keep the output a prefix of one JSON object are picked, and
   * the end token only once it is complete (needs a tokenizer). { type: 'json_schema', schema }: the same for the
   * values a JSON Schema accepts (src/sampling/json-schema.ts says which keywords; a schema that cannot be enforced
   * is refused with a JsonSchemaError). Default 'text'. Exact with ReDrafter like the rest.
   */
  responseFormat?: ResponseFormat;
  /** The end tokens (stopTokens) cannot be picked before this many tokens are generated (vLLM's min_tokens). */
  minTokens?: number;
}

export type ResponseFormat = 'text' | 'json_object' | { type: 'json_schema'; schema: JsonSchema };

/** The vocabulary's byte trie, built once per tokenizer (~0.1 s for 32000 tokens) for every schema constraint. */
const tokenTries = new WeakMap<Tokenizer, TokenTrie>();

function tokenTrie(tokenizer: Tokenizer, vocabSize: number): TokenTrie {
  let trie = tokenTries.get(tokenizer);
  if (trie === undefined || trie.vocabSize !== vocabSize) {
    trie = buildTokenTrie(vocabSize, (id) => (id < tokenizer.vocabSize ? tokenizer.tokenBytes(id) : new Uint8Array(0)));
    tokenTries.set(tokenizer, trie);
  }
  return trie;
}

/** The grammar of a json_schema response format (compiled once per generate call), else undefined. */
function responseGrammar(format: unknown, path: string, tokenizer: Tokenizer | null | undefined): Grammar | undefined {
  if (format === undefined || format === 'text' || format === 'json_object') {
    if (format === 'json_object' && !tokenizer) {
      throw new RangeError(`responseFormat: json_object needs the model's tokenizer; ${path} has none`);
    }
    return undefined;
  }
  if (typeof format !== 'object' || format === null || (format as { type?: unknown }).type !== 'json_schema' ||
    !('schema' in format)) {
    throw new RangeError(`responseFormat: expected "text", "json_object" or { type: "json_schema", schema }, got ` +
      `${JSON.stringify(format)}`);
  }
  if (!tokenizer) throw new RangeError(`responseFormat: json_schema needs the model's tokenizer; ${path} has none`);
  return compileJsonSchema((format as { schema: unknown }).schema);
}

export interface GenerationChunk {
  /** New text (may be empty while a multi-byte character or a possible stop string is pending). */
  text: string;
  /** Token ids committed in this step. */
  ids: number[];
  /** With options.logprobs: one entry per id. */
  logprobs?: EmittedLogprob[];
}

export type FinishReason = 'eos' | 'stop' | 'length' | 'context' | 'abort';

export interface GenerationStats {
  promptTokens: number;
  /** Generated tokens. */
  tokens: number;
  /** Decoding steps (forwards after the prompt). */
  steps: number;
  /**
   * Tokens each step added to the output, in order (the first token, from the prompt forward, is not a step; a step
   * cut by EOS, a stop token or the token limit counts what it emitted).
   */
  committedPerStep: number[];
  /** Prompt tokens whose KV was reused from an earlier sequence's cached blocks (prefix reuse) instead of computed. */
  cachedPromptTokens: number;
  /** Seconds to the first generated token: waiting for admission and the prompt's forwards. */
  prefillSeconds: number;
  decodeSeconds: number;
  /** Generated tokens per second of decoding (excluding the prompt forward). */
  tokensPerSecond: number;
  /** ReDrafter only: time split and acceptance by draft depth. */
  redrafter?: DecoderStats;
}

export interface Generation extends AsyncIterable<GenerationChunk> {
  readonly promptIds: readonly number[];
  readonly stats: GenerationStats;
  /** Set once the iterator is done. */
  readonly finishReason: FinishReason | null;
  /**
   * With options.promptLogprobs, once the prompt has run (before the first chunk): entry i is prompt token i's
   * log-probability given the tokens before it, with logprobs alternatives; null for the first token.
   */
  readonly promptLogprobs: readonly (EmittedLogprob | null)[] | null;
}

export interface GenerationResult {
  promptIds: number[];
  ids: number[];
  /** With options.logprobs: one entry per id. */
  logprobs?: EmittedLogprob[];
  /** With options.promptLogprobs: one entry per prompt id (Generation.promptLogprobs). */
  promptLogprobs?: (EmittedLogprob | null)[];
  text: string;
  finishReason: FinishReason;
  stats: GenerationStats;
}

function resolvePrompt(loaded: LoadedModel, options: GenerateOptions): number[] {
  if (options.promptIds) {
    const vocab = loaded.model.config.vocabSize;
    options.promptIds.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new RangeError(`promptIds[${i}]: expected a token id in 0..${vocab - 1}, got ${id}`);
      }
    });
    return [...options.promptIds];
  }
  if (options.prompt === undefined && options.messages === undefined) {
    throw new RangeError('generate: give a prompt, messages or promptIds');
  }
  const tokenizer = loaded.tokenizer;
  if (!tokenizer) throw new RangeError(`generate: ${loaded.path} has no tokenizer; pass a tokenizer or promptIds`);
  if (options.messages) {
    if (!tokenizer.applyChatTemplate) {
      throw new RangeError(`generate: ${loaded.path} has no chat template; pass a prompt instead of messages`);
    }
    return tokenizer.encode(tokenizer.applyChatTemplate(options.messages, { addGenerationPrompt: true }), { bos: false });
  }
  return tokenizer.encode(options.prompt ?? '', { bos: true });
}

export function generate(loaded: LoadedModel, options: GenerateOptions): Generation {
  validateSamplingOptions(options);
  if (options.logprobs !== undefined && !(Number.isInteger(options.logprobs) && options.logprobs >= 0 &&
    options.logprobs <= 20)) {
    throw new RangeError(`logprobs: expected an integer in 0..20, got ${options.logprobs}`);
  }
  if (options.maxTokens !== undefined && !(Number.isInteger(options.maxTokens) && options.maxTokens >= 0)) {
    throw new RangeError(`maxTokens: expected a non-negative integer, got ${options.maxTokens}`);
  }
  const grammar = responseGrammar(options.responseFormat, loaded.path, loaded.tokenizer);
  if (options.minTokens !== undefined && !(Number.isInteger(options.minTokens) && options.minTokens >= 0)) {
    throw new RangeError(`minTokens: expected a non-negative integer, got ${options.minTokens}`);
  }
  if (options.promptLogprobs && options.logprobs === undefined) {
    throw new RangeError('promptLogprobs: needs logprobs (the number of alternatives to report, 0–20)');
  }
  if (options.drafter && (options.beams !== undefined || options.beamLength !== undefined)) {
    validateBeamShape(options.beams ?? DEFAULT_BEAMS, options.beamLength ?? DEFAULT_BEAM_LENGTH);
  }
  const promptIds = resolvePrompt(loaded, options);
  const { model, tokenizer } = loaded;
  if (promptIds.length >= model.contextLength) {
    throw new RangeError(`prompt: ${promptIds.length} tokens do not fit the context of ${model.contextLength} ` +
      `(at most ${model.contextLength - 1}, leaving room for one generated token)`);
  }
  const stopTokens = new Set(options.stopTokens ?? defaultStopTokens(loaded));
  const stopStrings = (options.stop ?? []).filter((s) => s.length > 0);
  const maxTokens = Math.min(options.maxTokens ?? Infinity, model.contextLength - promptIds.length + 1);
  const stats: GenerationStats = {
    promptTokens: promptIds.length, tokens: 0, steps: 0, committedPerStep: [], cachedPromptTokens: 0,
    prefillSeconds: 0, decodeSeconds: 0,
    tokensPerSecond: 0,
  };
  let finishReason: FinishReason | null = null;
  const scoring = options.promptLogprobs === true;
  let promptLogprobs: (EmittedLogprob | null)[] | null = null;

  async function* run(): AsyncGenerator<GenerationChunk> {
    if (maxTokens === 0 && !scoring) {
      finishReason = 'length';
      return;
    }
    // Every generation on a model goes through its scheduler: concurrent generations share forwards.
    let calibrationSeconds: number | undefined;
    // Scoring alone (maxTokens 0) still runs the prompt, whose forward picks a first token: it is dropped below.
    const request: SequenceRequest = {
      promptIds, maxTokens: Math.max(1, maxTokens), stopTokens, extraSlots: extraSlotsOf(options), signal: options.signal,
      logprobs: options.logprobs,
      createStepper(cache) {
        // Constraints of the sequence's own (their state follows its tokens): JSON mode, which may end where the
        // model's end tokens may (with no stop tokens, as ignore_eos asks, still those: the finished object is then
        // followed by end tokens to the limit rather than by nothing at all), and min_tokens.
        const vocab = model.config.vocabSize;
        const ends = stopTokens.size > 0 ? stopTokens : defaultStopTokens(loaded);
        const json = options.responseFormat === 'json_object'
          ? createJsonConstraint(vocab, (id) => (id < tokenizer!.vocabSize ? tokenizer!.tokenBytes(id)
            : new Uint8Array(0)), ends)
          : grammar ? createGrammarConstraint(grammar, tokenTrie(tokenizer!, vocab), ends) : undefined;
        const least = options.minTokens ? createMinTokensConstraint(vocab, stopTokens, options.minTokens) : undefined;
        const constraint = json && least ? bothConstraints(json, least, vocab) : json ?? least;
        const made = createStepper(loaded, { ...options, ...(constraint ? { constraint } : {}) }, cache, deviceSearch);
        calibrationSeconds = made.calibrationSeconds;
        return made.stepper;
      },
    };
    // On a GPU model (forwards awaited), where the drafter drafts is decided and its speculation controller calibrated
    // by awaited forwards first, in the model's turn (no step of the scheduler runs meanwhile).
    let asyncCalibration = 0;
    let deviceSearch: DeviceBeamSearch | undefined;
    const drafter = options.drafter;
    if (model.forwardSequencesAsync && drafter) {
      await inModelTurn(model, async () => {
        deviceSearch = (await drafterPlacement(loaded, drafter)).deviceSearch;
        if (options.beams === undefined && options.beamLength === undefined) {
          asyncCalibration = await prepareSpeculationController(loaded, drafter, deviceSearch);
        }
      });
    }
    const sequence = schedulerFor(loaded).add(request);
    const textDecoder = tokenizer?.createDecoder();
    const stepTokens = new Int32Array(MAX_TOKENS_PER_STEP);
    // Text not yet released because it may be the start of a stop string.
    let held = '';
    const release = (ids: number[], done: boolean): GenerationChunk => {
      let text = held;
      if (textDecoder) {
        for (const id of ids) if (!stopTokens.has(id)) text += textDecoder.push(id);
        if (done) text += textDecoder.flush();
      }
      held = '';
      for (const stop of stopStrings) {
        const at = text.indexOf(stop);
        if (at >= 0) {
          finishReason = 'stop';
          return { text: text.slice(0, at), ids };
        }
      }
      if (!done && stopStrings.length > 0) {
        const keep = longestStopPrefixSuffix(text, stopStrings);
        held = text.slice(text.length - keep);
        text = text.slice(0, text.length - keep);
      }
      return { text, ids };
    };

    try {
      const started = performance.now();
      const firstCount = await sequence.next(stepTokens);
      const prefilled = performance.now();
      stats.prefillSeconds = (prefilled - started) / 1000;
      stats.cachedPromptTokens = sequence.cachedPromptTokens;
      const decoderStats = sequence.stepper?.stats;
      if (decoderStats) {
        stats.redrafter = decoderStats;
        if (calibrationSeconds !== undefined) decoderStats.calibrationSeconds = calibrationSeconds + asyncCalibration;
      }
      if (firstCount === 0) {
        finishReason = 'abort';
        return;
      }
      if (scoring) promptLogprobs = [...(sequence.stepper?.promptLogprobs ?? [])];
      if (maxTokens === 0) {
        finishReason = 'length';
        return;
      }
      let pending = Array.from(stepTokens.subarray(0, firstCount));
      let fromStep = false;
      for (;;) {
        // Apply stop tokens and the token limit to what this step committed.
        const ids: number[] = [];
        for (const id of pending) {
          ids.push(id);
          stats.tokens++;
          if (stopTokens.has(id)) {
            finishReason = 'eos';
            break;
          }
          if (stats.tokens >= maxTokens) {
            finishReason = maxTokens === model.contextLength - promptIds.length + 1 ? 'context' : 'length';
            break;
          }
        }
        if (fromStep) stats.committedPerStep.push(ids.length);
        const chunk = release(ids, finishReason !== null);
        if (options.logprobs !== undefined) chunk.logprobs = sequence.takeLogprobs().slice(0, ids.length);
        stats.decodeSeconds = (performance.now() - prefilled) / 1000;
        stats.tokensPerSecond = stats.decodeSeconds > 0 ? (stats.tokens - 1) / stats.decodeSeconds : 0;
        yield chunk;
        if (finishReason !== null) return;
        const count = options.signal?.aborted ? 0 : await sequence.next(stepTokens);
        if (count === 0) {
          finishReason = 'abort';
          if (held) yield { text: held, ids: [] };
          return;
        }
        stats.steps++;
        fromStep = true;
        pending = Array.from(stepTokens.subarray(0, count));
      }
    } finally {
      sequence.cancel();
    }
  }

  return {
    promptIds,
    stats,
    get finishReason() {
      return finishReason;
    },
    get promptLogprobs() {
      return promptLogprobs;
    },
    [Symbol.asyncIterator]: run,
  };
}

/** Runs a whole generation and collects its text and ids. */
export async function generateText(loaded: LoadedModel, options: GenerateOptions): Promise<GenerationResult> {
  const generation = generate(loaded, options);
  const ids: number[] = [];
  const logprobs: EmittedLogprob[] = [];
  let text = '';
  for await (const chunk of generation) {
    ids.push(...chunk.ids);
    if (chunk.logprobs) logprobs.push(...chunk.logprobs);
    text += chunk.text;
  }
  return { promptIds: [...generation.promptIds], ids, text, finishReason: generation.finishReason ?? 'length',
    stats: generation.stats, ...(options.logprobs !== undefined ? { logprobs } : {}),
    ...(generation.promptLogprobs ? { promptLogprobs: [...generation.promptLogprobs] } : {}) };
}

const DEFAULT_BEAMS = 4;
const DEFAULT_BEAM_LENGTH = 5;

/** Longest step any strategy commits (the longest beam). */
const MAX_TOKENS_PER_STEP = 64;

/** KV slots beyond the context the sequence's tree needs. */
function extraSlotsOf(options: GenerateOptions): number {
  if (!options.drafter) return 0;
  if (options.beams !== undefined || options.beamLength !== undefined) {
    return 1 + (options.beams ?? DEFAULT_BEAMS) * ((options.beamLength ?? DEFAULT_BEAM_LENGTH) - 1);
  }
  return CONTROLLER_MAX_NODES;
}

function createStepper(loaded: LoadedModel, options: GenerateOptions & { constraint?: TokenConstraint }, cache: KvCache,
  deviceSearch?: DeviceBeamSearch):
  { stepper: SequenceStepper; calibrationSeconds?: number } {
  // With `deviceSearch` the drafter drafts on the model's device (WebGPU: the sequence's forwards and plans are
  // awaited).
  const sequence = { ...options, cache, deviceSearch };
  if (!options.drafter) return { stepper: createAutoregressiveStepper(loaded.model, sequence) };
  if (options.beams !== undefined || options.beamLength !== undefined) {
    return { stepper: createRedrafterStepper(loaded.model, options.drafter.drafter, {
      ...sequence, beams: options.beams ?? DEFAULT_BEAMS, beamLength: options.beamLength ?? DEFAULT_BEAM_LENGTH,
    }) };
  }
  const { controller, calibrationSeconds } = speculationController(loaded, options.drafter,
    decodingMode(options.temperature ?? 0));
  if (!controller.treesCanPayAlone()) {
    // Every step would be plain whatever the sequence accepts: decode autoregressively, report it as plain steps.
    const stats = emptyDecoderStats(CONTROLLER_MAX_LENGTH, deviceSearch ? 'device' : 'host');
    return { stepper: createAutoregressiveStepper(loaded.model, sequence,
      { stats, observe: (seconds) => controller.costs.observePlain(seconds) }), calibrationSeconds };
  }
  return { stepper: createRedrafterStepper(loaded.model, options.drafter.drafter, { ...sequence, controller }),
    calibrationSeconds };
}

/** The tokens that end a generation by default (GenerateOptions.stopTokens): the model's end tokens. */
export function defaultStopTokens(loaded: LoadedModel): number[] {
  const { config } = loaded.model;
  // run.c ends a story when the model emits BOS: stories models delimit documents with it, never with EOS.
  return loaded.format === 'llama2c' ? [...config.eosIds, config.bosId] : config.eosIds;
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const stop of stops) {
    for (let len = Math.min(stop.length - 1, text.length); len > best; len--) {
      if (text.endsWith(stop.slice(0, len))) {
        best = len;
        break;
      }
    }
  }
  return best;
}
