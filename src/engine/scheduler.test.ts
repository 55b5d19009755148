import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDrafter, loadModel, type LoadedDrafter, type LoadedModel } from './load.js';
import { generate, generateText, type GenerateOptions, type GenerationResult } from './generate.js';
import { createScheduler, schedulerFor } from './scheduler.js';
import type { SequenceStepper } from './decoder.js';
import type { KvCache } from '../model/kv-cache.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { bigramDrafter } from '../../test/drafters.js';

const skip = missing('stories260K', 'stories260K.bin');

const PROMPTS = [
  'Once upon a time', 'The cat', 'Lily and Tom went to the park', 'One day, a little dog', 'The sun was shining',
  'She was sad because', 'Ben had a big red ball.', 'Mom said', 'They', 'A bird sang a song.', 'Tim wanted to',
  'In the forest there was a tree', 'The girl', 'He ran', 'It was a cold day', 'Sam and Sue',
];

interface Client {
  options: GenerateOptions;
  /** Stop reading (abort) after this many chunks. */
  abortAfter?: number;
}

/** Sixteen different requests: greedy and seeded, short and long, no drafter / fixed tree / controller, 3 abort. */
function clients(drafter: LoadedDrafter): Client[] {
  return PROMPTS.map((prompt, i): Client => {
    const sampling: GenerateOptions = i % 3 === 0 ? {} : { temperature: 0.6 + (i % 4) * 0.15, seed: 100 + i, topP: 0.95 };
    const speculation: GenerateOptions = i % 4 === 0 ? {} : i % 4 === 1 ? { drafter, beams: 2, beamLength: 4 }
      : i % 4 === 2 ? { drafter } : { drafter, beams: 1, beamLength: 6 };
    return {
      options: { prompt, maxTokens: 12 + ((i * 29) % 90), ...sampling, ...speculation },
      abortAfter: i % 5 === 4 ? 3 + i % 3 : undefined,
    };
  });
}

async function run(loaded: LoadedModel, client: Client): Promise<{ ids: number[]; finishReason: string | null }> {
  const controller = new AbortController();
  const generation = generate(loaded, { ...client.options, signal: controller.signal });
  const ids: number[] = [];
  let chunks = 0;
  for await (const chunk of generation) {
    ids.push(...chunk.ids);
    if (++chunks === client.abortAfter) controller.abort();
    // Consumers that read at different speeds: some hand the event loop a turn after every chunk.
    if (chunks % 2 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return { ids, finishReason: generation.finishReason };
}

test('16 concurrent generations share forwards and each emits exactly what it emits alone', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 2 });
  try {
    const training: number[][] = [];
    for (const prompt of PROMPTS.slice(0, 6)) training.push((await generateText(loaded, { prompt, maxTokens: 100 })).ids);
    const drafter = bigramDrafter(loaded, training);
    const requests = clients(drafter);
    const alone: GenerationResult[] = [];
    for (const client of requests) alone.push(await generateText(loaded, client.options));
    const scheduler = schedulerFor(loaded);
    const before = scheduler.stats();
    const together = await Promise.all(requests.map((client) => run(loaded, client)));
    const after = scheduler.stats();
    together.forEach((result, i) => {
      const label = `client ${i} (${JSON.stringify({ ...requests[i].options, drafter: undefined })})`;
      if (requests[i].abortAfter !== undefined && result.finishReason === 'abort') {
        assert.deepEqual(result.ids, alone[i].ids.slice(0, result.ids.length), `${label}: aborted output is a prefix`);
      } else {
        assert.deepEqual(result.ids, alone[i].ids, `${label}: ids differ from the request alone`);
        assert.equal(result.finishReason, alone[i].finishReason, label);
      }
    });
    // They were batched: fewer forwards than rows, more than one sequence at a time.
    const steps = after.steps - before.steps;
    const rows = after.rows - before.rows;
    assert.ok(rows > 2 * steps, `expected batched forwards: ${rows} rows in ${steps} forwards`);
    // Nothing is left behind: no running or waiting sequence, no block held or reserved.
    assert.equal(after.running, 0);
    assert.equal(after.waiting, 0);
    assert.equal(after.usedBlocks, 0);
    assert.equal(scheduler.pool.reservedBlocks, 0);
    drafter.dispose();
  } finally {
    await loaded.close();
  }
});

