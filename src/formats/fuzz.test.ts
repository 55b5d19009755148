// Random corruptions and truncations of small valid files: every reader must either parse or throw a FormatError,
// never a RangeError/TypeError/out-of-memory from trusting a corrupt size.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from './errors.js';
import { readHfLlamaConfig } from './hf-config.js';
import { llama2cLayout, readLlama2cCheckpoint, writeLlama2cCheckpoint, type F32Tensor, type Llama2cConfig } from './llama2c.js';
import { readSafetensors, readSafetensorsFolder } from './safetensors.js';
import { buildSafetensors, seededRandom, withTempDir } from './test-fixtures.js';
import { readTokenizerBin, writeTokenizerBin } from './tokenizer-bin.js';

// REDRAFTER_FUZZ_TRIALS raises the count for a longer local run.
const TRIALS = Number(process.env.REDRAFTER_FUZZ_TRIALS ?? '') || 250;

function corrupt(bytes: Uint8Array, rand: () => number): Uint8Array {
  const pick = (n: number): number => Math.floor(rand() * n);
  const mode = pick(4);
  // Uint8Array.from copies: Buffer.prototype.slice would return a view and corrupt the original.
  if (mode === 0) return Uint8Array.from(bytes.subarray(0, pick(bytes.length))); // truncation
  const out = Uint8Array.from(bytes);
  if (mode === 1) {
    // a few random bytes anywhere
    for (let k = 1 + pick(4); k > 0; k--) out[pick(out.length)] = pick(256);
  } else if (mode === 2) {
    // bytes near the start, where the headers are
    for (let k = 1 + pick(3); k > 0; k--) out[pick(Math.min(out.length, 48))] = pick(256);
  } else {
    // an extreme int32 (or float) somewhere 4-aligned in the first bytes
    const at = 4 * pick(Math.min(out.length, 64) / 4);
    const values = [0, -1, 0x7fffffff, -0x80000000, 0x40000000, 1];
    new DataView(out.buffer).setInt32(Math.min(at, out.length - 4), values[pick(values.length)], true);
  }
  return out;
}

/** Runs `parse` on many corrupt variants of `valid`; returns how many parsed and how many were rejected. */
function fuzz(
  dir: string,
  name: string,
  valid: Uint8Array,
  seed: number,
  parse: (path: string) => void,
  namesFile = true,
): { parsed: number; rejected: number } {
  const rand = seededRandom(seed);
  const path = join(dir, name);
  let parsed = 0;
  let rejected = 0;
  for (let trial = 0; trial < TRIALS; trial++) {
    const bytes = corrupt(valid, rand);
    writeFileSync(path, bytes);
    try {
      parse(path);
      parsed++;
    } catch (err) {
      if (!(err instanceof FormatError)) {
        assert.fail(`${name}, trial ${trial} (${bytes.length} bytes): expected a FormatError, got ${err instanceof Error ? err.stack : String(err)}`);
      }
      if (namesFile) assert.ok(err.message.startsWith(`${name}: `), err.message);
      rejected++;
    }
  }
  return { parsed, rejected };
}

test('fuzz: llama2.c checkpoints', () => {
  withTempDir((dir) => {
    const config: Llama2cConfig = { dim: 8, hiddenDim: 6, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 5, seqLen: 3, sharedClassifier: false };
    const tensors = new Map<string, F32Tensor>();
    for (const e of llama2cLayout(config)) {
      if (!e.skip) tensors.set(e.name, { shape: e.shape, data: new Float32Array(e.shape.reduce((a, b) => a * b, 1)).fill(0.5) });
    }
    const source = join(dir, 'source.bin');
    writeLlama2cCheckpoint(source, config, tensors);
    const r = fuzz(dir, 'model.bin', readFileSync(source), 1, (p) => readLlama2cCheckpoint(p));
    assert.ok(r.parsed > 0 && r.rejected > 0, JSON.stringify(r));
  });
});

test('fuzz: safetensors (F32, F16, BF16, I32)', () => {
  withTempDir((dir) => {
    const header = {
      __metadata__: { format: 'pt' },
      w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      h: { dtype: 'F16', shape: [4], data_offsets: [24, 32] },
      b: { dtype: 'BF16', shape: [2, 2], data_offsets: [32, 40] },
      i: { dtype: 'I32', shape: [1], data_offsets: [40, 44] },
    };
    const data = Uint8Array.from({ length: 44 }, (_, k) => (k * 37) & 0xff);
    const valid = buildSafetensors(header, data);
    const r = fuzz(dir, 'model.safetensors', valid, 2, (p) => {
      const st = readSafetensors(p);
      for (const name of st.names) {
        const dtype = st.tensors.get(name)?.dtype;
        if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') st.getF32(name);
        else st.getBytes(name);
      }
    });
    assert.ok(r.parsed > 0 && r.rejected > 0, JSON.stringify(r));
    // The shard index goes through the same checks.
    const index = new TextEncoder().encode(JSON.stringify({ weight_map: { w: 'model.safetensors' } }));
    writeFileSync(join(dir, 'model.safetensors'), valid);
    // A corrupt shard name yields an error about that (missing) shard, so the file named varies.
    fuzz(dir, 'model.safetensors.index.json', index, 3, () => readSafetensorsFolder(dir), false);
  });
});

test('fuzz: tokenizer.bin and config.json', () => {
  withTempDir((dir) => {
    const enc = new TextEncoder();
    const source = join(dir, 'source.bin');
    writeTokenizerBin(source, { pieces: ['<unk>', '\n<s>\n', '\n</s>\n', ' a', 'bc', 'é'].map((s) => enc.encode(s)), scores: [0, 0, 0, -1, -2, -3] });
    const valid = readFileSync(source);
    fuzz(dir, 'tokenizer.bin', valid, 4, (p) => readTokenizerBin(p));
    fuzz(dir, 'tokenizer.bin', valid, 5, (p) => readTokenizerBin(p, 6));
    const config = enc.encode(
      JSON.stringify({ model_type: 'llama', hidden_size: 8, intermediate_size: 5, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 7, max_position_embeddings: 64, rope_scaling: { rope_type: 'llama3', factor: 8 } }),
    );
    fuzz(dir, 'config.json', config, 6, (p) => readHfLlamaConfig(p));
  });
});
