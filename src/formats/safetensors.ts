// safetensors (spec §1.5): 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data; offsets are relative
// to the end of the header. We check what the reference implementation (the `safetensors` crate) checks: known dtype,
// shape × dtype size = end − begin, and tensors tiling the data buffer exactly (no overlap, no hole, no trailing
// bytes), so a file we accept is one every other tool accepts. Only the header is read up front; tensor data is read
// on demand, so multi-gigabyte files cost nothing until used.

import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describeValue, FormatError } from './errors.js';
import { f32Bytes, LITTLE_ENDIAN, readInto, swapBytes32, withFile, writeFileAtomic } from './io.js';
import { halfToFloatTable } from './quant.js';

export const SAFETENSORS_DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;

export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

export interface SafetensorInfo {
  /** File that holds the data (differs between tensors of a sharded folder). */
  readonly file: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in `file` (not relative to the header). */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsFile {
  /** The file, or the folder for a sharded checkpoint. */
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, SafetensorInfo>;
  /** Tensor names in header order (as JSON.parse orders keys: integer-like names first). */
  readonly names: readonly string[];
  /** The tensor as float32, widened from F16/BF16 (and narrowed from F64); other dtypes are an error. */
  getF32(name: string): Float32Array;
  /** The raw little-endian bytes of a tensor. */
  getBytes(name: string): Uint8Array;
}

/** A header larger than this is not a real checkpoint (the largest real headers are a few MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BYTES, value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface RawEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function parseEntry(path: string, name: string, value: unknown, dataLength: number): RawEntry {
  const field = `tensor "${name}"`;
  if (!isRecord(value)) {
    throw new FormatError({ file: path, field, expected: 'an object {dtype, shape, data_offsets}', got: describeValue(value) });
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isDtype(dtype)) {
    throw new FormatError({
      file: path,
      field: `${field} dtype`,
      expected: `one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`,
      got: describeValue(dtype),
    });
  }
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError({ file: path, field: `${field} shape`, expected: 'an array of non-negative integers', got: describeValue(shape) });
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new FormatError({
      file: path,
      field: `${field} data_offsets`,
      expected: '[begin, end] with 0 <= begin <= end',
      got: describeValue(offsets),
    });
  }
  const [begin, end] = offsets;
  if (end > dataLength) {
    throw new FormatError({
      file: path,
      field: `${field} data_offsets`,
      expected: `offsets within the ${dataLength} data bytes`,
      got: `[${begin}, ${end}]`,
      detail: 'out of bounds, or file truncated',
    });
  }
  // Stop multiplying once the count passes the data length: the product cannot match anyway, and it stays exact.
  let elements = 1;
  for (const d of shape) elements = Math.min(elements * d, Number.MAX_SAFE_INTEGER);
  const bytes = elements * SAFETENSORS_DTYPE_BYTES[dtype];
  if (bytes !== end - begin) {
    throw new FormatError({
      file: path,
      field,
      expected: `${end - begin} bytes (data_offsets [${begin}, ${end}])`,
      got: `${elements >= Number.MAX_SAFE_INTEGER ? 'an overflowing number of' : bytes} bytes for shape [${shape.join(', ')}] of ${dtype}`,
      detail: 'shape and byte length disagree',
    });
  }
  return { name, dtype, shape, begin, end };
}

function parseMetadata(path: string, value: unknown): Record<string, string> {
  if (!isRecord(value)) {
    throw new FormatError({ file: path, field: '"__metadata__"', expected: 'an object of strings', got: describeValue(value) });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new FormatError({ file: path, field: `"__metadata__"."${k}"`, expected: 'a string', got: describeValue(v) });
    }
    out[k] = v;
  }
  return out;
}

/** Checks that the tensors tile [0, dataLength) exactly, as the reference implementation requires. */
function checkTiling(path: string, entries: readonly RawEntry[], dataLength: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of sorted) {
    if (e.begin !== cursor) {
      throw new FormatError({
        file: path,
        field: `tensor "${e.name}" data_offsets`,
        expected: `to start at ${cursor}${previous ? ` (where "${previous}" ends)` : ''}`,
        got: `[${e.begin}, ${e.end}]`,
        detail: e.begin < cursor ? `overlaps "${previous}"` : 'leaves a hole in the data buffer',
      });
    }
    cursor = e.end;
    previous = e.name;
  }
  if (cursor !== dataLength) {
    throw new FormatError({
      file: path,
      field: 'data',
      expected: `${cursor} bytes of tensor data after the header`,
      got: `${dataLength} bytes`,
      detail: `${dataLength - cursor} trailing bytes not covered by any tensor`,
    });
  }
}


type WidenableDtype = 'F32' | 'F16' | 'BF16' | 'F64';

