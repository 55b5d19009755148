// out[t][o] = (bias[o] +) Σ_i x[t][i]·w[o][i]: w is [outDim, inDim], row-major.
//
// Every output element is one accumulation chain: a 4-lane accumulator over i in steps of 4 (products added in i
// order), then finishDot (fixed horizontal reduction, scalar tail). The register-blocked 2×4 and 1×8 blocks (whole
// rows or in chunks, their accumulators kept in a per-thread scratch between chunks) and the single-output fallback
// all build exactly this chain, so an element's bits depend neither on how many rows are
// in the batch, nor on its row's place, nor on the thread count. Threads split the output columns, never i.
//
// The hot loops advance pointers and load at immediate offsets (index arithmetic in the inner loop costs ~20% in V8)
// and keep at most 8 accumulators live (x64 has 16 vector registers).
//
// Memory: a thread's columns are cut into 8 contiguous runs and a "tile" is one column from each run, so its 8
// weight rows are read as 8 long sequential streams, one per run, advancing together tile after tile. Measured here,
// one core reads 8 GB/s from one stream, 11 from two and ~15 from 4–16 long streams (a C/AVX2 read loop), and the
// prefetchers lose time on every short stream they have to pick up; 8 adjacent rows (a 24 KiB block read as 8
// interleaved 3 KiB streams) gave ~11 GB/s per thread, the 8 runs ~14. Every row of the batch passes over a tile
// while its 8 weight rows are in L1/L2, so the weights come from memory once per call.
import { finishDot, dot, shareStart, shareEnd } from './common';

// Batches of more than ROW_BLOCK rows (the drafter's training: 1,000+ rows, weights hot in L2) take another schedule:
// blocks of ROW_BLOCK rows, each passing over every tile of 8 adjacent columns while its rows stay in L1/L2, so the
// activations are not streamed again from L3 for every tile (+4–13 % at the training shapes, measured alternating
// with the plain schedule in one process). Chains are unchanged, so are the bits.
const ROW_BLOCK: i32 = 64;

@inline function storeOut(out: usize, bias: usize, r: i32, o: i32, outDim: i32, s: f32): void {
  let v = s;
  if (bias != 0) v += load<f32>(bias + (<usize>o << 2));
  store<f32>(out + ((<usize>r * <usize>outDim + <usize>o) << 2), v);
}

/** Every row against the single column o (the fewer than 8 columns a share leaves after its runs). */
function column(out: usize, x: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32, o: i32): void {
  const stride = <usize>inDim << 2;
  for (let r = 0; r < rows; r++) storeOut(out, bias, r, o, outDim, dot(x + <usize>r * stride, w + <usize>o * stride, inDim));
}

// Verification batches (2..CHUNK_ROWS rows) walk the tile in chunks of CHUNK floats of the input, every row pair passing over a chunk before the next chunk is read. With whole rows, the first pass over
// a tile streamed its weights from memory while the cached passes that followed read none, so the hardware
// prefetcher, which runs ahead only of accesses it sees, idled during those passes and the next tile's first pass
// waited on memory again: the two costs added up (8 rows ran at ~60 % of the roofline). In chunks the streams
// advance a few lines at a time all through the call, so the prefetcher keeps memory busy while the cached passes
// compute. The accumulators of all rows × 8 columns live in a per-thread scratch between chunks; a lane's chain is
// still every product in i order, so the bits are those of whole rows. One row streams its weights whole (chunking
// cannot help a single stream), and so do batches of more than CHUNK_ROWS rows, in groups of CHUNK_ROWS.
const CHUNK: i32 = 128;
const CHUNK_ROWS: i32 = 16;
/** Bytes of one thread's accumulators: CHUNK_ROWS rows × 8 columns of f32x4. */
const ACC_BYTES: usize = <usize>CHUNK_ROWS * 8 * 16;
const MAX_THREADS: i32 = 128;
const ACCUMULATORS: usize = memory.data(<i32>ACC_BYTES * MAX_THREADS, 16); // tid < CONTROL.maxThreads = 128

