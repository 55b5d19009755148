import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { autoThreads, loadModel } from './load.js';
import type { LlamaConfig } from '../model/config.js';
import { missing, stories260K } from '../../test/fixtures.js';

const llama = (shape: Partial<LlamaConfig>): LlamaConfig => ({
  dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 512, maxSequenceLength: 512,
  normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
  bosId: 1, eosIds: [2], ...shape,
});

test("threads 'auto': one thread for a model too small to gain from more, every core for a large one", () => {
  assert.equal(autoThreads(llama({})), 1, 'stories260K-shaped');
  const large = llama({ dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, vocabSize: 32000 });
  assert.equal(autoThreads(large), Math.min(availableParallelism(), 16), '110M-shaped');
});

test("loadModel({ threads: 'auto' }) decodes stories260K on one thread", { skip: missing('stories260K', 'stories260K.bin') },
  async () => {
    const loaded = await loadModel({ model: stories260K.model, threads: 'auto' });
    try {
      assert.equal(loaded.kernels.threads, 1);
    } finally {
      await loaded.close();
    }
  });
