// Quantized matmul: out[t][o] = (bias[o] +) Σ_i x[t][i]·w[o][i] with w in GGML block layout (ggml-common.h), rows
// of inDim/32 blocks stored back to back:
//   Q8_0  34 bytes: f16 d, int8 q[32]                 w = d·q
//   Q4_0  18 bytes: f16 d, uint8 qs[16]               w[j] = d·((qs[j] & 15) − 8), w[j+16] = d·((qs[j] >> 4) − 8)
// As in llama.cpp, the activations are quantized too, per 32-block (quantizeActivations, once per call per row, on
// the calling thread): dx = max|x|/127 rounded to f16, qx = round-half-even(x·127/max|x|), kept as int16 so that no
// kernel has to widen them again.
//
// Every output element is one chain: a 4-lane f32 accumulator, and for each block b in order
//   acc += f32(isum_b) · (dw_b · dx_b)
// where isum_b is the block's exact integer dot product as an i32x4 whose lane j holds the products of elements
// {2j, 2j+1} of each 8-element group. Integer sums are exact, so how a kernel forms isum_b (alone, or sharing the
// widened weights with other rows) cannot change it; the f32 operations are the same everywhere. Then the fixed
// horizontal reduction (common.ts hsum) and the bias. Hence an element's bits depend neither on the rows in the
// batch, nor on its row's place, nor on the thread count (architecture.md, invariant 1).
//
// The hot loops advance pointers and load at immediate offsets (see matmul.ts), read block scales through a table,
// and retire one column's arithmetic before loading the next (`sink`), so that V8 keeps few vectors live. Checked
// in the generated code: no extract_lane / replace_lane in the matmul loops (quantizeActivations takes one
// horizontal max per block).
import { hsum, shareStart, shareEnd } from './common';

/** Bytes of a Q8_0 / Q4_0 block. */
const Q8_BYTES: usize = 34;
const Q4_BYTES: usize = 18;
/** Bytes of one quantized activation block: 32 int16. */
const X_BYTES: usize = 64;
// Output columns per tile: every row of the batch passes over a tile's weights while they are in L1/L2.
const TILE: i32 = 16;

/**
 * A store target that pins V8's instruction order. V8 keeps loads in program order but places arithmetic as late as
 * it can, so a loop body that loads the weights of four columns would hold all sixteen widened vectors until the end
 * and spill. Writing each column's new accumulator here (a store, which stays in program order, and needs the
 * arithmetic done) retires one column before the next one's loads: measured 5-13% faster (rows1, rows4). Each
 * thread has its own instance, hence its own global.
 */
let sink: v128 = i32x4.splat(0);

/** Reads `sink`, so that Binaryen keeps the stores to it. */
export function quantSink(): i32 {
  return i32x4.extract_lane(sink, 0);
}

// Type markers of the generic kernels below: i8 = Q8_0, u8 = Q4_0 (resolved at compile time by isSigned<K>()).

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

/** The f16 scale at q as f32 (ggml's GGML_FP16_TO_FP32). */
@inline function scale(q: usize): f32 {
  return load<f32>(HALF_TABLE + (<usize>load<u16>(q) << 2));
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
 * and f32 scales to xd ([rows, inDim/32]). llama.cpp's quantize_row_q8_0 (x86 path): d = amax/127 stored as f16,
 * q = nearest(x · (127/amax)) (from the unrounded scale), all 0 when amax is 0. Keeping d at f16 precision costs
 * nothing measurable (a relative 2^-11 on the scale against 2^-8 of rounding to int8) and makes our products
 * llama.cpp's to the last bits but summation order: on GGUF files with one group of Q8_0 matrices, logits agree
 * with llama.cpp's to 2e-6 (as F32 files do) instead of 3e-3 with an f32 d.
 */
export function quantizeActivations(x: usize, xq: usize, xd: usize, rows: i32, inDim: i32): void {
  const blocks = <usize>rows * <usize>(inDim >> 5);
  let p = x, q = xq, d = xd;
  const end = xd + (blocks << 2);
  while (d < end) {
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
    // pmax: a plain compare (max keeps NaN semantics at 6 extra instructions per lane group).
    const m = f32x4.pmax(f32x4.pmax(f32x4.pmax(f32x4.abs(v0), f32x4.abs(v1)), f32x4.pmax(f32x4.abs(v2), f32x4.abs(v3))),
      f32x4.pmax(f32x4.pmax(f32x4.abs(v4), f32x4.abs(v5)), f32x4.pmax(f32x4.abs(v6), f32x4.abs(v7))));
    const amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)),
      max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    store<f32>(d, roundToHalf(amax / <f32>127.0));
    const s = f32x4.splat(amax != 0 ? <f32>127.0 / amax : <f32>0.0);
    v128.store(q, i16x8.narrow_i32x4_s(roundScaled(v0, s), roundScaled(v1, s)));
    v128.store(q, i16x8.narrow_i32x4_s(roundScaled(v2, s), roundScaled(v3, s)), 16);
    v128.store(q, i16x8.narrow_i32x4_s(roundScaled(v4, s), roundScaled(v5, s)), 32);
    v128.store(q, i16x8.narrow_i32x4_s(roundScaled(v6, s), roundScaled(v7, s)), 48);
    p += 128;
    q += X_BYTES;
    d += 4;
  }
}

