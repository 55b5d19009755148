import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors, readSafetensorsFolder, writeSafetensors, type F32TensorInput } from './safetensors.js';
import { buildSafetensors, expectFormatError, fixturePath, seededRandom, skipUnlessFixture, withTempDir } from './test-fixtures.js';

const APPLE = 'apple-golden-tiny-llama/model.safetensors';

function u16le(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(2 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint16(2 * i, v, true));
  return out;
}

test('the Apple golden tiny Llama parses', { skip: skipUnlessFixture(APPLE) }, () => {
  const path = fixturePath(APPLE);
  const st = readSafetensors(path);
  assert.deepEqual(st.metadata, { format: 'pt' });
  assert.equal(st.names.length, 13);
  assert.ok(st.names.includes('model.layers.0.self_attn.rotary_emb.inv_freq'), 'stray inv_freq is listed and can be ignored');
  const lm = st.tensors.get('lm_head.weight');
  assert.deepEqual(lm && { dtype: lm.dtype, shape: lm.shape, byteOffset: lm.byteOffset, byteLength: lm.byteLength }, {
    dtype: 'F32',
    shape: [7, 8],
    byteOffset: 8 + 1232,
    byteLength: 224,
  });
  const raw = readFileSync(path);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const q = st.tensors.get('model.layers.0.self_attn.q_proj.weight');
  assert.ok(q !== undefined);
  const data = st.getF32('model.layers.0.self_attn.q_proj.weight');
  assert.equal(data.length, 64);
  for (let i = 0; i < 64; i++) assert.equal(data[i], view.getFloat32(q.byteOffset + 4 * i, true));
  expectFormatError(() => st.getF32('model.layers.0.self_attn.nope'), { file: path, field: 'tensor "model.layers.0.self_attn.nope"', includes: ['13 tensors'] });
});

