import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type GgufEntry, ggufMetadataReader, readGguf } from './gguf.js';
import { readGgufLlamaConfig, readGgufVocab } from './gguf-model.js';
import { gguf, type GgufTensorInput, writeGguf } from './gguf-write.js';
import { dequantize, GGML_TYPES, quantize, type GgmlTypeName } from './quant.js';
import { expectFormatError, seededRandom, withTempDir } from './test-fixtures.js';

function tensor(name: string, shape: number[], type: GgmlTypeName, values: Float32Array): GgufTensorInput {
  return { name, shape, type, bytes: () => quantize(type, values) };
}

function smallModelMetadata(arch = 'llama'): Map<string, GgufEntry> {
  return new Map<string, GgufEntry>([
    ['general.architecture', gguf.string(arch)],
    [`${arch}.context_length`, gguf.uint32(128)],
    [`${arch}.embedding_length`, gguf.uint32(64)],
    [`${arch}.block_count`, gguf.uint32(2)],
    [`${arch}.feed_forward_length`, gguf.uint32(96)],
    [`${arch}.attention.head_count`, gguf.uint32(4)],
    [`${arch}.attention.head_count_kv`, gguf.uint32(2)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.float32(1e-6)],
    [`${arch}.rope.freq_base`, gguf.float32(500000)],
    ['tokenizer.ggml.model', gguf.string('gpt2')],
    ['tokenizer.ggml.pre', gguf.string('llama-bpe')],
    ['tokenizer.ggml.tokens', gguf.array('string', ['a', 'b', 'ab', '<|x|>'])],
    ['tokenizer.ggml.token_type', gguf.array('int32', [1, 1, 1, 3])],
    ['tokenizer.ggml.merges', gguf.array('string', ['a b'])],
    ['tokenizer.ggml.bos_token_id', gguf.uint32(3)],
    ['tokenizer.ggml.eos_token_id', gguf.uint32(3)],
    ['tokenizer.chat_template', gguf.string('{{ messages[0].content }}')],
  ]);
}

test('metadata of every value type, nested arrays and 64-bit integers round-trip', () => {
  withTempDir((dir) => {
    const path = join(dir, 'm.gguf');
    const meta = new Map<string, GgufEntry>([
      ['u8', { type: 'uint8', value: 255 }], ['i8', { type: 'int8', value: -128 }], ['u16', { type: 'uint16', value: 65535 }],
      ['i16', { type: 'int16', value: -32768 }], ['u32', gguf.uint32(4294967295)], ['i32', gguf.int32(-5)],
      ['f32', gguf.float32(0.25)], ['f64', { type: 'float64', value: Math.PI }], ['b', gguf.bool(true)],
      ['s', gguf.string('héllo ▁ 🙂')], ['u64', gguf.uint64(2n ** 63n + 5n)], ['i64', { type: 'int64', value: -(2n ** 62n) }],
      ['arr', gguf.array('array', [{ itemType: 'int32', items: [1, 2] }, { itemType: 'string', items: ['x'] }])],
      ['empty', gguf.array('float32', [])],
    ]);
    writeGguf(path, meta, []);
    const file = readGguf(path);
    assert.equal(file.version, 3);
    assert.deepEqual([...file.metadata.keys()], [...meta.keys()]);
    for (const [key, entry] of meta) assert.deepEqual(file.metadata.get(key), entry, key);
    assert.equal(file.tensors.size, 0);
    const m = ggufMetadataReader(file);
    assert.equal(m.uint('u32'), 4294967295);
    assert.throws(() => m.uint('u64'), /expected an integer/);
    assert.throws(() => m.string('u8'), (e: Error) => e.message.includes('metadata "u8"') && e.message.includes('expected a string'));
  });
});