test('consumers that read without pausing still share every step', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  try {
    const scheduler = schedulerFor(loaded);
    const before = scheduler.stats();
    // 8 sequences of exactly 150 tokens (no stop token), read by generateText (no pause between chunks): past
    // RUN_AHEAD (64) a greedy consumer must not run ahead alone.
    const results = await Promise.all(PROMPTS.slice(0, 8).map((prompt, i) =>
      generateText(loaded, { prompt, maxTokens: 150, stopTokens: [], temperature: 0.7, seed: i })));
    for (const result of results) assert.equal(result.ids.length, 150);
    const steps = scheduler.stats().steps - before.steps;
    assert.ok(steps <= 160, `${steps} forwards for 8 sequences of 150 tokens (150 if all share every step)`);
  } finally {
    await loaded.close();
  }
});

test('a small KV budget queues sequences beyond what it holds; all finish, identical to alone', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  try {
    const requests = PROMPTS.slice(0, 8).map((prompt, i): GenerateOptions =>
      ({ prompt, maxTokens: 40, temperature: i % 2 ? 0.8 : 0, seed: i }));
    const alone: number[][] = [];
    for (const options of requests) alone.push((await generateText(loaded, options)).ids);
    // Room for about two such sequences at once.
    const probe = schedulerFor(loaded);
    const blockBytes = probe.pool.bytesPerBlock;
    const scheduler = schedulerFor(loaded, { maxSequences: 8, kvBudgetBytes: blockBytes * 12 });
    let sawWaiting = 0;
    const results = await Promise.all(requests.map(async (options) => {
      const ids: number[] = [];
      for await (const chunk of generate(loaded, options)) {
        ids.push(...chunk.ids);
        sawWaiting = Math.max(sawWaiting, scheduler.stats().waiting);
      }
      return ids;
    }));
    results.forEach((ids, i) => assert.deepEqual(ids, alone[i], `request ${i}`));
    assert.ok(sawWaiting > 0, 'some sequences waited for KV blocks');
    assert.equal(scheduler.stats().usedBlocks, 0);
    // A request that could never fit is refused with the numbers.
    await assert.rejects(generateText(loaded, { prompt: 'Once', maxTokens: 200 }), /KV budget: the sequence needs \d+ blocks/);
  } finally {
    await loaded.close();
  }
});

test('prefix reuse: a prompt sharing a cached prefix takes its blocks and emits the same ids as computed fresh',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    try {
      const system = (await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 200 })).ids;
      const prompt = (tail: number[]): number[] => [1, ...system.slice(0, 199), ...tail];
      const first = await generateText(loaded, { promptIds: prompt([400, 401]), maxTokens: 30 });
      assert.equal(first.stats.cachedPromptTokens, 0);
      const second = await generateText(loaded, { promptIds: prompt([402]), maxTokens: 30, temperature: 0.9, seed: 4 });
      assert.ok(second.stats.cachedPromptTokens >= 192, `reused ${second.stats.cachedPromptTokens} of 201 tokens`);
      // The same request on a fresh scheduler (an empty pool) computes everything.
      schedulerFor(loaded, {});
      const fresh = await generateText(loaded, { promptIds: prompt([402]), maxTokens: 30, temperature: 0.9, seed: 4 });
      assert.equal(fresh.stats.cachedPromptTokens, 0);
      assert.deepEqual(second.ids, fresh.ids);
    } finally {
      await loaded.close();
    }
  });

test('logprobs: the same numbers with and without ReDrafter, alone and batched, greedy and seeded', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  try {
    const training: number[][] = [];
    for (const prompt of PROMPTS.slice(0, 4)) training.push((await generateText(loaded, { prompt, maxTokens: 80 })).ids);
    const drafter = bigramDrafter(loaded, training);
    for (const sampling of [{}, { temperature: 0.9, seed: 3 }]) {
      const base: GenerateOptions = { prompt: 'Lily and Tom went to the park', maxTokens: 40, logprobs: 3, ...sampling };
      const plain = await generateText(loaded, base);
      assert.equal(plain.logprobs?.length, plain.ids.length);
      plain.logprobs!.forEach((entry, i) => {
        assert.equal(entry.token, plain.ids[i]);
        assert.equal(entry.top.length, 3);
        assert.ok(entry.logprob <= 0 && entry.top[0].logprob >= entry.top[2].logprob);
      });
      // Greedy picks the most likely token.
      if (!('temperature' in sampling)) plain.logprobs!.forEach((entry) => assert.equal(entry.top[0].token, entry.token));
      const [drafted, auto] = await Promise.all([generateText(loaded, { ...base, drafter, beams: 2, beamLength: 5 }),
        generateText(loaded, { ...base, drafter })]);
      assert.deepEqual(drafted.ids, plain.ids);
      assert.deepEqual(drafted.logprobs, plain.logprobs);
      assert.deepEqual(auto.logprobs, plain.logprobs);
    }
    drafter.dispose();
  } finally {
    await loaded.close();
  }
});

