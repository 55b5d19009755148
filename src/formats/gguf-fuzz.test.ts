// Random corruptions of small valid GGUF and tokenizer.json files: every reader must parse or throw a FormatError
// naming the file, never a RangeError/TypeError or an allocation sized from a corrupt count.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FormatError } from './errors.js';
import { readGguf } from './gguf.js';
import { readGgufLlamaConfig, readGgufVocab } from './gguf-model.js';
import { gguf, writeGguf } from './gguf-write.js';
import { quantize } from './quant.js';
import { seededRandom, withTempDir } from './test-fixtures.js';
import { parseTokenizerConfig, parseTokenizerJson, readTokenizerJson } from './tokenizer-json.js';
import { tokenizerFromGgufVocab, tokenizerFromHf } from '../tokenizer/sources.js';
import { syntheticTokenizer } from '../tokenizer/test-vocab.js';

const TRIALS = Number(process.env.REDRAFTER_FUZZ_TRIALS ?? '') || 300;

function corruptBytes(bytes: Uint8Array, rand: () => number): Uint8Array {
  const pick = (n: number): number => Math.floor(rand() * n);
  const mode = pick(5);
  if (mode === 0) return Uint8Array.from(bytes.subarray(0, pick(bytes.length)));
  const out = Uint8Array.from(bytes);
  const view = new DataView(out.buffer);
  if (mode === 1) {
    for (let k = 1 + pick(4); k > 0; k--) out[pick(out.length)] = pick(256);
  } else if (mode === 2) {
    for (let k = 1 + pick(3); k > 0; k--) out[pick(Math.min(out.length, 64))] = pick(256);
  } else if (mode === 3) {
    // An extreme uint64 where counts, lengths, dims and offsets live.
    const values = [0n, 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 0xffffffffn, 31n];
    view.setBigUint64(Math.min(pick(out.length - 8), out.length - 8), values[pick(values.length)], true);
  } else {
    const values = [0, 1, 12, 13, 30, 99, 0xffffffff, 0x80000000];
    view.setUint32(4 * pick(Math.floor(out.length / 4)), values[pick(values.length)], true);
  }
  return out;
}

function expectFormatErrorOrSuccess(name: string, trial: number, body: () => void): boolean {
  try {
    body();
    return true;
  } catch (err) {
    if (!(err instanceof FormatError)) {
      assert.fail(`${name}, trial ${trial}: expected a FormatError, got ${err instanceof Error ? err.stack : String(err)}`);
    }
    assert.ok(err.message.startsWith(`${name}: `), err.message);
    return false;
  }
}

test('fuzz: GGUF header, tensor infos, model config and vocabulary', () => {
  withTempDir((dir) => {
    const source = join(dir, 'source.gguf');
    const { tokenizer } = syntheticTokenizer('llama3', 20);
    const model = tokenizer.model as { vocab: Record<string, number>; merges: string[] };
    const tokens = Object.keys(model.vocab);
    writeGguf(source, new Map([
      ['general.architecture', gguf.string('llama')],
      ['llama.context_length', gguf.uint32(64)], ['llama.embedding_length', gguf.uint32(32)], ['llama.block_count', gguf.uint32(1)],
      ['llama.feed_forward_length', gguf.uint32(64)], ['llama.attention.head_count', gguf.uint32(2)],
      ['llama.attention.layer_norm_rms_epsilon', gguf.float32(1e-5)],
      ['tokenizer.ggml.model', gguf.string('gpt2')], ['tokenizer.ggml.pre', gguf.string('llama-bpe')],
      ['tokenizer.ggml.tokens', gguf.array('string', tokens.slice(0, 40))],
      ['tokenizer.ggml.merges', gguf.array('string', model.merges.slice(0, 10))],
    ]), [
      { name: 'token_embd.weight', shape: [40, 32], type: 'Q8_0', bytes: () => quantize('Q8_0', new Float32Array(1280).fill(0.25)) },
      { name: 'blk.0.ffn_down.weight', shape: [1, 256], type: 'Q4_K', bytes: () => quantize('Q4_K', new Float32Array(256).fill(-1)) },
      { name: 'output_norm.weight', shape: [32], type: 'F32', bytes: () => quantize('F32', new Float32Array(32).fill(1)) },
    ]);
    const valid = readFileSync(source);
    const rand = seededRandom(21);
    const path = join(dir, 'model.gguf');
    let parsed = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      writeFileSync(path, corruptBytes(valid, rand));
      const ok = expectFormatErrorOrSuccess('model.gguf', trial, () => {
        const file = readGguf(path);
        for (const name of file.tensors.keys()) file.getF32(name);
        readGgufLlamaConfig(file);
        const vocab = readGgufVocab(file);
        if (vocab !== undefined) tokenizerFromGgufVocab(vocab, path).encode('Hello world 123');
      });
      if (ok) parsed++;
    }
    assert.ok(parsed > 0 && parsed < TRIALS, `parsed ${parsed} of ${TRIALS}`);
  });
});

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Replaces one random node of a JSON tree with a value of another kind. */
function mutate(value: Json, rand: () => number): Json {
  const pick = (n: number): number => Math.floor(rand() * n);
  const replacements: Json[] = [null, -1, 1e300, 2 ** 40, 0.5, '', 'x y z', '(?<', true, [], {}, [[1, 2]], { type: 'Nope' }];
  const nodes: Array<{ parent: Json[] | { [key: string]: Json }; key: string | number }> = [];
  const walk = (v: Json, depth: number): void => {
    if (depth > 6 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) v.slice(0, 8).forEach((item, i) => { nodes.push({ parent: v, key: i }); walk(item, depth + 1); });
    else for (const [k, item] of Object.entries(v).slice(0, 40)) { nodes.push({ parent: v, key: k }); walk(item, depth + 1); }
  };
  const copy = JSON.parse(JSON.stringify(value)) as Json;
  walk(copy, 0);
  const node = nodes[pick(nodes.length)];
  const replacement = replacements[pick(replacements.length)];
  if (Array.isArray(node.parent)) node.parent[Number(node.key)] = replacement;
  else if (rand() < 0.15) delete node.parent[String(node.key)];
  else node.parent[String(node.key)] = replacement;
  return copy;
}

test('fuzz: tokenizer.json and tokenizer_config.json', () => {
  withTempDir((dir) => {
    const { tokenizer, config } = syntheticTokenizer('qwen2', 30);
    const rand = seededRandom(22);
    let parsed = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const json = mutate(tokenizer as Json, rand);
      const conf = mutate(config as Json, rand);
      const ok = expectFormatErrorOrSuccess('tokenizer.json', trial, () => {
        const t = tokenizerFromHf(parseTokenizerJson(json, join(dir, 'tokenizer.json')), null);
        t.decode(t.encode('Hello <|im_start|> world 42'));
      }) && expectFormatErrorOrSuccess('tokenizer_config.json', trial, () => parseTokenizerConfig(conf, join(dir, 'tokenizer_config.json')));
      if (ok) parsed++;
    }
    assert.ok(parsed > 0 && parsed < TRIALS, `parsed ${parsed} of ${TRIALS}`);
    // Byte-level corruption of the file itself.
    const source = new TextEncoder().encode(JSON.stringify(tokenizer));
    const path = join(dir, 'tokenizer.json');
    for (let trial = 0; trial < 50; trial++) {
      writeFileSync(path, corruptBytes(source, rand));
      expectFormatErrorOrSuccess('tokenizer.json', trial, () => readTokenizerJson(path));
    }
  });
});
