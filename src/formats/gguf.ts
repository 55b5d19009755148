// GGUF (ggml's `docs/gguf.md`, versions 2 and 3, little-endian): magic "GGUF", uint32 version, uint64 tensor count,
// uint64 metadata count; metadata as (string key, uint32 value type, value); tensor infos as (string name, uint32
// n_dims, uint64 ne[n_dims], uint32 ggml type, uint64 offset); then, at the next multiple of `general.alignment`
// (default 32), the tensor data. Strings are a uint64 byte length and UTF-8 bytes (no terminator).
//
// Dimensions are listed fastest-first: a [rows, columns] matrix is stored with ne = [columns, rows]. `shape` below is
// the row-major (PyTorch/safetensors) order, ne reversed.
//
// Only the header is read up front, through a bounded window onto the file; every declared length and count is
// checked against the bytes the file really has before anything is allocated for it. Like llama.cpp's gguf.cpp we
// require the tensors to be packed in order, each starting at the previous one's end rounded up to the alignment, so
// a file we accept is one llama.cpp accepts.

import { describeValue, FormatError } from './errors.js';
import { type OpenFile, readInto, withFile } from './io.js';
import { dequantize, describeGgmlType, ggmlTypeById, type GgmlTypeInfo, type GgmlTypeName } from './quant.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_DEFAULT_ALIGNMENT = 32;

export const GGUF_VALUE_TYPES = ['uint8', 'int8', 'uint16', 'int16', 'uint32', 'int32', 'float32', 'bool', 'string',
  'array', 'uint64', 'int64', 'float64'] as const;

export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

/** 64-bit integers are bigints (exact); every other number is a JS number. */
export type GgufValue = number | bigint | boolean | string | GgufArray;

export interface GgufArray {
  readonly itemType: GgufValueType;
  readonly items: readonly GgufValue[];
}

export interface GgufEntry {
  readonly type: GgufValueType;
  readonly value: GgufValue;
}

export interface GgufTensorInfo {
  readonly name: string;
  /** The ggml type id as stored. */
  readonly typeId: number;
  /** The type when this reader can decode it, else undefined (e.g. Q5_K): the header still parses. */
  readonly type: GgmlTypeName | undefined;
  /** ne as stored, fastest-varying first. */
  readonly dims: readonly number[];
  /** Row-major shape (dims reversed), as safetensors and the model layer write shapes. */
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
}

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Metadata in file order. */
  readonly metadata: ReadonlyMap<string, GgufEntry>;
  /** Tensor infos in file order. */
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly dataOffset: number;
  /** The raw bytes of a tensor (whole blocks for quantized types): what a quantized kernel would take. */
  getBytes(name: string): Uint8Array;
  /** The tensor widened/dequantized to float32, exactly as ggml's dequantize_row_* computes it. */
  getF32(name: string): Float32Array;
}

/** Bytes per element of fixed-size value types; used to bound array counts before allocating. */
const VALUE_BYTES: Readonly<Partial<Record<GgufValueType, number>>> = {
  uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4, bool: 1, uint64: 8, int64: 8, float64: 8,
};

// Sizes of ggml types we cannot decode, so their tensors can still be bounds-checked and skipped.
const OTHER_TYPE_SIZES: Readonly<Record<number, readonly [number, number]>> = {
  3: [32, 20], 6: [32, 22], 7: [32, 24], 9: [32, 36], 10: [256, 84], 11: [256, 110], 13: [256, 176], 15: [256, 292],
  24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8],
};

const WINDOW = 1 << 20;
const MAX_DIMS = 4; // GGML_MAX_DIMS

