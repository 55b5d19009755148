import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDrafter, loadModel, type LoadedDrafter, type LoadedModel } from './load.js';
import { generateText, type GenerateOptions } from './generate.js';
import { randomDrafter } from '../drafter/checkpoint.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { bigramDrafter } from '../../test/drafters.js';

const skip = missing('stories260K', 'stories260K.bin');

const PROMPTS = [
  'Once upon a time', 'The cat', 'Lily and Tom went to the park', 'One day, a little dog', 'The sun was shining',
  'She was sad because', 'Ben had a big red ball.', 'Mom said', 'They', 'A bird sang a song.', 'Tim wanted to',
  'In the forest there was a tree', 'The girl', 'He ran', 'It was a cold day', 'Sam and Sue', 'The fish swam',
  'Once', 'The little boy saw a big box', 'Anna liked to',
];


const SAMPLING: { name: string; options: GenerateOptions }[] = [
  { name: 'greedy', options: {} },
  { name: 'T=0.7 seed 3', options: { temperature: 0.7, seed: 3 } },
  { name: 'T=1.0 seed 11', options: { temperature: 1, seed: 11 } },
  { name: 'T=1.0 top-p 0.9', options: { temperature: 1, topP: 0.9, seed: 5 } },
  { name: 'T=0.8 top-k 40', options: { temperature: 0.8, topK: 40, seed: 9 } },
  { name: 'T=0.9 repetition 1.1', options: { temperature: 0.9, repetitionPenalty: 1.1, seed: 21 } },
  // History-dependent rewrites of the logits: each tree node sees its own path's counts.
  { name: 'greedy frequency 0.8 presence 0.4 bias', options: { frequencyPenalty: 0.8, presencePenalty: 0.4,
    logitBias: { 13: -2, 400: 1.5 } } },
  { name: 'T=0.8 frequency 0.5 window 0 bias', options: { temperature: 0.8, frequencyPenalty: 0.5, repetitionWindow: 0,
    logitBias: { 2: -Infinity }, seed: 17 } },
  // JSON mode: a mask that follows each node's own path.
  { name: 'T=0.9 json_object', options: { temperature: 0.9, seed: 23, responseFormat: 'json_object' } },
  { name: 'greedy json_object', options: { responseFormat: 'json_object' } },
  // A JSON schema: the grammar's states follow each node's own path too.
  { name: 'T=1.0 json_schema', options: { temperature: 1, seed: 29, responseFormat: { type: 'json_schema',
    schema: { type: 'object', properties: { name: { type: 'string', maxLength: 6 }, n: { type: 'integer' },
      ok: { type: 'boolean' } }, required: ['name', 'n', 'ok'] } } } },
];
const SHAPES: [number, number][] = [];
for (const W of [1, 2, 4, 8]) for (const L of [2, 3, 5, 6]) SHAPES.push([W, L]);

async function compare(loaded: LoadedModel, drafter: LoadedDrafter, prompt: GenerateOptions, sampling: GenerateOptions,
  W: number, L: number, maxTokens: number, label: string): Promise<number> {
  const base = { ...prompt, ...sampling, maxTokens };
  const plain = await generateText(loaded, base);
  const drafted = await generateText(loaded, { ...base, drafter, beams: W, beamLength: L });
  assert.deepEqual(drafted.ids, plain.ids, `${label}: ReDrafter ids differ from autoregressive ids`);
  assert.equal(drafted.text, plain.text, label);
  assert.equal(drafted.finishReason, plain.finishReason, label);
  const committed = drafted.stats.committedPerStep.reduce((a, b) => a + b, 0);
  assert.equal(committed + 1 >= drafted.ids.length, true, label);
  return drafted.stats.steps;
}

test('ReDrafter with a random drafter emits exactly the autoregressive ids: 20 prompts × W × L × sampling settings',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    const drafter = loadDrafter(loaded, randomDrafter(loaded.model.config, { seed: 1 }));
    try {
      let run = 0;
      for (const [i, text] of PROMPTS.entries()) {
        for (let j = 0; j < 3; j++) {
          const [W, L] = SHAPES[(i * 3 + j) % SHAPES.length];
          const { name, options } = SAMPLING[run++ % SAMPLING.length];
          await compare(loaded, drafter, { prompt: text }, options, W, L, 48, `"${text}" W=${W} L=${L} ${name}`);
        }
      }
    } finally {
      drafter.dispose();
      await loaded.close();
    }
  });

test('ReDrafter with a high-acceptance drafter: exact ids, several tokens per step, 1 and 2 threads', { skip },
  async () => {
    for (const threads of [1, 2]) {
      const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads });
      try {
        const training = await Promise.all(PROMPTS.slice(0, 10).map(async (prompt) =>
          (await generateText(loaded, { prompt, maxTokens: 120 })).ids));
        const drafter = bigramDrafter(loaded, training);
        let greedySteps = 0;
        let greedyRuns = 0;
        for (const [i, text] of PROMPTS.entries()) {
          const [W, L] = SHAPES[(i * 5 + threads) % SHAPES.length];
          const { name, options } = SAMPLING[i % SAMPLING.length];
          const label = `threads=${threads} "${text}" W=${W} L=${L} ${name}`;
          const steps = await compare(loaded, drafter, { prompt: text }, options, W, L, 80, label);
          if (name === 'greedy') {
            greedySteps += await compare(loaded, drafter, { prompt: text }, options, 4, 6, 80, `${label} (W=4 L=6)`);
            greedyRuns++;
          }
          assert.ok(steps <= 80, label);
        }
        // A random drafter gets about 1 token per step; the bigram drafter must make the deep paths happen.
        const perStep = (greedyRuns * 80) / greedySteps;
        assert.ok(perStep > 1.5, `expected real acceptance, got ${perStep.toFixed(2)} tokens per step`);
      } finally {
        await loaded.close();
      }
    }
  });

