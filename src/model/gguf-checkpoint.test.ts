// GGUF checkpoints end to end in our engine: converted from llama2.c (stories260K) and from synthetic Hugging Face
// folders (Llama 3 / Mistral / Qwen2 / SmolLM shapes), they must compute what the source computes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createKernels } from '../kernels/index.js';
import { convertToGguf } from '../formats/convert-gguf.js';
import { readGguf } from '../formats/gguf.js';
import { dequantize, quantize } from '../formats/quant.js';
import { withTempDirAsync } from '../formats/test-fixtures.js';
import { loadModel } from '../engine/load.js';
import { generateText } from '../engine/generate.js';
import { readCheckpoint, type Checkpoint } from './checkpoint.js';
import { createModel } from './model.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { writeSyntheticHfFolder, type SyntheticShape } from '../../test/synthetic-models.js';

async function allLogits(checkpoint: Checkpoint, tokens: readonly number[]): Promise<Float32Array[]> {
  const kernels = await createKernels({ threads: 1 });
  try {
    const model = createModel(kernels, checkpoint, { contextLength: 64 });
    const cache = model.createCache(tokens.length);
    const out = model.forward(cache, {
      count: tokens.length, tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0,
      prefixLengths: Int32Array.from(tokens, (_, i) => i + 1), logits: 'all',
    });
    const v = model.config.vocabSize;
    const rows = tokens.map((_, i) => out.logits.slice(i * v, (i + 1) * v));
    cache.free();
    model.dispose();
    return rows;
  } finally {
    await kernels.close();
  }
}

function maxDifference(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((row, i) => row.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - b[i][j])))));
  return worst;
}

test('stories260K → GGUF (F32): same config, tokenizer and greedy ids as the llama2.c file', { skip: missing('stories260K', 'stories260K.bin') }, async () => {
  await withTempDirAsync(async (dir) => {
    const out = join(dir, 'stories260K.gguf');
    const result = convertToGguf({ from: 'llama2c', input: stories260K.model, output: out });
    assert.deepEqual(result.warnings, []);
    const original = readCheckpoint(stories260K.model);
    const converted = readCheckpoint(out);
    assert.equal(converted.format, 'gguf');
    assert.deepEqual({ ...converted.config, normEps: Math.fround(converted.config.normEps) }, { ...original.config, normEps: Math.fround(original.config.normEps) });
    for (const name of ['token_embd', 'layers.3.wq', 'layers.4.w2', 'norm']) assert.deepEqual(converted.tensors.read(name), original.tensors.read(name), name);
    const raw = converted.tensors.raw?.('layers.0.wk');
    assert.equal(raw?.type, 'F32');
    assert.deepEqual(raw?.shape, [32, 64]);

    const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').trim().split('\n')[0]) as { prompt: string; prompt_ids: number[]; greedy_ids: number[] };
    const loaded = await loadModel({ model: out });
    try {
      assert.equal(loaded.format, 'gguf');
      assert.ok(loaded.tokenizer);
      assert.deepEqual(loaded.tokenizer.encode(reference.prompt, { bos: true }), reference.prompt_ids, 'embedded vocabulary encodes like tok512.bin');
      const generated = await generateText(loaded, { prompt: reference.prompt, maxTokens: reference.greedy_ids.length });
      assert.deepEqual(generated.ids, reference.greedy_ids);
      assert.equal(generated.text, loaded.tokenizer.decode(reference.greedy_ids));
    } finally {
      await loaded.close();
    }
  });
});

const base: SyntheticShape = { kind: 'llama3', dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, merges: 150, seed: 3 };