function isWidenable(dtype: SafetensorsDtype): dtype is WidenableDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

function widenToF32(dtype: WidenableDtype, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      // `bytes` is freshly allocated by getBytes, so its buffer is aligned and ours.
      if (!LITTLE_ENDIAN) swapBytes32(bytes);
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    }
    case 'F16': {
      const table = halfToFloatTable();
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = table[view.getUint16(2 * i, true)];
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32: shifting keeps NaN payloads, infinities and subnormals exact.
      const out = new Float32Array(bytes.byteLength / 2);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(bytes.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
  }
}

function missingTensor(path: string, name: string, names: readonly string[]): FormatError {
  const sample = names.slice(0, 5).join(', ') + (names.length > 5 ? ', ...' : '');
  return new FormatError({ file: path, field: `tensor "${name}"`, expected: 'a tensor of that name', got: `none among ${names.length} tensors (${sample})` });
}

/** Reads a safetensors header and returns accessors that read tensor data on demand. */
export function readSafetensors(path: string): SafetensorsFile {
  const { entries, metadata, dataStart } = withFile(path, (file) => {
    if (file.size < 8) {
      throw new FormatError({ file: path, field: 'header length', expected: '8 bytes at offset 0', got: String(file.size), detail: 'file truncated' });
    }
    const lenBytes = new Uint8Array(8);
    readInto(file, lenBytes, 0);
    const lenView = new DataView(lenBytes.buffer);
    const low = lenView.getUint32(0, true);
    const high = lenView.getUint32(4, true);
    const limit = Math.min(MAX_HEADER_BYTES, file.size - 8);
    if (high !== 0 || low > limit) {
      throw new FormatError({
        file: path,
        field: 'header length',
        expected: `at most ${limit} bytes (file has ${file.size - 8} bytes after the length; cap ${MAX_HEADER_BYTES})`,
        got: lenView.getBigUint64(0, true).toString(),
        detail: low > file.size - 8 || high !== 0 ? 'file truncated or not safetensors' : 'header too large',
      });
    }
    const headerBytes = new Uint8Array(low);
    readInto(file, headerBytes, 8);
    let text: string;
    try {
      // ignoreBOM keeps a leading U+FEFF so that JSON.parse rejects it, as the reference implementation does.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
    } catch (err) {
      throw new FormatError({ file: path, field: 'header', expected: 'UTF-8 JSON', got: 'invalid UTF-8', cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new FormatError({ file: path, field: 'header', expected: 'valid JSON', got: `a parse error: ${reason}`, cause: err });
    }
    if (!isRecord(json)) {
      throw new FormatError({ file: path, field: 'header', expected: 'a JSON object', got: describeValue(json) });
    }
    const dataStart = 8 + low;
    const dataLength = file.size - dataStart;
    let metadata: Record<string, string> = {};
    const entries: RawEntry[] = [];
    for (const [name, value] of Object.entries(json)) {
      if (name === '__metadata__') metadata = parseMetadata(path, value);
      else entries.push(parseEntry(path, name, value, dataLength));
    }
    checkTiling(path, entries, dataLength);
    return { entries, metadata, dataStart };
  });

  const tensors = new Map<string, SafetensorInfo>();
  for (const e of entries) {
    tensors.set(e.name, { file: path, dtype: e.dtype, shape: e.shape, byteOffset: dataStart + e.begin, byteLength: e.end - e.begin });
  }
  const names = entries.map((e) => e.name);
  return makeAccessors(path, metadata, tensors, names);
}

function readTensorBytes(info: SafetensorInfo, name: string): Uint8Array {
  return withFile(info.file, (file) => {
    const out = new Uint8Array(info.byteLength);
    const n = readInto(file, out, info.byteOffset);
    if (n !== info.byteLength) {
      throw new FormatError({
        file: info.file,
        field: `tensor "${name}"`,
        expected: `${info.byteLength} bytes at offset ${info.byteOffset}`,
        got: String(n),
        detail: 'file truncated since it was opened',
      });
    }
    return out;
  });
}

function makeAccessors(
  path: string,
  metadata: Record<string, string>,
  tensors: Map<string, SafetensorInfo>,
  names: readonly string[],
): SafetensorsFile {
  const info = (name: string): SafetensorInfo => {
    const t = tensors.get(name);
    if (t === undefined) throw missingTensor(path, name, names);
    return t;
  };
  return {
    path,
    metadata,
    tensors,
    names,
    getBytes: (name) => readTensorBytes(info(name), name),
    getF32: (name) => {
      const t = info(name);
      const dtype = t.dtype;
      if (!isWidenable(dtype)) {
        throw new FormatError({
          file: t.file,
          field: `tensor "${name}"`,
          expected: 'dtype F32, F16, BF16 or F64 (convertible to float32)',
          got: dtype,
        });
      }
      return widenToF32(dtype, readTensorBytes(t, name));
    },
  };
}

export interface F32TensorInput {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * Writes float32 tensors as safetensors: keys sorted, data in key order, header padded with spaces to a multiple of 8
 * so the data is 8-byte aligned, written atomically (temporary file, fsync, rename).
 */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, F32TensorInput>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const names = [...tensors.keys()].sort();
  // The JSON is assembled by hand: a JS object would move integer-like keys ("0", "12") ahead of the sorted order.
  const members: string[] = [];
  if (metadata !== undefined) members.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name);
    if (t === undefined) continue;
    if (name === '__metadata__') {
      throw new FormatError({ file: path, field: 'tensor "__metadata__"', expected: 'a tensor name', got: 'the reserved metadata key' });
    }
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || elements !== t.data.length) {
      throw new FormatError({
        file: path,
        field: `tensor "${name}"`,
        expected: `shape whose element count equals the data length (${t.data.length})`,
        got: `shape [${t.shape.join(', ')}]`,
      });
    }
    const entry = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * elements] };
    members.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += 4 * elements;
  }
  let json = `{${members.join(',')}}`;
  const encoder = new TextEncoder();
  let jsonBytes = encoder.encode(json);
  const padded = Math.ceil(jsonBytes.length / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.length);
  jsonBytes = encoder.encode(json);
  const lenBytes = new Uint8Array(8);
  new DataView(lenBytes.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);

  function* chunks(): Generator<Uint8Array> {
    yield lenBytes;
    yield jsonBytes;
    for (const name of names) {
      const t = tensors.get(name);
      if (t !== undefined) yield f32Bytes(t.data);
    }
  }
  writeFileAtomic(path, chunks());
}