test('ReDrafter exactness at the edges: 1-token prompt, prompts near the context limit, stop mid-run', { skip },
  async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1,
      contextLength: 128 });
    try {
      const training = [(await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 120 })).ids];
      const drafter = bigramDrafter(loaded, training);
      for (const sampling of SAMPLING) {
        // BOS alone.
        await compare(loaded, drafter, { promptIds: [1] }, sampling.options, 4, 5, 60, `BOS only ${sampling.name}`);
        // Up to the very end of the context: the tree must shrink near the limit.
        for (const promptLength of [100, 120, 125, 126, 127]) {
          const promptIds = [...training[0], ...training[0]].slice(0, promptLength - 1);
          await compare(loaded, drafter, { promptIds: [1, ...promptIds] }, sampling.options, 8, 6, 1000,
            `prompt of ${promptLength} ${sampling.name}`);
        }
      }
      // Max tokens falling inside an accepted run, and stop strings.
      for (let maxTokens = 1; maxTokens <= 12; maxTokens++) {
        await compare(loaded, drafter, { prompt: 'Once upon a time' }, {}, 4, 6, maxTokens, `maxTokens ${maxTokens}`);
      }
      const plain = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 60, stop: ['park'] });
      const drafted = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 60, stop: ['park'],
        drafter, beams: 4, beamLength: 6 });
      assert.equal(drafted.text, plain.text);
      assert.equal(drafted.finishReason, plain.finishReason);
    } finally {
      await loaded.close();
    }
  });

test('ReDrafter stats: steps, committed per step, acceptance by depth, time split', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer });
  try {
    const training = [(await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 150 })).ids];
    const drafter = bigramDrafter(loaded, training);
    const result = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 100, drafter, beams: 4,
      beamLength: 5 });
    const { stats } = result;
    assert.equal(stats.committedPerStep.length, stats.steps);
    assert.ok(stats.committedPerStep.every((c) => c >= 1 && c <= 5));
    const redrafter = stats.redrafter!;
    assert.equal(redrafter.acceptedAtDepth.length, 4);
    // Reaching depth k+1 requires reaching depth k.
    for (let k = 1; k < 4; k++) assert.ok(redrafter.acceptedAtDepth[k] <= redrafter.acceptedAtDepth[k - 1]);
    // The last step may be cut by maxTokens: it counts as accepted by the drafter but emits fewer tokens.
    const multi = stats.committedPerStep.filter((c) => c >= 2).length;
    assert.ok(redrafter.acceptedAtDepth[0] >= multi && redrafter.acceptedAtDepth[0] <= multi + 1);
    assert.ok(redrafter.draftSeconds > 0 && redrafter.verifySeconds > 0);
  } finally {
    await loaded.close();
  }
});

test('ReDrafter rejects bad beam shapes and mismatched drafters with clear errors', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer });
  try {
    const drafter = loadDrafter(loaded, randomDrafter(loaded.model.config));
    await assert.rejects(generateText(loaded, { prompt: 'x', drafter, beams: 0 }), /beams: expected an integer in 1\.\.64/);
    await assert.rejects(generateText(loaded, { prompt: 'x', drafter, beamLength: 1 }), /beam length: expected/);
    const other = randomDrafter({ ...loaded.model.config, dim: 32 });
    assert.throws(() => loadDrafter(loaded, other), /hidden_size.*expected 64 \(the model's hidden size\), got 32/);
    const otherVocab = randomDrafter({ ...loaded.model.config, vocabSize: 100 });
    assert.throws(() => loadDrafter(loaded, otherVocab), /vocab_size.*expected 512/);
    drafter.dispose();
  } finally {
    await loaded.close();
  }
});

test('ReDrafter with the trained default drafter: exact ids on 20 prompts × W × L × sampling, and high acceptance',
  { skip }, async () => {
    const { defaultDrafterPath } = await import('./default-model.js');
    const path = defaultDrafterPath();
    assert.ok(path, 'models/stories260K-drafter is part of the repository');
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 2 });
    const drafter = loadDrafter(loaded, path);
    try {
      let greedySteps = 0;
      let greedyTokens = 0;
      for (const [i, text] of PROMPTS.entries()) {
        const [W, L] = SHAPES[(i * 7) % SHAPES.length];
        const { name, options } = SAMPLING[i % SAMPLING.length];
        await compare(loaded, drafter, { prompt: text }, options, W, L, 64, `trained "${text}" W=${W} L=${L} ${name}`);
        const steps = await compare(loaded, drafter, { prompt: text }, {}, 8, 5, 64, `trained "${text}" greedy W=8 L=5`);
        greedySteps += steps;
        greedyTokens += 63;
      }
      assert.ok(greedyTokens / greedySteps > 2.5, `trained drafter: ${(greedyTokens / greedySteps).toFixed(2)} tokens/step`);
    } finally {
      drafter.dispose();
      await loaded.close();
    }
  });
