import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  llama2cFileSize,
  llama2cLayout,
  readLlama2cCheckpoint,
  writeLlama2cCheckpoint,
  type F32Tensor,
  type Llama2cConfig,
} from './llama2c.js';
import { expectFormatError, fixturePath, seededRandom, skipUnlessFixture, withTempDir } from './test-fixtures.js';

const STORIES = 'stories260K/stories260K.bin';

function randomModel(config: Llama2cConfig, seed: number): Map<string, F32Tensor> {
  const rand = seededRandom(seed);
  const tensors = new Map<string, F32Tensor>();
  for (const entry of llama2cLayout(config)) {
    if (entry.skip) continue;
    const data = new Float32Array(entry.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rand() * 2 - 1;
    tensors.set(entry.name, { shape: [...entry.shape], data });
  }
  return tensors;
}

const TINY: Llama2cConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 10, seqLen: 6, sharedClassifier: true };

/** A header-only buffer (for malformed-header tests). */
function header(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(28);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setInt32(4 * i, v, true));
  return out;
}

test('stories260K.bin parses with the documented config', { skip: skipUnlessFixture(STORIES) }, () => {
  const path = fixturePath(STORIES);
  const { config, tensors } = readLlama2cCheckpoint(path);
  assert.deepEqual(config, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true });
  assert.equal(tensors.size, 1 + 9 * 5 + 1);
  assert.equal(tensors.has('output'), false);
  assert.deepEqual(tensors.get('token_embd')?.shape, [512, 64]);
  assert.deepEqual(tensors.get('layers.4.wk')?.shape, [32, 64]);
  assert.deepEqual(tensors.get('layers.0.w2')?.shape, [64, 172]);
  assert.deepEqual(tensors.get('norm')?.shape, [64]);
  // Spot-check values against the raw bytes: first embedding float and the first float of layers.1.wq.
  const raw = readFileSync(path);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  assert.equal(tensors.get('token_embd')?.data[0], view.getFloat32(28, true));
  const wq1 = 28 + 4 * (512 * 64 + 5 * 64 + 64 * 64);
  assert.equal(tensors.get('layers.1.wq')?.data[0], view.getFloat32(wq1, true));
  for (const t of tensors.values()) assert.equal(t.data.byteOffset % 4, 0);
});

test('writing stories260K back reproduces every byte outside the RoPE tables', { skip: skipUnlessFixture(STORIES) }, () => {
  const path = fixturePath(STORIES);
  const { config, tensors } = readLlama2cCheckpoint(path);
  withTempDir((dir) => {
    const out = join(dir, 'copy.bin');
    writeLlama2cCheckpoint(out, config, tensors);
    const a = readFileSync(path);
    const b = readFileSync(out);
    assert.equal(b.length, a.length);
    const ropeBytes = 2 * 4 * config.seqLen * (config.dim / config.nHeads / 2);
    const ropeStart = a.length - ropeBytes;
    assert.ok(a.subarray(0, ropeStart).equals(b.subarray(0, ropeStart)));
    assert.ok(b.subarray(ropeStart).every((x) => x === 0));
  });
});

test('round trip: shared and separate classifier, grouped-query attention', () => {
  withTempDir((dir) => {
    for (const [i, config] of [TINY, { ...TINY, sharedClassifier: false, nKvHeads: 1 }, { ...TINY, nKvHeads: 4, nLayers: 1 }].entries()) {
      const tensors = randomModel(config, 100 + i);
      const path = join(dir, `m${i}.bin`);
      writeLlama2cCheckpoint(path, config, tensors);
      assert.equal(readFileSync(path).length, llama2cFileSize(config));
      const back = readLlama2cCheckpoint(path);
      assert.deepEqual(back.config, config);
      assert.deepEqual([...back.tensors.keys()].sort(), [...tensors.keys()].sort());
      for (const [name, t] of tensors) {
        assert.deepEqual(back.tensors.get(name)?.shape, t.shape, name);
        assert.deepEqual(back.tensors.get(name)?.data, t.data, name);
      }
      assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary file left');
    }
  });
});

test('truncated files name the first tensor that does not fit', () => {
  withTempDir((dir) => {
    const good = join(dir, 'good.bin');
    writeLlama2cCheckpoint(good, TINY, randomModel(TINY, 1));
    const bytes = readFileSync(good);
    const layout = llama2cLayout(TINY);
    const cut = join(dir, 'cut.bin');
    for (let size = 0; size < bytes.length; size += 37) {
      writeFileSync(cut, bytes.subarray(0, size));
      if (size < 28) {
        expectFormatError(() => readLlama2cCheckpoint(cut), { file: cut, field: 'header', includes: ['expected 28 bytes', `got ${size}`, 'truncated'] });
        continue;
      }
      let offset = 28;
      let victim = '';
      let victimBytes = 0;
      let victimOffset = 0;
      for (const e of layout) {
        const n = 4 * e.shape.reduce((a, b) => a * b, 1);
        if (offset + n > size) {
          victim = e.name;
          victimBytes = n;
          victimOffset = offset;
          break;
        }
        offset += n;
      }
      const err = expectFormatError(() => readLlama2cCheckpoint(cut), {
        file: cut,
        field: `tensor "${victim}"`,
        includes: [`expected ${victimBytes} bytes at offset ${victimOffset}`, `got ${size - victimOffset}`, 'file truncated'],
      });
      assert.equal(err.got, String(size - victimOffset));
    }
  });
});

