// Bad input: each gets its documented status and the OpenAI error shape, and the server keeps serving.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { APIError } from 'openai';
import { post, skip, startServer, type Running } from '../../test/server.js';

const key = 'sk-test-key';
let server: Running;
before(async () => {
  if (!skip) server = await startServer({ apiKey: key, bodyLimit: 64 * 1024 });
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
      [{ prompt: 'Once', max_tokens: -5 }, 'max_tokens', /^max_tokens: expected an integer in \[1, .*got -5$/],
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
  const ignored = await post(`${server.url}/v1/completions`, { prompt: 'Once', max_tokens: 2, frequency_penalty: 0.5,
    user: 'someone', echo: false }, auth);
  assert.equal(ignored.status, 200);
});

test('oversize body → 413', { skip }, async () => {
  const error = await expectError('/v1/completions', { prompt: 'x'.repeat(100 * 1024) }, 413);
  assert.equal(error.code, 'request_too_large');
  await stillServes();
});

test('n = 2, logprobs out of range and top_logprobs without logprobs → 400 through the openai client too', { skip },
  async () => {
  const n = await expectError('/v1/completions', { prompt: 'Once', n: 2 }, 400);
  assert.equal(n.param, 'n');
  assert.match(n.message, /only 1 is supported/);
  const logprobs = await expectError('/v1/completions', { prompt: 'Once', logprobs: 21 }, 400);
  assert.equal(logprobs.param, 'logprobs');
  const chatLogprobs = await expectError('/v1/chat/completions',
    { messages: [{ role: 'user', content: 'hi' }], top_logprobs: 2 }, 400);
  assert.equal(chatLogprobs.param, 'top_logprobs');
  await assert.rejects(server.client.chat.completions.create({ model: 'stories260K',
    messages: [{ role: 'user', content: 'hi' }], n: 2 }), (error: unknown) => error instanceof APIError &&
    error.status === 400 && error.param === 'n');
  await stillServes();
});
