// The server against the real stories260K model and its shipped drafter, through OpenAI's own client.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateText } from '../engine/generate.js';
import { schedulerFor } from '../engine/scheduler.js';
import { loadModel } from '../engine/load.js';
import { stories260K } from '../../test/fixtures.js';
import type { CompletionCreateParamsNonStreaming } from 'openai/resources/completions';
import { post, skip, startServer, type Running } from '../../test/server.js';
import { createServer, defaultChatTemplate } from './index.js';

let server: Running;
before(async () => {
  if (!skip) server = await startServer();
});
after(async () => {
  if (!skip) await server.close();
});

const prompt = 'Once upon a time';

test('greedy completion equals generateText for the same prompt, with usage and timings', { skip }, async () => {
  const expected = await generateText(server.loaded, { prompt, maxTokens: 40 });
  const response = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 40,
    temperature: 0 });
  assert.equal(response.object, 'text_completion');
  assert.equal(response.choices.length, 1);
  assert.equal(response.choices[0].text, expected.text);
  assert.equal(response.choices[0].finish_reason, expected.finishReason === 'length' ? 'length' : 'stop');
  assert.deepEqual(response.usage, { prompt_tokens: expected.promptIds.length, completion_tokens: expected.ids.length,
    total_tokens: expected.promptIds.length + expected.ids.length, prompt_tokens_details: { cached_tokens: 0 } });
  const timings = (response as unknown as { timings: Record<string, number> }).timings;
  assert.equal(timings['predicted_n'], expected.ids.length);
  assert.equal(timings['prompt_n'], expected.promptIds.length);
  for (const name of ['draft_n', 'draft_n_accepted', 'tokens_per_step', 'predicted_per_second']) {
    assert.equal(typeof timings[name], 'number', name);
  }
});

test('speculative false, "auto" and a fixed tree give identical text, greedy and seeded', { skip }, async () => {
  for (const sampling of [{ temperature: 0 }, { temperature: 0.9, seed: 11 }]) {
    const texts: string[] = [];
    for (const speculative of [false, 'auto', { beams: 3, beam_length: 4 }] as const) {
      const response = await post(`${server.url}/v1/completions`, { prompt, max_tokens: 60, speculative, ...sampling });
      assert.equal(response.status, 200, JSON.stringify(response.json));
      const choice = (response.json['choices'] as { text: string }[])[0];
      texts.push(choice.text);
      const timings = response.json['timings'] as { draft_n: number; draft_n_accepted: number; shapes: object };
      if (typeof speculative === 'object') {
        // Every step of a fixed tree proposes W × (L − 1) tokens.
        assert.ok(timings.draft_n > 0 && timings.draft_n % 9 === 0, JSON.stringify(timings));
        assert.ok(timings.draft_n_accepted <= timings.draft_n);
        assert.ok('3x4' in timings.shapes);
      }
      if (speculative === false) assert.equal(timings.draft_n, 0);
    }
    assert.equal(texts[1], texts[0], JSON.stringify(sampling));
    assert.equal(texts[2], texts[0], JSON.stringify(sampling));
  }
});

test('the same seed gives the same sampled text', { skip }, async () => {
  const ask = () => server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 40, temperature: 1,
    seed: 1234 });
  const [a, b] = [await ask(), await ask()];
  assert.equal(a.choices[0].text, b.choices[0].text);
  const expected = await generateText(server.loaded, { prompt, maxTokens: 40, temperature: 1, seed: 1234 });
  assert.equal(a.choices[0].text, expected.text);
});

test('frequency_penalty, presence_penalty and logit_bias through the openai client: applied as generateText applies ' +
  'them, the same text with and without speculation', { skip }, async () => {
  const plain = await generateText(server.loaded, { prompt, maxTokens: 40 });
  // Bias the greedy choice's first token away, and a later one up; penalise repeats.
  const sampling = { frequencyPenalty: 0.7, presencePenalty: 0.3, logitBias: { [plain.ids[0]]: -100, 13: 2.5 } };
  const expected = await generateText(server.loaded, { prompt, maxTokens: 40, ...sampling });
  assert.notDeepEqual(expected.ids, plain.ids, 'the options change what greedy decoding emits');
  assert.notEqual(expected.ids[0], plain.ids[0], 'a -100 bias keeps its token out');
  for (const speculative of [false, 'auto', { beams: 2, beam_length: 4 }]) {
    // `speculative` is ours: the client sends fields it does not know as they are.
    const body: CompletionCreateParamsNonStreaming & { speculative: unknown } = { model: 'stories260K', prompt,
      max_tokens: 40, temperature: 0, frequency_penalty: 0.7, presence_penalty: 0.3,
      logit_bias: { [String(plain.ids[0])]: -100, 13: 2.5 }, speculative };
    const response = await server.client.completions.create(body);
    assert.equal(response.choices[0].text, expected.text, JSON.stringify(speculative));
  }
  const forced = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 5, temperature: 0.8,
    seed: 3, messages: [{ role: 'user', content: 'hi' }], logit_bias: { 13: 100 } });
  assert.equal(forced.choices[0].message.content, server.loaded.tokenizer!.decode([13, 13, 13, 13, 13]));
});

