import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../formats/safetensors.js';
import { FormatError } from '../formats/errors.js';
import type { LlamaConfig } from '../model/config.js';
import { canonicalDrafterName, randomDrafter, readDrafter, writeDrafter } from './checkpoint.js';

const base: LlamaConfig = {
  dim: 16, hiddenDim: 40, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: 8, vocabSize: 128, maxSequenceLength: 64,
  normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
  bosId: 1, eosIds: [2],
};

function withFolder(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-drafter-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('write → read gives identical tensors and the Apple config keys (with and without input_proj, rnn on/off)', () => {
  for (const [exitDim, rnn] of [[24, true], [32, true], [24, false]] as const) {
    withFolder((dir) => {
      const weights = randomDrafter(base, { exitDim, numDraftLayers: 1, rnn, seed: 3 });
      writeDrafter(dir, weights);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(config['architectures'], ['Drafter']);
      assert.equal(config['model_type'], 'recurrent_drafting_drafter');
      assert.equal(config['vocab_size'], 128);
      assert.equal(config['hidden_size'], 16);
      assert.equal(config['exit_dim'], exitDim);
      assert.equal(config['num_draft_layers'], 1);
      assert.equal(config['rnn'], rnn);
      assert.equal(config['num_lookback_tokens'], -1);
      const back = readDrafter(dir, base);
      assert.deepEqual([...back.tensors.keys()].sort(), [...weights.tensors.keys()].sort());
      for (const [name, data] of weights.tensors) assert.deepEqual(back.tensors.get(name), data, name);
      assert.equal(back.tensors.has('input_proj.weight'), exitDim !== 32);
      assert.equal(back.tensors.has('rnn_u.bias'), rnn);
    });
  }
});

test('alternative tensor spellings load; emb_norm.weight is ignored; unknown config keys survive a round trip', () => {
  withFolder((dir) => {
    const weights = randomDrafter(base, { exitDim: 24, numDraftLayers: 2, seed: 5 });
    const renamed = new Map<string, { shape: number[]; data: Float32Array }>();
    const shapeOf: Record<string, number[]> = {
      'input_proj.weight': [24, 32], 'input_proj.bias': [24], 'lm_head.0.linear.weight': [24, 24],
      'lm_head.0.linear.bias': [24], 'lm_head.1.linear.weight': [24, 24], 'lm_head.1.linear.bias': [24],
      'lm_head.2.weight': [128, 24], 'rnn_u.weight': [16, 16], 'rnn_u.bias': [16], 'rnn_w.weight': [16, 16],
    };
    const spelling: Record<string, string> = {
      'input_proj.weight': 'input_projs.weight', 'input_proj.bias': 'input_projs.bias',
      'lm_head.0.linear.weight': 'lm_heads.0.linear.weight', 'lm_head.0.linear.bias': '0.0.linear.bias',
      'lm_head.1.linear.weight': '0.1.linear.weight', 'lm_head.1.linear.bias': 'lm_heads.1.linear.bias',
      'lm_head.2.weight': '0.2.weight',
    };
    for (const [name, data] of weights.tensors) renamed.set(spelling[name] ?? name, { shape: shapeOf[name], data });
    renamed.set('emb_norm.weight', { shape: [16], data: new Float32Array(16).fill(1) });
    writeSafetensors(join(dir, 'model.safetensors'), renamed, { format: 'pt' });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ architectures: ['Drafter'],
      model_type: 'recurrent_drafting_drafter', vocab_size: 128, hidden_size: 16, exit_dim: 24, num_draft_layers: 2,
      rnn: true, emb_norm: true, transformers_version: '4.40.0', custom_key: 'kept' }));
    const back = readDrafter(dir, base);
    for (const [name, data] of weights.tensors) assert.deepEqual(back.tensors.get(name), data, name);
    assert.equal(back.config.embNorm, true);
    const again = join(dir, 'again');
    writeDrafter(again, back);
    const config = JSON.parse(readFileSync(join(again, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['custom_key'], 'kept');
    assert.equal(config['transformers_version'], '4.40.0');
  });
  assert.equal(canonicalDrafterName('drafter.layers.0.linear.weight', 2), 'lm_head.0.linear.weight');
  assert.equal(canonicalDrafterName('drafter.lm_head.weight', 2), 'lm_head.2.weight');
  assert.equal(canonicalDrafterName('emb_norm.weight', 2), null);
});

test('bad drafters: mismatched model, wrong shapes, missing tensors or files, bad config values', () => {
  withFolder((dir) => {
    writeDrafter(dir, randomDrafter(base, { seed: 1 }));
    assert.throws(() => readDrafter(dir, { ...base, dim: 32 }),
      /hidden_size": expected 32 \(the model's hidden size\), got 16/);
    assert.throws(() => readDrafter(dir, { ...base, vocabSize: 512 }), /vocab_size": expected 512 .*got 128/);
    // A tensor of the wrong shape.
    const weights = randomDrafter(base, { seed: 1 });
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, data] of weights.tensors) tensors.set(name, { shape: [data.length], data });
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    assert.throws(() => readDrafter(dir, base), (error: unknown) => error instanceof FormatError &&
      /tensor "[^"]+": expected shape \[\d+, \d+\], got \[\d+\]/.test(error.message));
    // A missing tensor.
    tensors.clear();
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    assert.throws(() => readDrafter(dir, base), /tensor "lm_head.0.linear.weight": expected shape \[32, 32\], got missing/);
    rmSync(join(dir, 'model.safetensors'));
    assert.throws(() => readDrafter(dir, base), /model\.safetensors: expected the drafter weights/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocab_size: 128, hidden_size: 16, exit_dim: -1,
      num_draft_layers: 2 }));
    assert.throws(() => readDrafter(dir, base), /field "exit_dim": expected a positive integer, got -1/);
    writeFileSync(join(dir, 'config.json'), '{ not json');
    assert.throws(() => readDrafter(dir, base), /config\.json: JSON: expected valid JSON/);
    rmSync(join(dir, 'config.json'));
    assert.throws(() => readDrafter(dir, base), /config\.json: expected a drafter config, got no such file/);
  });
});