/** Hugging Face's shard index: which file holds each tensor. */
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

function readIndex(dir: string, indexPath: string): Map<string, string> {
  const bytes = withFile(indexPath, (file) => {
    if (file.size > MAX_HEADER_BYTES) {
      throw new FormatError({ file: indexPath, field: 'file size', expected: `at most ${MAX_HEADER_BYTES} bytes`, got: String(file.size) });
    }
    const out = new Uint8Array(file.size);
    readInto(file, out, 0);
    return out;
  });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new FormatError({ file: indexPath, field: 'index', expected: 'valid UTF-8 JSON', got: reason, cause: err });
  }
  const weightMap = isRecord(json) ? json.weight_map : undefined;
  if (!isRecord(weightMap)) {
    throw new FormatError({ file: indexPath, field: '"weight_map"', expected: 'an object {tensor name: shard file}', got: describeValue(weightMap) });
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    // Shards must be plain file names in the same folder: an index must not point elsewhere on disk.
    if (typeof shard !== 'string' || shard === '' || shard !== basename(shard) || shard === '..' || shard.includes('\\')) {
      throw new FormatError({
        file: indexPath,
        field: `"weight_map"."${name}"`,
        expected: `a file name inside ${dir}`,
        got: describeValue(shard),
      });
    }
    out.set(name, shard);
  }
  return out;
}

/**
 * Reads a Hugging Face checkpoint folder: `model.safetensors`, or `model.safetensors.index.json` plus its shards. The
 * index is authoritative: its tensors must exist in the named shards; other tensors in the shards are ignored.
 */
export function readSafetensorsFolder(dir: string): SafetensorsFile {
  const indexPath = join(dir, SAFETENSORS_INDEX);
  const singlePath = join(dir, 'model.safetensors');
  if (!existsSync(indexPath)) {
    if (existsSync(singlePath)) return readSafetensors(singlePath);
    const isDir = existsSync(dir) && statSync(dir).isDirectory();
    throw new FormatError({
      file: dir,
      field: 'folder',
      expected: `model.safetensors or ${SAFETENSORS_INDEX}`,
      got: isDir ? 'neither file' : 'no such folder',
    });
  }
  const weightMap = readIndex(dir, indexPath);
  const shards = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, SafetensorInfo>();
  const metadata: Record<string, string> = {};
  for (const [name, shardName] of weightMap) {
    let shard = shards.get(shardName);
    if (shard === undefined) {
      shard = readSafetensors(join(dir, shardName));
      shards.set(shardName, shard);
      Object.assign(metadata, shard.metadata);
    }
    const info = shard.tensors.get(name);
    if (info === undefined) {
      throw new FormatError({ file: shard.path, field: `tensor "${name}"`, expected: `present (${SAFETENSORS_INDEX} lists it in this shard)`, got: 'no such tensor' });
    }
    tensors.set(name, info);
  }
  return makeAccessors(dir, metadata, tensors, [...weightMap.keys()]);
}