test('tensors of every type round-trip with their shapes, offsets padded to the alignment', () => {
  withTempDir((dir) => {
    const rand = seededRandom(3);
    const values = (n: number): Float32Array => Float32Array.from({ length: n }, () => rand() * 2 - 1);
    const types: GgmlTypeName[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];
    const inputs = types.map((type, i) => ({ input: tensor(`t${i}`, [3, 256], type, values(768)), type }));
    inputs.push({ input: tensor('vector', [5], 'F32', values(5)), type: 'F32' });
    for (const alignment of [32, 64]) {
      const path = join(dir, `t${alignment}.gguf`);
      writeGguf(path, new Map([['general.architecture', gguf.string('llama')]]), inputs.map((x) => x.input), { alignment });
      const file = readGguf(path);
      assert.equal(file.alignment, alignment);
      assert.equal(file.dataOffset % alignment, 0);
      for (const { input, type } of inputs) {
        const info = file.tensors.get(input.name);
        assert.ok(info, input.name);
        assert.equal(info.type, type);
        assert.deepEqual(info.shape, input.shape);
        assert.deepEqual(info.dims, [...input.shape].reverse());
        assert.equal((info.byteOffset - file.dataOffset) % alignment, 0);
        assert.deepEqual(file.getBytes(input.name), input.bytes());
        const count = input.shape.reduce((a, b) => a * b, 1);
        assert.deepEqual(file.getF32(input.name), dequantize(type, input.bytes(), count));
      }
    }
  });
});

test('model config and vocabulary from llama.* / qwen2.* and tokenizer.ggml.* keys', () => {
  withTempDir((dir) => {
    const path = join(dir, 'model.gguf');
    writeGguf(path, smallModelMetadata('qwen2'), []);
    const file = readGguf(path);
    const c = readGgufLlamaConfig(file);
    assert.equal(c.architecture, 'qwen2');
    assert.equal(c.headDim, 16);
    assert.equal(c.headCountKv, 2);
    assert.equal(c.ropeFreqBase, 500000);
    assert.equal(c.ropeDimensionCount, 16);
    assert.equal(Math.fround(c.rmsEps), Math.fround(1e-6));
    assert.equal(c.ropeScaling, null);
    const v = readGgufVocab(file);
    assert.ok(v);
    assert.equal(v.model, 'gpt2');
    assert.deepEqual(v.merges, ['a b']);
    assert.equal(v.bosId, 3);
    assert.equal(v.chatTemplate, '{{ messages[0].content }}');

    const bad = smallModelMetadata('gemma');
    writeGguf(path, bad, []);
    expectFormatError(() => readGgufLlamaConfig(readGguf(path)), { file: path, field: 'general.architecture', includes: ['"gemma"'] });
    const partial = smallModelMetadata();
    partial.set('llama.rope.dimension_count', gguf.uint32(8));
    writeGguf(path, partial, []);
    expectFormatError(() => readGgufLlamaConfig(readGguf(path)), { file: path, field: 'rope.dimension_count', includes: ['partial rotary'] });
    const short = smallModelMetadata();
    short.set('tokenizer.ggml.token_type', gguf.array('int32', [1]));
    writeGguf(path, short, []);
    expectFormatError(() => readGgufVocab(readGguf(path)), { file: path, field: 'token_type', includes: ['4 items'] });
  });
});

/** A valid file's bytes, and the offsets of interesting header fields. */
function validFile(dir: string): Uint8Array {
  const path = join(dir, 'valid.gguf');
  writeGguf(path, new Map([['general.architecture', gguf.string('llama')], ['list', gguf.array('uint32', [1, 2, 3])]]),
    [tensor('a', [2, 32], 'Q8_0', new Float32Array(64).fill(0.5)), tensor('b', [4], 'F32', new Float32Array(4))]);
  return readFileSync(path);
}

