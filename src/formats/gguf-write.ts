// GGUF v3 writer: the inverse of gguf.ts. Tensors are packed in the order given, each padded to the alignment, and
// their bytes are produced one at a time (`bytes()` is called while writing), so converting a large model never holds
// more than one tensor in memory. Written atomically (temporary file, fsync, rename).

import { FormatError } from './errors.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VALUE_TYPES, type GgufArray, type GgufEntry, type GgufValue, type GgufValueType } from './gguf.js';
import { writeFileAtomic } from './io.js';
import { GGML_TYPES, ggmlByteLength, type GgmlTypeName } from './quant.js';

export interface GgufTensorInput {
  readonly name: string;
  /** Row-major shape ([out, in] for a matrix); written reversed as ne. */
  readonly shape: readonly number[];
  readonly type: GgmlTypeName;
  /** The encoded bytes (see quant.ts `quantize`); called once, during the write. */
  bytes(): Uint8Array;
}

/** Metadata entry constructors, so that callers state each value's GGUF type. */
export const gguf = {
  string: (value: string): GgufEntry => ({ type: 'string', value }),
  uint32: (value: number): GgufEntry => ({ type: 'uint32', value }),
  int32: (value: number): GgufEntry => ({ type: 'int32', value }),
  uint64: (value: number | bigint): GgufEntry => ({ type: 'uint64', value: BigInt(value) }),
  float32: (value: number): GgufEntry => ({ type: 'float32', value }),
  bool: (value: boolean): GgufEntry => ({ type: 'bool', value }),
  array: (itemType: GgufValueType, items: readonly GgufValue[]): GgufEntry => ({ type: 'array', value: { itemType, items } }),
};

const encoder = new TextEncoder();

/** Growable little-endian byte sink for the header. */
function createSink() {
  let buffer = new Uint8Array(1 << 16);
  let view = new DataView(buffer.buffer);
  let length = 0;
  const reserve = (n: number): number => {
    if (length + n > buffer.length) {
      const bigger = new Uint8Array(Math.max(buffer.length * 2, length + n));
      bigger.set(buffer.subarray(0, length));
      buffer = bigger;
      view = new DataView(buffer.buffer);
    }
    const at = length;
    length += n;
    return at;
  };
  return {
    get length() {
      return length;
    },
    // reserve() may replace `buffer` and `view`, so it runs before they are read.
    u8: (v: number) => { const at = reserve(1); view.setUint8(at, v); },
    i8: (v: number) => { const at = reserve(1); view.setInt8(at, v); },
    u16: (v: number) => { const at = reserve(2); view.setUint16(at, v, true); },
    i16: (v: number) => { const at = reserve(2); view.setInt16(at, v, true); },
    u32: (v: number) => { const at = reserve(4); view.setUint32(at, v, true); },
    i32: (v: number) => { const at = reserve(4); view.setInt32(at, v, true); },
    f32: (v: number) => { const at = reserve(4); view.setFloat32(at, v, true); },
    f64: (v: number) => { const at = reserve(8); view.setFloat64(at, v, true); },
    u64: (v: bigint) => { const at = reserve(8); view.setBigUint64(at, v, true); },
    i64: (v: bigint) => { const at = reserve(8); view.setBigInt64(at, v, true); },
    bytes: (b: Uint8Array) => { const at = reserve(b.length); buffer.set(b, at); },
    zeros: (n: number) => { const at = reserve(n); buffer.fill(0, at, at + n); },
    result: () => buffer.subarray(0, length),
  };
}

type Sink = ReturnType<typeof createSink>;

