// The WebGPU model against the WebAssembly one (createModel over createKernels): logits within 1e-4 of the logit
// range on stories260K, the golden tiny Llama, and random GQA models in f32, f16, bf16, Q8_0 and Q4_0; stories260K's
// greedy ids equal llama2.c's; the readback options return what they promise.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createKernels } from '../kernels/index.js';
import { readCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { createModel, type ModelOptions } from '../model/model.js';
import { randomCheckpoint } from '../model/random-checkpoint.js';
import type { GgufOutputType } from '../formats/convert-gguf.js';
import { withTempDirAsync } from '../formats/test-fixtures.js';
import { fixture, missing, stories260K } from '../../test/fixtures.js';
import { writeSyntheticGguf } from '../../test/synthetic-models.js';
import { createWebGpuModel, type WebGpuModel } from './model.js';
import type { WeightEncodingChoice } from './weights.js';
import { requireDevice, testDevice } from './test-device.js';

const device = await testDevice();
after(() => device.gpu?.destroy());

/** Logits of every token of `tokens` fed as one causal batch on the WebAssembly model. */
async function wasmLogits(checkpoint: Checkpoint, tokens: readonly number[], options: ModelOptions = {}): Promise<Float32Array> {
  const kernels = await createKernels({ threads: 1 });
  try {
    const model = createModel(kernels, checkpoint, { contextLength: 64, ...options });
    const cache = model.createCache(tokens.length);
    const out = model.forward(cache, { count: tokens.length, tokens: Int32Array.from(tokens),
      positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0, prefixLengths: Int32Array.from(tokens, (_, i) => i + 1),
      logits: 'all' });
    const copy = out.logits.slice(0, tokens.length * model.config.vocabSize);
    cache.free();
    model.dispose();
    return copy;
  } finally {
    await kernels.close();
  }
}

async function gpuLogits(model: WebGpuModel, tokens: readonly number[]): Promise<Float32Array> {
  const cache = model.createCache(tokens.length);
  const out = await model.forward(cache, { count: tokens.length, tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0, prefixLengths: Int32Array.from(tokens, (_, i) => i + 1),
    logits: 'all' });
  cache.free();
  return out.logits.slice();
}

/** max |Δ| / (max − min of the expected logits). */
function relativeDifference(actual: Float32Array, expected: Float32Array): { difference: number; range: number } {
  assert.equal(actual.length, expected.length, 'logit count');
  let worst = 0;
  let low = Infinity;
  let high = -Infinity;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    low = Math.min(low, expected[i]);
    high = Math.max(high, expected[i]);
  }
  return { difference: worst / (high - low), range: high - low };
}

async function assertAgrees(checkpoint: Checkpoint, tokens: readonly number[], what: string,
  gpuWeights: WeightEncodingChoice = 'native', wasmOptions: ModelOptions = {}): Promise<WebGpuModel> {
  const model = createWebGpuModel(requireDevice(device).device, checkpoint, { contextLength: 64, weights: gpuWeights });
  const { difference } = relativeDifference(await gpuLogits(model, tokens), await wasmLogits(checkpoint, tokens, wasmOptions));
  assert.ok(difference <= 1e-4, `${what}: WebGPU and WebAssembly logits differ by ${difference.toExponential(2)} of their range`);
  return model;
}

const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

test('stories260K: WebGPU logits agree with the WebAssembly backend', { skip: device.skip || missing('stories260K', 'stories260K.bin') }, async () => {
  const model = await assertAgrees(readCheckpoint(stories260K.model), PROMPT, 'stories260K');
  assert.deepEqual(model.matrices, { f32: 36, f16: 0, bf16: 0, q8_0: 0, q4_0: 0 });
  model.dispose();
});

test('apple golden tiny llama (half-split RoPE, head size 2): WebGPU logits agree with the WebAssembly backend',
  { skip: device.skip || missing('apple-golden-tiny-llama', 'model.safetensors') }, async () => {
    (await assertAgrees(readCheckpoint(fixture('apple-golden-tiny-llama')), [1, 3, 4, 5, 6, 2, 0, 3], 'golden')).dispose();
  });

