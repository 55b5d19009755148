import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withTempDir } from '../formats/test-fixtures.js';
import { readGguf } from '../formats/gguf.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { writeSyntheticHfFolder } from '../../test/synthetic-models.js';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('convert --from llama2c --to gguf --type q8_0, then generate from the GGUF file', { skip: missing('stories260K', 'stories260K.bin') }, () => {
  withTempDir((dir) => {
    const out = join(dir, 'stories260K-q8_0.gguf');
    const converted = run(['convert', '--from', 'llama2c', '--to', 'gguf', '--in', stories260K.model, '--out', out, '--type', 'q8_0']);
    assert.equal(converted.status, 0, converted.stderr);
    assert.match(converted.stderr, /wrote .*llama, 47 tensors, q8_0/);
    assert.match(converted.stderr, /ffn_down\.weight \(F16\)/, 'hidden 172 is not whole Q8_0 blocks');
    const file = readGguf(out);
    assert.equal(file.tensors.get('blk.0.attn_q.weight')?.type, 'Q8_0');
    const generated = run(['generate', '--model', out, '--max-tokens', '8', '--format', 'json', 'Once upon a time']);
    assert.equal(generated.status, 0, generated.stderr);
    assert.equal((JSON.parse(generated.stdout) as { ids: number[] }).ids.length, 8);
  });
});

test('convert --from hf: a synthetic Qwen2 folder; bad flags are reported', () => {
  withTempDir((dir) => {
    const hf = join(dir, 'hf');
    writeSyntheticHfFolder(hf, { kind: 'qwen2', dim: 64, hiddenDim: 96, nLayers: 1, nHeads: 4, nKvHeads: 2, merges: 50 });
    const out = join(dir, 'qwen2.gguf');
    const converted = run(['convert', '--from', 'hf', '--in', hf, '--out', out, '--type', 'f16']);
    assert.equal(converted.status, 0, converted.stderr);
    assert.match(converted.stderr, /qwen2, \d+ tensors, f16/);
    assert.equal(readGguf(out).tensors.get('blk.0.attn_q.bias')?.type, 'F32');
    const bad = run(['convert', '--from', 'onnx', '--in', hf, '--out', out]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /expected one of llama2c, hf, got "onnx"/);
    const missingInput = run(['convert', '--from', 'hf', '--in', join(dir, 'nope'), '--out', out]);
    assert.notEqual(missingInput.status, 0);
    assert.match(missingInput.stderr, /nope: input: expected a Hugging Face model folder/);
  });
});
