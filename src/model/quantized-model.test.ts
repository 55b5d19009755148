// Quantized GGUF models on the native kernels: which matrices run quantized and what they cost per token; logits
// against the f32 path; batch invariance bit for bit (a batch of N tokens gives the logits of N single steps); and
// ReDrafter's exactness (its output equals autoregressive decoding token for token), which rests on that invariance.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createKernels } from '../kernels/index.js';
import type { GgufOutputType } from '../formats/convert-gguf.js';
import { withTempDirAsync } from '../formats/test-fixtures.js';
import { randomDrafter } from '../drafter/checkpoint.js';
import { generateText, type GenerateOptions } from '../engine/generate.js';
import { loadDrafter, loadModel } from '../engine/load.js';
import { readCheckpoint } from './checkpoint.js';
import { createModel, type Model, type ModelOptions } from './model.js';
import { writeSyntheticGguf, type SyntheticShape } from '../../test/synthetic-models.js';
import { bigramDrafter } from '../../test/drafters.js';

const SHAPE: SyntheticShape = { kind: 'llama3', dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, merges: 150, seed: 5 };
const TOKENS = [5, 77, 200, 13, 99, 1, 42, 150, 260, 7, 8, 301];

/** Logits of `tokens` fed as one causal batch (`batch`) or one forward per token. */
function logits(model: Model, tokens: readonly number[], batch: boolean): Float32Array {
  const vocab = model.config.vocabSize;
  const cache = model.createCache(tokens.length);
  const rows = new Float32Array(tokens.length * vocab);
  if (batch) {
    const out = model.forward(cache, {
      count: tokens.length, tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0,
      prefixLengths: Int32Array.from(tokens, (_, i) => i + 1), logits: 'all',
    });
    rows.set(out.logits.subarray(0, tokens.length * vocab));
  } else {
    tokens.forEach((token, i) => {
      const out = model.forward(cache, { count: 1, tokens: Int32Array.of(token), positions: Int32Array.of(i), writeSlot: i,
        prefixLengths: Int32Array.of(i + 1), logits: 'last' });
      rows.set(out.logits.subarray(0, vocab), i * vocab);
    });
  }
  cache.free();
  return rows;
}

