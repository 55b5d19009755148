// Quantized matmul: out[t][o] = (bias[o] +) Σ_i x[t][i]·w[o][i] with w in GGML block layout (ggml-common.h), rows
// of inDim/32 blocks stored back to back:
//   Q8_0  34 bytes: f16 d, int8 q[32]                 w = d·q
//   Q4_0  18 bytes: f16 d, uint8 qs[16]               w[j] = d·((qs[j] & 15) − 8), w[j+16] = d·((qs[j] >> 4) − 8)
// As in llama.cpp, the activations are quantized too, per 32-block (quantizeActivations, once per call per row, on
// the calling thread): dx = max|x|/127 rounded to f16, qx = round-half-even(x·127/max|x|), kept as int16 so that no
// kernel has to widen them again.
//
// Every output element is one chain of f32 steps: acc = 0, then for each block b in order
//   acc = f32(acc + f32(f32(isum_b) · d_b))
// isum_b, the block's integer dot product, is exact (|isum_b| < 2^19, exact in f32 too) however a kernel forms it;
// d_b = dw_b·dx_b, a product of two f16 values, is exact in f32. llama.cpp (ggml-cpu on x86) runs the same chain with
// one FMA per block, a single rounding where ours rounds the product and then the sum. Until session 6 the step ran
// in f64 to match that FMA to the bit; the f64 step (conversions, two chains per vector) cost 25-35 % of the
// multi-row calls that verification makes, so it was dropped: our products now differ from llama.cpp's by an ulp or
// so per block (relative ~1e-7 per step), which moves an activation's int8 rounding now and then. The crosscheck test
// (src/model/llama-cpp-crosscheck.test.ts) states the tolerance (log p within 0.05) and reports greedy agreement.
//
// Kernels compute four chains side by side, one per lane: four blocks' i32x4 partial sums become one i32x4 of totals
// by a transpose-add (totals4), converted and scaled per lane. Every chain sees the same operations whichever lane,
// kernel, batch size, row position or thread computes it (architecture.md, invariant 1).
//
// The hot loops advance pointers and load at immediate offsets (see matmul.ts), read block scales through a table,
// and retire each row's or column's integer sum before the next one's loads (`sink`), so that V8 keeps few vectors
// live. Checked in the generated code: no extract_lane / replace_lane in the matmul loops (quantizeActivations takes
// one horizontal max per block; cols4 gathers four block scales with load32_lane, one vpinsrd from memory each).
//
// The relaxed build (kernels-relaxed.wasm, ASC_FEATURE_RELAXED_SIMD; scripts/build-kernels.mjs) forms the block
// integer sums with i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c): 16 int8 products a[i]·b[i] summed in fours into c,
// one vpdpbusd on x64 CPUs with AVX-VNNI, pmaddubsw + pmaddwd + paddd on others. It is deterministic only while every
// lane of b, the "7-bit" operand, is in [0, 127]: with the top bit set, pmaddubsw reads b unsigned (and saturates
// its 16-bit pair sums) while vpdpbssd reads it signed. So b is never a signed value here:
//   Q8_0  Σ w·x = Σ w·x⁺ − Σ w·x⁻ with x⁺ = max(x, 0), x⁻ = max(−x, 0), both in [0, 127] (our quantizer writes
//         [−127, 127]); w, the signed operand, may be any int8, −128 included, so no weight needs a fallback.
//         (Moving x's sign onto w instead, w' = (w ^ m) − m, costs two operations per weight vector and row where
//         the second dot product costs one with VNNI, and overflows for w = −128, which a Q8_0 file may hold.)
//   Q4_0  Σ (q − 8)·x = Σ q·x − 8·Σ x with the nibbles q in [0, 15] as b and x as a; quantizeActivations stores
//         8·Σ x per block beside the scales.
// Pair sums stay within ±2·128·127 = ±32512, so no lowering saturates: every block sum is the exact integer of the
// plain build, and with it every output bit (tests: simd.test.ts).
import { shareStart, shareEnd } from './common';

/** How many blocks ahead of its reads a streaming rows4 call touches its weight row (see rows4). */
const TOUCH_AHEAD: usize = 16;