test('echo with logprobs scores the prompt (lm-evaluation-harness\'s loglikelihood request), a batch of prompts ' +
  'gives one choice each as it gives alone, streamed or not', { skip }, async () => {
  const promptIds = server.loaded.tokenizer!.encode(prompt, { bos: true });
  const expected = await generateText(server.loaded, { promptIds, maxTokens: 5, logprobs: 2, promptLogprobs: true });
  const echoed = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 5, temperature: 0,
    logprobs: 2, echo: true });
  const choice = echoed.choices[0];
  assert.equal(choice.text, prompt + expected.text);
  const logprobs = choice.logprobs!;
  assert.equal(logprobs.tokens!.length, promptIds.length + 5);
  assert.equal(logprobs.token_logprobs![0], null);
  assert.equal(logprobs.top_logprobs![0], null);
  assert.deepEqual(logprobs.token_logprobs!.slice(1, promptIds.length),
    expected.promptLogprobs!.slice(1).map((entry) => entry!.logprob));
  assert.deepEqual(logprobs.token_logprobs!.slice(promptIds.length), expected.logprobs!.map((entry) => entry.logprob));
  assert.equal(Object.keys(logprobs.top_logprobs![1]!).length, 2);
  assert.equal(logprobs.text_offset![promptIds.length], prompt.length, 'the completion\'s offsets follow the echo');
  // Scoring alone: max_tokens 0.
  const scored = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 0, logprobs: 0,
    echo: true });
  assert.equal(scored.choices[0].text, prompt);
  assert.equal(scored.choices[0].logprobs!.tokens!.length, promptIds.length);
  assert.equal(scored.usage!.completion_tokens, 0);
  // What lm-evaluation-harness sends: token-id prompts in a batch, max_tokens 1, logprobs 1, echo. Each choice (by
  // index) is what the prompt gets alone.
  const other = server.loaded.tokenizer!.encode('The little dog', { bos: true });
  const batch = await post(`${server.url}/v1/completions`, { prompt: [promptIds, other], max_tokens: 1,
    temperature: 0, logprobs: 1, echo: true });
  assert.equal(batch.status, 200, JSON.stringify(batch.json));
  const choices = batch.json['choices'] as { index: number; text: string; logprobs: { token_logprobs: number[] } }[];
  assert.deepEqual(choices.map((c) => c.index), [0, 1]);
  for (const [i, ids] of [promptIds, other].entries()) {
    const alone = await post(`${server.url}/v1/completions`, { prompt: ids, max_tokens: 1, temperature: 0,
      logprobs: 1, echo: true });
    const single = (alone.json['choices'] as typeof choices)[0];
    assert.deepEqual(choices[i].logprobs, single.logprobs);
    assert.equal(choices[i].text, single.text);
  }
  const usage = batch.json['usage'] as { prompt_tokens: number; completion_tokens: number };
  assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [promptIds.length + other.length, 2]);
  // A batch of text prompts, streamed: chunks carry their choice's index and add up to each prompt's text alone.
  const texts = ['Once upon a time', 'Tom had a red ball'];
  const stream = await server.client.completions.create({ model: 'stories260K', prompt: texts, max_tokens: 12,
    temperature: 0.8, seed: 4, stream: true, stream_options: { include_usage: true } });
  const streamed = ['', ''];
  const finished: string[] = [];
  let totalTokens = 0;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      streamed[c.index] += c.text;
      if (c.finish_reason) finished.push(`${c.index}:${c.finish_reason}`);
    }
    if (chunk.usage) totalTokens = chunk.usage.completion_tokens;
  }
  assert.deepEqual(finished.sort(), ['0:length', '1:length']);
  assert.equal(totalTokens, 24);
  // echo, streamed: the prompt is the choice's first text, with its log-probabilities.
  const echoStream = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 5,
    temperature: 0, logprobs: 2, echo: true, stream: true });
  const pieces: { text: string; tokens: number }[] = [];
  for await (const chunk of echoStream) {
    for (const c of chunk.choices) pieces.push({ text: c.text, tokens: c.logprobs?.tokens?.length ?? 0 });
  }
  assert.deepEqual(pieces[0], { text: prompt, tokens: promptIds.length });
  assert.equal(pieces.map((p) => p.text).join(''), prompt + expected.text);
  for (const [i, text] of texts.entries()) {
    const alone = await generateText(server.loaded, { prompt: text, maxTokens: 12, temperature: 0.8, seed: 4 });
    assert.equal(streamed[i], alone.text, text);
  }
});

