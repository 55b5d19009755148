import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createKernels } from '../kernels/index.js';
import { readCheckpoint } from './checkpoint.js';
import { createModel } from './model.js';
import { inflateCheckpoint, inflatedCheckpoint } from './inflate.js';
import { createAutoregressiveDecoder } from '../engine/decoder.js';
import { missing, stories260K } from '../../test/fixtures.js';

const XL = { dim: 768, hiddenDim: 2048, nLayers: 12, headDim: 64 };

test('stories260K-xl (inflated to 75M-class compute) reproduces stories260K greedy ids',
  { skip: missing('stories260K', 'stories260K.bin') }, async () => {
    const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').split('\n')[0]) as
      { prompt_ids: number[]; greedy_ids: number[] };
    const small = readCheckpoint(stories260K.model);
    const xl = inflateCheckpoint(small, XL, 1);
    assert.equal(xl.config.nHeads, 12);
    assert.equal(xl.config.nKvHeads, 4);
    const parameters = [...xl.tensors.values()].reduce((sum, t) => sum + t.length, 0);
    assert.ok(parameters > 70e6 && parameters < 80e6, `${parameters} parameters`);
    const kernels = await createKernels({ threads: 2 });
    try {
      const model = createModel(kernels, inflatedCheckpoint(xl, 'stories260K-xl'), { contextLength: 256 });
      const prompts = [reference.prompt_ids, [1, 403], [1, 306, 261, 1030 % 512, 267]];
      const smallModel = createModel(kernels, small, { contextLength: 256 });
      for (const prompt of prompts) {
        const count = prompt === reference.prompt_ids ? 96 : 48;
        const run = (m: typeof model): number[] => {
          const decoder = createAutoregressiveDecoder(m, {});
          const ids = [decoder.prefill(prompt)];
          const out = new Int32Array(1);
          while (ids.length < count) {
            decoder.step(out);
            ids.push(out[0]);
          }
          decoder.dispose();
          return ids;
        };
        const expected = prompt === reference.prompt_ids ? reference.greedy_ids.slice(0, count) : run(smallModel);
        assert.deepEqual(run(model), expected, `prompt ${prompt.join(',')}`);
      }
      model.dispose();
      smallModel.dispose();
    } finally {
      await kernels.close();
    }
  });

test('an inflated drafter drafts the same beams on the inflated model', { skip: missing('stories260K', 'stories260K.bin') },
  async () => {
    const { randomDrafter } = await import('../drafter/checkpoint.js');
    const { inflateDrafter } = await import('../drafter/inflate.js');
    const { createDrafter } = await import('../drafter/drafter.js');
    const { beamSearch } = await import('../drafter/convenience.js');
    const small = readCheckpoint(stories260K.model);
    const kernels = await createKernels({ threads: 1 });
    try {
      const smallModel = createModel(kernels, small, { contextLength: 64 });
      // The big model is only needed for its embedding table here: a moderate inflation keeps the test light.
      const xl = inflateCheckpoint(small, { dim: 256, hiddenDim: 256, nLayers: 5, headDim: 32 }, 1);
      const bigModel = createModel(kernels, inflatedCheckpoint(xl, 'xl'), { contextLength: 64 });
      for (const exitDim of [128, 96]) {
        const weights = randomDrafter(small.config, { exitDim, seed: exitDim });
        const inflated = inflateDrafter(weights, 256);
        assert.equal(inflated.config.hiddenSize, 256);
        assert.equal(inflated.config.exitDim, exitDim);
        const smallDrafter = createDrafter(kernels, weights, smallModel.tokenEmbedding, 8);
        const bigDrafter = createDrafter(kernels, inflated, bigModel.tokenEmbedding, 8);
        const h = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
        const hBig = new Float32Array(256);
        hBig.set(h);
        const a = beamSearch(smallDrafter, h, 432, 4, 5);
        const b = beamSearch(bigDrafter, hBig, 432, 4, 5);
        assert.deepEqual(b.beams, a.beams);
        b.scores.forEach((s, i) => assert.ok(Math.abs(s - a.scores[i]) < 1e-4));
        smallDrafter.dispose();
        bigDrafter.dispose();
      }
      smallModel.dispose();
      bigModel.dispose();
    } finally {
      await kernels.close();
    }
  });
