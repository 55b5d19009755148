// Request bodies as the schemas admit them, their translation into GenerateOptions, and the response shapes of
// OpenAI's completions and chat completions APIs (plus llama-server's `timings`).

import type { FinishReason, GenerateOptions, GenerationStats } from '../engine/generate.js';
import type { LoadedDrafter } from '../engine/load.js';
import { compileJsonSchema, JsonSchemaError, type EmittedLogprob, type JsonSchema } from '../sampling/index.js';
import type { ChatMessage } from '../tokenizer/types.js';

export interface SamplingBody {
  model?: string | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  seed?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null;
  ignore_eos?: boolean | null;
  min_tokens?: number | null;
  stop_token_ids?: number[] | null;
  response_format?: {
    type: 'text' | 'json_object' | 'json_schema';
    json_schema?: { name?: string; description?: string; schema?: JsonSchema; strict?: boolean | null } | null;
  } | null;
  /** llama-server's field: the same as response_format {type: "json_schema"} with this schema. */
  json_schema?: JsonSchema | null;
  n?: number | null;
  speculative?: 'auto' | false | { beams: number; beam_length: number } | null;
}

export interface CompletionBody extends SamplingBody {
  /** One prompt (text or token ids), or a batch of them. */
  prompt: string | number[] | string[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
}

export interface ChatBody extends SamplingBody {
  messages: { role: string; content: string | { type: 'text'; text: string }[] }[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}

/** An error answered as `{ error: { message, type, param, code } }` with `status`. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null,
    readonly code: string | null = null, readonly type: string = status >= 500 ? 'server_error'
      : 'invalid_request_error') {
    super(message);
  }
}

export function errorBody(message: string, type: string, param: string | null, code: string | null):
  { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message, type, param, code } };
}

/**
 * A JSON schema to follow (response_format json_schema, or llama-server's json_schema field), checked here so that
 * a schema that cannot be enforced is a 400 naming the keyword and its place.
 */
function responseSchema(body: SamplingBody): Pick<GenerateOptions, 'responseFormat'> {
  let schema: JsonSchema | undefined;
  let param: string;
  if (body.response_format?.type === 'json_schema') {
    param = 'response_format.json_schema.schema';
    schema = body.response_format.json_schema?.schema;
    if (schema === undefined) {
      throw new ApiError(400, `${param}: required with response_format {"type": "json_schema"}`, param,
        'missing_required_parameter');
    }
    if (body.json_schema != null) {
      throw new ApiError(400, 'json_schema: give the schema once, in response_format or in json_schema',
        'json_schema', 'invalid_value');
    }
  } else if (body.json_schema != null) {
    param = 'json_schema';
    schema = body.json_schema;
    if (body.response_format != null && body.response_format.type !== 'text') {
      throw new ApiError(400, `json_schema: cannot be combined with response_format ${body.response_format.type}`,
        'json_schema', 'invalid_value');
    }
  } else {
    return {};
  }
  try {
    compileJsonSchema(schema);
  } catch (error) {
    if (error instanceof JsonSchemaError) throw new ApiError(400, `${param}: ${error.message}`, param, 'invalid_value');
    throw error;
  }
  return { responseFormat: { type: 'json_schema', schema } };
}

/** Defaults where OpenAI's API has them (temperature 1, completions' max_tokens 16); a random seed when none. */
export function generateOptions(body: SamplingBody, maxTokens: number | undefined, drafter: LoadedDrafter | undefined,
  randomSeed: () => number, defaultStops: readonly number[]): GenerateOptions {
  const options: GenerateOptions = {
    maxTokens,
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k ?? 0,
    minP: body.min_p ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    frequencyPenalty: body.frequency_penalty ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    logitBias: body.logit_bias ?? undefined,
    seed: body.seed ?? randomSeed(),
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    // ignore_eos drops the model's end tokens; stop_token_ids adds to what is left.
    ...(body.ignore_eos === true || body.stop_token_ids?.length ? { stopTokens: [
      ...(body.ignore_eos === true ? [] : defaultStops), ...(body.stop_token_ids ?? [])] } : {}),
    ...(body.min_tokens ? { minTokens: body.min_tokens } : {}),
    ...(body.response_format?.type === 'json_object' ? { responseFormat: 'json_object' as const } : {}),
    ...responseSchema(body),
  };
  const speculative = body.speculative ?? 'auto';
  if (speculative === false) return options;
  if (speculative === 'auto') return { ...options, drafter };
  if (!drafter) {
    throw new ApiError(400, 'speculative: a fixed tree needs a drafter, and this server has none (started with ' +
      '--drafter none or without one); send "auto" or false', 'speculative', 'unsupported_value');
  }
  return { ...options, drafter, beams: speculative.beams, beamLength: speculative.beam_length };
}

/** Message contents as text: a string, or the concatenated text parts. */
export function chatMessages(body: ChatBody): ChatMessage[] {
  return body.messages.map((m) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join(''),
  }));
}

/**
 * The template used when the tokenizer has none (llama2.c tokenizers, GGUF files without tokenizer.chat_template):
 * each message as "<|role|>\ncontent\n", then "<|assistant|>\n"; encoded with BOS.
 */
export function defaultChatTemplate(messages: readonly ChatMessage[]): string {
  return messages.map((m) => `<|${m.role}|>\n${m.content}\n`).join('') + '<|assistant|>\n';
}

export type OpenAiFinishReason = 'stop' | 'length';