@inline function roundScaled(v: v128, s: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v, s)));
}

/**
 * Q8_0: the integer dot product of the block at q with the activation block at px. The weights widen as they load
 * (load8x8_s is one pmovsxbw from memory; extend_high of a 16-byte load would add a shuffle).
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

@inline function isum<K>(q: usize, px: usize): v128 {
  return isSigned<K>() ? isumQ8(q, px) : isumQ4(q, px);
}

/** acc + f32(s) · d with d = dw · dx: the one f32 step of every block, in every kernel. */
@inline function step(acc: v128, s: v128, d: f32): v128 {
  return f32x4.add(acc, f32x4.mul(f32x4.convert_i32x4_s(s), f32x4.splat(d)));
}

@inline function storeOut(out: usize, bias: usize, r: i32, o: i32, outDim: i32, acc: v128): void {
  let v = hsum(acc);
  if (bias != 0) v += load<f32>(bias + (<usize>o << 2));
  store<f32>(out + ((<usize>r * <usize>outDim + <usize>o) << 2), v);
}

/**
 * Rows r..r+3 against output columns [oStart, oEnd), one column at a time: each weight block is widened once and
 * serves the four rows (tree verification and prefill). 4 widened weight vectors + 4 accumulators live.
 */
function rows4<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32,
  oStart: i32, oEnd: i32): void {
  const nb = <usize>(inDim >> 5);
  const rowBytes = nb * blockBytes<K>();
  const xStride = <usize>inDim << 1;
  const dStride = nb << 2;
  const x0 = xq + <usize>r * xStride;
  const d0 = xd + <usize>r * dStride;
  const dEnd = d0 + dStride;
  for (let o = oStart; o < oEnd; o++) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let q = w + <usize>o * rowBytes;
    let px = x0;
    let pd = d0;
    while (pd < dEnd) {
      const dw = scale(q); // before the vector loads (see rows1)
      const e0 = dw * load<f32>(pd), e1 = dw * load<f32>(pd + dStride);
      const e2 = dw * load<f32>(pd + 2 * dStride), e3 = dw * load<f32>(pd + 3 * dStride);
      let w0: v128, w1: v128, w2: v128, w3: v128;
      if (isSigned<K>()) {
        w0 = v128.load8x8_s(q, 2);
        w1 = v128.load8x8_s(q, 10);
        w2 = v128.load8x8_s(q, 18);
        w3 = v128.load8x8_s(q, 26);
      } else {
        const e0 = v128.load8x8_u(q, 2);
        const e1 = v128.load8x8_u(q, 10);
        const mask = i16x8.splat(15);
        const eight = i16x8.splat(8);
        w0 = i16x8.sub(v128.and(e0, mask), eight);
        w1 = i16x8.sub(v128.and(e1, mask), eight);
        w2 = i16x8.sub(i16x8.shr_u(e0, 4), eight);
        w3 = i16x8.sub(i16x8.shr_u(e1, 4), eight);
      }
      let p = px;
      let s = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(p)), i32x4.dot_i16x8_s(w1, v128.load(p, 16))),
        i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(p, 32)), i32x4.dot_i16x8_s(w3, v128.load(p, 48))));
      a0 = step(a0, s, e0);
      sink = a0;
      p += xStride;
      s = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(p)), i32x4.dot_i16x8_s(w1, v128.load(p, 16))),
        i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(p, 32)), i32x4.dot_i16x8_s(w3, v128.load(p, 48))));
      a1 = step(a1, s, e1);
      sink = a1;
      p += xStride;
      s = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(p)), i32x4.dot_i16x8_s(w1, v128.load(p, 16))),
        i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(p, 32)), i32x4.dot_i16x8_s(w3, v128.load(p, 48))));
      a2 = step(a2, s, e2);
      sink = a2;
      p += xStride;
      s = i32x4.add(i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(p)), i32x4.dot_i16x8_s(w1, v128.load(p, 16))),
        i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(p, 32)), i32x4.dot_i16x8_s(w3, v128.load(p, 48))));
      a3 = step(a3, s, e3);
      q += blockBytes<K>();
      px += X_BYTES;
      pd += 4;
    }
    storeOut(out, bias, r, o, outDim, a0);
    storeOut(out, bias, r + 1, o, outDim, a1);
    storeOut(out, bias, r + 2, o, outDim, a2);
    storeOut(out, bias, r + 3, o, outDim, a3);
  }
}

