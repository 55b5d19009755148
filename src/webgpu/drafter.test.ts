// The drafter and its beam search on the GPU (drafter.ts) against the host's (drafter/beam-search.ts): the same beams
// where the arithmetic is exact (integer-valued weights), and the same beams on the shipped stories260K drafter where
// only rounding differs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKernels } from '../kernels/index.js';
import { createDrafter } from '../drafter/drafter.js';
import { createBeamSearch } from '../drafter/beam-search.js';
import { readDrafter, type DrafterWeights } from '../drafter/checkpoint.js';
import { drafterTensorShapes, LOG_0, type DrafterConfig } from '../drafter/config.js';
import { readCheckpoint } from '../model/checkpoint.js';
import { createRng } from '../sampling/random.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { createGpuBeamSearch } from './drafter.js';
import { createPipelines, bytesOf, uploadBuffer } from './pipelines.js';
import { createWebGpuModel, defaultKernelShape } from './model.js';
import { requireDevice, testDevice } from './test-device.js';

const device = await testDevice();

/** Integers in −span..span: every product and sum of the drafter's logits is exact in float32, on both sides. */
function integers(length: number, span: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length }, () => Math.floor(rng.nextUniform() * (2 * span + 1)) - span);
}

test('GPU beam search equals the host\'s where the drafter\'s arithmetic is exact (ties, top-k, dead copies)',
  { skip: device.skip }, async () => {
    const gpu = requireDevice(device).device;
    const pipelines = createPipelines(gpu, defaultKernelShape(gpu));
    const kernels = await createKernels({ threads: 1 });
    const H = 8;
    const V = 64;
    const rows = 3;
    // Embeddings and weights in a few integer values: many logits tie, so the lowest-index rule decides often.
    const table = integers(V * H, 2, 1);
    const hidden = integers(rows * H, 2, 2);
    const tablePtr = kernels.heap.alloc(table.length * 4);
    kernels.heap.f32(tablePtr, table.length).set(table);
    const tableGpu = uploadBuffer(gpu, bytesOf(table), 'test table');
    const hiddenGpu = uploadBuffer(gpu, bytesOf(hidden), 'test hidden', GPUBufferUsage.COPY_SRC);
    try {
      let compared = 0;
      for (const topK of [5, V]) {
        // No recurrence and no MLP block (the silu would round): s is the running sum of embeddings.
        const config: DrafterConfig = { vocabSize: V, hiddenSize: H, exitDim: 2 * H, numDraftLayers: 0, rnn: false,
          numLookbackTokens: -1, embNorm: false, rmsNormEps: 1e-5, topK, log0: LOG_0 };
        const tensors = new Map<string, Float32Array>();
        for (const [name, shape] of drafterTensorShapes(config)) tensors.set(name, integers(shape.reduce((a, b) => a * b, 1), 1, 3));
        const weights: DrafterWeights = { config, tensors, extraConfig: {} };
        const host = createDrafter(kernels, weights, kernels.heap.f32(tablePtr, table.length), 16);
        const hostSearch = createBeamSearch(host, { maxWidth: 16, maxLength: 8 });
        const gpuSearch = createGpuBeamSearch({ device: gpu, pipelines, tokenEmbedding: tableGpu, hiddenStates: () => hiddenGpu },
          weights, { maxWidth: 16, maxLength: 8 });
        try {
          for (const [W, L] of [[1, 2], [2, 3], [4, 5], [8, 4], [3, 8], [16, 3], [6, 6]] as const) {
            for (let row = 0; row < rows; row++) {
              for (const g0 of [0, 17, 63]) {
                const expected = hostSearch.search(hidden, row * H, g0, W, L);
                const expectedBeams = Array.from(expected.beams.subarray(0, W * L));
                const expectedScores = Array.from(expected.scores.subarray(0, W));
                const got = await gpuSearch.searchFromRow(row, g0, W, L);
                const what = `top-k ${topK}, ${W}×${L}, row ${row}, g0 ${g0}`;
                assert.deepEqual(Array.from(got.beams.subarray(0, W * L)), expectedBeams, `${what}: beams`);
                for (let w = 0; w < W; w++) {
                  assert.ok(Math.abs(got.scores[w] - expectedScores[w]) <= 1e-4 * Math.max(1, Math.abs(expectedScores[w])),
                    `${what}: score ${w} ${got.scores[w]} vs ${expectedScores[w]}`);
                }
                compared++;
              }
            }
          }
        } finally {
          gpuSearch.dispose();
          host.dispose();
        }
      }
      assert.equal(compared, 2 * 7 * rows * 3);
    } finally {
      tableGpu.destroy();
      hiddenGpu.destroy();
      kernels.heap.free(tablePtr);
      await kernels.close();
    }
  });

