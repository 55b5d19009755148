// out[t][o] = (bias[o] +) Σ_i x[t][i]·w[o][i]: w is [outDim, inDim], row-major.
//
// Every output element is one accumulation chain: a 4-lane accumulator over i in steps of 4 (products added in i
// order), then finishDot (fixed horizontal reduction, scalar tail). The register-blocked 4-row and 2-row kernels, the
// 1-row kernel and the single-output fallback all build exactly this chain, so an element's bits depend neither on how many
// rows are in the batch, nor on its row's place, nor on the thread count. Threads split the output columns, never i.
//
// The hot loops advance pointers and load at immediate offsets (index arithmetic in the inner loop costs ~20% in V8)
// and keep at most 8 accumulators live (x64 has 16 vector registers).
import { finishDot, dot, shareStart, shareEnd } from './common';

// Output columns per tile: a tile of weight rows (TILE · inDim floats) is reused from L1/L2 by every row of the
// batch before the next tile is read, so the weights stream from memory once per call.
const TILE: i32 = 16;

@inline function storeOut(out: usize, bias: usize, r: i32, o: i32, outDim: i32, s: f32): void {
  let v = s;
  if (bias != 0) v += load<f32>(bias + (<usize>o << 2));
  store<f32>(out + ((<usize>r * <usize>outDim + <usize>o) << 2), v);
}

/** Rows r..r+3 against output columns [o, oEnd): 4×2 blocks (8 accumulators), then a 4×1 block if one is left. */
function rows4(out: usize, x: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32, oStart: i32, oEnd: i32): void {
  const n4 = inDim & ~3;
  const stride = <usize>inDim << 2;
  const x0 = x + <usize>r * stride;
  const x1 = x0 + stride;
  const x2 = x1 + stride;
  const x3 = x2 + stride;
  let o = oStart;
  // Not unrolled: Binaryen would hoist the second step's loads, and V8 then spills accumulators.
  for (; o + 2 <= oEnd; o += 2) {
    const w0 = w + <usize>o * stride;
    const w1 = w0 + stride;
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0);
    let a30 = f32x4.splat(0), a31 = f32x4.splat(0);
    let p0 = x0, p1 = x1, p2 = x2, p3 = x3, q0 = w0, q1 = w1;
    const qEnd = w0 + (<usize>n4 << 2);
    while (q0 < qEnd) {
      const b0 = v128.load(q0);
      const b1 = v128.load(q1);
      let a = v128.load(p0);
      a00 = f32x4.add(a00, f32x4.mul(a, b0));
      a01 = f32x4.add(a01, f32x4.mul(a, b1));
      a = v128.load(p1);
      a10 = f32x4.add(a10, f32x4.mul(a, b0));
      a11 = f32x4.add(a11, f32x4.mul(a, b1));
      a = v128.load(p2);
      a20 = f32x4.add(a20, f32x4.mul(a, b0));
      a21 = f32x4.add(a21, f32x4.mul(a, b1));
      a = v128.load(p3);
      a30 = f32x4.add(a30, f32x4.mul(a, b0));
      a31 = f32x4.add(a31, f32x4.mul(a, b1));
      p0 += 16; p1 += 16; p2 += 16; p3 += 16; q0 += 16; q1 += 16;
    }
    storeOut(out, bias, r, o, outDim, finishDot(a00, x0, w0, n4, inDim));
    storeOut(out, bias, r, o + 1, outDim, finishDot(a01, x0, w1, n4, inDim));
    storeOut(out, bias, r + 1, o, outDim, finishDot(a10, x1, w0, n4, inDim));
    storeOut(out, bias, r + 1, o + 1, outDim, finishDot(a11, x1, w1, n4, inDim));
    storeOut(out, bias, r + 2, o, outDim, finishDot(a20, x2, w0, n4, inDim));
    storeOut(out, bias, r + 2, o + 1, outDim, finishDot(a21, x2, w1, n4, inDim));
    storeOut(out, bias, r + 3, o, outDim, finishDot(a30, x3, w0, n4, inDim));
    storeOut(out, bias, r + 3, o + 1, outDim, finishDot(a31, x3, w1, n4, inDim));
  }
  if (o < oEnd) {
    const w0 = w + <usize>o * stride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let p0 = x0, p1 = x1, p2 = x2, p3 = x3, q0 = w0;
    const qEnd = w0 + (<usize>n4 << 2);
    while (q0 < qEnd) {
      const b = v128.load(q0);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(p0), b));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(p1), b));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(p2), b));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(p3), b));
      p0 += 16; p1 += 16; p2 += 16; p3 += 16; q0 += 16;
    }
    storeOut(out, bias, r, o, outDim, finishDot(a0, x0, w0, n4, inDim));
    storeOut(out, bias, r + 1, o, outDim, finishDot(a1, x1, w0, n4, inDim));
    storeOut(out, bias, r + 2, o, outDim, finishDot(a2, x2, w0, n4, inDim));
    storeOut(out, bias, r + 3, o, outDim, finishDot(a3, x3, w0, n4, inDim));
  }
}

