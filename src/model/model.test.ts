import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/types.js';
import { readCheckpoint, type Checkpoint } from './checkpoint.js';
import { createModel, type Model } from './model.js';
import { randomCheckpoint } from './random-checkpoint.js';
import { fixture, missing, stories260K } from '../../test/fixtures.js';
import { referenceLogits } from '../../test/reference-llama.js';

/** Logits of every token of `tokens`, fed in one causal batch. */
function batchLogits(model: Model, tokens: number[]): Float32Array[] {
  const cache = model.createCache(tokens.length);
  const n = tokens.length;
  const out = model.forward(cache, {
    count: n, tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0,
    prefixLengths: Int32Array.from(tokens, (_, i) => i + 1), logits: 'all',
  });
  const vocab = model.config.vocabSize;
  const rows = Array.from({ length: n }, (_, i) => out.logits.slice(i * vocab, (i + 1) * vocab));
  cache.free();
  return rows;
}

/** Logits of every token of `tokens`, fed one forward at a time. */
function stepLogits(model: Model, tokens: number[]): Float32Array[] {
  const cache = model.createCache(tokens.length);
  const vocab = model.config.vocabSize;
  const rows = tokens.map((token, i) => {
    const out = model.forward(cache, {
      count: 1, tokens: Int32Array.of(token), positions: Int32Array.of(i), writeSlot: i,
      prefixLengths: Int32Array.of(i + 1), logits: 'last',
    });
    return out.logits.slice(0, vocab);
  });
  cache.free();
  return rows;
}

function assertBitIdentical(a: Float32Array[], b: Float32Array[], what: string): void {
  assert.equal(a.length, b.length);
  a.forEach((row, i) => {
    const x = new Uint32Array(row.buffer, row.byteOffset, row.length);
    const y = new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length);
    const differing = x.findIndex((bits, j) => bits !== y[j]);
    assert.equal(differing, -1, `${what}: row ${i} differs first at index ${differing}`);
  });
}

function assertClose(actual: Float32Array[], expected: Float64Array[], tolerance: number, what: string): void {
  actual.forEach((row, i) => {
    let worst = 0;
    row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - expected[i][j]))));
    assert.ok(worst <= tolerance, `${what}: position ${i} differs from the float64 reference by ${worst}`);
  });
}

async function withModel(checkpoint: Checkpoint, threads: number, body: (model: Model) => void): Promise<void> {
  const kernels: Kernels = await createKernels({ threads });
  try {
    const model = createModel(kernels, checkpoint, { contextLength: Math.min(checkpoint.config.maxSequenceLength, 256) });
    body(model);
    model.dispose();
  } finally {
    await kernels.close();
  }
}

const prompt = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267];

test('stories260K: a batch of N tokens gives bit-identical logits to N single steps (1 and 2 threads)',
  { skip: missing('stories260K', 'stories260K.bin') }, async () => {
    const checkpoint = readCheckpoint(stories260K.model);
    for (const threads of [1, 2]) {
      await withModel(checkpoint, threads, (model) => {
        assertBitIdentical(batchLogits(model, prompt), stepLogits(model, prompt), `threads=${threads}`);
      });
    }
  });

test('stories260K: logits match a float64 reference forward', { skip: missing('stories260K', 'stories260K.bin') },
  async () => {
    const checkpoint = readCheckpoint(stories260K.model);
    const expected = referenceLogits(checkpoint, prompt.slice(0, 8));
    await withModel(checkpoint, 1, (model) => assertClose(batchLogits(model, prompt.slice(0, 8)), expected, 2e-4,
      'stories260K'));
  });

test('random larger model (GQA, untied classifier): batch vs single steps bit-identical, 1 and 2 threads', async () => {
  const checkpoint = randomCheckpoint({ dim: 192, hiddenDim: 520, nLayers: 3, nHeads: 6, nKvHeads: 2, vocabSize: 1000 },
    7);
  const tokens = Array.from({ length: 37 }, (_, i) => (i * 7919) % 1000);
  const results: Float32Array[][] = [];
  for (const threads of [1, 2]) {
    await withModel(checkpoint, threads, (model) => {
      const batch = batchLogits(model, tokens);
      assertBitIdentical(batch, stepLogits(model, tokens), `threads=${threads}`);
      results.push(batch);
    });
  }
  assertBitIdentical(results[0], results[1], '1 thread vs 2 threads');
});

test('random model with HF half-split RoPE and qkv bias matches the float64 reference', async () => {
  const checkpoint = randomCheckpoint({ dim: 64, hiddenDim: 160, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300,
    ropeLayout: 'halves', qkvBias: true, tiedClassifier: true }, 3);
  const tokens = [5, 17, 299, 0, 42, 42, 7];
  const expected = referenceLogits(checkpoint, tokens);
  await withModel(checkpoint, 1, (model) => assertClose(batchLogits(model, tokens), expected, 1e-4, 'random HF'));
});