/**
 * Rows r, r+1 against columns oA + k·gap (k = 0..3) over inputs [i0, i1) (multiples of 4): continues the 8 chains
 * kept at acc (row-major [row][8 columns], column index c0..c0+3), or starts them when i0 is 0.
 */
@inline function chunk2x4(acc: usize, x: usize, w: usize, r: i32, inDim: i32, oA: i32, gap: i32, c0: i32,
  i0: i32, i1: i32): void {
  const stride = <usize>inDim << 2;
  const x0 = x + <usize>r * stride + (<usize>i0 << 2);
  const x1 = x0 + stride;
  const xEnd = x0 + (<usize>(i1 - i0) << 2);
  const step = <usize>gap * stride;
  const w0 = w + <usize>oA * stride + (<usize>i0 << 2);
  const w1 = w0 + step;
  const w2 = w1 + step;
  const w3 = w2 + step;
  const s0 = acc + ((<usize>r * 8 + <usize>c0) << 4);
  const s1 = s0 + 128;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  if (i0 != 0) {
    a00 = v128.load(s0); a01 = v128.load(s0, 16); a02 = v128.load(s0, 32); a03 = v128.load(s0, 48);
    a10 = v128.load(s1); a11 = v128.load(s1, 16); a12 = v128.load(s1, 32); a13 = v128.load(s1, 48);
  }
  let p0 = x0, p1 = x1, q0 = w0, q1 = w1, q2 = w2, q3 = w3;
  while (p0 < xEnd) {
    const c0v = v128.load(p0);
    const c1v = v128.load(p1);
    let b = v128.load(q0);
    a00 = f32x4.add(a00, f32x4.mul(c0v, b));
    a10 = f32x4.add(a10, f32x4.mul(c1v, b));
    b = v128.load(q1);
    a01 = f32x4.add(a01, f32x4.mul(c0v, b));
    a11 = f32x4.add(a11, f32x4.mul(c1v, b));
    b = v128.load(q2);
    a02 = f32x4.add(a02, f32x4.mul(c0v, b));
    a12 = f32x4.add(a12, f32x4.mul(c1v, b));
    b = v128.load(q3);
    a03 = f32x4.add(a03, f32x4.mul(c0v, b));
    a13 = f32x4.add(a13, f32x4.mul(c1v, b));
    p0 += 16; p1 += 16; q0 += 16; q1 += 16; q2 += 16; q3 += 16;
  }
  v128.store(s0, a00); v128.store(s0, a01, 16); v128.store(s0, a02, 32); v128.store(s0, a03, 48);
  v128.store(s1, a10); v128.store(s1, a11, 16); v128.store(s1, a12, 32); v128.store(s1, a13, 48);
}

/** Row r against the 8 columns oA + k·gap over inputs [i0, i1): 8 chains with 8 weight streams, kept at acc like chunk2x4's. */
@inline function chunk1x8(acc: usize, x: usize, w: usize, r: i32, inDim: i32, oA: i32, gap: i32, i0: i32,
  i1: i32): void {
  const stride = <usize>inDim << 2;
  const x0 = x + <usize>r * stride + (<usize>i0 << 2);
  const xEnd = x0 + (<usize>(i1 - i0) << 2);
  const step = <usize>gap * stride;
  const w0 = w + <usize>oA * stride + (<usize>i0 << 2);
  const w1 = w0 + step;
  const w2 = w1 + step;
  const w3 = w2 + step;
  const w4 = w3 + step;
  const w5 = w4 + step;
  const w6 = w5 + step;
  const w7 = w6 + step;
  const s = acc + (<usize>r << 7);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  if (i0 != 0) {
    a0 = v128.load(s); a1 = v128.load(s, 16); a2 = v128.load(s, 32); a3 = v128.load(s, 48);
    a4 = v128.load(s, 64); a5 = v128.load(s, 80); a6 = v128.load(s, 96); a7 = v128.load(s, 112);
  }
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
  v128.store(s, a0); v128.store(s, a1, 16); v128.store(s, a2, 32); v128.store(s, a3, 48);
  v128.store(s, a4, 64); v128.store(s, a5, 80); v128.store(s, a6, 96); v128.store(s, a7, 112);
}