/**
 * Row r against output columns [oStart, oEnd): groups of columns far apart (see below), then one at a time. The
 * activation block is loaded once per block for the group.
 */
function rows1<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32,
  oStart: i32, oEnd: i32): void {
  const nb = <usize>(inDim >> 5);
  const rowBytes = nb * blockBytes<K>();
  const x0 = xq + (<usize>r * <usize>inDim << 1);
  const d0 = xd + (<usize>r * nb << 2);
  const dEnd = d0 + (nb << 2);
  let o = oStart;
  // Columns far apart, (o, o + span, ...): their weight rows stream from different pages, which keeps more cache
  // misses in flight than neighbouring rows (one sequential stream); measured +30-40% on cold Q8_0 weights. Four
  // streams for Q8_0; Q4_0, compute-bound, keeps two (four spill its nibble-unpacking registers).
  if (isSigned<K>()) {
    const quarter = (oEnd - o) >> 2;
    for (let p = 0; p < quarter; p++) {
      const c0 = o + p, c1 = c0 + quarter, c2 = c1 + quarter, c3 = c2 + quarter;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let q0 = w + <usize>c0 * rowBytes, q1 = w + <usize>c1 * rowBytes;
      let q2 = w + <usize>c2 * rowBytes, q3 = w + <usize>c3 * rowBytes;
      let px = x0;
      let pd = d0;
      while (pd < dEnd) {
        const dx = load<f32>(pd);
        a0 = step(a0, isum<K>(q0, px), scale(q0) * dx);
        sink = a0;
        a1 = step(a1, isum<K>(q1, px), scale(q1) * dx);
        sink = a1;
        a2 = step(a2, isum<K>(q2, px), scale(q2) * dx);
        sink = a2;
        a3 = step(a3, isum<K>(q3, px), scale(q3) * dx);
        q0 += blockBytes<K>(); q1 += blockBytes<K>(); q2 += blockBytes<K>(); q3 += blockBytes<K>();
        px += X_BYTES;
        pd += 4;
      }
      storeOut(out, bias, r, c0, outDim, a0);
      storeOut(out, bias, r, c1, outDim, a1);
      storeOut(out, bias, r, c2, outDim, a2);
      storeOut(out, bias, r, c3, outDim, a3);
    }
    o += 4 * quarter;
  } else {
    const half = (oEnd - o) >> 1;
    for (let p = 0; p < half; p++) {
      const c0 = o + p, c1 = o + p + half;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
      let q0 = w + <usize>c0 * rowBytes;
      let q1 = w + <usize>c1 * rowBytes;
      let px = x0;
      let pd = d0;
      while (pd < dEnd) {
        const dx = load<f32>(pd);
        a0 = step(a0, isum<K>(q0, px), scale(q0) * dx);
        a1 = step(a1, isum<K>(q1, px), scale(q1) * dx);
        q0 += blockBytes<K>(); q1 += blockBytes<K>();
        px += X_BYTES;
        pd += 4;
      }
      storeOut(out, bias, r, c0, outDim, a0);
      storeOut(out, bias, r, c1, outDim, a1);
    }
    o += 2 * half;
  }
  for (; o < oEnd; o++) {
    let a = f32x4.splat(0);
    let q = w + <usize>o * rowBytes;
    let px = x0;
    let pd = d0;
    while (pd < dEnd) {
      const d = scale(q) * load<f32>(pd);
      a = step(a, isum<K>(q, px), d);
      q += blockBytes<K>();
      px += X_BYTES;
      pd += 4;
    }
    storeOut(out, bias, r, o, outDim, a);
  }
}

/**
 * The share of thread tid: output columns [o0, o1), tile by tile, every row of the batch per tile. xq / xd hold the
 * activations quantized by quantizeActivations.
 */
function quantShare<K>(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  const o0 = shareStart(outDim, 8, tid, nt);
  const o1 = shareEnd(outDim, 8, tid, nt);
  // One row reuses nothing across tiles: its pairs of columns (rows1) may as well be the whole share apart.
  if (rows == 1) {
    rows1<K>(out, xq, xd, w, bias, 0, inDim, outDim, o0, o1);
    return;
  }
  for (let t = o0; t < o1; t += TILE) {
    const te = min(t + TILE, o1);
    let r = 0;
    for (; r + 4 <= rows; r += 4) rows4<K>(out, xq, xd, w, bias, r, inDim, outDim, t, te);
    for (; r < rows; r++) rows1<K>(out, xq, xd, w, bias, r, inDim, outDim, t, te);
  }
}

export function matmulQ8_0Share(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  quantShare<i8>(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

export function matmulQ4_0Share(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  quantShare<u8>(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}
