// The engine on the WebGPU backend: loadModel({ backend: 'webgpu' }), generate() awaiting the GPU's forwards,
// ReDrafter (drafter, sampler and verification on the host) emitting exactly what plain decoding on WebGPU emits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadDrafter, loadModel, type LoadedModel } from '../engine/load.js';
import { generateText, type GenerateOptions } from '../engine/generate.js';
import { schedulerFor } from '../engine/scheduler.js';
import { randomDrafter } from '../drafter/checkpoint.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { firstLegOnly, missing, stories260K } from '../../test/fixtures.js';
import { bigramDrafter } from '../../test/drafters.js';
import { testDevice } from './test-device.js';
import type { EngineWebGpuModel } from './engine-model.js';
import { drafterPlacement } from '../engine/drafter-placement.js';

const device = await testDevice();
const skip = device.skip || missing('stories260K', 'stories260K.bin');

const PROMPTS = [
  'Once upon a time', 'The cat', 'Lily and Tom went to the park', 'One day, a little dog', 'The sun was shining',
  'She was sad because', 'Ben had a big red ball.', 'Mom said', 'They', 'A bird sang a song.', 'Tim wanted to',
  'In the forest there was a tree', 'The girl', 'He ran', 'It was a cold day', 'Sam and Sue', 'The fish swam',
  'Once', 'The little boy saw a big box', 'Anna liked to',
];
const SHAPES: [number, number][] = [[1, 2], [1, 4], [2, 3], [4, 5], [2, 6], [8, 3], [1, 6], [4, 2]];

async function withGpuModel(body: (loaded: LoadedModel) => Promise<void>): Promise<void> {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, backend: 'webgpu',
    contextLength: 256 });
  try {
    await body(loaded);
  } finally {
    await loaded.close();
  }
}

test('loadModel({ backend: "webgpu" }): greedy generate() equals llama2.c run.c', { skip }, async () => {
  await withGpuModel(async (loaded) => {
    assert.equal(loaded.backend, 'webgpu');
    assert.ok(loaded.adapter && loaded.adapter.length > 0);
    const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').trim().split('\n')[0]) as
      { prompt_ids: number[]; greedy_ids: number[] };
    const result = await generateText(loaded, { promptIds: reference.prompt_ids,
      maxTokens: reference.greedy_ids.length, stopTokens: [] });
    assert.deepEqual(result.ids, reference.greedy_ids);
    // The synchronous forward is refused with a message that says why.
    assert.throws(() => loaded.model.forward(loaded.model.createCache(8), { count: 1, tokens: Int32Array.of(1),
      positions: Int32Array.of(0), writeSlot: 0, prefixLengths: Int32Array.of(1), logits: 'last' }), /asynchronous/);
  });
});