test('malformed files: magic, version, truncation, huge counts and strings, unknown types, bad offsets, alignment', () => {
  withTempDir((dir) => {
    const valid = validFile(dir);
    const path = join(dir, 'bad.gguf');
    const variant = (edit: (bytes: Uint8Array, view: DataView) => void): string => {
      const bytes = Uint8Array.from(valid);
      edit(bytes, new DataView(bytes.buffer));
      writeFileSync(path, bytes);
      return path;
    };
    expectFormatError(() => readGguf(variant((b) => b.set([0x47, 0x47, 0x4d, 0x4c], 0))), { file: path, field: 'magic', includes: ['not a GGUF file'] });
    expectFormatError(() => readGguf(variant((_, v) => v.setUint32(4, 1, true))), { file: path, field: 'version', includes: ['v1'] });
    expectFormatError(() => readGguf(variant((_, v) => v.setUint32(4, 0x03000000, true))), { file: path, field: 'version', includes: ['big-endian'] });
    expectFormatError(() => readGguf(variant((_, v) => v.setBigUint64(8, 2n ** 40n, true))), { file: path, field: 'tensor count', includes: ['1099511627776'] });
    expectFormatError(() => readGguf(variant((_, v) => v.setBigUint64(16, 2n ** 63n, true))), { file: path, field: 'metadata count', includes: ['below 2^53'] });
    // The first key's length (offset 24) declares far more bytes than the file has: refused before allocating.
    expectFormatError(() => readGguf(variant((_, v) => v.setBigUint64(24, 2n ** 50n, true))), { file: path, field: 'metadata 0 key length', includes: ['bytes left'] });
    // Value type of the first entry (after the 20-byte key "general.architecture"): 13 types exist.
    expectFormatError(() => readGguf(variant((_, v) => v.setUint32(24 + 8 + 20, 99, true))), { file: path, field: 'type', includes: ['99'] });
    writeFileSync(path, valid.subarray(0, 100));
    expectFormatError(() => readGguf(path), { file: path, includes: ['file truncated'] });
    writeFileSync(path, valid.subarray(0, valid.length - 40));
    expectFormatError(() => readGguf(path), { file: path, field: 'tensor "b"', includes: ['file truncated'] });

    // Tensor-info edits: build files whose infos are wrong.
    const writeRaw = (edit: (infoAt: number, view: DataView) => void): string => {
      const bytes = Uint8Array.from(valid);
      const view = new DataView(bytes.buffer);
      // Find tensor "a": its name string is [len=1]['a'] after the metadata.
      const text = new TextDecoder('latin1').decode(bytes);
      const infoAt = text.indexOf('\u0001\u0000\u0000\u0000\u0000\u0000\u0000\u0000a') ;
      edit(infoAt + 9, view);
      writeFileSync(path, bytes);
      return path;
    };
    // layout after the name: n_dims u32, ne0 u64, ne1 u64, type u32, offset u64
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setUint32(at, 7, true))), { file: path, field: 'n_dims', includes: ['1..4'] });
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setUint32(at + 20, 13, true))), { file: path, field: 'tensor "a" ne[0]', includes: ['Q5_K'] });
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setUint32(at + 20, 77, true))), { file: path, field: 'tensor "a" type', includes: ['type 77'] });
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setBigUint64(at + 24, 32n, true))), { file: path, field: 'tensor "a" offset', includes: ['expected 0'] });
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setBigUint64(at + 12, 2n ** 40n, true))), { file: path, field: 'tensor "a"', includes: ['file truncated, or a corrupt shape'] });
    expectFormatError(() => readGguf(writeRaw((at, v) => v.setBigUint64(at + 4, 33n, true))), { file: path, field: 'ne[0]', includes: ['multiple of 32'] });

    const meta = new Map([['general.alignment', gguf.uint32(24)]]);
    const aligned = join(dir, 'align.gguf');
    writeGguf(aligned, meta, []);
    expectFormatError(() => readGguf(aligned), { file: aligned, field: 'general.alignment', includes: ['power of two'] });
    writeGguf(aligned, new Map([['k', gguf.string('v')]]), [tensor('q', [1, 256], 'Q4_K', new Float32Array(256))]);
    const file = readGguf(aligned);
    expectFormatError(() => file.getF32('nope'), { file: aligned, field: 'tensor "nope"', includes: ['none among 1 tensors (q)'] });
  });
});

test('the writer refuses rows that are not whole blocks and duplicate names', () => {
  withTempDir((dir) => {
    const path = join(dir, 'w.gguf');
    expectFormatError(() => writeGguf(path, new Map(), [tensor('x', [2, 33], 'F32', new Float32Array(66)), { ...tensor('y', [1, 33], 'F32', new Float32Array(33)), type: 'Q8_0' }]),
      { file: path, field: 'tensor "y"', includes: ['multiple of 32'] });
    expectFormatError(() => writeGguf(path, new Map(), [tensor('x', [4], 'F32', new Float32Array(4)), tensor('x', [4], 'F32', new Float32Array(4))]),
      { file: path, field: 'tensor "x"', includes: ['duplicate'] });
    assert.equal(GGML_TYPES.Q6_K.blockBytes, 210);
  });
});