for (const shape of [
  { ...base },
  { ...base, kind: 'mistral' as const },
  { ...base, kind: 'qwen2' as const, vocabSize: 480 },
  { ...base, kind: 'smollm' as const, tied: true, nKvHeads: 4 },
  { ...base, ropeTheta: 500000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
]) {
  const label = `${shape.kind}${shape.tied ? ', tied' : ''}${shape.ropeScaling ? ', llama3 rope scaling' : ''}`;
  test(`synthetic HF ${label} → GGUF (F32): same logits as the HF folder, same tokenizer`, async () => {
    await withTempDirAsync(async (dir) => {
      const hf = join(dir, 'hf');
      writeSyntheticHfFolder(hf, shape);
      const out = join(dir, 'model.gguf');
      const result = convertToGguf({ from: 'hf', input: hf, output: out });
      assert.equal(result.architecture, shape.kind === 'qwen2' ? 'qwen2' : 'llama');
      if (shape.kind === 'mistral') assert.match(result.warnings.join(), /sliding_window 256/);
      const a = readCheckpoint(hf);
      const b = readCheckpoint(out);
      // Everything but the RoPE layout carries over; llama files are permuted to pairs, qwen2 stays half-split.
      assert.equal(b.config.ropeLayout, shape.kind === 'qwen2' ? 'halves' : 'pairs');
      assert.deepEqual({ ...b.config, ropeLayout: 'halves', normEps: 0, ropeTheta: 0, eosIds: [] }, { ...a.config, normEps: 0, ropeTheta: 0, eosIds: [] });
      assert.deepEqual(b.config.ropeScaling, a.config.ropeScaling);
      const tokens = [5, 77, 200, 13, 99, 1, 42, 150, 260, 7, 8, 301];
      const difference = maxDifference(await allLogits(a, tokens), await allLogits(b, tokens));
      assert.ok(difference < 1e-4, `logits differ by ${difference}`);

      const hfLoaded = await loadModel({ model: hf });
      const ggufLoaded = await loadModel({ model: out });
      try {
        const texts = ['Once upon a time, Lily saw 12345 birds!', "<|im_start|>user\nIt's café time<|im_end|>", '  x\n\n y'];
        for (const text of texts) assert.deepEqual(ggufLoaded.tokenizer?.encode(text, { bos: true }), hfLoaded.tokenizer?.encode(text, { bos: true }), text);
        const messages = [{ role: 'user', content: 'Hello!' }];
        assert.equal(ggufLoaded.tokenizer?.applyChatTemplate?.(messages), hfLoaded.tokenizer?.applyChatTemplate?.(messages));
        const x = await generateText(hfLoaded, { prompt: 'Once upon a time', maxTokens: 12 });
        const y = await generateText(ggufLoaded, { prompt: 'Once upon a time', maxTokens: 12 });
        assert.deepEqual(y.ids, x.ids);
      } finally {
        await hfLoaded.close();
        await ggufLoaded.close();
      }
    });
  });
}

test('quantized conversion: tensors hold the quantized blocks, norms stay F32, odd rows fall back', async () => {
  await withTempDirAsync(async (dir) => {
    const hf = join(dir, 'hf');
    writeSyntheticHfFolder(hf, { ...base, hiddenDim: 80 });
    const out = join(dir, 'model.gguf');
    const result = convertToGguf({ from: 'hf', input: hf, output: out, type: 'q8_0' });
    // ffn_down's rows are hiddenDim = 80 long: not whole Q8_0 blocks of 32.
    assert.deepEqual(result.fallbacks, ['blk.0.ffn_down.weight (F16)', 'blk.1.ffn_down.weight (F16)']);
    const file = readGguf(out);
    assert.equal(file.tensors.get('blk.0.attn_norm.weight')?.type, 'F32');
    assert.equal(file.tensors.get('blk.0.ffn_up.weight')?.type, 'Q8_0');
    const hfCheckpoint = readCheckpoint(hf);
    const ggufCheckpoint = readCheckpoint(out);
    const up = hfCheckpoint.tensors.read('layers.1.w3');
    assert.deepEqual(ggufCheckpoint.tensors.read('layers.1.w3'), dequantize('Q8_0', quantize('Q8_0', up), up.length));
    assert.equal(ggufCheckpoint.tensors.raw?.('layers.1.w3')?.bytes().length, (up.length / 32) * 34);
    const tokens = [5, 77, 200, 13];
    const difference = maxDifference(await allLogits(hfCheckpoint, tokens), await allLogits(ggufCheckpoint, tokens));
    assert.ok(difference > 0 && difference < 0.1, `Q8_0 logits differ from F32 by ${difference}`);
  });
});