test('random GQA model with qkv bias, tied classifier and half-split RoPE agrees', { skip: device.skip }, async () => {
  const checkpoint = randomCheckpoint({ dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300,
    ropeLayout: 'halves', qkvBias: true, tiedClassifier: true }, 3);
  (await assertAgrees(checkpoint, [5, 17, 299, 0, 42, 42, 7], 'random HF')).dispose();
});

test('random GQA GGUF models in f32, f16, bf16, Q8_0 and Q4_0 agree (quantized: with the dequantized matrices)',
  { skip: device.skip }, async () => {
    await withTempDirAsync(async (dir) => {
      const shape = { kind: 'llama3' as const, dim: 128, hiddenDim: 256, nLayers: 2, nHeads: 8, nKvHeads: 2, merges: 150, seed: 5 };
      const tokens = [5, 77, 200, 13, 99, 1, 42, 150, 260, 7];
      const expectedEncoding: Record<string, string> = { f32: 'f32', f16: 'f16', bf16: 'bf16', q8_0: 'q8_0', q4_0: 'q4_0' };
      for (const type of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as GgufOutputType[]) {
        const checkpoint = readCheckpoint(writeSyntheticGguf(join(dir, type), shape, type));
        const quantized = type === 'q8_0' || type === 'q4_0';
        // Quantized: the WebAssembly model quantizes activations to int8 (llama.cpp's numerics); the GPU keeps them
        // f32, which is the f32 model over the same dequantized matrices (weights: 'f32').
        const model = await assertAgrees(checkpoint, tokens, type, 'native', quantized ? { weights: 'f32' } : {});
        assert.equal(model.matrices[expectedEncoding[type] as keyof typeof model.matrices], 15, `${type}: matrices kept as ${type}`);
        if (quantized) {
          // Against the int8-activation path: the few percent of the range that activation quantization costs.
          const { difference } = relativeDifference(await gpuLogits(model, tokens), await wasmLogits(checkpoint, tokens));
          assert.ok(difference > 0 && difference < 0.05, `${type}: against native WebAssembly ${difference}`);
        }
        model.dispose();
      }
    });
  });

test('stories260K greedy ids on WebGPU equal llama2.c run.c (reference-greedy.jsonl), reading back argmax ids only',
  { skip: device.skip || missing('stories260K', 'stories260K.bin') }, async () => {
    const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').trim().split('\n')[0]) as
      { prompt_ids: number[]; greedy_ids: number[] };
    const model = createWebGpuModel(requireDevice(device).device, readCheckpoint(stories260K.model), { contextLength: 256 });
    const cache = model.createCache(256);
    const prompt = reference.prompt_ids;
    let out = await model.forward(cache, { count: prompt.length, tokens: Int32Array.from(prompt),
      positions: Int32Array.from(prompt, (_, i) => i), writeSlot: 0, prefixLengths: Int32Array.from(prompt, (_, i) => i + 1),
      logits: 'last' }, { logits: 'argmax', hidden: 'none' });
    assert.equal(out.stats.bytesRead, 4, 'a greedy step reads back one id');
    assert.equal(out.logits.length, 0);
    assert.equal(out.hidden.length, 0);
    const ids: number[] = [];
    let position = prompt.length;
    while (ids.length < reference.greedy_ids.length) {
      const next = out.argmax[0];
      ids.push(next);
      if (ids.length === reference.greedy_ids.length) break;
      out = await model.forward(cache, { count: 1, tokens: Int32Array.of(next), positions: Int32Array.of(position),
        writeSlot: position, prefixLengths: Int32Array.of(position + 1), logits: 'last' }, { logits: 'argmax', hidden: 'none' });
      position++;
    }
    assert.deepEqual(ids, reference.greedy_ids);
    cache.free();
    model.dispose();
  });
