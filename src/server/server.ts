// `createServer`: an OpenAI-compatible HTTP server (fastify) over one loaded model and, optionally, its drafter.
// Generation requests go through a bounded FIFO queue that admits up to maxSequences at once; those run through the
// model's batch scheduler (engine/scheduler.ts: one forward per step over all of them, paged KV with prefix reuse).
// See README "Server".

import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { basename, extname } from 'node:path';
import { PassThrough } from 'node:stream';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { defaultStopTokens, generate, type GenerateOptions, type Generation, type GenerationChunk,
  type GenerationStats } from '../engine/generate.js';
import { schedulerFor, type Scheduler } from '../engine/scheduler.js';
import type { LoadedDrafter, LoadedModel } from '../engine/load.js';
import { createMetrics, setCacheConfig } from './metrics.js';
import { AbortedError, QueueFullError, RequestQueue, ShuttingDownError } from './queue.js';
import {
  chatSchema, completionSchema, detokenizeSchema, tokenizeSchema, validationMessage, type AjvError,
} from './schemas.js';
import {
  ApiError, chatLogprobs, chatMessages, completionLogprobs, defaultChatTemplate, draftCounts, errorBody, finishReasonOf,
  generateOptions, joinCompletionLogprobs, promptCompletionLogprobs, timingsOf, usageOf, type ChatBody,
  type CompletionBody, type CompletionLogprobs, type SamplingBody,
} from './openai.js';
import type { EmittedLogprob } from '../sampling/index.js';

export interface ServerOptions {
  /** The model, or its loading: /health answers 503 and generation endpoints 503 until it resolves. */
  loaded: LoadedModel | Promise<LoadedModel>;
  /** The drafter for speculative decoding (or its loading); none: plain decoding only. */
  drafter?: LoadedDrafter | Promise<LoadedDrafter | undefined>;
  /** The model id of /v1/models and the `model` field (default: the model file's name without extension). */
  modelName?: string;
  /** Requests to /v1/*, /tokenize and /detokenize need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Most generation requests that may wait for their turn (default 16); one more gets 429. */
  maxQueue?: number;
  /** Sequences generated at once, batched into one forward per step (default 8). */
  maxSequences?: number;
  /** Bytes of KV memory shared by all sequences (default: room for maxSequences full-context sequences, ≤ 1 GiB). */
  kvBudgetBytes?: number;
  /** Largest request body in bytes (default 1 MiB); larger: 413. */
  bodyLimit?: number;
  /** Milliseconds a client has to send its whole request (default 30 s), against slow-body clients. */
  requestTimeoutMs?: number;
  /** Milliseconds close() lets admitted requests finish before aborting them (default 30 s). */
  shutdownDeadlineMs?: number;
  /** fastify's logger (default off). */
  logger?: boolean;
}

interface Served {
  loaded: LoadedModel;
  drafter: LoadedDrafter | undefined;
  id: string;
  scheduler: Scheduler;
}

// Routes that need the API key: everything but /health and /metrics, which probes and scrapers read unauthenticated.
const PUBLIC_ROUTES = new Set(['/health', '/metrics']);