/** Bytes of a Q8_0 / Q4_0 block. */
const Q8_BYTES: usize = 34;
const Q4_BYTES: usize = 18;
/**
 * Bytes of one quantized activation block: 32 int16 (plain build); in the relaxed build 32 int8 x⁺ then 32 int8 x⁻
 * (before a Q8_0 matrix), or 32 int8 x then 32 unused bytes (before a Q4_0 matrix), so that both layouts keep one
 * stride.
 */
const X_BYTES: usize = 64;

/**
 * quantizeActivations' `kind`: which matrix type and form the activations are for (relaxed build; the plain one
 * writes int16 for all): 0 = Q8_0 relaxed (x⁺, x⁻ int8), 1 = Q4_0 (int8), 2 = Q8_0 int16 form (int16, as plain).
 */
const KIND_Q8: i32 = 0;
const KIND_Q8_WIDE: i32 = 2;

/**
 * A store target that pins V8's instruction order. V8 keeps loads in program order but places arithmetic as late as
 * it can, so a loop body that loads the weights of four columns would hold all sixteen widened vectors until the end
 * and spill. Writing each column's new accumulator here (a store, which stays in program order, and needs the
 * arithmetic done) retires one column before the next one's loads: without it rows4 loaded all sixteen activation
 * vectors up front and kept its accumulators on the stack. Each
 * thread has its own instance, hence its own global.
 */
let sink: v128 = i32x4.splat(0);

/** Reads `sink`, so that Binaryen keeps the stores to it. */
export function quantSink(): i32 {
  return i32x4.extract_lane(sink, 0);
}

// Type markers of the generic kernels below, resolved at compile time: i8 = Q8_0 and u8 = Q4_0, each with the relaxed
// int8 dot product in the relaxed build; i16 = Q8_0 with the int16 dot product (dot_i16x8_s) in either build. The
// relaxed build keeps both Q8_0 forms because the relaxed one pays only where V8 lowers the dot to one instruction
// (AVX-VNNI): elsewhere it becomes pmaddubsw + pmaddwd + paddd, twice per weight vector (x⁺ and x⁻), and measured
// 1.1–1.6× slower than the int16 form (AMD EPYC Zen 3, Node 24). src/kernels/index.ts times both at start-up and
// keeps the faster; both give the same bits (exact block sums, the same chain).

/** Whether K's kernels form block sums with the relaxed int8 dot product (see the type markers above). */
@inline function relaxed<K>(): bool {
  return ASC_FEATURE_RELAXED_SIMD && sizeof<K>() == 1;
}

@inline function blockBytes<K>(): usize {
  return isSigned<K>() ? Q8_BYTES : Q4_BYTES;
}

/**
 * f16 → f32 of every bit pattern (256 KiB), filled once per memory by initHalfTable: a block scale costs one load
 * instead of ~20 instructions of bit manipulation (ggml converts through the same kind of table where the CPU lacks
 * F16C). A model's scales use a few thousand patterns, so the table's hot part stays in L1/L2. It lives at a fixed
 * address between the control block and the heap (dispatch.ts, memory map), not in static data, which would put
 * 256 KiB of zeros into the module.
 */
const HALF_TABLE: usize = 576 * 1024;

/** Where the table is, for the host's check against its memory map. */
export function halfTable(): usize {
  return HALF_TABLE;
}

/**
 * Fills HALF_TABLE. Exact for every value: normal numbers re-bias the exponent; zero and subnormals are
 * 2^-14·(1 + m/1024) − 2^-14 (exact); inf / NaN get the all-ones exponent.
 */
export function initHalfTable(): void {
  for (let h: u32 = 0; h < 65536; h++) {
    const bits = ((h & 0x7fff) << 13) | ((h & 0x8000) << 16);
    const e = bits & 0x0f800000;
    let f: u32;
    if (e == 0x0f800000) f = bits | 0x7f800000;
    else if (e != 0) f = bits + 0x38000000;
    else {
      f = reinterpret<u32>(reinterpret<f32>((bits & 0x7fffffff) + 0x38800000) - reinterpret<f32>(<u32>0x38800000)) |
        (bits & 0x80000000);
    }
    store<u32>(HALF_TABLE + (<usize>h << 2), f);
  }
}

/**
 * x ≥ 0 rounded to the nearest f16 value, ties to even (F16C's vcvtps2ph, which llama.cpp's GGML_FP32_TO_FP16 is
 * on x86), returned as f32: 65520 and above become inf, NaN stays NaN.
 */
