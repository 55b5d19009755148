// Distillation data: batched sampling reproduces the engine's own decoding token for token (with the hidden states
// a plain prefill computes), datasets round-trip through disk, and training positions respect sequence ends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missing, stories260K } from '../../test/fixtures.js';
import { loadModel } from '../engine/load.js';
import { generateText } from '../engine/generate.js';
import { sampleSequences, type SampledSequence } from './sample.js';
import { buildDataset, hiddenStates, readDataset, trainingPositions, writeDataset } from './data.js';
import { TRAINING_PROMPTS } from './story-prompts.js';

const skip = missing('stories260K', 'stories260K.bin');

test('batched sampling equals one-at-a-time decoding, tokens and hidden states', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 2 });
  try {
    const prompts = TRAINING_PROMPTS.slice(0, 5);
    // 5 sequences on 2 lanes: lanes are refilled; sequence 1 turns greedy after 3 tokens.
    const jobs = prompts.map((prompt, i) => ({
      promptIds: loaded.tokenizer!.encode(prompt, { bos: true }), maxTokens: 24 + 8 * i, seed: 11 + i,
      temperature: 1, greedyAfter: i === 1 ? 3 : Infinity,
    }));
    const sampled: SampledSequence[] = [];
    sampleSequences(loaded, jobs, 2, (index, sequence) => { sampled[index] = sequence; });
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i];
      let expected: number[];
      if (i === 1) {
        const lead = await generateText(loaded, { promptIds: job.promptIds, maxTokens: 3, temperature: 1, seed: job.seed });
        const rest = await generateText(loaded, { promptIds: [...job.promptIds, ...lead.ids],
          maxTokens: job.maxTokens - 3, temperature: 0 });
        expected = [...job.promptIds, ...lead.ids, ...rest.ids];
      } else {
        const result = await generateText(loaded, { promptIds: job.promptIds, maxTokens: job.maxTokens, temperature: 1,
          seed: job.seed });
        expected = [...job.promptIds, ...result.ids];
      }
      assert.deepEqual(sampled[i].ids, expected, `sequence ${i}`);
      assert.equal(sampled[i].promptLength, job.promptIds.length);
      const hidden = new Float32Array(expected.length * 64);
      hiddenStates(loaded, expected, hidden, 0);
      // The last token is never fed: its row is not a training context and stays zero.
      assert.deepEqual(sampled[i].hidden.subarray(0, (expected.length - 1) * 64), hidden.subarray(0, (expected.length - 1) * 64));
    }
  } finally {
    await loaded.close();
  }
});

test('datasets round-trip through disk; positions keep two tokens after them inside their sequence', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer });
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-data-'));
  try {
    const dataset = await buildDataset(loaded, { kind: 'distill', prompts: TRAINING_PROMPTS.slice(0, 3), samples: 4,
      temperature: 1, greedyFraction: 0.5, leadIn: 4, maxTokens: 20, seed: 5 });
    writeDataset(join(dir, 'data'), dataset);
    const read = readDataset(join(dir, 'data'));
    assert.deepEqual(read.tokens, dataset.tokens);
    assert.deepEqual(read.hidden, dataset.hidden);
    assert.deepEqual(read.starts, dataset.starts);
    assert.deepEqual(read.contextStarts, dataset.contextStarts);
    assert.equal(read.meta.sequences, 4);
    const { positions, ends } = trainingPositions(read);
    let expected = 0;
    for (let s = 0; s < 4; s++) expected += read.starts[s + 1] - 2 - read.contextStarts[s];
    assert.equal(positions.length, expected);
    positions.forEach((p, k) => assert.ok(p + 2 < ends[k]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await loaded.close();
  }
});
