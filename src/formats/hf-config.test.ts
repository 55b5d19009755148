import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseHfLlamaConfig, readHfLlamaConfig } from './hf-config.js';
import { expectFormatError, fixturePath, skipUnlessFixture, withTempDir } from './test-fixtures.js';

const APPLE = 'apple-golden-tiny-llama/config.json';

const MINIMAL = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  vocab_size: 512,
  max_position_embeddings: 512,
};

test('the Apple golden tiny Llama config parses', { skip: skipUnlessFixture(APPLE) }, () => {
  const c = readHfLlamaConfig(fixturePath(APPLE));
  assert.deepEqual(c, {
    architectures: ['LlamaForCausalLM'],
    modelType: 'llama',
    hiddenSize: 8,
    intermediateSize: 5,
    numHiddenLayers: 1,
    numAttentionHeads: 4,
    numKeyValueHeads: 4,
    headDim: 2,
    vocabSize: 7,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    attentionBias: false,
    hiddenAct: 'silu',
    slidingWindow: null,
    torchDtype: 'float32',
  });
});

test('defaults follow transformers', () => {
  const c = parseHfLlamaConfig(MINIMAL, 'config.json');
  assert.equal(c.numKeyValueHeads, 8);
  assert.equal(c.headDim, 8);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.attentionBias, false);
  assert.equal(c.bosTokenId, 1);
  assert.equal(c.eosTokenId, 2);
  assert.deepEqual(c.architectures, []);
  const qwen = parseHfLlamaConfig({ ...MINIMAL, model_type: 'qwen2', sliding_window: 4096, use_sliding_window: false }, 'q.json');
  assert.equal(qwen.attentionBias, true);
  assert.equal(qwen.slidingWindow, null);
  assert.equal(qwen.bosTokenId, null);
  const mistral = parseHfLlamaConfig({ ...MINIMAL, model_type: 'mistral', sliding_window: 4096, head_dim: null }, 'm.json');
  assert.equal(mistral.slidingWindow, 4096);
  assert.equal(mistral.headDim, 8);
});

test('Llama 3.1 style fields: rope_scaling, eos list, explicit head_dim', () => {
  const c = parseHfLlamaConfig(
    {
      ...MINIMAL,
      num_key_value_heads: 2,
      head_dim: 16,
      rope_theta: 500000.0,
      eos_token_id: [128001, 128008, 128009],
      tie_word_embeddings: true,
      rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    },
    'config.json',
  );
  assert.equal(c.headDim, 16);
  assert.deepEqual(c.eosTokenId, [128001, 128008, 128009]);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.ropeScaling?.ropeType, 'llama3');
  assert.equal(c.ropeScaling?.factor, 8);
  assert.equal(c.ropeScaling?.originalMaxPositionEmbeddings, 8192);
  const linear = parseHfLlamaConfig({ ...MINIMAL, rope_scaling: { type: 'linear', factor: 2 } }, 'config.json');
  assert.equal(linear.ropeScaling?.ropeType, 'linear');
  assert.equal(linear.ropeScaling?.lowFreqFactor, null);
});

test('bad configs name the field, the expectation and the value', () => {
  const file = '/models/x/config.json';
  const cases: ReadonlyArray<readonly [Record<string, unknown>, string, string[]]> = [
    [{ ...MINIMAL, hidden_size: undefined }, 'field "hidden_size"', ['a positive integer', 'got nothing (field missing)']],
    [{ ...MINIMAL, hidden_size: '64' }, 'field "hidden_size"', ['got "64"']],
    [{ ...MINIMAL, num_hidden_layers: 2.5 }, 'field "num_hidden_layers"', ['got 2.5']],
    [{ ...MINIMAL, model_type: 'gpt2' }, 'field "model_type"', ['"llama", "mistral", "qwen2"', 'got "gpt2"']],
    [{ ...MINIMAL, model_type: undefined }, 'field "model_type"', ['a string']],
    [{ ...MINIMAL, hidden_act: 'gelu' }, 'field "hidden_act"', ['"silu"', 'got "gelu"']],
    [{ ...MINIMAL, num_key_value_heads: 3 }, 'field "num_key_value_heads"', ['divisor of num_attention_heads (8)', 'got 3']],
    [{ ...MINIMAL, hidden_size: 60 }, 'field "hidden_size"', ['multiple of num_attention_heads', 'got 60']],
    [{ ...MINIMAL, rms_norm_eps: -1 }, 'field "rms_norm_eps"', ['a positive number', 'got -1']],
    [{ ...MINIMAL, tie_word_embeddings: 'yes' }, 'field "tie_word_embeddings"', ['true or false']],
    [{ ...MINIMAL, eos_token_id: [] }, 'field "eos_token_id"', ['non-empty array']],
    [{ ...MINIMAL, bos_token_id: [1, 2] }, 'field "bos_token_id"', ['a single token id']],
    [{ ...MINIMAL, rope_scaling: 'llama3' }, 'field "rope_scaling"', ['null or an object']],
    [{ ...MINIMAL, rope_scaling: { factor: 2 } }, 'field "rope_scaling.rope_type"', ['a string (or "type")']],
    [{ ...MINIMAL, rope_scaling: { rope_type: 'llama3', factor: 'big' } }, 'field "rope_scaling.factor"', ['a number', 'got "big"']],
    [{ ...MINIMAL, architectures: 'LlamaForCausalLM' }, 'field "architectures"', ['an array of strings']],
  ];
  for (const [json, field, includes] of cases) {
    expectFormatError(() => parseHfLlamaConfig(json, file), { file, field, includes });
  }
  expectFormatError(() => parseHfLlamaConfig([1], file), { file, field: 'config', includes: ['a JSON object'] });
});

test('unreadable or invalid JSON files are FormatErrors', () => {
  withTempDir((dir) => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{"model_type": "llama",');
    expectFormatError(() => readHfLlamaConfig(path), { file: path, field: 'config', includes: ['valid UTF-8 JSON'] });
    expectFormatError(() => readHfLlamaConfig(join(dir, 'absent.json')), { file: join(dir, 'absent.json'), field: 'file', includes: ['ENOENT'] });
  });
});