@inline function roundToHalf(x: f32): f32 {
  const bits = reinterpret<u32>(x);
  if (bits >= 0x477ff000) return bits > 0x7f800000 ? x : <f32>Infinity;
  // Below 2^-14 f16 is subnormal, spaced 2^-24: adding 0.5 (whose ulp is 2^-24) rounds there, exactly.
  if (bits < 0x38800000) return (x + <f32>0.5) - <f32>0.5;
  return reinterpret<f32>((bits + 0x0fff + ((bits >> 13) & 1)) & 0xffffe000);
}

/**
 * Quantizes rows of x (f32, [rows, inDim], inDim a multiple of 32) per 32-block: int16 values to xq ([rows, inDim])
 * and f32 scales to xd. llama.cpp's quantize_row_q8_0 (x86 path): d = amax/127 stored as f16, q = nearest(x ·
 * (127/amax)) (from the unrounded scale), all 0 when amax is 0. Keeping d at f16 precision costs nothing measurable
 * (a relative 2^-11 on the scale against 2^-8 of rounding to int8) and makes our products llama.cpp's to the bit.
 * xd holds rows·inDim/32 scales: the rows of each complete group of four interleaved by block ([group][block][row]),
 * so that rows4 loads a block's four scales at once, then the last rows % 4 rows one after the other.
 * The relaxed build writes the int8 layout of X_BYTES for `kind` (0 = Q8_0, 1 = Q4_0) and, for Q4_0, 8·Σ q of each
 * block as i32 in the layout of xd right after it (at xd + 4·rows·inDim/32).
 */
export function quantizeActivations(x: usize, xq: usize, xd: usize, rows: i32, inDim: i32, kind: i32): void {
  const nb = <usize>(inDim >> 5);
  const r4 = rows & ~3;
  const sums = <usize>rows * nb << 2;
  let p = x, q = xq;
  for (let r = 0; r < rows; r++) {
    let d = r < r4 ? xd + ((<usize>(r & ~3) * nb + <usize>(r & 3)) << 2) : xd + (<usize>r * nb << 2);
    const dStep: usize = r < r4 ? 16 : 4;
    const end = q + (nb << 6);
    while (q < end) {
      const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
      const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
      // pmax: a plain compare (max keeps NaN semantics at 6 extra instructions per lane group).
      const m = f32x4.pmax(f32x4.pmax(f32x4.pmax(f32x4.abs(v0), f32x4.abs(v1)), f32x4.pmax(f32x4.abs(v2), f32x4.abs(v3))),
        f32x4.pmax(f32x4.pmax(f32x4.abs(v4), f32x4.abs(v5)), f32x4.pmax(f32x4.abs(v6), f32x4.abs(v7))));
      const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)),
        max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      store<f32>(d, roundToHalf(amax / <f32>127.0));
      const s = f32x4.splat(amax != 0 ? <f32>127.0 / amax : <f32>0.0);
      const h0 = i16x8.narrow_i32x4_s(roundScaled(v0, s), roundScaled(v1, s));
      const h1 = i16x8.narrow_i32x4_s(roundScaled(v2, s), roundScaled(v3, s));
      const h2 = i16x8.narrow_i32x4_s(roundScaled(v4, s), roundScaled(v5, s));
      const h3 = i16x8.narrow_i32x4_s(roundScaled(v6, s), roundScaled(v7, s));
      if (ASC_FEATURE_RELAXED_SIMD && kind != KIND_Q8_WIDE) {
        // |q| ≤ 127: both narrowings are exact.
        const b0 = i8x16.narrow_i16x8_s(h0, h1), b1 = i8x16.narrow_i16x8_s(h2, h3);
        if (kind == KIND_Q8) {
          const p0 = i8x16.max_s(b0, i8x16.splat(0)), p1 = i8x16.max_s(b1, i8x16.splat(0));
          const n0 = i8x16.sub(p0, b0), n1 = i8x16.sub(p1, b1); // x⁺ − x = x⁻
          if (r < r4) {
            // The group layout of rowsQ8 (see there): 4-element pieces of the group's four rows side by side.
            const g = xq + (<usize>(r & ~3) * nb << 6) + ((q - (xq + (<usize>r * nb << 6))) << 2) +
              (<usize>(r & 3) << 2);
            storePieces(g, p0, p1);
            storePieces(g + 128, n0, n1);
          } else {
            v128.store(q, p0);
            v128.store(q, p1, 16);
            v128.store(q, n0, 32);
            v128.store(q, n1, 48);
          }
        } else {
          v128.store(q, b0);
          v128.store(q, b1, 16);
          const t = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(h0, h1), i16x8.add(h2, h3))); // |lane| ≤ 8·127
          const total = i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1) + i32x4.extract_lane(t, 2) +
            i32x4.extract_lane(t, 3);
          store<i32>(d + sums, total << 3);
        }
      } else {
        v128.store(q, h0);
        v128.store(q, h1, 16);
        v128.store(q, h2, 32);
        v128.store(q, h3, 48);
      }
      p += 128;
      q += X_BYTES;
      d += dStep;
    }
  }
}