test('ReDrafter on WebGPU emits exactly the plain-decoding ids: 20 prompts × W × L, greedy and seeded',
  { skip: skip || firstLegOnly() },
  async () => {
    await withGpuModel(async (loaded) => {
      const random = loadDrafter(loaded, randomDrafter(loaded.model.config, { seed: 2 }));
      const training: number[][] = [];
      for (const prompt of PROMPTS.slice(0, 3)) training.push((await generateText(loaded, { prompt, maxTokens: 60 })).ids);
      const bigram = bigramDrafter(loaded, training);
      let multiTokenSteps = 0;
      for (const [i, prompt] of PROMPTS.entries()) {
        const [W, L] = SHAPES[i % SHAPES.length];
        const sampling: GenerateOptions = i % 2 === 0 ? {} : { temperature: 0.8, topP: 0.95, seed: 40 + i };
        const base: GenerateOptions = { prompt, maxTokens: 20, ...sampling };
        const plain = await generateText(loaded, base);
        for (const drafter of i % 3 === 0 ? [random, bigram] : [bigram]) {
          const drafted = await generateText(loaded, { ...base, drafter, beams: W, beamLength: L });
          const label = `"${prompt}" W=${W} L=${L} ${JSON.stringify(sampling)}`;
          assert.deepEqual(drafted.ids, plain.ids, label);
          assert.equal(drafted.finishReason, plain.finishReason, label);
          multiTokenSteps += drafted.stats.committedPerStep.filter((n) => n > 1).length;
        }
      }
      assert.ok(multiTokenSteps > 20, `the bigram drafter's trees were accepted (${multiTokenSteps} multi-token steps)`);
      // The shipped drafter (on the GPU) reads the model's hidden states and embedding: it accepts as on WebAssembly.
      const shipped = loadDrafter(loaded, defaultDrafterPath()!);
      const story = { promptIds: [1, 403, 407, 261, 378], maxTokens: 40, stopTokens: [] };
      const drafted = await generateText(loaded, { ...story, drafter: shipped, beams: 1, beamLength: 6 });
      assert.deepEqual(drafted.ids, (await generateText(loaded, story)).ids);
      const perStep = drafted.stats.committedPerStep.reduce((a, b) => a + b, 0) / drafted.stats.committedPerStep.length;
      assert.ok(perStep > 3, `shipped drafter on WebGPU: ${perStep.toFixed(2)} tokens per step (about 5 on WebAssembly)`);
      shipped.dispose();
      // Without a shape, the speculation controller chooses, calibrated by awaited forwards on first use.
      const auto = await generateText(loaded, { prompt: PROMPTS[0], maxTokens: 20, drafter: bigram });
      assert.deepEqual(auto.ids, (await generateText(loaded, { prompt: PROMPTS[0], maxTokens: 20 })).ids);
      assert.ok((auto.stats.redrafter?.calibrationSeconds ?? 0) > 0, 'the first use calibrated');
      assert.ok(Object.keys(auto.stats.redrafter?.shapes ?? {}).length > 0, JSON.stringify(auto.stats.redrafter?.shapes));
      // Log-probabilities are the same numbers with and without speculation.
      const withLogprobs = { prompt: PROMPTS[2], maxTokens: 16, logprobs: 2 };
      const plainLogprobs = await generateText(loaded, withLogprobs);
      const draftedLogprobs = await generateText(loaded, { ...withLogprobs, drafter: bigram, beams: 2, beamLength: 4 });
      assert.deepEqual(draftedLogprobs.logprobs, plainLogprobs.logprobs);
      // What crossed the bus: every forward read back its logits rows and hidden states.
      const totals = (loaded.model as EngineWebGpuModel).totals;
      assert.ok(totals.forwards > 0 && totals.bytesRead > 0);
      random.dispose();
      bigram.dispose();
    });
  });