/** EOS, a stop token or a stop string → "stop"; the token limit or the end of the context → "length". */
export function finishReasonOf(reason: FinishReason | null): OpenAiFinishReason {
  return reason === 'eos' || reason === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** The usage of a request's generations (one per prompt of a batch), summed. */
export function usageOf(stats: readonly GenerationStats[]): Usage {
  const sum = (of: (s: GenerationStats) => number): number => stats.reduce((total, s) => total + of(s), 0);
  const prompt = sum((s) => s.promptTokens);
  const completion = sum((s) => s.tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion,
    // OpenAI's field for prompt tokens served from the prompt cache: here, KV blocks reused from earlier requests.
    prompt_tokens_details: { cached_tokens: sum((s) => s.cachedPromptTokens) } };
}

/** llama-server's per-response figures, plus the speculation ones ReDrafter adds. */
export interface Timings {
  prompt_n: number;
  prompt_ms: number;
  prompt_per_token_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_token_ms: number;
  predicted_per_second: number;
  /** Draft tokens proposed: W × (L − 1) per tree step (beams before their shared prefixes are merged). */
  draft_n: number;
  /** Draft tokens the model accepted. */
  draft_n_accepted: number;
  /** Decoding steps after the prompt forward. */
  steps: number;
  /** Mean tokens committed per step. */
  tokens_per_step: number;
  /** Steps by shape: "WxL" for tree steps, "plain" for plain decoding steps. */
  shapes: Record<string, number>;
}

/** Draft tokens proposed and accepted in one generation, from its shapes and acceptance by depth. */
export function draftCounts(stats: GenerationStats): { proposed: number; accepted: number } {
  const redrafter = stats.redrafter;
  if (!redrafter) return { proposed: 0, accepted: 0 };
  let proposed = 0;
  for (const [shape, count] of Object.entries(redrafter.shapes)) {
    const match = /^(\d+)x(\d+)$/.exec(shape);
    if (match) proposed += Number(match[1]) * (Number(match[2]) - 1) * count;
  }
  return { proposed, accepted: redrafter.acceptedAtDepth.reduce((a, b) => a + b, 0) };
}

export function timingsOf(stats: GenerationStats): Timings {
  const round = (value: number): number => Math.round(value * 1000) / 1000;
  const promptMs = stats.prefillSeconds * 1000;
  const predictedMs = stats.decodeSeconds * 1000;
  const committed = stats.committedPerStep.reduce((a, b) => a + b, 0);
  const { proposed, accepted } = draftCounts(stats);
  return {
    prompt_n: stats.promptTokens,
    prompt_ms: round(promptMs),
    prompt_per_token_ms: stats.promptTokens > 0 ? round(promptMs / stats.promptTokens) : 0,
    prompt_per_second: promptMs > 0 ? round(stats.promptTokens / (promptMs / 1000)) : 0,
    predicted_n: stats.tokens,
    predicted_ms: round(predictedMs),
    predicted_per_token_ms: stats.tokens > 1 ? round(predictedMs / (stats.tokens - 1)) : 0,
    predicted_per_second: round(stats.tokensPerSecond),
    draft_n: proposed,
    draft_n_accepted: accepted,
    steps: stats.steps,
    tokens_per_step: stats.steps > 0 ? round(committed / stats.steps) : 0,
    shapes: stats.redrafter ? { ...stats.redrafter.shapes } : stats.steps > 0 ? { plain: stats.steps } : {},
  };
}

/** OpenAI's two logprobs shapes, from the engine's per-token figures; `piece` is a token's text. */
export function completionLogprobs(entries: readonly EmittedLogprob[], piece: (id: number) => string, textOffset: number):
  CompletionLogprobs {
  const tokens: string[] = [];
  const offsets: number[] = [];
  let offset = textOffset;
  for (const entry of entries) {
    const text = piece(entry.token);
    tokens.push(text);
    offsets.push(offset);
    offset += text.length;
  }
  return {
    tokens,
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [piece(t.token), t.logprob]))),
    text_offset: offsets,
  };
}

/** The legacy completions' logprobs object. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/**
 * The echoed prompt's logprobs (completions with `echo`): entry i is prompt token i's, given the tokens before it;
 * the first token has none (null), as OpenAI reports it.
 */
export function promptCompletionLogprobs(promptIds: readonly number[], entries: readonly (EmittedLogprob | null)[],
  piece: (id: number) => string): CompletionLogprobs {
  // Entries 1.. are the prompt's own tokens (GenerateOptions.promptLogprobs), laid out as a completion's after the
  // first token.
  const first = piece(promptIds[0]);
  const rest = completionLogprobs(entries.slice(1) as EmittedLogprob[], piece, first.length);
  return { tokens: [first, ...rest.tokens], token_logprobs: [null, ...rest.token_logprobs],
    top_logprobs: [null, ...rest.top_logprobs], text_offset: [0, ...rest.text_offset] };
}

/** The echoed prompt's logprobs followed by the completion's (null when none were asked for). */
export function joinCompletionLogprobs(a: CompletionLogprobs, b: CompletionLogprobs | null): CompletionLogprobs {
  if (!b) return a;
  return { tokens: [...a.tokens, ...b.tokens], token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: [...a.top_logprobs, ...b.top_logprobs], text_offset: [...a.text_offset, ...b.text_offset] };
}

export function chatLogprobs(entries: readonly EmittedLogprob[], piece: (id: number) => string):
  { content: { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number;
    bytes: number[] }[] }[] } {
  const encoder = new TextEncoder();
  const item = (id: number, logprob: number): { token: string; logprob: number; bytes: number[] } => {
    const token = piece(id);
    return { token, logprob, bytes: Array.from(encoder.encode(token)) };
  };
  return { content: entries.map((e) => ({ ...item(e.token, e.logprob),
    top_logprobs: e.top.map((t) => item(t.token, t.logprob)) })) };
}