/** Elements 4k..4k+3 of the 32 in lo / hi (16 each) to g + 16·k, k = 0..7 (one row's pieces in a group block). */
@inline function storePieces(g: usize, lo: v128, hi: v128): void {
  v128.store32_lane(g, lo, 0);
  v128.store32_lane(g, lo, 1, 16);
  v128.store32_lane(g, lo, 2, 32);
  v128.store32_lane(g, lo, 3, 48);
  v128.store32_lane(g, hi, 0, 64);
  v128.store32_lane(g, hi, 1, 80);
  v128.store32_lane(g, hi, 2, 96);
  v128.store32_lane(g, hi, 3, 112);
}

@inline function roundScaled(v: v128, s: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, s)));
}

/** Address of the f32 value of the f16 scale at q (in HALF_TABLE). */
@inline function scaleAt(q: usize): usize {
  return HALF_TABLE + (<usize>load<u16>(q) << 2);
}

/**
 * Q8_0: the integer dot product of the block at q with the activation block at px, as an i32x4 of partial sums.
 * The weights widen as they load (load8x8_s is one pmovsxbw from memory; extend_high of a 16-byte load would add a
 * shuffle).
 */
@inline function isumQ8(q: usize, px: usize): v128 {
  let s = i32x4.dot_i16x8_s(v128.load8x8_s(q, 2), v128.load(px));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(q, 10), v128.load(px, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(q, 18), v128.load(px, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(v128.load8x8_s(q, 26), v128.load(px, 48)));
}

/**
 * Q4_0: the same for a nibble block. Bytes widen to u16 lanes; the low nibbles of bytes 0-7 / 8-15 are elements
 * 0-7 / 8-15 and their high nibbles elements 16-23 / 24-31, each minus 8.
 */
@inline function isumQ4(q: usize, px: usize): v128 {
  const e0 = v128.load8x8_u(q, 2);
  const e1 = v128.load8x8_u(q, 10);
  const mask = i16x8.splat(15);
  const eight = i16x8.splat(8);
  let s = i32x4.dot_i16x8_s(i16x8.sub(v128.and(e0, mask), eight), v128.load(px));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.sub(v128.and(e1, mask), eight), v128.load(px, 16)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(i16x8.sub(i16x8.shr_u(e0, 4), eight), v128.load(px, 32)));
  return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.sub(i16x8.shr_u(e1, 4), eight), v128.load(px, 48)));
}

/** Shorthand for the relaxed int8 dot product: c + the sums of four products a[i]·b[i], b in [0, 127]. */
@inline function dot7(a: v128, b: v128, c: v128): v128 {
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c);
}

/**
 * The relaxed build's block sums from prepared weights (prep): Q8_0 w0 / w1 = elements 0-15 / 16-31 against x⁺ and
 * x⁻ at p; Q4_0 w0 / w1 = low / high nibbles (0..15) against x at p (the −8·Σx correction is applied to the totals).
 */
@inline function isumR<K>(w0: v128, w1: v128, p: usize): v128 {
  const z = i32x4.splat(0);
  if (isSigned<K>()) {
    const pos = dot7(w1, v128.load(p, 16), dot7(w0, v128.load(p), z));
    return i32x4.sub(pos, dot7(w1, v128.load(p, 48), dot7(w0, v128.load(p, 32), z)));
  }
  return dot7(v128.load(p, 16), w1, dot7(v128.load(p), w0, z));
}

/** The relaxed build's weight vectors of the block at q: Q8_0 int8 elements 0-15 (k 0) / 16-31 (k 1), Q4_0 nibbles. */
@inline function prep<K>(q: usize, k: i32): v128 {
  if (isSigned<K>()) return v128.load(q + 2 + <usize>(k << 4));
  const e = v128.load(q, 2);
  return v128.and(k == 0 ? e : i16x8.shr_u(e, 4), i8x16.splat(15));
}

