// ggml tensor types: the block layouts of ggml's `ggml-common.h` for the types GGUF files of Llama-family models use,
// exact dequantization to f32 (the same float32 operations, in the same order, as ggml's `dequantize_row_*`), and
// reference quantizers so that tests and the converter can write such files.
//
// Block layouts (little-endian, `half` = IEEE float16):
//   Q8_0  32 values, 34 bytes:  half d; int8 qs[32]                       x = d·q
//   Q4_0  32 values, 18 bytes:  half d; uint8 qs[16]                      x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8)
//   Q4_K 256 values, 144 bytes: half d; half dmin; uint8 scales[12]; uint8 qs[128]
//        8 sub-blocks of 32 with 6-bit scale sc and min m packed in `scales`: x = d·sc·q − dmin·m, q in 0..15
//   Q6_K 256 values, 210 bytes: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d
//        16 sub-blocks of 16 with int8 scales: x = d·sc·q, q = 6-bit (4 low bits in ql, 2 high in qh) − 32

import { LITTLE_ENDIAN } from './io.js';

export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';

export interface GgmlTypeInfo {
  readonly name: GgmlTypeName;
  /** The `ggml_type` enum value stored in GGUF tensor infos. */
  readonly id: number;
  /** Values per block (1 for plain floats). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
}

export const GGML_TYPES: Readonly<Record<GgmlTypeName, GgmlTypeInfo>> = {
  F32: { name: 'F32', id: 0, blockSize: 1, blockBytes: 4 },
  F16: { name: 'F16', id: 1, blockSize: 1, blockBytes: 2 },
  Q4_0: { name: 'Q4_0', id: 2, blockSize: 32, blockBytes: 18 },
  Q8_0: { name: 'Q8_0', id: 8, blockSize: 32, blockBytes: 34 },
  Q4_K: { name: 'Q4_K', id: 12, blockSize: 256, blockBytes: 144 },
  Q6_K: { name: 'Q6_K', id: 14, blockSize: 256, blockBytes: 210 },
  BF16: { name: 'BF16', id: 30, blockSize: 1, blockBytes: 2 },
};

/** ggml type ids we know by name but cannot read, for error messages ("got Q5_K (13)"). */
const OTHER_GGML_TYPES: Readonly<Record<number, string>> = {
  3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 13: 'Q5_K', 15: 'Q8_K', 16: 'IQ2_XXS',
  17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16',
  26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

const BY_ID = new Map<number, GgmlTypeInfo>(Object.values(GGML_TYPES).map((t) => [t.id, t]));

export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return BY_ID.get(id);
}

/** "Q5_K (13)" or "type 99" for messages. */
export function describeGgmlType(id: number): string {
  const known = BY_ID.get(id)?.name ?? OTHER_GGML_TYPES[id];
  return known === undefined ? `type ${id}` : `${known} (${id})`;
}

export function isGgmlTypeName(value: string): value is GgmlTypeName {
  return Object.prototype.hasOwnProperty.call(GGML_TYPES, value);
}

/** Bytes of `count` values of a type, or undefined when `count` is not a whole number of blocks. */
export function ggmlByteLength(type: GgmlTypeInfo, count: number): number | undefined {
  if (count % type.blockSize !== 0) return undefined;
  return (count / type.blockSize) * type.blockBytes;
}

// --- float16 / bfloat16 ---

let halfTable: Float32Array | undefined;

/** All 65536 float16 bit patterns as float32 (exact: every half is a float). */
export function halfToFloatTable(): Float32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 31) table[h] = mant === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  halfTable = table;
  return table;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 → float16 bits, rounding to nearest even (what F16C's `vcvtps2ph` and ggml's scalar fallback do). */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit, rounding to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    const rounded = rest > midpoint || (rest === midpoint && (half & 1) === 1) ? half + 1 : half;
    return sign | rounded;
  }
  const rest = mant & 0x1fff;
  let bits = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits++; // may carry into the exponent: still correct
  return sign | bits;
}

/** float32 → bfloat16 bits, rounding to nearest even (ggml's `ggml_compute_fp32_to_bf16`; NaN stays quiet NaN). */
export function floatToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff;
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

// --- dequantization ---

const f = Math.fround;

/**
 * Widens `count` values of `type` stored in `bytes` (little-endian, whole blocks) to float32. The caller has checked
 * that `bytes` holds exactly ggmlByteLength(type, count) bytes.
 */