test('noted arrivals hold the next step until the event loop has let the requests in, so a burst joins one step',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    try {
      const scheduler = schedulerFor(loaded);
      const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
      /**
       * Steps of two one-token generations: A now, B three event-loop turns later (a connection accepted, its request
       * read, then parsed: a server's arrival), with an arrival noted at each of those turns when `noted`.
       */
      async function steps(noted: boolean): Promise<number> {
        const before = scheduler.stats().steps;
        if (noted) scheduler.noteArrival();
        const a = generateText(loaded, { prompt: 'Once upon a time', maxTokens: 1 });
        const b = (async () => {
          for (let t = 0; t < 3; t++) {
            await turn();
            if (noted) scheduler.noteArrival();
          }
          return generateText(loaded, { prompt: 'The cat', maxTokens: 1 });
        })();
        const [resultA, resultB] = await Promise.all([a, b]);
        assert.equal(resultA.ids.length, 1);
        assert.equal(resultB.ids.length, 1);
        return scheduler.stats().steps - before;
      }
      // Without notes, A's step runs before B has arrived; with them, both prompts share the first forward.
      assert.equal(await steps(false), 2);
      assert.equal(await steps(true), 1);
    } finally {
      await loaded.close();
    }
  });

test('an adaptive sequence weighs its tree against the first tokens of prompts that end in the same forward',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    try {
      // The forward itself is not what is tested: a no-op, so the steppers below need no real rows.
      const scheduler = createScheduler({ ...loaded.model, forwardSequences: () => loaded.model.output });
      const seen: number[] = [];
      /** A stepper of one-row steps: prefilling for its first step when `promptRows` > 0 (that row its prompt's last
       * when `endsPrompt`), adaptive (recording the tokens it is told the others commit) otherwise. */
      const stepper = (cache: KvCache, promptRows: number, endsPrompt: boolean): SequenceStepper => {
        let prefilling = promptRows > 0;
        const adaptive = !prefilling;
        return {
          start() {},
          get prefilling() {
            return prefilling;
          },
          adaptive,
          plan(batch, _budget, _otherRows, otherTokens) {
            if (adaptive) seen.push(otherTokens);
            batch.addRow(batch.cacheIndex(cache), 1, 0, 0, 1, prefilling ? endsPrompt : true);
            return 1;
          },
          complete(_batch, out) {
            const wasPrefilling = prefilling;
            prefilling = false;
            if (wasPrefilling && !endsPrompt) return 0;
            out[0] = 5;
            return 1;
          },
          committedLogitRows: new Int32Array(1),
          maxTokensPerStep: 1,
          position: 0,
          reusedPromptTokens: 0,
          dispose() {},
        };
      };
      for (const endsPrompt of [true, false]) {
        seen.length = 0;
        const request = (promptRows: number) => ({ promptIds: [1, 2], maxTokens: 1, stopTokens: new Set<number>(),
          extraSlots: 0, createStepper: (cache: KvCache) => stepper(cache, promptRows, endsPrompt) });
        const decoding = scheduler.add(request(0));
        const prompt = scheduler.add(request(1));
        const out = new Int32Array(4);
        await Promise.all([decoding.next(out), prompt.next(out)]);
        decoding.cancel();
        prompt.cancel();
        assert.deepEqual(seen, [endsPrompt ? 1 : 0], `prompt chunk ${endsPrompt ? 'ending' : 'not ending'} its prompt`);
      }
      scheduler.dispose();
    } finally {
      await loaded.close();
    }
  });