@inline function isum<K>(q: usize, px: usize): v128 {
  if (relaxed<K>()) return isumR<K>(prep<K>(q, 0), prep<K>(q, 1), px);
  return isSigned<K>() ? isumQ8(q, px) : isumQ4(q, px);
}

/** (Σa, Σb, Σc, Σd) of four i32x4 partial sums: a 4×4 transpose-add (exact integers: any order gives the same). */
@inline function totals4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(ab, cd, 0, 1, 4, 5), v128.shuffle<i32>(ab, cd, 2, 3, 6, 7));
}

/** One block step of four chains, one per lane: acc + f32(t)·d, t the integer totals, d the f32 scales (header). */
@inline function chain(acc: v128, t: v128, d: v128): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(t), d));
}

@inline function storeOut(out: usize, bias: usize, r: i32, o: i32, outDim: i32, acc: f32): void {
  let v = acc;
  if (bias != 0) v += load<f32>(bias + (<usize>o << 2));
  store<f32>(out + ((<usize>r * <usize>outDim + <usize>o) << 2), v);
}

/** The four widened weight vectors of the block at q (i16x8: elements 0-7, 8-15, 16-23, 24-31). */
@inline function widen<K>(q: usize, k: i32): v128 {
  if (isSigned<K>()) return v128.load8x8_s(q + 2 + <usize>(k << 3));
  const e = v128.load8x8_u(q + 2 + <usize>((k & 1) << 3));
  return i16x8.sub(k < 2 ? v128.and(e, i16x8.splat(15)) : i16x8.shr_u(e, 4), i16x8.splat(8));
}

/** The integer dot product of widened weights w0..w3 with the activation block at p, as an i32x4 of partial sums. */
@inline function isumW(w0: v128, w1: v128, w2: v128, w3: v128, p: usize): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(p)), i32x4.dot_i16x8_s(w1, v128.load(p, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(p, 32)), i32x4.dot_i16x8_s(w3, v128.load(p, 48))));
}

/**
 * Rows r..r+3 (a complete group of four) against column o: each weight block is widened once and serves the four
 * rows, whose block scales are one load (xd layout, quantizeActivations). (Eight rows per column measured no faster:
 * V8 spilled the extra accumulators.)
 */
function rows4<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, r: i32, rows: i32, inDim: i32,
  outDim: i32, o: i32, ahead: i32): void {
  const nb = <usize>(inDim >> 5);
  // ahead ≥ 0 (this call streams its weight row from memory): every block also loads 16 bytes TOUCH_AHEAD blocks
  // further on. One weight row is one DRAM stream, and a block's ~60 operations let the out-of-order window reach
  // only a few cache lines ahead of the loads it waits for (measured: ~3 GB/s); these loads, whose values only go to
  // `sink`, keep more lines in flight. Only the memory access pattern changes: the same bits.
  const rowEnd = w + <usize>(o + 1) * nb * blockBytes<K>();
  let next = w + <usize>o * nb * blockBytes<K>() + TOUCH_AHEAD * blockBytes<K>();
  let touched = i32x4.splat(0);
  const xStride = <usize>inDim << 1;
  let q = w + <usize>o * nb * blockBytes<K>();
  let px = xq + <usize>r * xStride;
  let pd = xd + (<usize>r * nb << 2);
  const dEnd = pd + (nb << 4);
  const sums = <usize>rows * nb << 2;
  let acc = f32x4.splat(0);
  while (pd < dEnd) {
    const dw = v128.load32_splat(scaleAt(q)); // scalar loads first (see cols4)
    let t: v128;
    if (relaxed<K>()) {
      const w0 = prep<K>(q, 0), w1 = prep<K>(q, 1);
      let p = px;
      const s0 = isumR<K>(w0, w1, p);
      sink = s0;
      p += xStride;
      const s1 = isumR<K>(w0, w1, p);
      sink = s1;
      p += xStride;
      const s2 = isumR<K>(w0, w1, p);
      sink = s2;
      p += xStride;
      t = totals4(s0, s1, s2, isumR<K>(w0, w1, p));
      if (!isSigned<K>()) t = i32x4.sub(t, v128.load(pd + sums)); // Q4_0: −8·Σx of the four rows
    } else {
      const w0 = widen<K>(q, 0), w1 = widen<K>(q, 1), w2 = widen<K>(q, 2), w3 = widen<K>(q, 3);
      let p = px;
      const s0 = isumW(w0, w1, w2, w3, p);
      sink = s0;
      p += xStride;
      const s1 = isumW(w0, w1, w2, w3, p);
      sink = s1;
      p += xStride;
      const s2 = isumW(w0, w1, w2, w3, p);
      sink = s2;
      p += xStride;
      t = totals4(s0, s1, s2, isumW(w0, w1, w2, w3, p));
    }
    const d = f32x4.mul(dw, v128.load(pd));
    acc = chain(acc, t, d);
    if (ahead >= 0 && next < rowEnd) {
      touched = v128.or(touched, v128.load(next));
      next += blockBytes<K>();
    }
    q += blockBytes<K>();
    px += X_BYTES;
    pd += 16;
  }
  if (ahead >= 0) sink = touched;
  storeOut(out, bias, r, o, outDim, f32x4.extract_lane(acc, 0));
  storeOut(out, bias, r + 1, o, outDim, f32x4.extract_lane(acc, 1));
  storeOut(out, bias, r + 2, o, outDim, f32x4.extract_lane(acc, 2));
  storeOut(out, bias, r + 3, o, outDim, f32x4.extract_lane(acc, 3));
}