test('the remote-tokenizer protocol of lm-evaluation-harness: /tokenizer_info, /tokenize with add_special_tokens, then ' +
  'a loglikelihood request scored from token_logprobs[ctxlen:-1]', { skip }, async () => {
  const info = await (await fetch(`${server.url}/tokenizer_info`)).json() as Record<string, unknown>;
  assert.equal(info['eos_token'], '</s>');
  assert.equal(info['bos_token'], '<s>');
  assert.equal(info['model_max_length'], server.loaded.model.contextLength);
  const tokenize = async (text: string): Promise<number[]> => {
    const response = await post(`${server.url}/tokenize`, { prompt: text, add_special_tokens: false });
    assert.equal(response.status, 200, JSON.stringify(response.json));
    return response.json['tokens'] as number[];
  };
  // The harness finds EOS's id by encoding its text.
  assert.deepEqual(await tokenize('</s>'), [server.loaded.tokenizer!.eosId]);
  const context = await tokenize('Once upon a time, there was a');
  const continuation = [...server.loaded.tokenizer!.encode('little girl', { bos: false, special: false })].slice(1);
  const response = await post(`${server.url}/v1/completions`, { model: 'stories260K', prompt: [[...context,
    ...continuation]], temperature: 0, max_tokens: 1, logprobs: 1, seed: 1234, echo: true });
  assert.equal(response.status, 200, JSON.stringify(response.json));
  const choice = (response.json['choices'] as { index: number; logprobs: { token_logprobs: (number | null)[];
    top_logprobs: (Record<string, number> | null)[] } }[])[0];
  const scored = choice.logprobs.token_logprobs.slice(context.length, -1) as number[];
  assert.equal(scored.length, continuation.length);
  const expected = await generateText(server.loaded, { promptIds: [...context, ...continuation], maxTokens: 1,
    logprobs: 1, promptLogprobs: true });
  assert.deepEqual(scored, expected.promptLogprobs!.slice(context.length).map((entry) => entry!.logprob));
  // is_greedy: each continuation token's log-probability against the best of its top_logprobs.
  const tops = choice.logprobs.top_logprobs.slice(context.length, -1);
  assert.ok(tops.every((top, i) => top !== null && Math.max(...Object.values(top)) >= scored[i]));
});