function writeValue(sink: Sink, type: GgufValueType, value: GgufValue, path: string, field: string): void {
  const bad = (expected: string): never => {
    throw new FormatError({ file: path, field, expected, got: typeof value === 'object' ? 'an array' : `${typeof value} ${String(value)}` });
  };
  const int = (lo: number, hi: number): number =>
    typeof value === 'number' && Number.isInteger(value) && value >= lo && value <= hi ? value : bad(`an integer in ${lo}..${hi}`);
  switch (type) {
    case 'uint8': return sink.u8(int(0, 0xff));
    case 'int8': return sink.i8(int(-0x80, 0x7f));
    case 'uint16': return sink.u16(int(0, 0xffff));
    case 'int16': return sink.i16(int(-0x8000, 0x7fff));
    case 'uint32': return sink.u32(int(0, 0xffffffff));
    case 'int32': return sink.i32(int(-0x80000000, 0x7fffffff));
    case 'float32': return sink.f32(typeof value === 'number' ? value : bad('a number'));
    case 'float64': return sink.f64(typeof value === 'number' ? value : bad('a number'));
    case 'uint64': return sink.u64(typeof value === 'bigint' ? BigInt.asUintN(64, value) : BigInt(int(0, Number.MAX_SAFE_INTEGER)));
    case 'int64': return sink.i64(typeof value === 'bigint' ? BigInt.asIntN(64, value) : BigInt(int(-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)));
    case 'bool': return sink.u8(typeof value === 'boolean' ? (value ? 1 : 0) : bad('a boolean'));
    case 'string': {
      const bytes = encoder.encode(typeof value === 'string' ? value : bad('a string'));
      sink.u64(BigInt(bytes.length));
      return sink.bytes(bytes);
    }
    case 'array': {
      if (typeof value !== 'object') return bad('an array');
      const array: GgufArray = value;
      sink.u32(GGUF_VALUE_TYPES.indexOf(array.itemType));
      sink.u64(BigInt(array.items.length));
      array.items.forEach((item, i) => writeValue(sink, array.itemType, item, path, `${field}[${i}]`));
      return;
    }
  }
}

function writeString(sink: Sink, s: string): void {
  const bytes = encoder.encode(s);
  sink.u64(BigInt(bytes.length));
  sink.bytes(bytes);
}

export interface GgufWriteOptions {
  /** Data alignment (a power of two); written as general.alignment when not the default 32. */
  readonly alignment?: number;
}

/** Writes a GGUF v3 file with the given metadata (in map order) and tensors (in array order). */
export function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufEntry>,
  tensors: readonly GgufTensorInput[],
  options: GgufWriteOptions = {},
): void {
  const alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new FormatError({ file: path, field: 'alignment', expected: 'a power of two', got: String(alignment) });
  }
  const entries = new Map(metadata);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) entries.set('general.alignment', gguf.uint32(alignment));

  const sink = createSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(3);
  sink.u64(BigInt(tensors.length));
  sink.u64(BigInt(entries.size));
  for (const [key, entry] of entries) {
    writeString(sink, key);
    sink.u32(GGUF_VALUE_TYPES.indexOf(entry.type));
    writeValue(sink, entry.type, entry.value, path, `metadata "${key}"`);
  }

  const sizes: number[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    const field = `tensor "${t.name}"`;
    if (names.has(t.name)) throw new FormatError({ file: path, field, expected: 'a unique name', got: 'a duplicate' });
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4 || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError({ file: path, field, expected: '1 to 4 non-negative dimensions', got: `shape [${t.shape.join(', ')}]` });
    }
    const info = GGML_TYPES[t.type];
    const dims = [...t.shape].reverse();
    if (dims[0] % info.blockSize !== 0) {
      throw new FormatError({ file: path, field, expected: `a row length that is a multiple of ${info.blockSize} for ${t.type}`, got: String(dims[0]) });
    }
    const size = ggmlByteLength(info, dims.reduce((a, b) => a * b, 1)) ?? 0;
    sizes.push(size);
    writeString(sink, t.name);
    sink.u32(dims.length);
    for (const d of dims) sink.u64(BigInt(d));
    sink.u32(info.id);
    sink.u64(BigInt(offset));
    offset += Math.ceil(size / alignment) * alignment;
  }
  sink.zeros(Math.ceil(sink.length / alignment) * alignment - sink.length);
  const head = sink.result();

  function* chunks(): Generator<Uint8Array> {
    yield head;
    for (let i = 0; i < tensors.length; i++) {
      const bytes = tensors[i].bytes();
      if (bytes.length !== sizes[i]) {
        throw new FormatError({ file: path, field: `tensor "${tensors[i].name}"`, expected: `${sizes[i]} bytes of ${tensors[i].type}`, got: `${bytes.length} bytes` });
      }
      yield bytes;
      const pad = Math.ceil(sizes[i] / alignment) * alignment - sizes[i];
      if (pad > 0) yield new Uint8Array(pad);
    }
  }
  writeFileAtomic(path, chunks());
}