/**
 * The relaxed build's Q8_0 kernel for rows r..r+3 (a complete group of four) against columns oA and oB (oB = oA for
 * a single column), with the group's activations in "pieces": per block, 256 bytes, x⁺ then x⁻, each as 8 vectors
 * P_k = (row r's elements 4k..4k+3, row r+1's, row r+2's, row r+3's) (quantizeActivations). A dot product of P_k
 * with the block's weights 4k..4k+3 splatted over the four lanes sums, in lane j, the four products of row r+j, so
 * after 8 pieces each lane holds its row's block total: no transpose, and each activation vector serves both
 * columns (the per-row layout needed 4 dot products, a subtraction and a quarter of a 4×4 transpose per row and
 * block; this needs 4 dot products per row, block and two columns). Totals are the same exact integers, so the
 * chains and the bits are those of every other kernel.
 */
function rowsQ8(out: usize, xq: usize, xd: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32, oA: i32,
  oB: i32, streaming: bool): void {
  const nb = <usize>(inDim >> 5);
  const rowBytes = nb * Q8_BYTES;
  let qA = w + <usize>oA * rowBytes;
  let qB = w + <usize>oB * rowBytes;
  // Streaming calls (the group that first reads these weight rows) touch both rows TOUCH_AHEAD blocks ahead (rows4).
  const endA = qA + rowBytes;
  let nextA = qA + TOUCH_AHEAD * Q8_BYTES;
  let nextB = qB + TOUCH_AHEAD * Q8_BYTES;
  let touched = i32x4.splat(0);
  let px = xq + (<usize>r * nb << 6);
  let pd = xd + (<usize>r * nb << 2);
  const dEnd = pd + (nb << 4);
  let accA = f32x4.splat(0), accB = f32x4.splat(0);
  while (pd < dEnd) {
    // Two chains per sum (even and odd pieces): a relaxed dot product waits ~5 cycles for its accumulator, so
    // chains of 8 left the multiply units idle (measured: no faster than the per-row layout); chains of 4 do not.
    // Written out piece by piece so that every load has an immediate offset (a loop's computed offsets cost ~20 %).
    const z = i32x4.splat(0);
    let pA0 = z, nA0 = z, pB0 = z, nB0 = z, pA1 = z, nA1 = z, pB1 = z, nB1 = z;
    let wA = v128.load32_splat(qA, 2), wB = v128.load32_splat(qB, 2);
    let P = v128.load(px), N = v128.load(px, 128);
    pA0 = dot7(wA, P, pA0); nA0 = dot7(wA, N, nA0); pB0 = dot7(wB, P, pB0); nB0 = dot7(wB, N, nB0);
    wA = v128.load32_splat(qA, 6); wB = v128.load32_splat(qB, 6);
    P = v128.load(px, 16); N = v128.load(px, 144);
    pA1 = dot7(wA, P, pA1); nA1 = dot7(wA, N, nA1); pB1 = dot7(wB, P, pB1); nB1 = dot7(wB, N, nB1);
    wA = v128.load32_splat(qA, 10); wB = v128.load32_splat(qB, 10);
    P = v128.load(px, 32); N = v128.load(px, 160);
    pA0 = dot7(wA, P, pA0); nA0 = dot7(wA, N, nA0); pB0 = dot7(wB, P, pB0); nB0 = dot7(wB, N, nB0);
    wA = v128.load32_splat(qA, 14); wB = v128.load32_splat(qB, 14);
    P = v128.load(px, 48); N = v128.load(px, 176);
    pA1 = dot7(wA, P, pA1); nA1 = dot7(wA, N, nA1); pB1 = dot7(wB, P, pB1); nB1 = dot7(wB, N, nB1);
    wA = v128.load32_splat(qA, 18); wB = v128.load32_splat(qB, 18);
    P = v128.load(px, 64); N = v128.load(px, 192);
    pA0 = dot7(wA, P, pA0); nA0 = dot7(wA, N, nA0); pB0 = dot7(wB, P, pB0); nB0 = dot7(wB, N, nB0);
    wA = v128.load32_splat(qA, 22); wB = v128.load32_splat(qB, 22);
    P = v128.load(px, 80); N = v128.load(px, 208);
    pA1 = dot7(wA, P, pA1); nA1 = dot7(wA, N, nA1); pB1 = dot7(wB, P, pB1); nB1 = dot7(wB, N, nB1);
    wA = v128.load32_splat(qA, 26); wB = v128.load32_splat(qB, 26);
    P = v128.load(px, 96); N = v128.load(px, 224);
    pA0 = dot7(wA, P, pA0); nA0 = dot7(wA, N, nA0); pB0 = dot7(wB, P, pB0); nB0 = dot7(wB, N, nB0);
    wA = v128.load32_splat(qA, 30); wB = v128.load32_splat(qB, 30);
    P = v128.load(px, 112); N = v128.load(px, 240);
    pA1 = dot7(wA, P, pA1); nA1 = dot7(wA, N, nA1); pB1 = dot7(wB, P, pB1); nB1 = dot7(wB, N, nB1);
    const dx = v128.load(pd);
    const tA = i32x4.sub(i32x4.add(pA0, pA1), i32x4.add(nA0, nA1));
    accA = chain(accA, tA, f32x4.mul(v128.load32_splat(scaleAt(qA)), dx));
    const tB = i32x4.sub(i32x4.add(pB0, pB1), i32x4.add(nB0, nB1));
    accB = chain(accB, tB, f32x4.mul(v128.load32_splat(scaleAt(qB)), dx));
    if (streaming && nextA < endA) {
      touched = v128.or(touched, v128.or(v128.load(nextA), v128.load(nextB)));
      nextA += Q8_BYTES;
      nextB += Q8_BYTES;
    }
    qA += Q8_BYTES;
    qB += Q8_BYTES;
    px += 256;
    pd += 16;
  }
  if (streaming) sink = touched;
  for (let j = 0; j < 2; j++) {
    const o = j == 0 ? oA : oB;
    if (j == 1 && oB == oA) break;
    const acc = j == 0 ? accA : accB;
    storeOut(out, bias, r, o, outDim, f32x4.extract_lane(acc, 0));
    storeOut(out, bias, r + 1, o, outDim, f32x4.extract_lane(acc, 1));
    storeOut(out, bias, r + 2, o, outDim, f32x4.extract_lane(acc, 2));
    storeOut(out, bias, r + 3, o, outDim, f32x4.extract_lane(acc, 3));
  }
}

