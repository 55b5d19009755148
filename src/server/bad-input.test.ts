// The bad-input suite (README "Server", Errors): against a real server on an ephemeral port, every kind of bad request
// gets its documented status and the `{ error: { message, type, param, code } }` shape; afterwards the server still
// serves, and no socket, request or memory is left behind.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { APIError } from 'openai';
import { post, skip, startServer, type Running } from '../../test/server.js';

const key = 'sk-test-key';
// Short, so that the slow-client tests take about a second; the CLI's default is 30 s (--request-timeout).
const requestTimeoutMs = 1000;
let server: Running;
let baseline: { sockets: number; rss: number } | undefined;
before(async () => {
  if (skip) return;
  server = await startServer({ apiKey: key, bodyLimit: 64 * 1024, requestTimeoutMs });
  await stillServes();
  baseline = await settled();
});
after(async () => {
  if (!skip) await server.close();
});

const auth = { authorization: `Bearer ${key}` };

interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** Asserts the status and the `{ error: { message, type, param, code } }` shape; returns the error. */
async function expectError(path: string, body: unknown, status: number, headers: Record<string, string> = auth):
  Promise<ErrorBody> {
  const response = await post(`${server.url}${path}`, body, headers);
  assert.equal(response.status, status, JSON.stringify(response.json));
  const error = response.json['error'] as ErrorBody;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof error.message, 'string');
  assert.equal(error.type, status >= 500 ? 'server_error' : 'invalid_request_error');
  return error;
}

async function stillServes(): Promise<void> {
  const response = await post(`${server.url}/v1/completions`, { prompt: 'Once', max_tokens: 3, temperature: 0 }, auth);
  assert.equal(response.status, 200, JSON.stringify(response.json));
}

test('API key: missing or wrong → 401; /health and /metrics stay open', { skip }, async () => {
  const missingKey = await expectError('/v1/completions', { prompt: 'Once' }, 401, {});
  assert.equal(missingKey.code, 'invalid_api_key');
  const wrong = await expectError('/v1/completions', { prompt: 'Once' }, 401, { authorization: 'Bearer sk-nope' });
  assert.match(wrong.message, /Incorrect API key/);
  await expectError('/tokenize', { prompt: 'Once' }, 401, {});
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  assert.equal((await fetch(`${server.url}/metrics`)).status, 200);
  const client = new (server.client.constructor as typeof import('openai').default)({ baseURL: `${server.url}/v1`,
    apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(client.models.list(), (error: unknown) => error instanceof APIError && error.status === 401);
  await stillServes();
});

test('truncated or non-object JSON → 400', { skip }, async () => {
  const truncated = await expectError('/v1/completions', '{"prompt": "Once upon', 400);
  assert.match(truncated.message, /JSON/);
  const array = await expectError('/v1/completions', '[1, 2]', 400);
  assert.match(array.message, /^body: expected an object/);
  await stillServes();
});

test('wrong types and out-of-range numbers → 400 naming the field, what it expects and what it got', { skip },
  async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ prompt: 'Once', temperature: '1' }, 'temperature', /^temperature: expected a number in \[0, 100\].*got "1"$/],
      [{ prompt: 'Once', max_tokens: -5 }, 'max_tokens', /^max_tokens: expected an integer in \[0, .*got -5$/],
      [{ prompt: 'Once', max_tokens: 2.5 }, 'max_tokens', /got 2\.5$/],
      [{ prompt: 'Once', seed: 1e12 }, 'seed', /^seed: expected an integer in \[0, 4294967295\].*got 1000000000000$/],
      [{ prompt: 'Once', temperature: 1e9 }, 'temperature', /got 1000000000$/],
      [{ prompt: 'Once', top_p: 0 }, 'top_p', /^top_p: expected a number in \(0, 1\]/],
      [{ prompt: 'Once', stop: [1] }, 'stop', /^stop: expected a string or/],
      [{ prompt: 'Once', stream: 'yes' }, 'stream', /^stream: expected a boolean or null, got "yes"$/],
      [{ prompt: 'Once', speculative: { beams: 0, beam_length: 4 } }, 'speculative', /^speculative: expected "auto" or false/],
      [{ prompt: 'Once', speculative: true }, 'speculative', /got true$/],
      [{ prompt: '' }, 'prompt', /^prompt: expected a non-empty string/],
      [{ prompt: [] }, 'prompt', /got \[\]$/],
      [{ prompt: [1, 'x'] }, 'prompt', /got \[1,"x"\]$/],
      [{}, 'prompt', /^prompt: required, got nothing$/],
    ];
    for (const [body, param, message] of cases) {
      const error = await expectError('/v1/completions', body, 400);
      assert.equal(error.param, param, JSON.stringify(body));
      assert.match(error.message, message, JSON.stringify(body));
    }
    const chat = await expectError('/v1/chat/completions', { messages: [{ role: 'user' }] }, 400);
    assert.equal(chat.param, 'messages[0].content');
    const notArray = await expectError('/v1/chat/completions', { messages: 'hi' }, 400);
    assert.match(notArray.message, /^messages: expected \(a non-empty array.*got "hi"$/);
    const id = await expectError('/v1/completions', { prompt: [1, 99999] }, 400);
    assert.match(id.message, /^prompt\[1\]: expected a token id in \[0, 511\], got 99999$/);
    await stillServes();
  });