test('apple golden tiny llama (HF safetensors) loads and matches the float64 reference',
  { skip: missing('apple-golden-tiny-llama', 'model.safetensors') }, async () => {
    const checkpoint = readCheckpoint(fixture('apple-golden-tiny-llama'));
    assert.equal(checkpoint.config.ropeLayout, 'halves');
    assert.equal(checkpoint.config.vocabSize, 7);
    assert.equal(checkpoint.config.headDim, 2);
    const tokens = [1, 3, 4, 5, 6, 2, 0, 3];
    const expected = referenceLogits(checkpoint, tokens);
    await withModel(checkpoint, 1, (model) => {
      assertClose(batchLogits(model, tokens), expected, 1e-5, 'golden');
      assertBitIdentical(batchLogits(model, tokens), stepLogits(model, tokens), 'golden batch vs steps');
    });
  });

test('tree attention: nodes attending cache + ancestors reproduce the causal logits and hidden states bit for bit',
  async () => {
    const checkpoint = randomCheckpoint({ dim: 128, hiddenDim: 344, nLayers: 2, nHeads: 4, nKvHeads: 2,
      vocabSize: 500 }, 11);
    await withModel(checkpoint, 2, (model) => {
      const vocab = model.config.vocabSize;
      const dim = model.config.dim;
      const sequence = [1, 20, 30, 40, 50, 60, 70];
      const causal = batchLogits(model, sequence);
      const cache = model.createCache(32);
      const causalHidden = (() => {
        const c = model.createCache(16);
        const out = model.forward(c, {
          count: sequence.length, tokens: Int32Array.from(sequence), positions: Int32Array.from(sequence, (_, i) => i),
          writeSlot: 0, prefixLengths: Int32Array.from(sequence, (_, i) => i + 1), logits: 'none',
        });
        c.free();
        return out.hidden.slice(0, sequence.length * dim);
      })();
      // Cache holds tokens 0..2; the tree's root is token 3 (position 3) with children 99 (a rejected sibling) and 50,
      // and 50 has child 60. Packed order: [40, 99, 50, 60] at depths [0, 1, 1, 2].
      const S = 3;
      model.forward(cache, {
        count: S, tokens: Int32Array.from(sequence.slice(0, S)), positions: Int32Array.of(0, 1, 2), writeSlot: 0,
        prefixLengths: Int32Array.of(1, 2, 3), logits: 'none',
      });
      cache.length = S;
      const out = model.forward(cache, {
        count: 4, tokens: Int32Array.of(40, 99, 50, 60), positions: Int32Array.of(3, 4, 4, 5), writeSlot: S,
        prefixLengths: Int32Array.of(S, S, S, S),
        extraStarts: Int32Array.of(0, 1, 3, 5, 8),
        extraSlots: Int32Array.of(S, S, S + 1, S, S + 2, S, S + 2, S + 3),
        logits: 'all',
      });
      const treeRow = (p: number): Float32Array => out.logits.slice(p * vocab, (p + 1) * vocab);
      assertBitIdentical([treeRow(0), treeRow(2), treeRow(3)], [causal[3], causal[4], causal[5]], 'tree vs causal');
      const hiddenRow = (p: number): Float32Array => out.hidden.slice(p * dim, (p + 1) * dim);
      assertBitIdentical([hiddenRow(3)], [causalHidden.slice(5 * dim, 6 * dim)], 'tree hidden vs causal hidden');
      // Keep the accepted path (slots S, S+2, S+3) and continue: position 6 must match the causal run too.
      cache.keepSlots(S, [S, S + 2, S + 3], 3);
      assert.equal(cache.length, 6);
      const next = model.forward(cache, {
        count: 1, tokens: Int32Array.of(70), positions: Int32Array.of(6), writeSlot: 6, prefixLengths: Int32Array.of(7),
        logits: 'last',
      });
      assertBitIdentical([next.logits.slice(0, vocab)], [causal[6]], 'after keepSlots');
      cache.free();
    });
  });

test('forward rejects tokens, positions and slots outside the model or cache', async () => {
  const checkpoint = randomCheckpoint({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 50,
    maxSequenceLength: 16 });
  await withModel(checkpoint, 1, (model) => {
    const cache = model.createCache(8);
    const batch = (token: number, position: number, slot: number) => ({
      count: 1, tokens: Int32Array.of(token), positions: Int32Array.of(position), writeSlot: slot,
      prefixLengths: Int32Array.of(slot + 1), logits: 'last' as const,
    });
    assert.throws(() => model.forward(cache, batch(50, 0, 0)), /token 0 is 50, expected an id in 0\.\.49/);
    assert.throws(() => model.forward(cache, batch(1, 16, 0)), /position 16 .* outside the context \(0\.\.15\)/);
    assert.throws(() => model.forward(cache, batch(1, 0, 8)), /writes slot 8, outside the cache's 8 slots \(capacity 8\)/);
    cache.free();
  });
});
