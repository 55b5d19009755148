// The WebAssembly model behind the AsyncModel interface: the same logits and hidden states as its own forward, and
// argmax ids per logits row when asked for.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKernels } from '../kernels/index.js';
import { createModel } from '../model/model.js';
import { randomCheckpoint } from '../model/random-checkpoint.js';
import { argmaxRow, asyncModelFromWasm } from './async-model.js';

test('asyncModelFromWasm: forward as the model computes it, argmax per requested row', async () => {
  const kernels = await createKernels({ threads: 1 });
  try {
    const model = createModel(kernels, randomCheckpoint({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 40 }, 3),
      { contextLength: 16 });
    const wrapped = asyncModelFromWasm(model);
    assert.equal(wrapped.backend, 'wasm');
    const cache = wrapped.createCache(8);
    const batch = { count: 3, tokens: Int32Array.of(4, 8, 15), positions: Int32Array.of(0, 1, 2), writeSlot: 0,
      prefixLengths: Int32Array.of(1, 2, 3), logits: 'all' as const };
    const out = await wrapped.forward(cache, batch, { logits: 'both' });
    const logits = out.logits.slice(0, 3 * 40);
    assert.deepEqual(Array.from(out.argmax), [0, 1, 2].map((r) => argmaxRow(logits, r * 40, 40)));
    const direct = model.forward(cache, batch);
    assert.deepEqual(direct.logits.slice(0, 3 * 40), logits);
    const last = await wrapped.forward(cache, { ...batch, logits: 'last' }, { logits: 'argmax' });
    assert.deepEqual(Array.from(last.argmax), [argmaxRow(logits, 2 * 40, 40)]);
    assert.equal(argmaxRow(Float32Array.of(1, 3, 3, NaN), 0, 4), 1, 'first of equal maxima; NaN never wins');
    cache.free();
    wrapped.dispose();
  } finally {
    await kernels.close();
  }
});