test('a prompt longer than the context → 400 naming both lengths; max_tokens is capped by the context', { skip },
  async () => {
    const context = server.loaded.model.contextLength;
    const long = await expectError('/v1/completions', { prompt: new Array<number>(context + 10).fill(1) }, 400);
    assert.equal(long.code, 'context_length_exceeded');
    assert.ok(long.message.includes(`${context + 10} tokens`) && long.message.includes(`${context} tokens`), long.message);
    const capped = await post(`${server.url}/v1/completions`, { prompt: new Array<number>(context - 20).fill(1),
      max_tokens: 1_000_000_000, temperature: 0 }, auth);
    assert.equal(capped.status, 200);
    const usage = capped.json['usage'] as { completion_tokens: number };
    assert.ok(usage.completion_tokens <= 21, JSON.stringify(usage));
  });

test('unknown model → 404; unknown route → 404; unknown fields are ignored', { skip }, async () => {
  const model = await expectError('/v1/completions', { model: 'gpt-9', prompt: 'Once' }, 404);
  assert.equal(model.code, 'model_not_found');
  assert.equal(model.param, 'model');
  const route = await expectError('/v1/embeddings', { input: 'x' }, 404);
  assert.equal(route.code, 'unknown_url');
  const ignored = await post(`${server.url}/v1/completions`, { prompt: 'Once', max_tokens: 2, suffix: 'x',
    user: 'someone', echo: false }, auth);
  assert.equal(ignored.status, 200);
});

test('frequency_penalty, presence_penalty and logit_bias out of range or mistyped → 400 naming the field', { skip },
  async () => {
  const frequency = await expectError('/v1/completions', { prompt: 'Once', frequency_penalty: 2.5 }, 400);
  assert.equal(frequency.param, 'frequency_penalty');
  assert.match(frequency.message, /frequency_penalty: expected a number in \[-2, 2\] or null, got 2\.5/);
  const presence = await expectError('/v1/chat/completions',
    { messages: [{ role: 'user', content: 'hi' }], presence_penalty: 'a lot' }, 400);
  assert.equal(presence.param, 'presence_penalty');
  const bias = await expectError('/v1/completions', { prompt: 'Once', logit_bias: { 5: 101 } }, 400);
  assert.equal(bias.param, 'logit_bias[5]');
  assert.match(bias.message, /logit_bias\[5\]: expected a number in \[-100, 100\], got 101/);
  const key = await expectError('/v1/completions', { prompt: 'Once', logit_bias: { hello: 1 } }, 400);
  assert.equal(key.param, 'logit_bias');
  assert.match(key.message, /logit_bias: expected token ids as keys \(integers >= 0\), got the key "hello"/);
  const vocab = server.loaded.model.config.vocabSize;
  const outside = await expectError('/v1/completions', { prompt: 'Once', logit_bias: { [vocab]: -100 } }, 400);
  assert.equal(outside.param, 'logit_bias');
  assert.equal(outside.code, 'invalid_value');
  assert.match(outside.message, new RegExp(`logit_bias\\["${vocab}"\\]: expected a token id in \\[0, ${vocab - 1}\\]`));
  await stillServes();
});

