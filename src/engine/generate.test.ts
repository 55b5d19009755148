import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadDrafter, loadModel, type LoadedModel } from './load.js';
import { defaultDrafterPath } from './default-model.js';
import { tokenLogprobs } from '../sampling/index.js';
import { initialJsonState, stepJson } from '../sampling/constraints.js';
import { generate, generateText } from './generate.js';
import { missing, stories260K } from '../../test/fixtures.js';

interface ReferenceGreedy {
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}

const skip = missing('stories260K', 'stories260K.bin');

async function withStories(threads: number, body: (loaded: LoadedModel) => Promise<void>): Promise<void> {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads });
  try {
    await body(loaded);
  } finally {
    await loaded.close();
  }
}

test('stories260K greedy ids equal llama2.c run.c (reference-greedy.jsonl), 1 and 2 threads', { skip }, async () => {
  const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').trim().split('\n')[0]) as ReferenceGreedy;
  for (const threads of [1, 2]) {
    await withStories(threads, async (loaded) => {
      // run.c generates until position 200 (its `steps`): 200 - prompt length + 1 tokens.
      const fromIds = await generateText(loaded, { promptIds: reference.prompt_ids,
        maxTokens: reference.greedy_ids.length });
      assert.deepEqual(fromIds.ids, reference.greedy_ids);
      const fromText = await generateText(loaded, { prompt: reference.prompt, maxTokens: reference.greedy_ids.length });
      assert.deepEqual(fromText.promptIds, reference.prompt_ids);
      assert.deepEqual(fromText.ids, reference.greedy_ids);
      assert.equal(fromText.text, loaded.tokenizer!.decode(reference.greedy_ids));
      assert.equal(fromText.stats.tokens, reference.greedy_ids.length);
      assert.equal(fromText.stats.steps, reference.greedy_ids.length - 1);
    });
  }
});

test('seeded sampling is reproducible and differs between seeds', { skip }, async () => {
  await withStories(1, async (loaded) => {
    const settings = { prompt: 'Once upon a time', maxTokens: 60, temperature: 1, topP: 0.9 };
    const a = await generateText(loaded, { ...settings, seed: 42 });
    const b = await generateText(loaded, { ...settings, seed: 42 });
    const c = await generateText(loaded, { ...settings, seed: 43 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });
});

test('stop conditions: max tokens, stop strings (held back while partial), abort, context', { skip }, async () => {
  await withStories(1, async (loaded) => {
    const full = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 80 });
    assert.equal(full.ids.length, 80);
    assert.equal(full.finishReason, 'length');
    // Stop before a word that appears in the greedy text; the text must end right before it.
    const word = full.text.split(' ').filter((w) => w.length > 3)[4];
    const cut = full.text.indexOf(word);
    const stopped = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 80, stop: [word] });
    assert.equal(stopped.finishReason, 'stop');
    assert.equal(stopped.text, full.text.slice(0, cut));
    // Streamed chunks never contain the start of the stop string before it is decided.
    const chunks: string[] = [];
    for await (const chunk of generate(loaded, { prompt: 'Once upon a time', maxTokens: 80, stop: [word] })) {
      chunks.push(chunk.text);
    }
    assert.equal(chunks.join(''), full.text.slice(0, cut));
    const controller = new AbortController();
    const aborted = generate(loaded, { prompt: 'Once upon a time', maxTokens: 80, signal: controller.signal });
    let count = 0;
    for await (const chunk of aborted) {
      count += chunk.ids.length;
      if (count >= 5) controller.abort();
    }
    assert.equal(aborted.finishReason, 'abort');
    assert.equal(count, 5);
    const untilFull = await generateText(loaded, { promptIds: [1, 403], maxTokens: 10_000 });
    assert.equal(untilFull.finishReason === 'context' || untilFull.finishReason === 'eos', true);
    if (untilFull.finishReason === 'context') assert.equal(untilFull.ids.length, 512 - 2 + 1);
  });
});