/** A forward-only reader over the file with a bounded buffer; every read is checked against the file size. */
function createCursor(file: OpenFile) {
  let buffer = new Uint8Array(0);
  let bufferStart = 0;
  let position = 0;
  let view = new DataView(buffer.buffer);

  const truncated = (field: string, bytes: number): FormatError =>
    new FormatError({
      file: file.path,
      field,
      expected: `${bytes} bytes at offset ${position}`,
      got: `${Math.max(0, file.size - position)} bytes left`,
      detail: 'file truncated',
    });

  /** Makes `n` bytes at the position available in `buffer`; returns their index in it. */
  const ensure = (n: number, field: string): number => {
    if (n > file.size - position) throw truncated(field, n);
    if (position < bufferStart || position + n > bufferStart + buffer.length) {
      const size = Math.min(Math.max(n, WINDOW), file.size - position);
      buffer = new Uint8Array(size);
      readInto(file, buffer, position);
      bufferStart = position;
      view = new DataView(buffer.buffer);
    }
    return position - bufferStart;
  };

  const take = <T>(n: number, field: string, read: (at: number) => T): T => {
    const at = ensure(n, field);
    position += n;
    return read(at);
  };

  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  return {
    get position() {
      return position;
    },
    seek(to: number) {
      position = to;
    },
    remaining: () => file.size - position,
    u32: (field: string) => take(4, field, (at) => view.getUint32(at, true)),
    /** uint64 as a number; values beyond 2^53 are reported, never rounded. */
    u64: (field: string): number => {
      const start = position;
      const big = take(8, field, (at) => view.getBigUint64(at, true));
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FormatError({ file: file.path, field, expected: 'a count or size below 2^53', got: big.toString(), detail: `at offset ${start}` });
      }
      return Number(big);
    },
    string(field: string): string {
      const start = position;
      const length = this.u64(`${field} length`);
      if (length > file.size - position) {
        throw new FormatError({
          file: file.path,
          field: `${field} length`,
          expected: `at most ${file.size - position} (the bytes left in the file)`,
          got: String(length),
          detail: `at offset ${start}: file truncated, or a corrupt length`,
        });
      }
      return take(length, field, (at) => {
        try {
          return utf8.decode(buffer.subarray(at, at + length));
        } catch (err) {
          throw new FormatError({ file: file.path, field, expected: 'UTF-8 text', got: 'invalid UTF-8', detail: `at offset ${start + 8}`, cause: err });
        }
      });
    },
    scalar(type: GgufValueType, field: string): GgufValue {
      switch (type) {
        case 'uint8': return take(1, field, (at) => view.getUint8(at));
        case 'int8': return take(1, field, (at) => view.getInt8(at));
        case 'uint16': return take(2, field, (at) => view.getUint16(at, true));
        case 'int16': return take(2, field, (at) => view.getInt16(at, true));
        case 'uint32': return take(4, field, (at) => view.getUint32(at, true));
        case 'int32': return take(4, field, (at) => view.getInt32(at, true));
        case 'float32': return take(4, field, (at) => view.getFloat32(at, true));
        case 'float64': return take(8, field, (at) => view.getFloat64(at, true));
        case 'uint64': return take(8, field, (at) => view.getBigUint64(at, true));
        case 'int64': return take(8, field, (at) => view.getBigInt64(at, true));
        case 'bool': {
          const start = position;
          const b = take(1, field, (at) => view.getUint8(at));
          if (b > 1) throw new FormatError({ file: file.path, field, expected: 'a bool (0 or 1)', got: String(b), detail: `at offset ${start}` });
          return b === 1;
        }
        case 'string': return this.string(field);
        case 'array': return this.array(field, 0);
      }
    },
    valueType(field: string): GgufValueType {
      const start = position;
      const id = this.u32(field);
      const type = GGUF_VALUE_TYPES[id];
      if (type === undefined) {
        throw new FormatError({
          file: file.path,
          field,
          expected: `a value type 0..${GGUF_VALUE_TYPES.length - 1} (${GGUF_VALUE_TYPES.join(', ')})`,
          got: String(id),
          detail: `at offset ${start}`,
        });
      }
      return type;
    },
    array(field: string, depth: number): GgufArray {
      if (depth > 8) throw new FormatError({ file: file.path, field, expected: 'arrays nested at most 8 deep', got: 'deeper nesting' });
      const itemType = this.valueType(`${field} item type`);
      const start = position;
      const count = this.u64(`${field} count`);
      // Every item takes at least this many bytes; a count the file cannot hold is refused before allocating.
      const least = VALUE_BYTES[itemType] ?? (itemType === 'string' ? 8 : 12);
      if (count > (file.size - position) / least) {
        throw new FormatError({
          file: file.path,
          field: `${field} count`,
          expected: `at most ${Math.floor((file.size - position) / least)} ${itemType} items (the bytes left in the file)`,
          got: String(count),
          detail: `at offset ${start}: file truncated, or a corrupt count`,
        });
      }
      const items: GgufValue[] = new Array<GgufValue>(count);
      for (let i = 0; i < count; i++) {
        items[i] = itemType === 'array' ? this.array(`${field}[${i}]`, depth + 1) : this.scalar(itemType, `${field}[${i}]`);
      }
      return { itemType, items };
    },
  };
}