test('prompt batches: a bad prompt names its place; a batch larger than the server can ever queue → 400', { skip },
  async () => {
  const bad = await expectError('/v1/completions', { prompt: [[1, 2], [3, 100000]] }, 400);
  assert.equal(bad.param, 'prompt[1]');
  assert.match(bad.message, /^prompt\[1\]\[1\]: expected a token id/);
  const empty = await expectError('/v1/completions', { prompt: ['Once', ''] }, 400);
  assert.equal(empty.param, 'prompt');
  const huge = await expectError('/v1/completions', { prompt: Array.from({ length: 200 }, () => 'Once') }, 400);
  assert.match(huge.message, /^prompt: a batch of 200 prompts; this server runs \d+ at once and queues \d+/);
  await stillServes();
});

test('oversize body → 413', { skip }, async () => {
  const error = await expectError('/v1/completions', { prompt: 'x'.repeat(100 * 1024) }, 413);
  assert.equal(error.code, 'request_too_large');
  await stillServes();
});

test('n past what the server can queue, logprobs out of range and top_logprobs without logprobs → 400 through the ' +
  'openai client too', { skip }, async () => {
  const n = await expectError('/v1/completions', { prompt: ['Once', 'Tom'], n: 100 }, 400);
  assert.equal(n.param, 'n');
  assert.match(n.message, /^n: 2 prompts × 100 choices = 200 sequences; this server runs \d+ at once and queues \d+/);
  const logprobs = await expectError('/v1/completions', { prompt: 'Once', logprobs: 21 }, 400);
  assert.equal(logprobs.param, 'logprobs');
  const chatLogprobs = await expectError('/v1/chat/completions',
    { messages: [{ role: 'user', content: 'hi' }], top_logprobs: 2 }, 400);
  assert.equal(chatLogprobs.param, 'top_logprobs');
  await assert.rejects(server.client.chat.completions.create({ model: 'stories260K',
    messages: [{ role: 'user', content: 'hi' }], n: 128 }), (error: unknown) => error instanceof APIError &&
    error.status === 400 && error.param === 'n');
  await stillServes();
});