async function withModel<T>(path: string, options: ModelOptions, threads: number, body: (model: Model) => T): Promise<T> {
  const kernels = await createKernels({ threads, minParallelWork: threads > 1 ? 0 : undefined });
  try {
    const model = createModel(kernels, readCheckpoint(path), { contextLength: 64, ...options });
    try {
      return body(model);
    } finally {
      model.dispose();
    }
  } finally {
    await kernels.close();
  }
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

test('native weights: Q8_0 / Q4_0 blocks as stored, K-quants as Q8_0, odd rows in f32; weightBytes counts the real bytes', async () => {
  await withTempDirAsync(async (dir) => {
    const cases: Array<[GgufOutputType, SyntheticShape, Record<'f32' | 'q8_0' | 'q4_0', number>]> = [
      ['q8_0', SHAPE, { f32: 0, q8_0: 15, q4_0: 0 }],
      ['q4_0', SHAPE, { f32: 0, q8_0: 0, q4_0: 15 }],
      ['q4_k', { ...SHAPE, dim: 256, nHeads: 4 }, { f32: 0, q8_0: 15, q4_0: 0 }],
      ['q6_k', { ...SHAPE, dim: 256, nHeads: 4 }, { f32: 0, q8_0: 15, q4_0: 0 }],
      // ffn_down's rows are 80 long: the converter writes them F16 and we keep them f32.
      ['q8_0', { ...SHAPE, hiddenDim: 80 }, { f32: 2, q8_0: 13, q4_0: 0 }],
      // Tied classifier: the Q8_0 embedding serves as the classifier's blocks.
      ['q8_0', { ...SHAPE, tied: true }, { f32: 0, q8_0: 15, q4_0: 0 }],
    ];
    for (const [index, [type, shape, expected]] of cases.entries()) {
      const path = writeSyntheticGguf(join(dir, String(index)), shape, type);
      const what = `${type} ${JSON.stringify(expected)}`;
      const native = await withModel(path, {}, 1, (model) => {
        assert.deepEqual(model.matrices, expected, what);
        const { dim, hiddenDim, nLayers, vocabSize, nKvHeads, headDim } = model.config;
        const blockBytes = type === 'q4_0' ? 18 : 34;
        const norms = (2 * nLayers + 1) * dim * 4;
        const perLayer = [dim * dim, nKvHeads * headDim * dim, nKvHeads * headDim * dim, dim * dim, hiddenDim * dim, dim * hiddenDim,
          hiddenDim * dim].map((n, i) => (i === 5 && hiddenDim % 32 !== 0 ? n * 4 : (n / 32) * blockBytes));
        const bytes = norms + nLayers * perLayer.reduce((a, b) => a + b, 0) + (vocabSize * dim / 32) * blockBytes;
        assert.equal(model.weightBytes, bytes, `${what}: weightBytes`);
        return logits(model, TOKENS, true);
      });
      const f32 = await withModel(path, { weights: 'f32' }, 1, (model) => {
        assert.deepEqual(model.matrices, { f32: 15, q8_0: 0, q4_0: 0 }, `${what}: weights 'f32'`);
        return logits(model, TOKENS, true);
      });
      // The native path also quantizes activations (by 1/254 of each block's largest value at most): a few percent of
      // the logits' range on these random models.
      const difference = maxDifference(native, f32);
      const range = f32.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(difference > 0 && difference < 0.05 * range, `${what}: native and f32 logits differ by ${difference} (range ${range})`);
    }
  });
});

test('quantized models are batch-invariant: N tokens in one forward give the bits of N single forwards, 1 or 2 threads', async () => {
  await withTempDirAsync(async (dir) => {
    for (const type of ['q8_0', 'q4_0'] as const) {
      const path = writeSyntheticGguf(join(dir, type), { ...SHAPE, nLayers: 3 }, type);
      let reference: Float32Array | undefined;
      for (const threads of [1, 2]) {
        await withModel(path, {}, threads, (model) => {
          const single = logits(model, TOKENS, false);
          const batch = logits(model, TOKENS, true);
          const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
          assert.deepEqual(bits(batch), bits(single), `${type}, ${threads} thread(s): batch vs single steps`);
          reference ??= single;
          assert.deepEqual(bits(single), bits(reference), `${type}: ${threads} thread(s) vs 1`);
        });
      }
    }
  });
});


test('ReDrafter on a Q8_0 model emits exactly the autoregressive ids (random and high-acceptance drafters, 1 and 2 threads)', async () => {
  await withTempDirAsync(async (dir) => {
    const path = writeSyntheticGguf(dir, { ...SHAPE, nLayers: 3 }, 'q8_0');
    const prompts = ['Once upon a time', 'The quick brown fox', 'Hello world! 12345', 'function add(a, b) {'];
    const sampling: GenerateOptions[] = [{}, { temperature: 0.8, seed: 3 }, { temperature: 1, topP: 0.9, seed: 7 }];
    for (const threads of [1, 2]) {
      const loaded = await loadModel({ model: path, threads });
      try {
        assert.equal(loaded.model.matrices.q8_0, 22);
        const training = await Promise.all(prompts.map(async (prompt) => (await generateText(loaded, { prompt, maxTokens: 40 })).ids));
        const drafters = [loadDrafter(loaded, randomDrafter(loaded.model.config, { seed: 1 })), bigramDrafter(loaded, training)];
        let committed = 0;
        let steps = 0;
        for (const [d, drafter] of drafters.entries()) {
          for (const [i, prompt] of prompts.entries()) {
            // The bigram drafter learnt the greedy continuations: it runs greedy, where it gets deep acceptance.
            const options = { prompt, maxTokens: 40, ...(d === 0 ? sampling[i % sampling.length] : {}) };
            const plain = await generateText(loaded, options);
            const drafted = await generateText(loaded, { ...options, drafter, beams: 4, beamLength: 5 });
            assert.deepEqual(drafted.ids, plain.ids, `threads ${threads}, drafter ${d}, ${JSON.stringify(prompt)}`);
            if (d === 1) {
              committed += drafted.ids.length;
              steps += drafted.stats.steps;
            }
          }
          drafter.dispose();
        }
        // The bigram drafter must make deep tree paths happen, or multi-row verification went untested.
        assert.ok(committed / steps > 1.5, `expected real acceptance, got ${(committed / steps).toFixed(2)} tokens per step`);
      } finally {
        await loaded.close();
      }
    }
  });
});