/**
 * Row r (one of the last rows % 4, whose scales lie row after row in xd) against columns c0..c3: the activation
 * block serves the four columns.
 */
function cols4<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, r: i32, rows: i32, inDim: i32,
  outDim: i32, c0: i32, c1: i32, c2: i32, c3: i32): void {
  const nb = <usize>(inDim >> 5);
  const rowBytes = nb * blockBytes<K>();
  let q0 = w + <usize>c0 * rowBytes, q1 = w + <usize>c1 * rowBytes;
  let q2 = w + <usize>c2 * rowBytes, q3 = w + <usize>c3 * rowBytes;
  let px = xq + (<usize>r * <usize>inDim << 1);
  let pd = xd + (<usize>r * nb << 2);
  const dEnd = pd + (nb << 2);
  const sums = <usize>rows * nb << 2;
  let acc = f32x4.splat(0);
  while (pd < dEnd) {
    let dw = v128.load32_splat(scaleAt(q0));
    dw = v128.load32_lane(scaleAt(q1), dw, 1);
    dw = v128.load32_lane(scaleAt(q2), dw, 2);
    dw = v128.load32_lane(scaleAt(q3), dw, 3);
    const d = f32x4.mul(dw, v128.load32_splat(pd));
    const s0 = isum<K>(q0, px);
    sink = s0;
    const s1 = isum<K>(q1, px);
    sink = s1;
    const s2 = isum<K>(q2, px);
    sink = s2;
    let t = totals4(s0, s1, s2, isum<K>(q3, px));
    if (relaxed<K>() && !isSigned<K>()) t = i32x4.sub(t, v128.load32_splat(pd + sums)); // −8·Σx
    acc = chain(acc, t, d);
    q0 += blockBytes<K>(); q1 += blockBytes<K>(); q2 += blockBytes<K>(); q3 += blockBytes<K>();
    px += X_BYTES;
    pd += 4;
  }
  storeOut(out, bias, r, c0, outDim, f32x4.extract_lane(acc, 0));
  storeOut(out, bias, r, c1, outDim, f32x4.extract_lane(acc, 1));
  storeOut(out, bias, r, c2, outDim, f32x4.extract_lane(acc, 2));
  storeOut(out, bias, r, c3, outDim, f32x4.extract_lane(acc, 3));
}