test('WebGPU reads back what the step needs: argmax ids in greedy decoding, logits rows when sampling or with logprobs',
  { skip }, async () => {
    await withGpuModel(async (loaded) => {
      const totals = (loaded.model as EngineWebGpuModel).totals;
      const vocab = loaded.model.config.vocabSize;
      const dim = loaded.model.config.dim;
      const perForward = async (options: GenerateOptions): Promise<{ ids: number[]; bytes: number }> => {
        const [forwards, bytes] = [totals.forwards, totals.bytesRead];
        const result = await generateText(loaded, options);
        return { ids: result.ids, bytes: (totals.bytesRead - bytes) / (totals.forwards - forwards) };
      };
      const story = { prompt: PROMPTS[4], maxTokens: 24, stopTokens: [] };
      const greedy = await perForward(story);
      assert.ok(greedy.bytes <= 16, `greedy plain decoding: ${greedy.bytes} bytes per forward (one id)`);
      // Log-probabilities need the values: the same ids from the logits rows.
      const withLogprobs = await perForward({ ...story, logprobs: 1 });
      assert.deepEqual(withLogprobs.ids, greedy.ids);
      assert.ok(withLogprobs.bytes >= 4 * vocab, `with logprobs: ${withLogprobs.bytes} bytes per forward`);
      // A repetition penalty changes the pick beyond the argmax: values again, and the host's sampler.
      const penalised = await perForward({ ...story, repetitionPenalty: 1.3 });
      assert.ok(penalised.bytes >= 4 * vocab, `with a penalty: ${penalised.bytes} bytes per forward`);
      const sampled = await perForward({ ...story, temperature: 0.8, seed: 3 });
      assert.ok(sampled.bytes >= 4 * vocab && sampled.bytes < 4 * vocab + 64,
        `sampling: ${sampled.bytes} bytes per forward`);
      // ReDrafter, greedy, with the drafter on the GPU: one id per node and no hidden state (the drafter reads it there).
      const shipped = loadDrafter(loaded, defaultDrafterPath()!, { drafterOn: 'device' });
      assert.ok(shipped.deviceSearch, 'a drafter loaded for a WebGPU model can draft on the GPU');
      const onGpu = await perForward({ ...story, drafter: shipped, beams: 2, beamLength: 4 });
      assert.deepEqual(onGpu.ids, greedy.ids);
      assert.ok(onGpu.bytes <= 4 * (1 + 2 * 3) + 16, `greedy ReDrafter, drafter on the GPU: ${onGpu.bytes} bytes per forward`);
      shipped.dispose();
      // A drafter on the host (the bigram test drafter): ids of every node plus the hidden states it continues from.
      const training = [(await generateText(loaded, { prompt: PROMPTS[0], maxTokens: 60 })).ids, greedy.ids];
      const bigram = bigramDrafter(loaded, training);
      const tree = { beams: 2, beamLength: 4 };
      const drafted = await perForward({ ...story, drafter: bigram, ...tree });
      assert.deepEqual(drafted.ids, greedy.ids);
      const nodes = 1 + tree.beams * (tree.beamLength - 1);
      assert.ok(drafted.bytes <= nodes * (4 + 4 * dim) + 16 && drafted.bytes < 4 * vocab * nodes,
        `greedy ReDrafter: ${drafted.bytes} bytes per forward`);
      const draftedLogprobs = await perForward({ ...story, drafter: bigram, ...tree, logprobs: 1 });
      assert.deepEqual(draftedLogprobs.ids, greedy.ids);
      bigram.dispose();
    });
  });

test('the drafter on the GPU: ReDrafter ids equal plain decoding, and it drafts what the host drafter drafts',
  { skip: skip || firstLegOnly() },
  async (t) => {
    await withGpuModel(async (loaded) => {
      const shipped = loadDrafter(loaded, defaultDrafterPath()!, { drafterOn: 'device' });
      assert.ok(shipped.deviceSearch);
      const onHost = loadDrafter(loaded, defaultDrafterPath()!, { drafterOn: 'host' });
      assert.equal(onHost.deviceSearch, undefined);
      let gpuTokens = 0;
      let hostTokens = 0;
      let gpuSteps = 0;
      let hostSteps = 0;
      for (const [i, prompt] of PROMPTS.slice(0, 4).entries()) {
        const [W, L] = SHAPES[(2 * i + 1) % SHAPES.length];
        const sampling: GenerateOptions = i % 2 === 0 ? {} : { temperature: 1, seed: 70 + i };
        const base: GenerateOptions = { prompt, maxTokens: 24, ...sampling };
        const plain = await generateText(loaded, base);
        const gpuDrafted = await generateText(loaded, { ...base, drafter: shipped, beams: W, beamLength: L });
        const hostDrafted = await generateText(loaded, { ...base, drafter: onHost, beams: W, beamLength: L });
        const label = `"${prompt}" W=${W} L=${L} ${JSON.stringify(sampling)}`;
        assert.deepEqual(gpuDrafted.ids, plain.ids, label);
        assert.deepEqual(hostDrafted.ids, plain.ids, label);
        assert.equal(gpuDrafted.stats.redrafter?.drafterOn, 'device');
        assert.equal(hostDrafted.stats.redrafter?.drafterOn, 'host');
        gpuTokens += gpuDrafted.ids.length;
        hostTokens += hostDrafted.ids.length;
        gpuSteps += gpuDrafted.stats.committedPerStep.length;
        hostSteps += hostDrafted.stats.committedPerStep.length;
      }
      // The same beams but for near ties (drafter.test.ts): the same acceptance, within a few percent.
      const [gpuRate, hostRate] = [gpuTokens / gpuSteps, hostTokens / hostSteps];
      t.diagnostic(`tokens per step: drafter on the GPU ${gpuRate.toFixed(3)}, on the host ${hostRate.toFixed(3)}`);
      assert.ok(hostRate > 1.5 && Math.abs(gpuRate - hostRate) <= 0.05 * hostRate,
        `tokens per step: drafter on the GPU ${gpuRate.toFixed(3)}, on the host ${hostRate.toFixed(3)}`);
      // The speculation controller calibrates the GPU drafter's cost and drafts there too.
      const auto = await generateText(loaded, { prompt: PROMPTS[1], maxTokens: 24, drafter: shipped });
      assert.deepEqual(auto.ids, (await generateText(loaded, { prompt: PROMPTS[1], maxTokens: 24 })).ids);
      assert.equal(auto.stats.redrafter?.drafterOn, 'device');
      // By default a draft is timed on each side on first use and the faster one kept (on SwiftShader: the host).
      const placed = loadDrafter(loaded, defaultDrafterPath()!);
      const chosen = await generateText(loaded, { prompt: PROMPTS[1], maxTokens: 24, drafter: placed, beams: 2, beamLength: 4 });
      assert.deepEqual(chosen.ids, auto.ids);
      const placement = await drafterPlacement(loaded, placed);
      assert.ok(placement.hostMs > 0 && placement.deviceMs > 0, JSON.stringify(placement));
      assert.equal(chosen.stats.redrafter?.drafterOn, placement.deviceMs < placement.hostMs ? 'device' : 'host',
        JSON.stringify(placement));
      t.diagnostic(`one 4×5 draft: ${placement.hostMs.toFixed(2)} ms on the host, ${placement.deviceMs.toFixed(2)} ms on the GPU`);
      placed.dispose();
      onHost.dispose();
      shipped.dispose();
    });
  });