test('round trip: F32 tensors, metadata, sorted keys, padded header, atomic write', () => {
  withTempDir((dir) => {
    const rand = seededRandom(7);
    const tensors = new Map<string, F32TensorInput>();
    for (const [name, shape] of [['b.weight', [3, 5]], ['a.bias', [5]], ['scalar', []], ['empty', [0, 4]], ['c', [2, 2, 2]], ['10', [1]], ['9', [2]]] as const) {
      const data = new Float32Array(shape.reduce((x: number, y: number) => x * y, 1));
      for (let i = 0; i < data.length; i++) data[i] = rand() - 0.5;
      tensors.set(name, { shape, data });
    }
    tensors.get('c')?.data.set([NaN, -0, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, 1, -1]);
    const path = join(dir, 'model.safetensors');
    writeFileSync(path, 'old contents');
    writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    const raw = readFileSync(path);
    const n = Number(raw.readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    const headerText = raw.subarray(8, 8 + n).toString('utf8');
    const keyOrder = [...headerText.matchAll(/"([^"]+)":\{/g)].map((m) => m[1]);
    assert.deepEqual(keyOrder, ['__metadata__', '10', '9', 'a.bias', 'b.weight', 'c', 'empty', 'scalar']);
    assert.match(headerText, /^\{.*\} *$/, 'padded with spaces');
    const st = readSafetensors(path);
    assert.deepEqual(st.metadata, { format: 'pt', note: 'ünïcode' });
    for (const [name, t] of tensors) {
      assert.deepEqual(st.tensors.get(name)?.shape, t.shape, name);
      assert.deepEqual(st.getF32(name), t.data, name);
    }
  });
});

test('F16, BF16 and F64 widen exactly, including subnormals, infinities and NaN', () => {
  withTempDir((dir) => {
    const f16 = [0x0000, 0x8000, 0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const f16Expected = [0, -0, 1, -2, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 65504, Infinity, -Infinity, NaN, 0.333251953125];
    const bf16 = [0x3f80, 0x8000, 0x0001, 0x007f, 0x7f80, 0xff80, 0x7fc0, 0xc0a0];
    const bf16Expected = [1, -0, 2 ** -133, 127 * 2 ** -133, Infinity, -Infinity, NaN, -5];
    const f64 = new Float64Array([1 / 3, -1e300, 5e-324]);
    const data = new Uint8Array([...u16le(f16), ...u16le(bf16), ...new Uint8Array(f64.buffer), 1, 2]);
    const a = 2 * f16.length;
    const b = a + 2 * bf16.length;
    const c = b + 24;
    const header = {
      half: { dtype: 'F16', shape: [3, 4], data_offsets: [0, a] },
      brain: { dtype: 'BF16', shape: [8], data_offsets: [a, b] },
      double: { dtype: 'F64', shape: [3], data_offsets: [b, c] },
      ints: { dtype: 'I8', shape: [2], data_offsets: [c, c + 2] },
    };
    const path = join(dir, 'mixed.safetensors');
    writeFileSync(path, buildSafetensors(header, data));
    const st = readSafetensors(path);
    assert.deepEqual([...st.getF32('half')], f16Expected);
    assert.deepEqual([...st.getF32('brain')], bf16Expected);
    assert.deepEqual([...st.getF32('double')], [Math.fround(1 / 3), -Infinity, 0]);
    assert.deepEqual([...st.getBytes('ints')], [1, 2]);
    expectFormatError(() => st.getF32('ints'), { file: path, field: 'tensor "ints"', includes: ['F32, F16, BF16', 'got I8'] });
  });
});

test('malformed files are rejected with the file, the field and the values', () => {
  withTempDir((dir) => {
    const path = join(dir, 'bad.safetensors');
    const f32 = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });
    const check = (bytes: Uint8Array, field: string, includes: string[]): void => {
      writeFileSync(path, bytes);
      expectFormatError(() => readSafetensors(path), { file: path, field, includes });
    };
    const data8 = new Uint8Array(8);
    check(new Uint8Array(5), 'header length', ['8 bytes', 'got 5']);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    check(huge, 'header length', ['at most 8 bytes', `got ${1n << 40n}`]);
    const beyond = buildSafetensors({ a: f32([2], 0, 8) }, data8);
    new DataView(beyond.buffer).setBigUint64(0, 1000n, true);
    check(beyond, 'header length', ['got 1000', 'truncated']);
    check(buildSafetensors(null, data8, '{"a": {"dtype": "F32",'), 'header', ['valid JSON', 'parse error']);
    check(buildSafetensors(null, data8, '[1, 2]'), 'header', ['a JSON object', 'got [1,2]']);
    const notUtf8 = buildSafetensors(null, new Uint8Array(0), '{"ab": 1}');
    notUtf8[10] = 0xff; // the "a"
    check(notUtf8, 'header', ['UTF-8', 'invalid']);
    check(buildSafetensors({ a: { dtype: 'F17', shape: [2], data_offsets: [0, 8] } }, data8), 'tensor "a" dtype', ['one of F64, F32', 'got "F17"']);
    check(buildSafetensors({ a: f32([3], 0, 8) }, data8), 'tensor "a"', ['expected 8 bytes', 'got 12 bytes for shape [3] of F32']);
    check(buildSafetensors({ a: f32([2 ** 40, 2 ** 40], 0, 8) }, data8), 'tensor "a"', ['overflowing']);
    check(buildSafetensors({ a: f32([4], 0, 16) }, data8), 'tensor "a" data_offsets', ['within the 8 data bytes', 'got [0, 16]']);
    check(buildSafetensors({ a: f32([2], 8, 0) }, data8), 'tensor "a" data_offsets', ['begin <= end', 'got [8,0]']);
    check(buildSafetensors({ a: f32([2], -8, 0) }, data8), 'tensor "a" data_offsets', ['got [-8,0]']);
    check(buildSafetensors({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, data8), 'tensor "a" shape', ['non-negative', 'got [-2]']);
    check(buildSafetensors({ a: { dtype: 'F32', shape: [2] } }, data8), 'tensor "a" data_offsets', ['got nothing']);
    check(buildSafetensors({ a: 5 }, data8), 'tensor "a"', ['an object', 'got 5']);
    check(buildSafetensors({ a: f32([2], 0, 8), b: f32([1], 4, 8) }, data8), 'tensor "b" data_offsets', ['start at 8', 'overlaps "a"']);
    check(buildSafetensors({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, new Uint8Array(12)), 'tensor "b" data_offsets', ['start at 4', 'hole']);
    check(buildSafetensors({ a: f32([1], 0, 4) }, data8), 'data', ['4 bytes of tensor data', 'got 8 bytes', '4 trailing']);
    const deep = `{"a": {"dtype": "F32", "shape": ${'['.repeat(200000)}${']'.repeat(200000)}, "data_offsets": [0, 8]}}`;
    check(buildSafetensors(null, data8, deep), 'tensor "a" shape', ['got a deeply nested array']);
    check(buildSafetensors(null, data8, '\ufeff{}'), 'header', ['valid JSON']);
    check(buildSafetensors({ __metadata__: { format: 1 }, a: f32([2], 0, 8) }, data8), '"__metadata__"."format"', ['a string', 'got 1']);
  });
});

test('sharded folders are read through the index; single files directly', () => {
  withTempDir((dir) => {
    const t = (values: number[]) => ({ shape: [values.length], data: Float32Array.from(values) });
    writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), new Map([['a', t([1, 2])], ['unlisted', t([0])]]), { format: 'pt' });
    writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), new Map([['b', t([3])]]));
    const index = { metadata: { total_size: 12 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const st = readSafetensorsFolder(dir);
    assert.deepEqual(st.names, ['a', 'b']);
    assert.deepEqual([...st.getF32('a')], [1, 2]);
    assert.deepEqual([...st.getF32('b')], [3]);
    assert.equal(st.tensors.get('b')?.file, join(dir, 'model-00002-of-00002.safetensors'));
    assert.deepEqual(st.metadata, { format: 'pt' });
    expectFormatError(() => st.getF32('unlisted'), { file: dir, field: 'tensor "unlisted"' });

    const indexPath = join(dir, 'model.safetensors.index.json');
    writeFileSync(indexPath, JSON.stringify({ weight_map: { ...index.weight_map, c: 'model-00002-of-00002.safetensors' } }));
    expectFormatError(() => readSafetensorsFolder(dir), { file: join(dir, 'model-00002-of-00002.safetensors'), field: 'tensor "c"', includes: ['no such tensor'] });
    writeFileSync(indexPath, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    expectFormatError(() => readSafetensorsFolder(dir), { file: indexPath, field: '"weight_map"."a"', includes: ['"../elsewhere.safetensors"'] });
    writeFileSync(indexPath, JSON.stringify({ weight_map: { a: 'missing.safetensors' } }));
    expectFormatError(() => readSafetensorsFolder(dir), { file: join(dir, 'missing.safetensors'), field: 'file', includes: ['ENOENT'] });
    writeFileSync(indexPath, '{"weight_map": ');
    expectFormatError(() => readSafetensorsFolder(dir), { file: indexPath, field: 'index', includes: ['valid UTF-8 JSON'] });
    writeFileSync(indexPath, '{}');
    expectFormatError(() => readSafetensorsFolder(dir), { file: indexPath, field: '"weight_map"', includes: ['got nothing'] });

    const single = join(dir, 'single');
    mkdirSync(single);
    expectFormatError(() => readSafetensorsFolder(single), { file: single, field: 'folder', includes: ['model.safetensors or model.safetensors.index.json', 'neither'] });
    writeSafetensors(join(single, 'model.safetensors'), new Map([['x', t([5])]]));
    assert.deepEqual([...readSafetensorsFolder(single).getF32('x')], [5]);
  });
});

test('the writer rejects a shape that does not match the data', () => {
  withTempDir((dir) => {
    const path = join(dir, 'w.safetensors');
    expectFormatError(() => writeSafetensors(path, new Map([['w', { shape: [2, 3], data: new Float32Array(5) }]])), {
      file: path,
      field: 'tensor "w"',
      includes: ['data length (5)', 'got shape [2, 3]'],
    });
    assert.deepEqual(readdirSync(dir), []);
  });
});