export function createServer(options: ServerOptions): FastifyInstance {
  const maxSequences = options.maxSequences ?? 8;
  if (!Number.isInteger(maxSequences) || maxSequences < 1 || maxSequences > 1024) {
    throw new RangeError(`maxSequences: expected an integer in 1..1024, got ${options.maxSequences}`);
  }
  const maxQueue = options.maxQueue ?? 16;
  if (!Number.isInteger(maxQueue) || maxQueue < 0) {
    throw new RangeError(`maxQueue: expected an integer >= 0, got ${maxQueue}`);
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs < 1) {
    throw new RangeError(`requestTimeoutMs: expected an integer >= 1, got ${requestTimeoutMs}`);
  }
  const metrics = createMetrics();
  const queue = new RequestQueue({
    capacity: maxSequences, maxWaiting: maxQueue,
    onChange: (waiting, running) => {
      metrics.waiting.set(waiting);
      metrics.running.set(running);
    },
  });
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    requestTimeout: requestTimeoutMs,
    // Node checks the request and header deadlines only every connectionsCheckingInterval (30 s by default), so a 30 s
    // limit could let a slow client hold its socket for up to a minute; check at a quarter of the limit (at most 1 s).
    http: { connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(requestTimeoutMs / 4))),
      headersTimeout: requestTimeoutMs },
    // Requests arriving during close() get our own 503 (the OpenAI error shape) from the onRequest hook below.
    return503OnClosing: false,
    // Types are checked, never coerced ("1" is not a number), and the value sent is kept for the error message.
    ajv: { customOptions: { coerceTypes: false, verbose: true, allErrors: false } },
    // "__proto__" / "constructor.prototype" keys are unknown fields like any other: dropped (unknown fields are
    // ignored), not a 400 that claims the body is not valid JSON.
    onProtoPoisoning: 'remove',
    onConstructorPoisoning: 'remove',
    // A URL that does not decode ("/%ff") gets the OpenAI error shape too, not fastify's.
    frameworkErrors: (error, _request, reply) => {
      // The option is typed generic over each route's reply schema; this one serves every route, as a plain reply.
      void (reply as unknown as FastifyReply).code(400)
        .send(errorBody(error.message, 'invalid_request_error', null, 'invalid_url'));
    },
    // Errors node's HTTP parser raises before fastify sees a request (a request past requestTimeout, oversize headers,
    // malformed HTTP) are answered on the raw socket in the OpenAI error shape, then the socket is closed.
    clientErrorHandler: (error, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, message, code] = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, `the request did not arrive within ${requestTimeoutMs} ms`, 'request_timeout']
        : error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers too large', 'headers_too_large']
          : [400, 'malformed HTTP request', 'bad_request'];
      const body = JSON.stringify(errorBody(message, 'invalid_request_error', null, code));
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\n` +
          `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      }
      socket.destroy();
    },
  });
  // Bodies are JSON only. fastify would also hand a text/plain body to the handlers as a string (a 400 "body: expected
  // an object"); refusing it is clearer (415), and keeps browsers' preflight-free text/plain POSTs from other origins
  // from starting generations.
  app.removeContentTypeParser('text/plain');

  let served: Served | undefined;
  let loadFailure: Error | undefined;
  void Promise.all([options.loaded, options.drafter]).then(([loaded, drafter]) => {
    const id = options.modelName ?? basename(loaded.path, extname(loaded.path));
    const scheduler = schedulerFor(loaded, { maxSequences, kvBudgetBytes: options.kvBudgetBytes });
    setCacheConfig(metrics, { blockSize: scheduler.pool.blockSize, blocks: scheduler.pool.blocks });
    served = { loaded, drafter, id, scheduler };
  }, (error: unknown) => {
    loadFailure = error instanceof Error ? error : new Error(String(error));
  });
  const ready = (): Served => {
    if (served) return served;
    throw new ApiError(503, loadFailure ? `the model failed to load: ${loadFailure.message}` : 'the model is loading',
      null, 'model_not_ready');
  };

  // A new connection or request may be a generation on its way: the scheduler's next step lets the event loop take
  // it first (Scheduler.noteArrival: otherwise, under load, a burst of new connections is accepted one per step).
  app.server.on('connection', () => served?.scheduler.noteArrival());
  const keyDigest = options.apiKey === undefined ? undefined : digest(options.apiKey);
  let closing = false;
  app.addHook('onRequest', async (request) => {
    if (request.method === 'POST') served?.scheduler.noteArrival();
    if (closing && !PUBLIC_ROUTES.has(request.url.split('?')[0] ?? '')) {
      throw new ApiError(503, 'the server is shutting down and accepts no new requests', null, 'shutting_down');
    }
    if (!keyDigest || PUBLIC_ROUTES.has(request.url.split('?')[0] ?? '')) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    // Digests of equal length let timingSafeEqual compare without revealing how much of the key matched.
    if (!match || !timingSafeEqual(digest(match[1] ?? ''), keyDigest)) {
      throw new ApiError(401, match ? 'Incorrect API key provided' : 'Missing API key: send "Authorization: Bearer <key>"',
        null, 'invalid_api_key');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.requests.inc({ endpoint: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    if (error instanceof ApiError) {
      if (error.status === 429) reply.header('retry-after', String(queue.retryAfterSeconds()));
      return reply.code(error.status).send(errorBody(error.message, error.type, error.param, error.code));
    }
    if (error.validation) {
      const { param, message } = validationMessage(error.validation as unknown as AjvError[]);
      return reply.code(400).send(errorBody(message, 'invalid_request_error', param, 'invalid_value'));
    }
    const status = error.statusCode ?? 500;
    if (status === 413) {
      return reply.code(413).send(errorBody(`request body larger than ${options.bodyLimit ?? 1024 * 1024} bytes`,
        'invalid_request_error', null, 'request_too_large'));
    }
    if (status === 415) {
      return reply.code(415).send(errorBody(`content-type ${JSON.stringify(request.headers['content-type'] ?? '')} ` +
        'is not supported: send the body as application/json', 'invalid_request_error', null, 'unsupported_media_type'));
    }
    if (status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(error.message, 'invalid_request_error', null, error.code ?? null));
    }
    request.log.error(error);
    return reply.code(500).send(errorBody(`internal error: ${error.message}`, 'server_error', null, null));
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody(`Unknown request URL: ${request.method} ${request.url}`,
      'invalid_request_error', null, 'unknown_url'));
  });

  // Admitted requests finish (or are aborted at the deadline) before the listener closes.
  app.addHook('preClose', async () => {
    closing = true;
    await queue.close(options.shutdownDeadlineMs ?? 30_000);
  });

  app.get('/health', async (_request, reply) => {
    if (served) return { status: 'ok' };
    return reply.code(503).send({ status: loadFailure ? 'error' : 'loading', ...(loadFailure
      ? { error: loadFailure.message } : {}) });
  });

  app.get('/metrics', async (_request, reply) => {
    if (served) {
      const stats = served.scheduler.stats();
      metrics.kvCacheUsage.set(stats.usedBlocks / stats.blocks);
    }
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.get('/v1/models', async () => {
    const { id, loaded } = ready();
    return { object: 'list', data: [{ id, object: 'model', created: 0, owned_by: 'redrafter',
      max_model_len: loaded.model.contextLength }] };
  });

  // A wildcard: served model names may hold slashes ("org/name", as --served-model-name takes them).
  app.get('/v1/models/*', async (request) => {
    const { id, loaded } = ready();
    const model = (request.params as { '*': string })['*'];
    if (model !== id) {
      throw new ApiError(404, `model: "${model}" is not served here; this server serves "${id}"`, 'model',
        'model_not_found');
    }
    return { id, object: 'model', created: 0, owned_by: 'redrafter', max_model_len: loaded.model.contextLength };
  });

  app.post('/tokenize', { schema: { body: tokenizeSchema() } }, async (request) => {
    const { loaded } = ready();
    const body = request.body as { prompt?: string; content?: string; add_special?: boolean;
      add_special_tokens?: boolean };
    const text = body.prompt ?? body.content;
    if (text === undefined) throw new ApiError(400, 'prompt: required (or content), got nothing', 'prompt', 'invalid_value');
    // add_special (llama-server) or add_special_tokens (vLLM): whether BOS is put first.
    const tokens = tokenizerOf(loaded).encode(text, { bos: body.add_special_tokens ?? body.add_special ?? true });
    return { tokens, count: tokens.length, max_model_len: loaded.model.contextLength };
  });

  // vLLM's tokenizer description: clients that tokenize through the server (lm-evaluation-harness's remote tokenizer)
  // read the special tokens' texts and the chat template here.
  app.get('/tokenizer_info', async () => {
    const { loaded } = ready();
    const tokenizer = tokenizerOf(loaded);
    const text = (id: number): string | null => (id >= 0 && id < tokenizer.vocabSize ? tokenizer.tokenPiece(id) : null);
    return { tokenizer_class: loaded.format === 'llama2c' ? 'llama2c' : 'redrafter', bos_token: text(tokenizer.bosId),
      eos_token: text(tokenizer.eosId), pad_token: null, model_max_length: loaded.model.contextLength,
      vocab_size: tokenizer.vocabSize, ...(tokenizer.chatTemplate ? { chat_template: tokenizer.chatTemplate } : {}) };
  });

  app.post('/detokenize', { schema: { body: detokenizeSchema() } }, async (request) => {
    const { loaded } = ready();
    const { tokens } = request.body as { tokens: number[] };
    checkTokenIds(tokens, loaded, 'tokens');
    const text = tokenizerOf(loaded).decode(tokens);
    return { prompt: text, content: text };
  });

  app.post('/v1/completions', { schema: { body: completionSchema() } }, async (request, reply) => {
    const model = ready();
    const body = request.body as CompletionBody;
    checkModelName(body, model);
    if (body.max_tokens === 0 && body.echo !== true) {
      throw new ApiError(400, 'max_tokens: 0 (scoring the prompt alone) needs echo: true; expected at least 1, got 0',
        'max_tokens', 'invalid_value');
    }
    // One prompt, or a batch (strings or token-id arrays): one choice each, `index` in the batch's order.
    const batch = typeof body.prompt === 'string' || typeof body.prompt[0] === 'number'
      ? [body.prompt as string | number[]] : body.prompt as (string | number[])[];
    const field = (i: number): string => (batch.length === 1 && batch[0] === body.prompt ? 'prompt' : `prompt[${i}]`);
    if (batch.length > maxSequences + maxQueue) {
      throw new ApiError(400, `prompt: a batch of ${batch.length} prompts; this server runs ${maxSequences} at once ` +
        `and queues ${maxQueue} (--max-sequences, --max-queue)`, 'prompt', 'invalid_value');
    }
    checkChoices(batch.length, body.n ?? 1);
    const prompts = batch.map((prompt, i): Prompt => {
      let ids: number[];
      if (typeof prompt === 'string') {
        ids = tokenizerOf(model.loaded).encode(prompt, { bos: true });
      } else {
        checkTokenIds(prompt, model.loaded, field(i));
        ids = prompt;
      }
      checkContext(ids.length, model.loaded, field(i));
      // echo: the prompt comes back before the completion, as sent (ids as their text).
      const echo = body.echo !== true ? undefined : typeof prompt === 'string' ? prompt
        : tokenizerOf(model.loaded).decode(prompt);
      return { ids, echo };
    });
    // OpenAI's completions default to 16 tokens.
    return serveGeneration(request, reply, 'completion', model, body, prompts, body.max_tokens ?? 16);
  });

  app.post('/v1/chat/completions', { schema: { body: chatSchema() } }, async (request, reply) => {
    const model = ready();
    const body = request.body as ChatBody;
    checkModelName(body, model);
    if (body.top_logprobs != null && body.logprobs !== true) {
      throw new ApiError(400, 'top_logprobs: requires logprobs: true', 'top_logprobs', 'invalid_value');
    }
    const tokenizer = tokenizerOf(model.loaded);
    const messages = chatMessages(body);
    const promptIds = tokenizer.applyChatTemplate
      ? tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), { bos: false })
      : tokenizer.encode(defaultChatTemplate(messages), { bos: true });
    checkContext(promptIds.length, model.loaded, 'messages');
    checkChoices(1, body.n ?? 1);
    return serveGeneration(request, reply, 'chat', model, body, [{ ids: promptIds, echo: undefined }],
      body.max_completion_tokens ?? body.max_tokens ?? undefined);
  });

  /** n choices of each of `prompts` prompts must fit what the server can ever run and queue. */
  function checkChoices(prompts: number, n: number): void {
    if (prompts * n > maxSequences + maxQueue) {
      throw new ApiError(400, `n: ${prompts} prompt${prompts > 1 ? 's' : ''} × ${n} choices = ${prompts * n} ` +
        `sequences; this server runs ${maxSequences} at once and queues ${maxQueue} (--max-sequences, --max-queue)`,
        'n', 'invalid_value');
    }
  }

  async function serveGeneration(request: FastifyRequest, reply: FastifyReply, kind: 'completion' | 'chat',
    model: Served, body: SamplingBody, prompts: readonly Prompt[], maxTokens: number | undefined): Promise<FastifyReply> {
    const received = performance.now();
    if (body.logit_bias != null) {
      const biased = Object.keys(body.logit_bias).map(Number);
      checkTokenIds(biased, model.loaded, 'logit_bias', (index) => `logit_bias["${biased[index]}"]`);
    }
    if (body.stop_token_ids != null) checkTokenIds(body.stop_token_ids, model.loaded, 'stop_token_ids');
    const base = generateOptions(body, maxTokens, model.drafter, () => randomInt(0, 2 ** 32),
      defaultStopTokens(model.loaded));
    // Completions: logprobs = the number of alternatives; chat: logprobs true, top_logprobs alternatives.
    const logprobs = kind === 'completion'
      ? (body as CompletionBody).logprobs ?? undefined
      : (body as ChatBody).logprobs === true ? (body as ChatBody).top_logprobs ?? 0 : undefined;
    const piece = (token: number): string => tokenizerOf(model.loaded).decode([token]);
    // Every prompt of a batch, and each of its n choices, is a sequence of its own (choice index = prompt · n + j, as
    // OpenAI orders them). Choice j samples with seed + j: a prompt's choices differ, and none depends on the batch
    // it came in (choice 0 is the request with n = 1).
    const n = body.n ?? 1;
    const choices = prompts.flatMap((prompt) => Array.from({ length: n }, () => prompt)).map((prompt, index) => {
      const options: GenerateOptions = { ...base, promptIds: prompt.ids, logprobs,
        seed: ((base.seed ?? 0) + (index % n)) % 2 ** 32,
        promptLogprobs: prompt.echo !== undefined && logprobs !== undefined };
      // Offsets of the completion's tokens count from the start of the text returned (the echoed prompt first).
      let textOffset = prompt.echo?.length ?? 0;
      const completionLogprobsOf = (entries: EmittedLogprob[] | undefined): CompletionLogprobs | null => {
        if (logprobs === undefined || !entries) return null;
        const result = completionLogprobs(entries, piece, textOffset);
        textOffset += result.tokens.reduce((n, t) => n + t.length, 0);
        return result;
      };
      const logprobsOf = (entries: EmittedLogprob[] | undefined): unknown =>
        kind === 'chat' ? (logprobs === undefined || !entries ? null : chatLogprobs(entries, piece))
          : completionLogprobsOf(entries);
      // echo with logprobs: the prompt's tokens first, the first without a log-probability (OpenAI's shape).
      const promptLogprobsOf = (entries: readonly (EmittedLogprob | null)[] | null): CompletionLogprobs | null =>
        logprobs === undefined || !entries ? null : promptCompletionLogprobs(prompt.ids, entries, piece);
      return { index, prompt, options, logprobsOf, completionLogprobsOf, promptLogprobsOf };
    });
    // A client that goes away cancels its generations, or their places in the queue; so does a failing one.
    const disconnect = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) disconnect.abort();
    });
    if (choices.length > 1 && queue.room() < choices.length) throw new QueueFullError(queue.waiting);
    const runAll = <T>(task: (choice: (typeof choices)[number], signal: AbortSignal) => Promise<T>): Promise<T[]> =>
      Promise.all(choices.map((choice) => queue.run(disconnect.signal, (signal) => task(choice, signal))
        .catch((error: unknown) => {
          disconnect.abort();
          throw error;
        })));
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const endpoint = kind === 'chat' ? '/v1/chat/completions' : '/v1/completions';
    // One prompt: llama-server's `timings` beside the usage; a batch: each choice carries its own.
    const single = choices.length === 1;
    try {
      if (!body.stream) {
        const results = await runAll((choice, signal) =>
          runGeneration(model, choice.options, signal, received, () => undefined));
        const stats = results.map((result) => result.stats);
        return reply.send({ id, object, created, model: model.id,
          choices: results.map((result, index) => {
            const choice = choices[index];
            const finish_reason = finishReasonOf(result.finishReason);
            const timings = single ? {} : { timings: timingsOf(result.stats) };
            if (kind === 'chat') {
              return { index, message: { role: 'assistant', content: result.text }, logprobs: choice.logprobsOf(
                result.logprobs), finish_reason };
            }
            const echoed = choice.promptLogprobsOf(result.promptLogprobs);
            const generated = choice.completionLogprobsOf(result.logprobs);
            return { index, text: (choice.prompt.echo ?? '') + result.text,
              logprobs: echoed === null ? generated : joinCompletionLogprobs(echoed, generated), finish_reason,
              ...timings };
          }),
          usage: usageOf(stats), ...(single ? { timings: timingsOf(stats[0]) } : {}) });
      }
      const includeUsage = body.stream_options?.include_usage === true;
      // vLLM's continuous_usage_stats: every chunk carries the usage so far (of the choices begun) instead of null.
      const continuousUsage = includeUsage && body.stream_options?.continuous_usage_stats === true;
      const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
      const stream = new PassThrough();
      const send = (payload: unknown): void => {
        if (!stream.destroyed) stream.write(`data: ${JSON.stringify(payload)}\n\n`);
      };
      const live: GenerationStats[] = [];
      const chunk = (choice: Record<string, unknown>, extra: Record<string, unknown> = {}): void =>
        send({ id, object: chunkObject, created, model: model.id, choices: [choice],
          ...(includeUsage ? { usage: continuousUsage ? usageOf(live.filter((s) => s !== undefined)) : null } : {}),
          ...extra });
      let started = false;
      const stats: GenerationStats[] = [];
      try {
        await runAll(async (choice, signal) => {
          // The response starts once the first prompt has its turn, so a full queue or a shutdown is still a JSON
          // error.
          if (!started) {
            started = true;
            void reply.header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache')
              .header('x-accel-buffering', 'no').send(stream);
          }
          const { index } = choice;
          if (kind === 'chat') chunk({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
          // echo: the prompt is the choice's first text, with its log-probabilities once the prompt has run.
          let echoPending = choice.prompt.echo !== undefined;
          const sendEcho = (promptLogprobs: readonly (EmittedLogprob | null)[] | null): void => {
            if (!echoPending) return;
            echoPending = false;
            chunk({ index, text: choice.prompt.echo, logprobs: choice.promptLogprobsOf(promptLogprobs),
              finish_reason: null });
          };
          const result = await runGeneration(model, choice.options, signal, received, (text, entries, generation) => {
            live[index] = generation.stats;
            sendEcho(generation.promptLogprobs);
            if (text === '' && !(logprobs !== undefined && entries && entries.length > 0)) return;
            const chunkLogprobs = choice.logprobsOf(entries);
            chunk(kind === 'chat'
              ? { index, delta: { content: text }, logprobs: chunkLogprobs, finish_reason: null }
              : { index, text, logprobs: chunkLogprobs, finish_reason: null });
          });
          sendEcho(result.promptLogprobs);
          const finish_reason = finishReasonOf(result.finishReason);
          chunk(kind === 'chat' ? { index, delta: {}, logprobs: null, finish_reason }
            : { index, text: '', logprobs: null, finish_reason }, { timings: timingsOf(result.stats) });
          stats[index] = result.stats;
        });
        if (includeUsage) send({ id, object: chunkObject, created, model: model.id, choices: [], usage: usageOf(stats) });
        if (!stream.destroyed) stream.write('data: [DONE]\n\n');
      } catch (error) {
        if (!started) throw error;
        // Headers are sent: the error goes in the stream, in the same shape as a JSON error body.
        if (error instanceof QueueFullError || error instanceof ShuttingDownError) {
          send(errorBody(error.message, 'server_error', null, null));
        } else if (!(error instanceof AbortedError)) {
          request.log.error(error);
          send(errorBody(`internal error: ${(error as Error).message}`, 'server_error', null, null));
        }
      } finally {
        if (started) stream.end();
      }
      metrics.requestDuration.observe({ endpoint }, (performance.now() - received) / 1000);
      return reply;
    } catch (error) {
      if (error instanceof QueueFullError) throw new ApiError(429, error.message, null, 'queue_full', 'rate_limit_error');
      if (error instanceof ShuttingDownError) throw new ApiError(503, error.message, null, 'shutting_down');
      if (error instanceof AbortedError) return reply; // nobody is listening
      throw error;
    } finally {
      if (!body.stream) metrics.requestDuration.observe({ endpoint }, (performance.now() - received) / 1000);
    }
  }

  async function runGeneration(model: Served, options: GenerateOptions, signal: AbortSignal, received: number,
    onText: (text: string, logprobs: EmittedLogprob[] | undefined, generation: Generation) => void): Promise<{
      text: string; finishReason: Generation['finishReason']; stats: GenerationStats; logprobs: EmittedLogprob[];
      promptLogprobs: readonly (EmittedLogprob | null)[] | null }> {
    const { loaded } = model;
    const generation = generate(loaded, { ...options, signal });
    let text = '';
    const logprobs: EmittedLogprob[] = [];
    let last = received;
    let first = true;
    try {
      for await (const chunk of generation as AsyncIterable<GenerationChunk>) {
        const now = performance.now();
        if (chunk.ids.length > 0) {
          if (first) {
            metrics.timeToFirstToken.observe((now - received) / 1000);
            first = false;
          } else {
            const perToken = (now - last) / 1000 / chunk.ids.length;
            for (let i = 0; i < chunk.ids.length; i++) metrics.interTokenLatency.observe(perToken);
          }
          last = now;
        }
        text += chunk.text;
        if (chunk.logprobs) logprobs.push(...chunk.logprobs);
        onText(chunk.text, chunk.logprobs, generation);
        // Steps run synchronously; yielding here lets the event loop see disconnects, queue (or refuse) new requests
        // and serve the other sequences' clients between steps.
        await yieldToEventLoop();
      }
    } finally {
      const { stats } = generation;
      metrics.promptTokens.inc(stats.promptTokens);
      metrics.generationTokens.inc(stats.tokens);
      const { proposed, accepted } = draftCounts(stats);
      metrics.draftTokens.inc(proposed);
      metrics.draftTokensAccepted.inc(accepted);
      for (const [shape, count] of Object.entries(stats.redrafter?.shapes ?? {})) metrics.steps.inc({ shape }, count);
      stats.redrafter?.acceptedAtDepth.forEach((count, k) => {
        if (count > 0) metrics.draftTokensAcceptedByDepth.inc({ depth: String(k + 1) }, count);
      });
      if (!stats.redrafter && stats.steps > 0) metrics.steps.inc({ shape: 'plain' }, stats.steps);
    }
    if (generation.finishReason === 'abort') throw new AbortedError();
    return { text, finishReason: generation.finishReason, stats: generation.stats, logprobs,
      promptLogprobs: generation.promptLogprobs };
  }

  return app;
}