test('bad requests: prompt longer than the context, ids outside the vocabulary, bad sampling values', { skip },
  async () => {
    await withStories(1, async (loaded) => {
      const long = Array.from({ length: 600 }, () => 300);
      await assert.rejects(generateText(loaded, { promptIds: long }), /600 tokens do not fit the context of 512/);
      await assert.rejects(generateText(loaded, { promptIds: [1, 512] }), /promptIds\[1\]: expected a token id in 0\.\.511, got 512/);
      await assert.rejects(generateText(loaded, { prompt: 'x', temperature: -1 }), /temperature/);
      await assert.rejects(generateText(loaded, { prompt: 'x', maxTokens: -3 }), /maxTokens/);
    });
  });

test('chat messages are rendered with the model\'s template and encoded without a second BOS; ReDrafter stays exact',
  async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { writeSyntheticHfFolder } = await import('../../test/synthetic-models.js');
    const { loadDrafter } = await import('./load.js');
    const { randomDrafter } = await import('../drafter/checkpoint.js');
    const dir = mkdtempSync(join(tmpdir(), 'redrafter-chat-'));
    try {
      writeSyntheticHfFolder(dir, { kind: 'llama3', dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2 });
      const loaded = await loadModel({ model: dir });
      try {
        const tokenizer = loaded.tokenizer!;
        const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }];
        const rendered = tokenizer.applyChatTemplate!(messages, { addGenerationPrompt: true });
        const result = await generateText(loaded, { messages, maxTokens: 12, temperature: 0.8, seed: 4, stopTokens: [] });
        assert.deepEqual(result.promptIds, tokenizer.encode(rendered, { bos: false }));
        assert.equal(result.promptIds.filter((id) => id === tokenizer.bosId).length, 1);
        const drafter = loadDrafter(loaded, randomDrafter(loaded.model.config, { seed: 2 }));
        const drafted = await generateText(loaded, { messages, maxTokens: 12, temperature: 0.8, seed: 4, stopTokens: [],
          drafter, beams: 4, beamLength: 4 });
        assert.deepEqual(drafted.ids, result.ids);
        await assert.rejects(generateText(loaded, { maxTokens: 3 }), /give a prompt, messages or promptIds/);
      } finally {
        await loaded.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

test('promptLogprobs scores the prompt as one causal forward does, bit for bit: alone, after its blocks were cached, ' +
  'beside another sequence, with a drafter, and with maxTokens 0', { skip }, async () => {
  await withStories(1, async (loaded) => {
    const { model } = loaded;
    const prompt = 'Once upon a time, there was a little girl named Lily who loved to play in the big green park.';
    const promptIds = loaded.tokenizer!.encode(prompt, { bos: true });
    // The reference: one forward over the whole prompt into a cache of its own, every row's logits.
    const cache = model.createCache(model.contextLength);
    const n = promptIds.length;
    model.forward(cache, { count: n, tokens: Int32Array.from(promptIds), positions: Int32Array.from({ length: n },
      (_, i) => i), writeSlot: 0, prefixLengths: Int32Array.from({ length: n }, (_, i) => i + 1), logits: 'all' });
    const expected = promptIds.slice(1).map((token, i) => tokenLogprobs(model.logitsRow(i), token, 3));
    cache.free();
    const scored = async (extra: Partial<Parameters<typeof generateText>[1]>) => {
      const result = await generateText(loaded, { promptIds, maxTokens: 4, logprobs: 3, promptLogprobs: true,
        ...extra });
      assert.equal(result.promptLogprobs?.length, n);
      assert.equal(result.promptLogprobs?.[0], null);
      assert.deepEqual(result.promptLogprobs?.slice(1), expected);
      return result;
    };
    const first = await scored({});
    assert.equal(first.ids.length, 4);
    // Its blocks are cached now; scoring computes them again rather than reusing them.
    const again = await scored({});
    assert.equal(again.stats.cachedPromptTokens, 0);
    const plain = await generateText(loaded, { promptIds, maxTokens: 4 });
    assert.ok(plain.stats.cachedPromptTokens > 0, 'the prompt\'s blocks were cached');
    assert.deepEqual(again.ids, plain.ids);
    // Beside a generation on another prompt (one forward carries both), and with ReDrafter.
    const [beside] = await Promise.all([scored({}), generateText(loaded, { prompt: 'The dog ran', maxTokens: 30 })]);
    assert.deepEqual(beside.ids, plain.ids);
    const drafter = loadDrafter(loaded, defaultDrafterPath()!);
    const drafted = await scored({ drafter, beams: 2, beamLength: 4 });
    assert.deepEqual(drafted.ids, plain.ids);
    // maxTokens 0: the prompt is scored, nothing generated.
    const only = await scored({ maxTokens: 0 });
    assert.deepEqual(only.ids, []);
    assert.equal(only.text, '');
    assert.equal(only.finishReason, 'length');
    assert.throws(() => generate(loaded, { promptIds, promptLogprobs: true }), /promptLogprobs: needs logprobs/);
    const none = await generateText(loaded, { promptIds, maxTokens: 2, logprobs: 1 });
    assert.equal(none.promptLogprobs, undefined);
  });
});

test('responseFormat json_object: the text is always a prefix of one JSON object, and it ends only complete',
  { skip }, async () => {
  await withStories(1, async (loaded) => {
    const tokenizer = loaded.tokenizer!;
    const isPrefix = (text: string): boolean => {
      const state = initialJsonState();
      for (const b of new TextEncoder().encode(text)) if (!stepJson(state, b)) return false;
      return true;
    };
    for (const seed of [1, 2, 3]) {
      const result = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 60, temperature: 1, seed,
        responseFormat: 'json_object' });
      assert.ok(isPrefix(result.text), JSON.stringify(result.text));
      if (result.finishReason === 'eos') JSON.parse(result.text);
    }
    // Leaning on '}' and EOS, the object closes and the sequence ends at once.
    const close = tokenizer.encode('}', { bos: false }).at(-1)!;
    const done = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 200, temperature: 0.8, seed: 5,
      responseFormat: 'json_object', logitBias: { [close]: 8, [tokenizer.eosId]: 12 } });
    assert.equal(done.finishReason, 'eos', JSON.stringify(done.text));
    assert.equal(typeof JSON.parse(done.text), 'object');
    await assert.rejects(async () => generateText(loaded, { prompt: 'x', responseFormat: 'xml' as 'text' }),
      /responseFormat: expected "text", "json_object" or \{ type: "json_schema", schema \}, got "xml"/);
  });
});

test('responseFormat json_schema: every finished answer validates; a schema that cannot be enforced is refused',
  { skip }, async () => {
  await withStories(1, async (loaded) => {
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 10 },
      age: { type: 'integer' }, mood: { enum: ['happy', 'sad'] } }, required: ['name', 'age', 'mood'] };
    let finished = 0;
    for (const seed of [1, 2, 3, 4]) {
      const result = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 120, temperature: 0.8, seed,
        responseFormat: { type: 'json_schema', schema } });
      if (result.finishReason !== 'eos') continue;
      finished++;
      const value = JSON.parse(result.text) as { name: string; age: number; mood: string };
      assert.deepEqual(Object.keys(value), ['name', 'age', 'mood'], result.text);
      assert.ok(value.name.length <= 10 && Number.isInteger(value.age) && ['happy', 'sad'].includes(value.mood));
    }
    assert.ok(finished >= 1, 'at least one answer finished');
    assert.throws(() => generate(loaded, { prompt: 'x', responseFormat: { type: 'json_schema',
      schema: { type: 'integer', minimum: 3 } } }), /json schema at #: "minimum" is not supported/);
  });
});