function typeSize(typeId: number): readonly [number, number] | undefined {
  const known: GgmlTypeInfo | undefined = ggmlTypeById(typeId);
  return known !== undefined ? [known.blockSize, known.blockBytes] : OTHER_TYPE_SIZES[typeId];
}

/** Reads a GGUF header (metadata and tensor infos) and returns accessors that read tensor data on demand. */
export function readGguf(path: string): GgufFile {
  const header = withFile(path, (file) => {
    const cursor = createCursor(file);
    const magic = cursor.u32('magic');
    if (magic !== GGUF_MAGIC) {
      throw new FormatError({ file: path, field: 'magic', expected: '"GGUF"', got: `0x${magic.toString(16).padStart(8, '0')}`, detail: 'not a GGUF file' });
    }
    const version = cursor.u32('version');
    if (version !== 2 && version !== 3) {
      throw new FormatError({
        file: path,
        field: 'version',
        expected: '2 or 3',
        got: String(version),
        detail: version === 1 ? 'GGUF v1 (32-bit counts) is not supported' : version === 0x03000000 || version === 0x02000000 ? 'a big-endian GGUF file' : undefined,
      });
    }
    const tensorCount = cursor.u64('tensor count');
    const kvCount = cursor.u64('metadata count');
    // The smallest metadata entry is 13 bytes (empty key, type, one byte); the smallest tensor info 24.
    if (kvCount > cursor.remaining() / 13) {
      throw new FormatError({ file: path, field: 'metadata count', expected: `at most ${Math.floor(cursor.remaining() / 13)} (what the file can hold)`, got: String(kvCount) });
    }
    if (tensorCount > cursor.remaining() / 24) {
      throw new FormatError({ file: path, field: 'tensor count', expected: `at most ${Math.floor(cursor.remaining() / 24)} (what the file can hold)`, got: String(tensorCount) });
    }

    const metadata = new Map<string, GgufEntry>();
    for (let i = 0; i < kvCount; i++) {
      const key = cursor.string(`metadata ${i} key`);
      if (metadata.has(key)) throw new FormatError({ file: path, field: `metadata "${key}"`, expected: 'each key once', got: 'a duplicate key' });
      const type = cursor.valueType(`metadata "${key}" type`);
      const value = type === 'array' ? cursor.array(`metadata "${key}"`, 0) : cursor.scalar(type, `metadata "${key}"`);
      metadata.set(key, { type, value });
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const alignEntry = metadata.get('general.alignment');
    if (alignEntry !== undefined) {
      const v = alignEntry.value;
      if (alignEntry.type !== 'uint32' || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
        throw new FormatError({ file: path, field: 'metadata "general.alignment"', expected: 'a uint32 power of two', got: `${alignEntry.type} ${describeValue(typeof v === 'bigint' ? v.toString() : v)}` });
      }
      alignment = v;
    }

    interface RawInfo { name: string; typeId: number; dims: number[]; offset: number; byteLength: number }
    const raw: RawInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = cursor.string(`tensor ${i} name`);
      const field = `tensor "${name}"`;
      if (names.has(name)) throw new FormatError({ file: path, field, expected: 'a unique tensor name', got: 'a duplicate' });
      names.add(name);
      const nDims = cursor.u32(`${field} n_dims`);
      if (nDims < 1 || nDims > MAX_DIMS) {
        throw new FormatError({ file: path, field: `${field} n_dims`, expected: `1..${MAX_DIMS}`, got: String(nDims) });
      }
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(cursor.u64(`${field} ne[${d}]`));
      const typeId = cursor.u32(`${field} type`);
      const offset = cursor.u64(`${field} offset`);
      const size = typeSize(typeId);
      if (size === undefined) {
        throw new FormatError({ file: path, field: `${field} type`, expected: 'a ggml tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, ...)', got: describeGgmlType(typeId) });
      }
      // Stop multiplying once past the file size: the tensor cannot fit anyway, and the product stays exact.
      let elements = 1;
      for (const d of dims) elements = Math.min(elements * d, Number.MAX_SAFE_INTEGER);
      if (dims[0] % size[0] !== 0) {
        throw new FormatError({ file: path, field: `${field} ne[0]`, expected: `a multiple of ${size[0]} (the ${describeGgmlType(typeId)} block size)`, got: String(dims[0]) });
      }
      const byteLength = elements >= Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : (elements / size[0]) * size[1];
      raw.push({ name, typeId, dims, offset, byteLength });
    }

    const dataOffset = Math.ceil(cursor.position / alignment) * alignment;
    const dataLength = file.size - dataOffset;
    let expectedOffset = 0;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const r of raw) {
      const field = `tensor "${r.name}"`;
      if (r.offset !== expectedOffset) {
        throw new FormatError({
          file: path,
          field: `${field} offset`,
          expected: `${expectedOffset} (tensors packed in order, each padded to ${alignment} bytes)`,
          got: String(r.offset),
        });
      }
      if (r.byteLength > dataLength - r.offset) {
        throw new FormatError({
          file: path,
          field,
          expected: `${r.byteLength >= Number.MAX_SAFE_INTEGER ? 'an absurd number of' : r.byteLength} bytes at data offset ${r.offset}`,
          got: `${Math.max(0, dataLength - r.offset)} bytes left (ne [${r.dims.join(', ')}], ${describeGgmlType(r.typeId)})`,
          detail: 'file truncated, or a corrupt shape',
        });
      }
      expectedOffset = r.offset + Math.ceil(r.byteLength / alignment) * alignment;
      tensors.set(r.name, {
        name: r.name,
        typeId: r.typeId,
        type: ggmlTypeById(r.typeId)?.name,
        dims: r.dims,
        shape: [...r.dims].reverse(),
        byteOffset: dataOffset + r.offset,
        byteLength: r.byteLength,
      });
    }
    return { version, alignment, metadata, tensors, dataOffset };
  });

  const info = (name: string): GgufTensorInfo => {
    const t = header.tensors.get(name);
    if (t === undefined) {
      const all = [...header.tensors.keys()];
      const sample = all.slice(0, 5).join(', ') + (all.length > 5 ? ', ...' : '');
      throw new FormatError({ file: path, field: `tensor "${name}"`, expected: 'a tensor of that name', got: `none among ${all.length} tensors (${sample})` });
    }
    return t;
  };
  const getBytes = (name: string): Uint8Array => {
    const t = info(name);
    return withFile(path, (file) => {
      const out = new Uint8Array(t.byteLength);
      const n = readInto(file, out, t.byteOffset);
      if (n !== t.byteLength) {
        throw new FormatError({ file: path, field: `tensor "${name}"`, expected: `${t.byteLength} bytes at offset ${t.byteOffset}`, got: String(n), detail: 'file truncated since it was opened' });
      }
      return out;
    });
  };
  return {
    path,
    ...header,
    getBytes,
    getF32(name: string): Float32Array {
      const t = info(name);
      if (t.type === undefined) {
        throw new FormatError({ file: path, field: `tensor "${name}" type`, expected: 'F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K (decodable to float32)', got: describeGgmlType(t.typeId) });
      }
      const count = t.dims.reduce((a, b) => a * b, 1);
      return dequantize(t.type, getBytes(name), count);
    },
  };
}