/**
 * The share of thread tid: output columns [o0, o1) cut into 8 runs of `run` columns; a tile is one column from each
 * run (matmul.ts), so the weights stream from 8 places, and every row of the batch passes over a tile while its 8
 * weight rows are in L1/L2. xq / xd hold the activations quantized by quantizeActivations.
 */
function quantShare<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  const o0 = shareStart(outDim, 8, tid, nt);
  const o1 = shareEnd(outDim, 8, tid, nt);
  const r4 = rows & ~3;
  const run = (o1 - o0) >> 3;
  for (let j = 0; j < run; j++) {
    const c = o0 + j;
    for (let r = 0; r < r4; r += 4) {
      if (relaxed<K>() && isSigned<K>()) {
        for (let k = 0; k < 8; k += 2) rowsQ8(out, xq, xd, w, bias, r, inDim, outDim, c + k * run, c + (k + 1) * run, r == 0);
        continue;
      }
      // The first group of four rows streams the tile's weight rows (later groups find them in L2): each call
      // touches the next column's row ahead of time (the next tile's first, after the last).
      for (let k = 0; k < 8; k++) {
        const ahead = r > 0 ? -1 : k < 7 ? c + (k + 1) * run : j + 1 < run ? c + 1 : -1;
        rows4<K>(out, xq, xd, w, bias, r, rows, inDim, outDim, c + k * run, ahead);
      }
    }
    for (let r = r4; r < rows; r++) {
      cols4<K>(out, xq, xd, w, bias, r, rows, inDim, outDim, c, c + run, c + 2 * run, c + 3 * run);
      cols4<K>(out, xq, xd, w, bias, r, rows, inDim, outDim, c + 4 * run, c + 5 * run, c + 6 * run, c + 7 * run);
    }
  }
  // The fewer than 8 columns left, by the same kernels: a group of four repeats the last column where it runs out.
  for (let c = o0 + 8 * run; c < o1; c += 4) {
    const last = o1 - 1;
    for (let r = 0; r < r4; r += 4) {
      for (let o = c; o < min(c + 4, o1); o++) {
        if (relaxed<K>() && isSigned<K>()) rowsQ8(out, xq, xd, w, bias, r, inDim, outDim, o, o, false);
        else rows4<K>(out, xq, xd, w, bias, r, rows, inDim, outDim, o, -1);
      }
    }
    for (let r = r4; r < rows; r++) {
      cols4<K>(out, xq, xd, w, bias, r, rows, inDim, outDim, c, min(c + 1, last), min(c + 2, last), min(c + 3, last));
    }
  }
}

export function matmulQ8_0Share(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  quantShare<i8>(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

/** Q8_0 with the int16 dot product (the plain build's kernel), in either build; activations of kind 2. */
export function matmulQ8_0WideShare(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  quantShare<i16>(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

export function matmulQ4_0Share(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  quantShare<u8>(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}