const shipped = defaultDrafterPath();
test('GPU beam search on stories260K\'s drafter drafts what the host drafts from the same forward',
  { skip: device.skip || missing('stories260K', 'stories260K.bin') || (shipped === undefined && 'no shipped drafter') },
  async (t) => {
    const gpu = requireDevice(device).device;
    const checkpoint = readCheckpoint(stories260K.model);
    const model = createWebGpuModel(gpu, checkpoint, { contextLength: 128 });
    const kernels = await createKernels({ threads: 1 });
    const weights = readDrafter(shipped!, checkpoint.config);
    const tablePtr = kernels.heap.alloc(model.tokenEmbedding.length * 4);
    kernels.heap.f32(tablePtr, model.tokenEmbedding.length).set(model.tokenEmbedding);
    const host = createDrafter(kernels, weights, kernels.heap.f32(tablePtr, model.tokenEmbedding.length), 8);
    const hostSearch = createBeamSearch(host, { maxWidth: 8, maxLength: 7 });
    const gpuSearch = createGpuBeamSearch({ device: gpu, pipelines: model.pipelines, tokenEmbedding: model.tokenEmbeddingBuffer,
      hiddenStates: () => model.hiddenStates() }, weights, { maxWidth: 8, maxLength: 7 });
    const cache = model.createCache(128);
    try {
      const rng = createRng(5);
      const prompt = Array.from({ length: 24 }, (_, i) => (i === 0 ? 1 : 3 + Math.floor(rng.nextUniform() * 500)));
      const out = await model.forward(cache, { count: prompt.length, tokens: Int32Array.from(prompt),
        positions: Int32Array.from(prompt, (_, i) => i), writeSlot: 0, prefixLengths: Int32Array.from(prompt, (_, i) => i + 1),
        logits: 'none' }, { hidden: 'all' });
      const H = checkpoint.config.dim;
      const hidden = Float32Array.from(out.hidden);
      let searches = 0;
      let identical = 0;
      for (const [W, L] of [[1, 6], [4, 5], [8, 3], [2, 7]] as const) {
        for (let row = 4; row < prompt.length; row += 2) {
          const g0 = prompt[row];
          const expected = hostSearch.search(hidden, row * H, g0, W, L);
          const expectedBeams = Array.from(expected.beams.subarray(0, W * L));
          const expectedScores = Array.from(expected.scores.subarray(0, W));
          const got = await gpuSearch.searchFromRow(row, g0, W, L);
          searches++;
          // Only rounding separates the two (matmul order, a float32 softmax sum): beams differ only after a near tie.
          if (Array.from(got.beams.subarray(0, W * L)).join() === expectedBeams.join()) {
            identical++;
            for (let w = 0; w < W; w++) {
              assert.ok(Math.abs(got.scores[w] - expectedScores[w]) <= 1e-3 * Math.max(1, Math.abs(expectedScores[w])),
                `${W}×${L} row ${row}: score ${w} ${got.scores[w]} vs ${expectedScores[w]}`);
            }
          }
        }
      }
      t.diagnostic(`${identical} of ${searches} searches drafted the host's beams`);
      assert.ok(identical >= 0.9 * searches, `${identical} of ${searches} searches drafted the host's beams`);
    } finally {
      cache.free();
      gpuSearch.dispose();
      host.dispose();
      kernels.heap.free(tablePtr);
      await kernels.close();
      model.dispose();
    }
  });