/** Typed access to GGUF metadata, with FormatErrors that name the key, the expected type and the value found. */
export function ggufMetadataReader(file: { readonly path: string; readonly metadata: ReadonlyMap<string, GgufEntry> }) {
  const describe = (key: string): string => {
    const e = file.metadata.get(key);
    if (e === undefined) return 'nothing (key missing)';
    if (e.type === 'array' && typeof e.value === 'object') return `an array of ${e.value.items.length} ${e.value.itemType}`;
    return `${e.type} ${describeValue(typeof e.value === 'bigint' ? e.value.toString() : e.value)}`;
  };
  const fail = (key: string, expected: string): never => {
    throw new FormatError({ file: file.path, field: `metadata "${key}"`, expected, got: describe(key) });
  };
  const has = (key: string): boolean => file.metadata.has(key);
  const integer = (key: string): number | undefined => {
    const e = file.metadata.get(key);
    if (e === undefined) return undefined;
    const v = e.value;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    return fail(key, 'an integer');
  };
  return {
    has,
    fail,
    describe,
    /** A non-negative integer of any integer type; `fallback` when absent (else an error). */
    uint(key: string, fallback?: number): number {
      const v = integer(key);
      if (v === undefined) return fallback ?? fail(key, 'a non-negative integer');
      return v >= 0 ? v : fail(key, 'a non-negative integer');
    },
    optionalUint(key: string): number | undefined {
      const v = integer(key);
      return v === undefined || v >= 0 ? v : fail(key, 'a non-negative integer');
    },
    float(key: string, fallback?: number): number {
      const e = file.metadata.get(key);
      if (e === undefined) return fallback ?? fail(key, 'a number');
      return typeof e.value === 'number' && Number.isFinite(e.value) ? e.value : fail(key, 'a finite number');
    },
    string(key: string, fallback?: string): string {
      const e = file.metadata.get(key);
      if (e === undefined) return fallback ?? fail(key, 'a string');
      return typeof e.value === 'string' ? e.value : fail(key, 'a string');
    },
    optionalString(key: string): string | undefined {
      return has(key) ? this.string(key) : undefined;
    },
    bool(key: string, fallback: boolean): boolean {
      const e = file.metadata.get(key);
      if (e === undefined) return fallback;
      return typeof e.value === 'boolean' ? e.value : fail(key, 'a bool');
    },
    /** An array whose items all satisfy `check`. */
    array<T extends GgufValue>(key: string, itemDescription: string, check: (v: GgufValue) => v is T): readonly T[] {
      const e = file.metadata.get(key);
      const v = e?.value;
      if (e === undefined || typeof v !== 'object' || !('items' in v)) return fail(key, `an array of ${itemDescription}`);
      const items = v.items;
      for (let i = 0; i < items.length; i++) {
        if (!check(items[i])) {
          throw new FormatError({ file: file.path, field: `metadata "${key}"[${i}]`, expected: itemDescription, got: describeValue(typeof items[i] === 'bigint' ? String(items[i]) : items[i]) });
        }
      }
      return items as readonly T[];
    },
  };
}

export type GgufMetadataReader = ReturnType<typeof ggufMetadataReader>;

/** True when the file starts with the GGUF magic (cheap: reads 4 bytes). */
export function isGgufFile(path: string): boolean {
  try {
    return withFile(path, (file) => {
      if (file.size < 4) return false;
      const b = new Uint8Array(4);
      readInto(file, b, 0);
      return new DataView(b.buffer).getUint32(0, true) === GGUF_MAGIC;
    });
  } catch {
    return false;
  }
}