/** Rows r, r+1 against output columns [o, oEnd): 2×4 blocks (8 accumulators), then rows1 for what is left. */
function rows2(out: usize, x: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32, oStart: i32, oEnd: i32): void {
  const n4 = inDim & ~3;
  const stride = <usize>inDim << 2;
  const x0 = x + <usize>r * stride;
  const x1 = x0 + stride;
  const xEnd = x0 + (<usize>n4 << 2);
  let o = oStart;
  for (; o + 4 <= oEnd; o += 4) {
    const w0 = w + <usize>o * stride;
    const w1 = w0 + stride;
    const w2 = w1 + stride;
    const w3 = w2 + stride;
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let p0 = x0, p1 = x1, q0 = w0, q1 = w1, q2 = w2, q3 = w3;
    while (p0 < xEnd) {
      const c0 = v128.load(p0);
      const c1 = v128.load(p1);
      let b = v128.load(q0);
      a00 = f32x4.add(a00, f32x4.mul(c0, b));
      a10 = f32x4.add(a10, f32x4.mul(c1, b));
      b = v128.load(q1);
      a01 = f32x4.add(a01, f32x4.mul(c0, b));
      a11 = f32x4.add(a11, f32x4.mul(c1, b));
      b = v128.load(q2);
      a02 = f32x4.add(a02, f32x4.mul(c0, b));
      a12 = f32x4.add(a12, f32x4.mul(c1, b));
      b = v128.load(q3);
      a03 = f32x4.add(a03, f32x4.mul(c0, b));
      a13 = f32x4.add(a13, f32x4.mul(c1, b));
      p0 += 16; p1 += 16; q0 += 16; q1 += 16; q2 += 16; q3 += 16;
    }
    storeOut(out, bias, r, o, outDim, finishDot(a00, x0, w0, n4, inDim));
    storeOut(out, bias, r, o + 1, outDim, finishDot(a01, x0, w1, n4, inDim));
    storeOut(out, bias, r, o + 2, outDim, finishDot(a02, x0, w2, n4, inDim));
    storeOut(out, bias, r, o + 3, outDim, finishDot(a03, x0, w3, n4, inDim));
    storeOut(out, bias, r + 1, o, outDim, finishDot(a10, x1, w0, n4, inDim));
    storeOut(out, bias, r + 1, o + 1, outDim, finishDot(a11, x1, w1, n4, inDim));
    storeOut(out, bias, r + 1, o + 2, outDim, finishDot(a12, x1, w2, n4, inDim));
    storeOut(out, bias, r + 1, o + 3, outDim, finishDot(a13, x1, w3, n4, inDim));
  }
  if (o < oEnd) {
    rows1(out, x, w, bias, r, inDim, outDim, o, oEnd);
    rows1(out, x, w, bias, r + 1, inDim, outDim, o, oEnd);
  }
}

/**
 * Row r against output columns [o, oEnd): 1×8 blocks, then 1×4, then single outputs. One row is memory bound:
 * eight weight rows streamed at once keep more misses in flight than four (~+30% measured on cold weights).
 */
