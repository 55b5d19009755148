import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { autoThreads, loadModel } from './load.js';
import { randomCheckpoint } from '../model/random-checkpoint.js';
import { missing, stories260K } from '../../test/fixtures.js';

/** The config of a model with these dimensions (its weights are never read). */
const llama = (dim: number, hiddenDim: number, nLayers: number, nHeads: number, nKvHeads: number, vocabSize: number) =>
  randomCheckpoint({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, tiedClassifier: true }).config;

test("threads 'auto': one thread for a model too small to gain from more, every core for a large one", () => {
  assert.equal(autoThreads(llama(64, 172, 5, 8, 4, 512)), 1, 'stories260K-shaped');
  assert.equal(autoThreads(llama(768, 2048, 12, 12, 12, 32000)), Math.min(availableParallelism(), 16), '110M-shaped');
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