function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function tokenizerOf(loaded: LoadedModel): NonNullable<LoadedModel['tokenizer']> {
  if (!loaded.tokenizer) {
    throw new ApiError(400, `${loaded.path} has no tokenizer: send the prompt as an array of token ids`, 'prompt',
      'no_tokenizer');
  }
  return loaded.tokenizer;
}

/** One prompt of a request: its ids, and with `echo` the text to return before the completion. */
interface Prompt {
  ids: number[];
  echo: string | undefined;
}

function checkModelName(body: SamplingBody, model: Served): void {
  if (body.model != null && body.model !== '' && body.model !== model.id) {
    throw new ApiError(404, `model: "${body.model}" is not served here; this server serves "${model.id}"`, 'model',
      'model_not_found');
  }
}

function checkTokenIds(ids: readonly number[], loaded: LoadedModel, field: string,
  where: (index: number) => string = (index) => `${field}[${index}]`): void {
  const vocab = loaded.model.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) {
    throw new ApiError(400, `${where(bad)}: expected a token id in [0, ${vocab - 1}], got ${ids[bad]}`, field,
      'invalid_value');
  }
}

function checkContext(promptTokens: number, loaded: LoadedModel, field: string): void {
  const context = loaded.model.contextLength;
  if (promptTokens >= context) {
    throw new ApiError(400, `${field}: the prompt is ${promptTokens} tokens, the context is ${context} tokens ` +
      `(a prompt may have at most ${context - 1}, leaving room for one generated token)`, field,
      'context_length_exceeded');
  }
}