function rows1(out: usize, x: usize, w: usize, bias: usize, r: i32, inDim: i32, outDim: i32, oStart: i32, oEnd: i32): void {
  const n4 = inDim & ~3;
  const stride = <usize>inDim << 2;
  const x0 = x + <usize>r * stride;
  const xEnd = x0 + (<usize>n4 << 2);
  let o = oStart;
  for (; o + 8 <= oEnd; o += 8) {
    const w0 = w + <usize>o * stride;
    const w1 = w0 + stride;
    const w2 = w1 + stride;
    const w3 = w2 + stride;
    const w4 = w3 + stride;
    const w5 = w4 + stride;
    const w6 = w5 + stride;
    const w7 = w6 + stride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
    let p = x0, q0 = w0, q1 = w1, q2 = w2, q3 = w3, q4 = w4, q5 = w5, q6 = w6, q7 = w7;
    while (p < xEnd) {
      const a = v128.load(p);
      a0 = f32x4.add(a0, f32x4.mul(a, v128.load(q0)));
      a1 = f32x4.add(a1, f32x4.mul(a, v128.load(q1)));
      a2 = f32x4.add(a2, f32x4.mul(a, v128.load(q2)));
      a3 = f32x4.add(a3, f32x4.mul(a, v128.load(q3)));
      a4 = f32x4.add(a4, f32x4.mul(a, v128.load(q4)));
      a5 = f32x4.add(a5, f32x4.mul(a, v128.load(q5)));
      a6 = f32x4.add(a6, f32x4.mul(a, v128.load(q6)));
      a7 = f32x4.add(a7, f32x4.mul(a, v128.load(q7)));
      p += 16; q0 += 16; q1 += 16; q2 += 16; q3 += 16; q4 += 16; q5 += 16; q6 += 16; q7 += 16;
    }
    storeOut(out, bias, r, o, outDim, finishDot(a0, x0, w0, n4, inDim));
    storeOut(out, bias, r, o + 1, outDim, finishDot(a1, x0, w1, n4, inDim));
    storeOut(out, bias, r, o + 2, outDim, finishDot(a2, x0, w2, n4, inDim));
    storeOut(out, bias, r, o + 3, outDim, finishDot(a3, x0, w3, n4, inDim));
    storeOut(out, bias, r, o + 4, outDim, finishDot(a4, x0, w4, n4, inDim));
    storeOut(out, bias, r, o + 5, outDim, finishDot(a5, x0, w5, n4, inDim));
    storeOut(out, bias, r, o + 6, outDim, finishDot(a6, x0, w6, n4, inDim));
    storeOut(out, bias, r, o + 7, outDim, finishDot(a7, x0, w7, n4, inDim));
  }
  for (; o + 4 <= oEnd; o += 4) {
    const w0 = w + <usize>o * stride;
    const w1 = w0 + stride;
    const w2 = w1 + stride;
    const w3 = w2 + stride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let p = x0, q0 = w0, q1 = w1, q2 = w2, q3 = w3;
    while (p < xEnd) {
      const a = v128.load(p);
      a0 = f32x4.add(a0, f32x4.mul(a, v128.load(q0)));
      a1 = f32x4.add(a1, f32x4.mul(a, v128.load(q1)));
      a2 = f32x4.add(a2, f32x4.mul(a, v128.load(q2)));
      a3 = f32x4.add(a3, f32x4.mul(a, v128.load(q3)));
      p += 16; q0 += 16; q1 += 16; q2 += 16; q3 += 16;
    }
    storeOut(out, bias, r, o, outDim, finishDot(a0, x0, w0, n4, inDim));
    storeOut(out, bias, r, o + 1, outDim, finishDot(a1, x0, w1, n4, inDim));
    storeOut(out, bias, r, o + 2, outDim, finishDot(a2, x0, w2, n4, inDim));
    storeOut(out, bias, r, o + 3, outDim, finishDot(a3, x0, w3, n4, inDim));
  }
  for (; o < oEnd; o++) storeOut(out, bias, r, o, outDim, dot(x0, w + <usize>o * stride, inDim));
}

/** The share of thread tid: output columns [o0, o1), tile by tile, every row of the batch per tile. */
export function matmulShare(out: usize, x: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  const o0 = shareStart(outDim, 8, tid, nt);
  const o1 = shareEnd(outDim, 8, tid, nt);
  for (let t = o0; t < o1; t += TILE) {
    const te = min(t + TILE, o1);
    let r = 0;
    for (; r + 4 <= rows; r += 4) rows4(out, x, w, bias, r, inDim, outDim, t, te);
    if (r + 2 <= rows) {
      rows2(out, x, w, bias, r, inDim, outDim, t, te);
      r += 2;
    }
    if (r < rows) rows1(out, x, w, bias, r, inDim, outDim, t, te);
  }
}