/**
 * Rows 0..rows−1 (at most CHUNK_ROWS) against the 8 columns oA + k·gap, k = 0..7 (one tile), in chunks of `chunk`
 * inputs: per chunk, 2×4 blocks over the first four columns for every row pair, then over the last four (so the first
 * pass streams 4 weight rows at once), and a 1×8 block for an odd last row; then every chain finished. (4×2 blocks,
 * 2 weight and 4 activation loads a step, measured 7–17 % slower for 4–8 rows; one 1×8 pass first and then the rest
 * 13–20 % slower.)
 */
function tile8(acc: usize, out: usize, x: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  oA: i32, gap: i32, chunk: i32): void {
  const n4 = inDim & ~3;
  const pairs = rows & ~1;
  for (let i0 = 0; i0 < n4; i0 += chunk) {
    const i1 = min(i0 + chunk, n4);
    for (let r = 0; r < pairs; r += 2) chunk2x4(acc, x, w, r, inDim, oA, gap, 0, i0, i1);
    for (let r = 0; r < pairs; r += 2) chunk2x4(acc, x, w, r, inDim, oA + 4 * gap, gap, 4, i0, i1);
    if (pairs < rows) chunk1x8(acc, x, w, pairs, inDim, oA, gap, i0, i1);
  }
  const stride = <usize>inDim << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * stride;
    for (let c = 0; c < 8; c++) {
      const o = oA + c * gap;
      const a = n4 > 0 ? v128.load(acc + ((<usize>r * 8 + <usize>c) << 4)) : f32x4.splat(0);
      storeOut(out, bias, r, o, outDim, finishDot(a, xr, w + <usize>o * stride, n4, inDim));
    }
  }
}

/** The share of thread tid: output columns [o0, o1) as 8 runs of `run` columns, tile by tile, then the rest. */
export function matmulShare(out: usize, x: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  const o0 = shareStart(outDim, 8, tid, nt);
  const o1 = shareEnd(outDim, 8, tid, nt);
  const run = (o1 - o0) >> 3;
  const stride = <usize>inDim << 2;
  const outStride = <usize>outDim << 2;
  const acc = ACCUMULATORS + <usize>tid * ACC_BYTES;
  // One row streams its weights whole; verification batches go in chunks (above); larger batches pass whole rows in
  // groups of CHUNK_ROWS rows (the accumulators' room), which is the same memory schedule.
  const chunk = rows >= 2 && rows <= CHUNK_ROWS ? CHUNK : inDim;
  if (rows <= ROW_BLOCK) {
    for (let j = 0; j < run; j++) {
      for (let r0 = 0; r0 < rows; r0 += CHUNK_ROWS) {
        tile8(acc, out + <usize>r0 * outStride, x + <usize>r0 * stride, w, bias, min(CHUNK_ROWS, rows - r0), inDim,
          outDim, o0 + j, run, chunk);
      }
    }
    for (let o = o0 + 8 * run; o < o1; o++) column(out, x, w, bias, rows, inDim, outDim, o);
    return;
  }
  for (let r0 = 0; r0 < rows; r0 += ROW_BLOCK) {
    const n = min(ROW_BLOCK, rows - r0);
    const xb = x + <usize>r0 * stride;
    const ob = out + <usize>r0 * outStride;
    for (let j = 0; j < run; j++) {
      for (let g = 0; g < n; g += CHUNK_ROWS) {
        tile8(acc, ob + <usize>g * outStride, xb + <usize>g * stride, w, bias, min(CHUNK_ROWS, n - g), inDim, outDim,
          o0 + 8 * j, 1, chunk);
      }
    }
    for (let o = o0 + 8 * run; o < o1; o++) column(ob, xb, w, bias, n, inDim, outDim, o);
  }
}
