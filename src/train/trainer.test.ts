import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomDrafter } from '../drafter/checkpoint.js';
import type { LlamaConfig } from '../model/config.js';
import { withOutputTemperature } from './trainer.js';

const base: LlamaConfig = {
  dim: 8, hiddenDim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: 4, vocabSize: 32, maxSequenceLength: 64,
  normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
  bosId: 1, eosIds: [2],
};

test('the output temperature divides the vocabulary projection only, and leaves the trained weights alone', () => {
  const trained = randomDrafter(base, { exitDim: 12, numDraftLayers: 2, seed: 3 });
  const before = new Map([...trained.tensors].map(([name, data]) => [name, data.slice()]));
  const exported = withOutputTemperature(trained, 0.6);
  for (const [name, data] of exported.tensors) {
    const raw = before.get(name)!;
    if (name === 'lm_head.2.weight') {
      // Logits are linear in this matrix (no bias): ℓ' = O'z = (O/τ)z = ℓ/τ.
      assert.deepEqual(data, raw.map((w) => w / 0.6));
    } else {
      assert.equal(data, trained.tensors.get(name), `${name} must be shared, not copied`);
    }
  }
  for (const [name, data] of trained.tensors) assert.deepEqual(data, before.get(name), `${name} was modified`);
  assert.equal(withOutputTemperature(trained, 1), trained);
  assert.throws(() => withOutputTemperature(trained, 0), /output temperature: expected a number > 0, got 0/);
});