test('the error message reads like the documented example', () => {
  withTempDir((dir) => {
    const path = join(dir, 'stories260K.bin');
    writeLlama2cCheckpoint(path, TINY, randomModel(TINY, 2));
    const bytes = readFileSync(path);
    // Cut inside layers.1.wq: token_embd (80 floats) + attn_norm 2×8 + wq layer 0 (64) + 10 floats of layer 1.
    const offset = 28 + 4 * (80 + 16 + 64);
    writeFileSync(path, bytes.subarray(0, offset + 40));
    const err = expectFormatError(() => readLlama2cCheckpoint(path), { file: path });
    assert.equal(
      err.message,
      `stories260K.bin: tensor "layers.1.wq": expected 256 bytes at offset ${offset}, got 40 (file truncated: ${offset + 40} bytes, header implies ${bytes.length})`,
    );
  });
});

test('files longer than the header implies are rejected with sizes', () => {
  withTempDir((dir) => {
    const path = join(dir, 'long.bin');
    writeLlama2cCheckpoint(path, TINY, randomModel(TINY, 3));
    const bytes = readFileSync(path);
    writeFileSync(path, Buffer.concat([bytes, Buffer.alloc(12)]));
    expectFormatError(() => readLlama2cCheckpoint(path), {
      file: path,
      field: 'file size',
      includes: [`expected ${bytes.length} bytes`, `got ${bytes.length + 12} bytes (12 extra)`],
    });
    // A separate classifier written with a positive vocab_size: the hint says so.
    writeFileSync(path, Buffer.concat([bytes, Buffer.alloc(4 * TINY.vocabSize * TINY.dim)]));
    expectFormatError(() => readLlama2cCheckpoint(path), { file: path, field: 'file size', includes: ['vocab_size should be negative'] });
  });
});

test('implausible headers are rejected naming the field', () => {
  withTempDir((dir) => {
    const path = join(dir, 'bad.bin');
    const cases: ReadonlyArray<readonly [number[], string, string[]]> = [
      [[0, 12, 2, 4, 2, 10, 6], 'header.dim', ['an integer in 1..65536', 'got 0']],
      [[8, 12, 2, 4, 2, 10, -6], 'header.seq_len', ['got -6']],
      [[8, 12, 2, 4, 2, 1 << 30, 6], 'header.vocab_size', [`got ${1 << 30}`]],
      [[8, 12, 2, 4, 2, -(2 ** 31), 6], 'header.vocab_size', [`got ${2 ** 31}`]],
      [[8, 12, 2, 3, 3, 10, 6], 'header.dim', ['a multiple of n_heads (3)', 'got 8']],
      [[8, 12, 2, 8, 8, 10, 6], 'header.dim', ['an even head size', 'got head size 1']],
      [[8, 12, 2, 4, 3, 10, 6], 'header.n_kv_heads', ['a divisor of n_heads (4)', 'got 3']],
      [[8, 12, 2, 4, 8, 10, 6], 'header.n_kv_heads', ['got 8']],
      [[0x616b3432, 1, 0, 0, 0, 0, 0], 'header', ['ak42']],
    ];
    for (const [values, field, includes] of cases) {
      writeFileSync(path, header(values));
      expectFormatError(() => readLlama2cCheckpoint(path), { file: path, field, includes });
    }
  });
});

test('a missing file is a FormatError naming it', () => {
  const path = join('/nonexistent-redrafter', 'model.bin');
  expectFormatError(() => readLlama2cCheckpoint(path), { file: path, field: 'file', includes: ['ENOENT'] });
});

test('the writer checks names and shapes', () => {
  withTempDir((dir) => {
    const path = join(dir, 'w.bin');
    const tensors = randomModel(TINY, 4);
    tensors.set('layers.0.wq', { shape: [8, 4], data: new Float32Array(32) });
    expectFormatError(() => writeLlama2cCheckpoint(path, TINY, tensors), { file: path, field: 'tensor "layers.0.wq"', includes: ['shape [8, 8]', 'got shape [8, 4]'] });
    const extra = randomModel(TINY, 4);
    extra.set('output', { shape: [10, 8], data: new Float32Array(80) });
    expectFormatError(() => writeLlama2cCheckpoint(path, TINY, extra), { file: path, field: 'tensor "output"', includes: ['classifier is shared'] });
    const missing = randomModel(TINY, 4);
    missing.delete('norm');
    expectFormatError(() => writeLlama2cCheckpoint(path, TINY, missing), { file: path, field: 'tensor "norm"', includes: ['missing'] });
    assert.deepEqual(readdirSync(dir), []);
  });
});