test('numbers past any sensible range → 400, never a 500', { skip }, async () => {
  const cases: [Record<string, unknown> | string, string, RegExp][] = [
    [{ prompt: 'Once', max_tokens: 1e308 }, 'max_tokens', /got 1e\+308$/],
    ['{"prompt": "Once", "max_tokens": 1e999}', 'max_tokens', /got Infinity$/],
    [{ prompt: 'Once', max_tokens: 0 }, 'max_tokens', /^max_tokens: 0 \(scoring the prompt alone\) needs echo: true; .*got 0$/],
    [{ prompt: 'Once', top_k: -1 }, 'top_k', /got -1$/],
    [{ prompt: 'Once', min_p: 2 }, 'min_p', /got 2$/],
    [{ prompt: 'Once', temperature: -0.5 }, 'temperature', /got -0\.5$/],
    // A penalty near 0 divided positive logits into +Infinity: the engine had no distribution left (was a 500).
    [{ prompt: 'Once', repetition_penalty: 1e-300 }, 'repetition_penalty', /^repetition_penalty: expected a number in \[0\.01, 100\]/],
    [{ prompt: 'Once', speculative: { beams: 1e9, beam_length: 4 } }, 'speculative', /got \{"beams":1000000000/],
    [{ prompt: [1, 2 ** 53] }, 'prompt', /^prompt\[1\]: expected a token id/],
  ];
  for (const [body, param, message] of cases) {
    const error = await expectError('/v1/completions', body, 400);
    assert.equal(error.param, param, JSON.stringify(body));
    assert.match(error.message, message, JSON.stringify(body));
  }
  // Extremes inside the ranges are served: tiny temperatures and top_p act as greedy.
  for (const extreme of [{ temperature: 5e-324 }, { top_p: 5e-324 }, { temperature: 100, seed: 1 },
    { repetition_penalty: 100 }, { top_k: 2147483647 }, { min_p: 1 }]) {
    const response = await post(`${server.url}/v1/completions`, { prompt: 'Once', max_tokens: 3, ...extreme }, auth);
    assert.equal(response.status, 200, `${JSON.stringify(extreme)}: ${JSON.stringify(response.json)}`);
  }
});

test('bodies that are not an OpenAI request: empty, non-JSON content types, poisoned keys', { skip }, async () => {
  const empty = await expectError('/v1/completions', '', 400);
  assert.equal(empty.code, 'FST_ERR_CTP_EMPTY_JSON_BODY');
  const nul = await expectError('/v1/completions', 'null', 400);
  assert.match(nul.message, /^body: expected an object with prompt, got null$/);
  const plain = await expectError('/v1/completions', '{"prompt": "Once"}', 415,
    { ...auth, 'content-type': 'text/plain' });
  assert.equal(plain.code, 'unsupported_media_type');
  assert.match(plain.message, /"text\/plain".*application\/json/);
  const form = await expectError('/v1/completions', 'prompt=Once', 415,
    { ...auth, 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(form.code, 'unsupported_media_type');
  // __proto__ and constructor.prototype are unknown fields like any other: ignored (fastify's default was a 400
  // "not valid JSON"), and they reach no object's prototype.
  for (const raw of ['{"prompt": "Once", "max_tokens": 2, "__proto__": {"polluted": 1}}',
    '{"prompt": "Once", "max_tokens": 2, "constructor": {"prototype": {"polluted": 1}}}']) {
    const response = await post(`${server.url}/v1/completions`, raw, auth);
    assert.equal(response.status, 200, JSON.stringify(response.json));
  }
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  const badUrl = await rawRequest('GET /%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(badUrl.status, 400);
  assert.equal(errorOf(badUrl.body).code, 'invalid_url');
  await stillServes();
});

test('empty prompt and unknown model, through the openai client', { skip }, async () => {
  const client = new (server.client.constructor as typeof import('openai').default)({ baseURL: `${server.url}/v1`,
    apiKey: key, maxRetries: 0 });
  await assert.rejects(client.completions.create({ model: 'stories260K', prompt: '' }), (error: unknown) =>
    error instanceof APIError && error.status === 400 && error.param === 'prompt');
  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    (error: unknown) => error instanceof APIError && error.status === 404 && error.code === 'model_not_found');
  await stillServes();
});

test('HTTP-level abuse: malformed request line, oversize headers → 400 / 431 in the error shape', { skip }, async () => {
  const garbage = await rawRequest('NOT HTTP AT ALL\r\n\r\n');
  assert.equal(garbage.status, 400);
  assert.equal(errorOf(garbage.body).code, 'bad_request');
  const headers = await rawRequest(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
  assert.equal(headers.status, 431);
  assert.equal(errorOf(headers.body).code, 'headers_too_large');
  await stillServes();
});

test('slow-loris clients: a body or headers trickling past the request timeout → 408, socket closed', { skip },
  async () => {
    const body = '{"prompt": "Once upon a time", "max_tokens": 2}';
    const slowBody = trickle(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body);
    const slowHeaders = trickle('POST /v1/completions HTTP/1.1\r\nHost: x\r\n', 'X-Padding: 1\r\n'.repeat(100));
    // A client that connects and sends nothing at all holds no socket past the timeout either.
    const silent = trickle('', '');
    for (const [name, result] of [['body', await slowBody], ['headers', await slowHeaders]] as const) {
      assert.equal(result.status, 408, `${name}: ${result.raw}`);
      const error = errorOf(result.body);
      assert.equal(error.code, 'request_timeout', name);
      assert.match(error.message, /did not arrive within 1000 ms/);
      // Checked at a quarter of the timeout: closed well before twice the timeout (node's own check runs every 30 s).
      assert.ok(result.ms >= requestTimeoutMs - 50 && result.ms < 2 * requestTimeoutMs, `${name}: ${result.ms} ms`);
    }
    const quiet = await silent;
    assert.equal(quiet.status, 408, quiet.raw);
    assert.ok(quiet.ms < 2 * requestTimeoutMs, `silent: ${quiet.ms} ms`);
    await stillServes();
  });

test('100 rapid connect / disconnects, some mid-request and some mid-stream: the server keeps serving', { skip },
  async () => {
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 200, stream: true, seed: 1 });
    const request = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const rounds: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
      socket.on('error', () => undefined);
      rounds.push(new Promise<void>((resolve) => {
        socket.on('close', () => resolve());
        socket.on('connect', () => {
          switch (i % 4) {
            case 0: socket.destroy(); break; // connect, then go
            case 1: socket.end(request.slice(0, 40)); setTimeout(() => socket.destroy(), 5); break; // half a request
            case 2: socket.write(request + body.slice(0, 10)); setTimeout(() => socket.destroy(), 5); break; // half a body
            default: // a whole streaming request, gone as soon as the first bytes of the answer arrive
              socket.write(request + body);
              socket.once('data', () => socket.destroy());
              setTimeout(() => socket.destroy(), 3000);
          }
        });
      }));
      if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(rounds);
    await stillServes();
    // Every cancelled stream gave its place back: nothing runs, nothing waits, no request failed with a 5xx.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^redrafter:num_requests_waiting 0$/m);
    assert.match(metrics, /^redrafter:num_requests_running 0$/m);
    assert.doesNotMatch(metrics, /^redrafter_requests_total\{[^}]*status="5\d\d"\}/m);
  });

// Runs last (node:test runs a file's tests in order): every test above left nothing behind.
test('nothing leaks: sockets back to the baseline, RSS roughly back', { skip }, async () => {
  await stillServes();
  const now = await settled();
  assert.ok(baseline);
  assert.ok(now.sockets <= baseline.sockets, `TCP sockets: ${baseline.sockets} before, ${now.sockets} after`);
  // Allocator slack and JIT code vary; a leak of requests or streams (each holds buffers) would grow without bound.
  assert.ok(now.rss - baseline.rss < 64 * 1024 * 1024,
    `RSS ${(baseline.rss / 2 ** 20).toFixed(0)} MiB before, ${(now.rss / 2 ** 20).toFixed(0)} MiB after`);
});

/** The error of a raw response body, with the shape checked. */
function errorOf(body: string): ErrorBody {
  const error = (JSON.parse(body) as { error: ErrorBody }).error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(error.type, 'invalid_request_error');
  return error;
}

interface RawResponse {
  status: number;
  body: string;
  raw: string;
  /** Milliseconds from connecting to the server closing the socket. */
  ms: number;
}

function parseRaw(raw: string, ms: number): RawResponse {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
  const at = raw.indexOf('\r\n\r\n');
  return { status, body: at >= 0 ? raw.slice(at + 4) : '', raw, ms };
}

/** Sends `text` on a fresh socket and reads until the server closes it. */
function rawRequest(text: string): Promise<RawResponse> {
  return trickle(text, '', 0);
}

/** Sends `head` at once, then `tail` one byte every `everyMs`, until the server answers and closes the socket. */
function trickle(head: string, tail: string, everyMs = 100): Promise<RawResponse> {
  const started = performance.now();
  const socket: Socket = connect(Number(new URL(server.url).port), '127.0.0.1');
  let raw = '';
  let sent = 0;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    raw += chunk;
  });
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    if (head) socket.write(head);
  });
  const timer = setInterval(() => {
    if (sent < tail.length && socket.writable) socket.write(tail[sent++]);
  }, everyMs);
  return new Promise((resolve) => {
    socket.on('close', () => {
      clearInterval(timer);
      resolve(parseRaw(raw, performance.now() - started));
    });
  });
}

/** Open TCP sockets in this process (both ends of every connection) and RSS, once idle keep-alives are closed. */
async function settled(): Promise<{ sockets: number; rss: number }> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let sockets = Infinity;
  // A closing socket takes a few event-loop turns to release its handle.
  for (let i = 0; i < 40; i++) {
    server.app.server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, 25));
    sockets = process.getActiveResourcesInfo().filter((name) => name === 'TCPSocketWrap').length;
    if (sockets === 0) break;
  }
  gc();
  return { sockets, rss: process.memoryUsage().rss };
}