export function dequantize(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = halfToFloatTable();
  const out = new Float32Array(count);
  switch (type) {
    case 'F32':
      if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = half[view.getUint16(2 * i, true)];
      return out;
    case 'BF16': {
      // bfloat16 is the top half of a float32: shifting keeps NaN payloads, infinities and subnormals exact.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'Q8_0':
      for (let b = 0; b < count / 32; b++) {
        const at = 34 * b;
        const d = half[view.getUint16(at, true)];
        for (let j = 0; j < 32; j++) out[32 * b + j] = f(view.getInt8(at + 2 + j) * d);
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < count / 32; b++) {
        const at = 18 * b;
        const d = half[view.getUint16(at, true)];
        for (let j = 0; j < 16; j++) {
          const q = bytes[at + 2 + j];
          out[32 * b + j] = f(((q & 0x0f) - 8) * d);
          out[32 * b + j + 16] = f(((q >> 4) - 8) * d);
        }
      }
      return out;
    case 'Q4_K':
      for (let b = 0; b < count / 256; b++) dequantizeQ4KBlock(bytes, 144 * b, half, out, 256 * b);
      return out;
    case 'Q6_K':
      for (let b = 0; b < count / 256; b++) dequantizeQ6KBlock(bytes, 210 * b, half, out, 256 * b);
      return out;
  }
}

/** ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at `at`. */
function scaleMinK4(bytes: Uint8Array, at: number, j: number): [number, number] {
  if (j < 4) return [bytes[at + j] & 63, bytes[at + j + 4] & 63];
  return [
    (bytes[at + j + 4] & 0x0f) | ((bytes[at + j - 4] >> 6) << 4),
    (bytes[at + j + 4] >> 4) | ((bytes[at + j] >> 6) << 4),
  ];
}

function dequantizeQ4KBlock(bytes: Uint8Array, at: number, half: Float32Array, out: Float32Array, o: number): void {
  const d = half[bytes[at] | (bytes[at + 1] << 8)];
  const dmin = half[bytes[at + 2] | (bytes[at + 3] << 8)];
  const scales = at + 4;
  let q = at + 16;
  for (let j = 0; j < 256; j += 64) {
    const is = j / 32;
    const [sc1, m1] = scaleMinK4(bytes, scales, is);
    const [sc2, m2] = scaleMinK4(bytes, scales, is + 1);
    const d1 = f(d * sc1);
    const min1 = f(dmin * m1);
    const d2 = f(d * sc2);
    const min2 = f(dmin * m2);
    for (let l = 0; l < 32; l++) out[o + j + l] = f(f(d1 * (bytes[q + l] & 0x0f)) - min1);
    for (let l = 0; l < 32; l++) out[o + j + 32 + l] = f(f(d2 * (bytes[q + l] >> 4)) - min2);
    q += 32;
  }
}

function dequantizeQ6KBlock(bytes: Uint8Array, at: number, half: Float32Array, out: Float32Array, o: number): void {
  const d = half[bytes[at + 208] | (bytes[at + 209] << 8)];
  let ql = at;
  let qh = at + 128;
  let sc = at + 192;
  const int8 = (v: number): number => (v << 24) >> 24;
  for (let n = 0; n < 256; n += 128) {
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = bytes[qh + l];
      const q1 = ((bytes[ql + l] & 0x0f) | (((h >> 0) & 3) << 4)) - 32;
      const q2 = ((bytes[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
      // ggml: y = d * sc[is] * q, evaluated left to right in float32.
      out[o + n + l] = f(f(d * int8(bytes[sc + is])) * q1);
      out[o + n + l + 32] = f(f(d * int8(bytes[sc + is + 2])) * q2);
      out[o + n + l + 64] = f(f(d * int8(bytes[sc + is + 4])) * q3);
      out[o + n + l + 96] = f(f(d * int8(bytes[sc + is + 6])) * q4);
    }
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// --- quantization (writers and tests) ---

/** C's roundf: halves away from zero. */
function roundAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Encodes float32 values as `type` (count must be a whole number of blocks). Q8_0 and Q4_0 follow ggml's reference
 * quantizers (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`) bit for bit; Q4_K and Q6_K use a plain min/max
 * (absmax) fit per sub-block — valid blocks that every reader decodes identically, though less accurate than
 * llama-quantize's search.
 */
export function quantize(type: GgmlTypeName, values: Float32Array): Uint8Array {
  const info = GGML_TYPES[type];
  const length = ggmlByteLength(info, values.length);
  if (length === undefined) throw new RangeError(`${type}: ${values.length} values are not whole blocks of ${info.blockSize}`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  switch (type) {
    case 'F32':
      for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
      return out;
    case 'F16':
      for (let i = 0; i < values.length; i++) view.setUint16(2 * i, floatToHalf(values[i]), true);
      return out;
    case 'BF16':
      for (let i = 0; i < values.length; i++) view.setUint16(2 * i, floatToBf16(values[i]), true);
      return out;
    case 'Q8_0':
      for (let b = 0; b < values.length / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[32 * b + j]));
        const d = f(amax / 127);
        const id = d !== 0 ? f(1 / d) : 0;
        view.setUint16(34 * b, floatToHalf(d), true);
        for (let j = 0; j < 32; j++) view.setInt8(34 * b + 2 + j, roundAway(f(values[32 * b + j] * id)));
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < values.length / 32; b++) {
        // ggml: the value of largest magnitude, with its sign, maps to −8.
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
          const v = values[32 * b + j];
          if (Math.abs(v) > amax) {
            amax = Math.abs(v);
            max = v;
          }
        }
        const d = f(max / -8);
        const id = d !== 0 ? f(1 / d) : 0;
        view.setUint16(18 * b, floatToHalf(d), true);
        for (let j = 0; j < 16; j++) {
          const x0 = Math.min(15, Math.trunc(f(f(values[32 * b + j] * id) + 8.5)));
          const x1 = Math.min(15, Math.trunc(f(f(values[32 * b + j + 16] * id) + 8.5)));
          out[18 * b + 2 + j] = x0 | (x1 << 4);
        }
      }
      return out;
    case 'Q4_K':
      for (let b = 0; b < values.length / 256; b++) quantizeQ4KBlock(values, 256 * b, out, 144 * b);
      return out;
    case 'Q6_K':
      for (let b = 0; b < values.length / 256; b++) quantizeQ6KBlock(values, 256 * b, out, 210 * b);
      return out;
  }
}

function quantizeQ4KBlock(values: Float32Array, o: number, out: Uint8Array, at: number): void {
  const scale = new Float64Array(8);
  const minimum = new Float64Array(8);
  for (let s = 0; s < 8; s++) {
    let lo = 0; // the min is stored as −dmin·m with m ≥ 0, so it must be ≤ 0
    let hi = 0;
    for (let l = 0; l < 32; l++) {
      lo = Math.min(lo, values[o + 32 * s + l]);
      hi = Math.max(hi, values[o + 32 * s + l]);
    }
    scale[s] = (hi - lo) / 15;
    minimum[s] = -lo;
  }
  const d = Math.max(...scale) / 63;
  const dmin = Math.max(...minimum) / 63;
  const half = halfToFloatTable();
  const dBits = floatToHalf(d);
  const dminBits = floatToHalf(dmin);
  const dh = half[dBits];
  const dminh = half[dminBits];
  const sc = new Uint8Array(8);
  const m = new Uint8Array(8);
  for (let s = 0; s < 8; s++) {
    sc[s] = dh > 0 ? Math.min(63, Math.round(scale[s] / dh)) : 0;
    m[s] = dminh > 0 ? Math.min(63, Math.round(minimum[s] / dminh)) : 0;
  }
  out[at] = dBits & 0xff;
  out[at + 1] = dBits >> 8;
  out[at + 2] = dminBits & 0xff;
  out[at + 3] = dminBits >> 8;
  // The inverse of get_scale_min_k4: sub-blocks 0..3 in the low 6 bits of bytes 0..7, 4..7 split over bytes 8..11
  // (low nibbles) and the top two bits of bytes 0..7.
  for (let j = 0; j < 4; j++) {
    out[at + 4 + j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
    out[at + 4 + j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
    out[at + 4 + j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
  }
  for (let j = 0; j < 256; j += 64) {
    const s = j / 32;
    const step1 = dh * sc[s];
    const step2 = dh * sc[s + 1];
    for (let l = 0; l < 32; l++) {
      const q1 = step1 > 0 ? Math.max(0, Math.min(15, Math.round((values[o + j + l] + dminh * m[s]) / step1))) : 0;
      const q2 = step2 > 0 ? Math.max(0, Math.min(15, Math.round((values[o + j + 32 + l] + dminh * m[s + 1]) / step2))) : 0;
      out[at + 16 + j / 2 + l] = q1 | (q2 << 4);
    }
  }
}

function quantizeQ6KBlock(values: Float32Array, o: number, out: Uint8Array, at: number): void {
  const scale = new Float64Array(16);
  for (let s = 0; s < 16; s++) {
    let amax = 0;
    for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(values[o + 16 * s + l]));
    scale[s] = amax / 31;
  }
  const d = Math.max(...scale) / 127;
  const dBits = floatToHalf(d);
  const dh = halfToFloatTable()[dBits];
  const sc = new Int8Array(16);
  for (let s = 0; s < 16; s++) sc[s] = dh > 0 ? Math.min(127, Math.round(scale[s] / dh)) : 0;
  const q = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const step = dh * sc[i >> 4];
    q[i] = step > 0 ? Math.max(-32, Math.min(31, Math.round(values[o + i] / step))) + 32 : 32;
  }
  // Element n·128 + l (+32, +64, +96) of each half: the inverse of dequantizeQ6KBlock's indexing.
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const base = 128 * n + l;
      const [q1, q2, q3, q4] = [q[base], q[base + 32], q[base + 64], q[base + 96]];
      out[at + 64 * n + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
      out[at + 64 * n + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
      out[at + 128 + 32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
  for (let s = 0; s < 16; s++) out[at + 192 + s] = sc[s] & 0xff;
  out[at + 208] = dBits & 0xff;
  out[at + 209] = dBits >> 8;
}