test('vLLM\'s extensions: ignore_eos runs past EOS to max_tokens, min_tokens and stop_token_ids, ' +
  'continuous_usage_stats counts in every chunk; GET /v1/models/{id}', { skip }, async () => {
  const ended = await generateText(server.loaded, { prompt, maxTokens: 400 });
  assert.equal(ended.finishReason, 'eos', 'the story ends by itself');
  const past = await server.client.completions.create({ model: 'stories260K', prompt, temperature: 0,
    max_tokens: ended.ids.length + 10, ignore_eos: true } as CompletionCreateParamsNonStreaming);
  assert.equal(past.usage!.completion_tokens, ended.ids.length + 10);
  assert.equal(past.choices[0].finish_reason, 'length');
  assert.ok(past.choices[0].text.startsWith(ended.text));
  const stream = await server.client.completions.create({ model: 'stories260K', prompt, temperature: 0, max_tokens: 6,
    stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } as { include_usage: boolean } });
  const counts: number[] = [];
  for await (const chunk of stream) if (chunk.choices.length > 0 && chunk.usage) counts.push(chunk.usage.completion_tokens);
  assert.deepEqual(counts.slice(0, 6), [1, 2, 3, 4, 5, 6]);
  // min_tokens: EOS waits; stop_token_ids: another token ends the sequence (finish_reason stop).
  const longer = await post(`${server.url}/v1/completions`, { prompt, temperature: 0, max_tokens: 400,
    min_tokens: ended.ids.length + 5 });
  assert.ok((longer.json['usage'] as { completion_tokens: number }).completion_tokens >= ended.ids.length + 5);
  const stopAt = ended.ids[4];
  const stopped = await post(`${server.url}/v1/completions`, { prompt, temperature: 0, max_tokens: 100,
    stop_token_ids: [stopAt] });
  assert.equal((stopped.json['usage'] as { completion_tokens: number }).completion_tokens,
    ended.ids.indexOf(stopAt) + 1);
  assert.equal((stopped.json['choices'] as { finish_reason: string }[])[0].finish_reason, 'stop');
  const badStop = await post(`${server.url}/v1/completions`, { prompt, stop_token_ids: [100000] });
  assert.equal(badStop.status, 400);
  assert.equal((badStop.json['error'] as { param: string }).param, 'stop_token_ids');
  const model = await server.client.models.retrieve('stories260K');
  assert.equal(model.id, 'stories260K');
  const missing = await fetch(`${server.url}/v1/models/gpt-9`);
  assert.equal(missing.status, 404);
});

test('response_format json_object: chat and completions answer a JSON object (as generateText does, the same with ' +
  'speculation)', { skip }, async () => {
  const tokenizer = server.loaded.tokenizer!;
  const close = tokenizer.encode('}', { bos: false }).at(-1)!;
  const bias = { [close]: 8, [tokenizer.eosId]: 12 };
  const expected = await generateText(server.loaded, { prompt, maxTokens: 200, temperature: 0.8, seed: 5,
    responseFormat: 'json_object', logitBias: bias });
  for (const speculative of [false, 'auto', { beams: 2, beam_length: 3 }]) {
    const body: CompletionCreateParamsNonStreaming & { speculative: unknown; response_format: unknown } = {
      model: 'stories260K', prompt, max_tokens: 200, temperature: 0.8, seed: 5, logit_bias: bias,
      response_format: { type: 'json_object' }, speculative };
    const response = await server.client.completions.create(body);
    assert.equal(response.choices[0].text, expected.text, JSON.stringify(speculative));
    assert.equal(response.choices[0].finish_reason, 'stop');
    assert.equal(typeof JSON.parse(response.choices[0].text), 'object');
  }
  const chat = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 200, temperature: 0.8,
    seed: 9, logit_bias: bias, messages: [{ role: 'user', content: 'Give me JSON' }], response_format: { type: 'json_object' } });
  assert.equal(typeof JSON.parse(chat.choices[0].message.content ?? ''), 'object');
  const unknown = await post(`${server.url}/v1/completions`, { prompt, response_format: { type: 'xml' } });
  assert.equal(unknown.status, 400);
  assert.match((unknown.json['error'] as { message: string }).message,
    /response_format\.type: expected one of "text", "json_object", "json_schema", got "xml"/);
});