test('concurrent generations on a WebGPU model share forwards, each emitting what it emits alone', { skip }, async () => {
  await withGpuModel(async (loaded) => {
    const totals = (loaded.model as EngineWebGpuModel).totals;
    const onGpu = loadDrafter(loaded, defaultDrafterPath()!, { drafterOn: 'device' });
    const onHost = loadDrafter(loaded, defaultDrafterPath()!, { drafterOn: 'host' });
    // Plain and ReDrafter (drafted on the GPU and on the host), greedy and seeded, one with log-probabilities.
    const requests: GenerateOptions[] = PROMPTS.slice(0, 6).map((prompt, i) => ({ prompt, maxTokens: 12 + 3 * i, seed: i,
      temperature: i % 2 ? 0.9 : 0, ...(i % 3 === 1 ? { drafter: onGpu, beams: 2, beamLength: 4 } : {}),
      ...(i % 3 === 2 ? { drafter: onHost, beams: 1, beamLength: 5 } : {}), ...(i === 3 ? { logprobs: 2 } : {}) }));
    const alone: Awaited<ReturnType<typeof generateText>>[] = [];
    let aloneForwards = 0;
    for (const options of requests) {
      const before = totals.forwards;
      alone.push(await generateText(loaded, options));
      aloneForwards += totals.forwards - before;
    }
    const before = totals.forwards;
    const together = await Promise.all(requests.map((options) => generateText(loaded, options)));
    const togetherForwards = totals.forwards - before;
    together.forEach((result, i) => {
      assert.deepEqual(result.ids, alone[i].ids, `request ${i}`);
      assert.deepEqual(result.logprobs, alone[i].logprobs, `request ${i}: log-probabilities`);
    });
    assert.ok(togetherForwards < aloneForwards / 2,
      `batched: ${togetherForwards} forwards for what took ${aloneForwards} one sequence at a time`);
    const stats = schedulerFor(loaded).stats();
    assert.equal(stats.running, 0);
    assert.equal(stats.usedBlocks, 0, 'every GPU cache was freed');
    onGpu.dispose();
    onHost.dispose();
  });
});