test('response_format json_schema (and llama-server\'s json_schema): answers that validate, as generateText gives ' +
  'them with and without speculation; schemas that cannot be enforced are a 400 naming the keyword', { skip },
async () => {
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer' },
    mood: { enum: ['happy', 'sad'] } }, required: ['name', 'age', 'mood'], additionalProperties: false };
  const expected = await generateText(server.loaded, { prompt, maxTokens: 120, temperature: 0.8, seed: 3,
    responseFormat: { type: 'json_schema', schema } });
  assert.equal(expected.finishReason, 'eos', expected.text);
  const value = JSON.parse(expected.text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(value), ['name', 'age', 'mood']);
  for (const speculative of [false, 'auto', { beams: 2, beam_length: 3 }]) {
    const body: CompletionCreateParamsNonStreaming & { speculative: unknown; response_format: unknown } = {
      model: 'stories260K', prompt, max_tokens: 120, temperature: 0.8, seed: 3, speculative,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } } };
    const response = await server.client.completions.create(body);
    assert.equal(response.choices[0].text, expected.text, JSON.stringify(speculative));
    assert.equal(response.choices[0].finish_reason, 'stop');
  }
  const llamaServer = await post(`${server.url}/v1/completions`, { prompt, max_tokens: 120, temperature: 0.8, seed: 3,
    json_schema: schema });
  assert.equal(llamaServer.status, 200);
  assert.equal((llamaServer.json['choices'] as { text: string }[])[0].text, expected.text);
  const chat = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 120, temperature: 0.8,
    seed: 4, messages: [{ role: 'user', content: 'Who are you?' }],
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
  if (chat.choices[0].finish_reason === 'stop') {
    assert.deepEqual(Object.keys(JSON.parse(chat.choices[0].message.content ?? '') as object), ['name', 'age', 'mood']);
  }
  const refused = await post(`${server.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: {
      n: { type: 'integer', minimum: 1 } } } } } });
  assert.equal(refused.status, 400);
  const error = refused.json['error'] as { param: string; message: string };
  assert.equal(error.param, 'response_format.json_schema.schema');
  assert.match(error.message, /json schema at #\/properties\/n: "minimum" is not supported/);
  const missing = await post(`${server.url}/v1/completions`, { prompt, response_format: { type: 'json_schema' } });
  assert.equal(missing.status, 400);
  assert.match((missing.json['error'] as { message: string }).message, /json_schema\.schema: required/);
  const twice = await post(`${server.url}/v1/completions`, { prompt, json_schema: schema,
    response_format: { type: 'json_object' } });
  assert.equal(twice.status, 400);
  assert.equal((twice.json['error'] as { param: string }).param, 'json_schema');
});

test('n choices: choice j samples with seed + j (choice 0 is the request with n = 1), streamed or not, completions ' +
  'and chat; greedy choices agree', { skip }, async () => {
  const response = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 20,
    temperature: 1, seed: 40, n: 3 });
  assert.deepEqual(response.choices.map((c) => c.index), [0, 1, 2]);
  for (const [j, c] of response.choices.entries()) {
    const alone = await generateText(server.loaded, { prompt, maxTokens: 20, temperature: 1, seed: 40 + j });
    assert.equal(c.text, alone.text, `choice ${j}`);
  }
  assert.notEqual(response.choices[0].text, response.choices[1].text);
  assert.equal(response.usage!.completion_tokens, 60);
  const chat = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 8, temperature: 0,
    n: 2, messages: [{ role: 'user', content: 'hi' }], stream: true });
  const texts = ['', ''];
  let roles = 0;
  for await (const chunk of chat) {
    for (const c of chunk.choices) {
      texts[c.index] += c.delta.content ?? '';
      if (c.delta.role === 'assistant') roles++;
    }
  }
  assert.equal(roles, 2);
  assert.equal(texts[0], texts[1]);
  assert.ok(texts[0].length > 0);
});

test('streamed completion: the chunks add up to the whole text; include_usage sends a usage chunk', { skip }, async () => {
  const whole = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 50, temperature: 0 });
  const stream = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 50, temperature: 0,
    stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let usage: unknown = undefined;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    else assert.equal(chunk.usage, null);
    for (const choice of chunk.choices) {
      text += choice.text;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.ok(chunks > 3);
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, whole.usage);
});

test('chat, streamed and not, renders the default template and equals generateText', { skip }, async () => {
  const messages = [{ role: 'system', content: 'Tell a story.' }, { role: 'user', content: 'A cat' }] as const;
  assert.equal(defaultChatTemplate(messages), '<|system|>\nTell a story.\n<|user|>\nA cat\n<|assistant|>\n');
  const promptIds = server.loaded.tokenizer!.encode(defaultChatTemplate(messages), { bos: true });
  const expected = await generateText(server.loaded, { promptIds, maxTokens: 30 });
  const response = await server.client.chat.completions.create({ model: 'stories260K', messages: [...messages],
    max_completion_tokens: 30, temperature: 0 });
  assert.equal(response.object, 'chat.completion');
  assert.equal(response.choices[0].message.role, 'assistant');
  assert.equal(response.choices[0].message.content, expected.text);
  assert.equal(response.usage?.prompt_tokens, promptIds.length);
  const stream = await server.client.chat.completions.create({ model: 'stories260K', messages: [...messages],
    max_tokens: 30, temperature: 0, stream: true });
  let text = '';
  let role: string | undefined;
  let finish: string | null = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const choice = chunk.choices[0];
    role ??= choice.delta.role;
    text += choice.delta.content ?? '';
    finish = choice.finish_reason ?? finish;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, expected.text);
  assert.equal(finish, 'length');
});

test('stop strings end the text before them with finish_reason "stop", streamed or not', { skip }, async () => {
  const full = (await generateText(server.loaded, { prompt, maxTokens: 60 })).text;
  const at = full.indexOf('girl');
  assert.ok(at > 0, full);
  const response = await post(`${server.url}/v1/completions`, { prompt, max_tokens: 60, temperature: 0,
    stop: ['girl', 'zzzz'] });
  assert.equal(response.status, 200);
  const choice = (response.json['choices'] as { text: string; finish_reason: string }[])[0];
  assert.equal(choice.text, full.slice(0, at));
  assert.equal(choice.finish_reason, 'stop');
  const streamed = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 60,
    temperature: 0, stop: 'girl', stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of streamed) {
    text += chunk.choices[0]?.text ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, full.slice(0, at));
  assert.equal(finish, 'stop');
});

test('tokenize and detokenize round trip; token-id prompts are fed as they are', { skip }, async () => {
  const tokenized = await post(`${server.url}/tokenize`, { prompt });
  assert.equal(tokenized.status, 200);
  const tokens = tokenized.json['tokens'] as number[];
  assert.deepEqual(tokens, server.loaded.tokenizer!.encode(prompt, { bos: true }));
  assert.equal(tokenized.json['max_model_len'], server.loaded.model.contextLength);
  const noBos = await post(`${server.url}/tokenize`, { content: prompt, add_special: false });
  assert.deepEqual(noBos.json['tokens'], tokens.slice(1));
  const detokenized = await post(`${server.url}/detokenize`, { tokens });
  assert.equal(detokenized.json['prompt'], prompt);
  assert.equal(detokenized.json['content'], prompt);
  const byIds = await server.client.completions.create({ model: 'stories260K', prompt: tokens, max_tokens: 20,
    temperature: 0 });
  const byText = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 20, temperature: 0 });
  assert.equal(byIds.choices[0].text, byText.choices[0].text);
});

test('/v1/models lists the model; /health is 503 until the model is loaded, then 200', { skip }, async () => {
  const models = await server.client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ['stories260K']);
  let resolve!: (value: Awaited<ReturnType<typeof loadModel>>) => void;
  const loading = new Promise<Awaited<ReturnType<typeof loadModel>>>((r) => {
    resolve = r;
  });
  const app = createServer({ loaded: loading });
  try {
    const early = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(early.statusCode, 503);
    assert.equal(early.json().status, 'loading');
    const completion = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt } });
    assert.equal(completion.statusCode, 503);
    assert.equal(completion.json().error.code, 'model_not_ready');
    resolve(server.loaded);
    await loading;
    await new Promise((r) => setImmediate(r));
    const late = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(late.statusCode, 200);
    assert.deepEqual(late.json(), { status: 'ok' });
  } finally {
    await app.close();
  }
});

test('/metrics exposes the documented names with the traffic so far', { skip }, async () => {
  const response = await fetch(`${server.url}/metrics`);
  assert.equal(response.status, 200);
  const text = await response.text();
  for (const name of [
    'redrafter_requests_total', 'redrafter_prompt_tokens_total', 'redrafter_generation_tokens_total',
    'redrafter_draft_tokens_total', 'redrafter_draft_tokens_accepted_total', 'redrafter_decode_steps_total',
    'redrafter_time_to_first_token_seconds', 'redrafter_inter_token_latency_seconds',
    'redrafter_request_duration_seconds', 'redrafter:num_requests_waiting', 'redrafter:num_requests_running',
    'redrafter:kv_cache_usage_perc',
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.match(text, /^redrafter_requests_total\{endpoint="\/v1\/completions",status="200"\} [1-9]/m);
  assert.match(text, /^redrafter_decode_steps_total\{shape="3x4"\} [1-9]/m);
  assert.match(text, /^redrafter:num_requests_running 0$/m);
  const generated = Number(/^redrafter_generation_tokens_total (\d+)/m.exec(text)?.[1]);
  assert.ok(generated > 100);
});

test('a client that aborts mid-stream cancels its generation and frees the queue', { skip }, async () => {
  const generatedTokens = async (): Promise<number> =>
    Number(/^redrafter_generation_tokens_total (\d+)/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
  const before = await generatedTokens();
  const controller = new AbortController();
  const stream = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 500,
    temperature: 0.8, seed: 3, stream: true, speculative: false } as Parameters<typeof server.client.completions.create>[0],
  { signal: controller.signal });
  let chunks = 0;
  // OpenAI's client ends the iteration quietly when its request is aborted.
  for await (const chunk of stream as AsyncIterable<unknown>) {
    void chunk;
    chunks++;
    controller.abort();
  }
  assert.ok(chunks >= 1 && chunks < 50, `${chunks} chunks`);
  const later = await server.client.completions.create({ model: 'stories260K', prompt, max_tokens: 10, temperature: 0 });
  assert.equal(later.usage?.completion_tokens, 10);
  const generated = (await generatedTokens()) - before;
  // The aborted one stopped short of what it would have generated (the disconnect is noticed within a few steps).
  const uncancelled = await generateText(server.loaded, { prompt, maxTokens: 500, temperature: 0.8, seed: 3 });
  assert.ok(uncancelled.ids.length > 100, `${uncancelled.ids.length}`);
  assert.ok(generated - 10 < uncancelled.ids.length / 2, `${generated - 10} of ${uncancelled.ids.length} tokens generated`);
  let metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^redrafter:num_requests_waiting 0$/m);
  assert.match(metrics, /^redrafter:num_requests_running 0$/m);
  // A batch with n = 2, aborted: every one of its four sequences stops, and their places are freed.
  const batchBefore = await generatedTokens();
  const batchAbort = new AbortController();
  const batch = await server.client.completions.create({ model: 'stories260K', prompt: [prompt, 'Tom and Sue'], n: 2,
    max_tokens: 500, temperature: 0.8, seed: 5, stream: true }, { signal: batchAbort.signal });
  let batchChunks = 0;
  for await (const chunk of batch) {
    void chunk;
    if (++batchChunks === 8) batchAbort.abort();
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^redrafter:num_requests_running 0$/m);
  assert.ok((await generatedTokens()) - batchBefore < 4 * 250, 'the batch\'s sequences were cancelled');
  assert.equal(schedulerFor(server.loaded).stats().running, 0);
});

test('a full queue answers 429 with Retry-After; close() lets the running request finish', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  const app = createServer({ loaded, maxQueue: 0, maxSequences: 1 });
  try {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    // A long plain generation: about 500 steps, each yielding to the event loop, so the next requests arrive while it
    // runs.
    const response = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, max_tokens: 500, temperature: 1, seed: 5, stream: true }) });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    const refused = await post(`${url}/v1/completions`, { prompt, max_tokens: 5 });
    assert.equal(refused.status, 429);
    assert.equal((refused.json['error'] as { type: string }).type, 'rate_limit_error');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const closing = app.close();
    await new Promise((resolve) => setImmediate(resolve));
    const late = await post(`${url}/v1/completions`, { prompt, max_tokens: 5 });
    assert.equal(late.status, 503);
    assert.equal((late.json['error'] as { code: string }).code, 'shutting_down');
    let body = '';
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += decoder.decode(value, { stream: true });
    }
    await closing;
    assert.match(body, /"finish_reason":"(length|stop)"/);
    assert.match(body, /data: \[DONE\]\n\n$/);
  } finally {
    await app.close();
    await loaded.close();
  }
});

test('16 concurrent clients, streamed and not, some disconnecting: each completed response equals the request alone',
  { skip }, async () => {
    const prompts = ['Once upon a time', 'The cat', 'Lily and Tom went to the park', 'One day, a little dog',
      'The sun was shining', 'She was sad because', 'Ben had a big red ball.', 'Mom said'];
    const requests: Record<string, unknown>[] = Array.from({ length: 16 }, (_, i) => ({
      prompt: prompts[i % prompts.length], max_tokens: 20 + (i * 37) % 100,
      ...(i % 3 === 0 ? { temperature: 0 } : { temperature: 0.8, seed: 50 + i }),
      speculative: i % 4 === 0 ? false : i % 4 === 1 ? { beams: 2, beam_length: 4 } : 'auto',
      stream: i % 2 === 1,
    }));
    // And requests of several sequences: a batch of two prompts, and n = 2 streamed.
    requests.push({ prompt: [prompts[2], prompts[5]], max_tokens: 30, temperature: 0.8, seed: 77, stream: false },
      { prompt: prompts[6], n: 2, max_tokens: 25, temperature: 0.7, seed: 91, stream: true });
    const textOf = async (body: Record<string, unknown>, disconnectAfter?: number): Promise<string | null> => {
      const controller = new AbortController();
      const response = await fetch(`${server.url}/v1/completions`, { method: 'POST', signal: controller.signal,
        headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(response.status, 200);
      // Every choice's text, in index order.
      if (!body['stream']) return ((await response.json()) as { choices: { text: string }[] }).choices.map((c) => c.text)
        .join('|');
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let raw = '';
      let reads = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        raw += decoder.decode(value, { stream: true });
        if (disconnectAfter !== undefined && ++reads >= disconnectAfter) {
          controller.abort();
          return null;
        }
      }
      const texts: string[] = [];
      for (const line of raw.split('\n')) {
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const chunk = JSON.parse(line.slice(6)) as { choices: { index: number; text?: string }[] };
        for (const c of chunk.choices) texts[c.index] = (texts[c.index] ?? '') + (c.text ?? '');
      }
      return texts.join('|');
    };
    const alone: (string | null)[] = [];
    for (const body of requests) alone.push(await textOf(body));
    const together = await Promise.all(requests.map((body, i) => textOf(body, i % 5 === 3 && body.stream ? 4 : undefined)
      .catch((error: unknown) => {
        if ((error as Error).name === 'AbortError') return null;
        throw error;
      })));
    together.forEach((text, i) => {
      if (text !== null) assert.equal(text, alone[i], `request ${i}: ${JSON.stringify(requests[i])}`);
    });
    assert.ok(together.filter((t) => t !== null).length >= 15);
    assert.equal(alone[16]?.split('|').length, 2);
    // Disconnected sequences were cancelled: once the server is idle no KV block is held.
    for (let wait = 0; wait < 100; wait++) {
      const stats = schedulerFor(server.loaded).stats();
      if (stats.running === 0 && stats.waiting === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const stats = schedulerFor(server.loaded).stats();
    assert.equal(stats.running, 0);
    assert.equal(stats.usedBlocks, 0);
    assert.ok(stats.rows > stats.steps, 'sequences shared forwards');
  });

test('logprobs: completions and chat report the model\'s log-probabilities, the same with and without speculation',
  { skip }, async () => {
    const expected = await generateText(server.loaded, { prompt, maxTokens: 24, logprobs: 2 });
    const shapes = [false, 'auto', { beams: 2, beam_length: 4 }] as const;
    for (const speculative of shapes) {
      const response = await post(`${server.url}/v1/completions`, { prompt, max_tokens: 24, temperature: 0,
        logprobs: 2, speculative });
      assert.equal(response.status, 200, JSON.stringify(response.json));
      const choice = (response.json['choices'] as { logprobs: { token_logprobs: number[]; tokens: string[];
        top_logprobs: Record<string, number>[]; text_offset: number[] } }[])[0];
      assert.deepEqual(choice.logprobs.token_logprobs, expected.logprobs!.map((e) => e.logprob), String(speculative));
      assert.equal(choice.logprobs.tokens.length, expected.ids.length);
      assert.ok(choice.logprobs.top_logprobs.every((top) => Object.keys(top).length >= 1));
      assert.equal(choice.logprobs.text_offset[0], 0);
    }
    const chat = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 12, temperature: 0.8,
      seed: 9, logprobs: true, top_logprobs: 3, messages: [{ role: 'user', content: 'Tell me a story' }] });
    const content = chat.choices[0].logprobs?.content ?? [];
    assert.ok(content.length > 0);
    for (const entry of content) {
      assert.ok(entry.logprob <= 0);
      assert.equal(entry.top_logprobs.length, 3);
      assert.deepEqual(entry.bytes, Array.from(new TextEncoder().encode(entry.token)));
    }
    // Streamed: the chunks' logprobs add up to the non-streamed ones.
    const stream = await server.client.chat.completions.create({ model: 'stories260K', max_tokens: 12, temperature: 0.8,
      seed: 9, logprobs: true, top_logprobs: 3, stream: true, messages: [{ role: 'user', content: 'Tell me a story' }] });
    const streamed: number[] = [];
    for await (const part of stream) for (const entry of part.choices[0]?.logprobs?.content ?? []) streamed.push(entry.logprob);
    assert.deepEqual(streamed, content.map((e) => e.logprob));
  });
