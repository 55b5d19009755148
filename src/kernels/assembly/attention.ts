// Attention over explicit key lists (types.ts: QUERY_RECORD_INTS). For each (query, head) pair: the scores of the
// query's keys in list order go to a contiguous per-thread scratch row, then softmax over that row, then
// out = Σ_j p_j · v_j accumulated in list order. A key's score and its contribution are computed by the same code
// whether its slot came from the prefix range or from the extra-slot list, so a token reached either way (cache
// prefix in autoregressive decoding, ancestor slot in tree verification) gives the same bits. A paged cache (the
// engine's KV pool) gives its prefix through a slot table instead of as a contiguous range: the same code again, only
// the address of prefix key j comes from table[j].
//
// Speed without changing a bit: keys are handled four at a time for instruction-level parallelism, and queries
// that share a cache (tree verification, prefill) are handled four at a time over their common prefix, so that each
// key and value vector loaded serves four queries. Every key's score is still the one chain of common.ts `dot`, and
// every output element still receives p_0·v_0, p_1·v_1, ... added one after the other in list order.
import { dot, finishDot, softmaxRow, shareStart, shareEnd } from './common';

/** Scores of four keys: four independent copies of the `dot` chain, scaled, stored at s[0..3]. */
@inline function score4(s: usize, q: usize, k0: usize, k1: usize, k2: usize, k3: usize, n: i32, scale: f32): void {
  const n4 = n & ~3;
  const qEnd = q + (<usize>n4 << 2);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let p = q, p0 = k0, p1 = k1, p2 = k2, p3 = k3;
  while (p < qEnd) {
    const qv = v128.load(p);
    a0 = f32x4.add(a0, f32x4.mul(qv, v128.load(p0)));
    a1 = f32x4.add(a1, f32x4.mul(qv, v128.load(p1)));
    a2 = f32x4.add(a2, f32x4.mul(qv, v128.load(p2)));
    a3 = f32x4.add(a3, f32x4.mul(qv, v128.load(p3)));
    p += 16; p0 += 16; p1 += 16; p2 += 16; p3 += 16;
  }
  store<f32>(s, finishDot(a0, q, k0, n4, n) * scale);
  store<f32>(s, finishDot(a1, q, k1, n4, n) * scale, 4);
  store<f32>(s, finishDot(a2, q, k2, n4, n) * scale, 8);
  store<f32>(s, finishDot(a3, q, k3, n4, n) * scale, 12);
}

/** out[d] += p0·v0[d], then += p1·v1[d], ... p3·v3[d]: per element the same adds, in the same order, as one at a time. */
@inline function accumulate4(out: usize, v0: usize, v1: usize, v2: usize, v3: usize, s: usize, n: i32): void {
  const n4 = n & ~3;
  const p0 = load<f32>(s), p1 = load<f32>(s, 4), p2 = load<f32>(s, 8), p3 = load<f32>(s, 12);
  const pv0 = f32x4.splat(p0), pv1 = f32x4.splat(p1), pv2 = f32x4.splat(p2), pv3 = f32x4.splat(p3);
  const end4 = out + (<usize>n4 << 2);
  const end = out + (<usize>n << 2);
  let o = out, q0 = v0, q1 = v1, q2 = v2, q3 = v3;
  for (; o < end4; o += 16) {
    let acc = v128.load(o);
    acc = f32x4.add(acc, f32x4.mul(pv0, v128.load(q0)));
    acc = f32x4.add(acc, f32x4.mul(pv1, v128.load(q1)));
    acc = f32x4.add(acc, f32x4.mul(pv2, v128.load(q2)));
    acc = f32x4.add(acc, f32x4.mul(pv3, v128.load(q3)));
    v128.store(o, acc);
    q0 += 16; q1 += 16; q2 += 16; q3 += 16;
  }
  for (; o < end; o += 4) {
    let acc = load<f32>(o);
    acc += p0 * load<f32>(q0);
    acc += p1 * load<f32>(q1);
    acc += p2 * load<f32>(q2);
    acc += p3 * load<f32>(q3);
    store<f32>(o, acc);
    q0 += 4; q1 += 4; q2 += 4; q3 += 4;
  }
}

/** out[d] += p·v[d] for d < n; per element the same mul then add in the vector body and in the tail. */
@inline function accumulate1(out: usize, v: usize, p: f32, n: i32): void {
  const n4 = n & ~3;
  const pv = f32x4.splat(p);
  const end4 = out + (<usize>n4 << 2);
  const end = out + (<usize>n << 2);
  let o = out;
  let q = v;
  for (; o < end4; o += 16, q += 16) v128.store(o, f32x4.add(v128.load(o), f32x4.mul(pv, v128.load(q))));
  for (; o < end; o += 4, q += 4) store<f32>(o, load<f32>(o) + p * load<f32>(q));
}

/** Address of prefix key j: slot j of a contiguous cache (table 0), else the slot a paged cache's table gives. */
@inline function prefixAddress(base: usize, slotBytes: usize, table: usize, j: i32): usize {
  const slot = table == 0 ? <usize>j : <usize>load<u32>(table + (<usize>j << 2));
  return base + slot * slotBytes;
}

/** Address of key j of a query's list: prefix slot j for j < prefix, else the listed extra slot. */
@inline function keyAddress(base: usize, slotBytes: usize, table: usize, prefix: i32, extra: usize, j: i32): usize {
  if (j < prefix) return prefixAddress(base, slotBytes, table, j);
  return base + <usize>load<u32>(extra + (<usize>(j - prefix) << 2)) * slotBytes;
}

/** Scores of keys from..to-1 of one query's list into s[j], four keys at a time, then one at a time. */
function scoreRange(s: usize, qh: usize, kBase: usize, slotBytes: usize, table: usize, prefix: i32, extra: usize,
  from: i32, to: i32, headDim: i32, scale: f32): void {
  let j = from;
  for (; j + 4 <= to; j += 4) {
    score4(s + (<usize>j << 2), qh,
      keyAddress(kBase, slotBytes, table, prefix, extra, j), keyAddress(kBase, slotBytes, table, prefix, extra, j + 1),
      keyAddress(kBase, slotBytes, table, prefix, extra, j + 2), keyAddress(kBase, slotBytes, table, prefix, extra, j + 3),
      headDim, scale);
  }
  for (; j < to; j++) {
    store<f32>(s + (<usize>j << 2), dot(qh, keyAddress(kBase, slotBytes, table, prefix, extra, j), headDim) * scale);
  }
}

/** out += p_j · v_j for keys from..to-1 of one query's list, in order. */
function accumulateRange(oh: usize, s: usize, vBase: usize, slotBytes: usize, table: usize, prefix: i32, extra: usize,
  from: i32, to: i32, headDim: i32): void {
  let j = from;
  for (; j + 4 <= to; j += 4) {
    accumulate4(oh,
      keyAddress(vBase, slotBytes, table, prefix, extra, j), keyAddress(vBase, slotBytes, table, prefix, extra, j + 1),
      keyAddress(vBase, slotBytes, table, prefix, extra, j + 2), keyAddress(vBase, slotBytes, table, prefix, extra, j + 3),
      s + (<usize>j << 2), headDim);
  }
  for (; j < to; j++) {
    accumulate1(oh, keyAddress(vBase, slotBytes, table, prefix, extra, j), load<f32>(s + (<usize>j << 2)), headDim);
  }
}

/** Scores of two keys for four queries: eight copies of the `dot` chain sharing the key loads (like matmul's 4×2). */
function score4x2(s0: usize, s1: usize, s2: usize, s3: usize, q0: usize, q1: usize, q2: usize, q3: usize,
  k0: usize, k1: usize, n: i32, scale: f32): void {
  const n4 = n & ~3;
  const kEnd = k0 + (<usize>n4 << 2);
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  let p0 = q0, p1 = q1, p2 = q2, p3 = q3, c0 = k0, c1 = k1;
  while (c0 < kEnd) {
    const b0 = v128.load(c0);
    const b1 = v128.load(c1);
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
    p0 += 16; p1 += 16; p2 += 16; p3 += 16; c0 += 16; c1 += 16;
  }
  store<f32>(s0, finishDot(a00, q0, k0, n4, n) * scale);
  store<f32>(s0, finishDot(a01, q0, k1, n4, n) * scale, 4);
  store<f32>(s1, finishDot(a10, q1, k0, n4, n) * scale);
  store<f32>(s1, finishDot(a11, q1, k1, n4, n) * scale, 4);
  store<f32>(s2, finishDot(a20, q2, k0, n4, n) * scale);
  store<f32>(s2, finishDot(a21, q2, k1, n4, n) * scale, 4);
  store<f32>(s3, finishDot(a30, q3, k0, n4, n) * scale);
  store<f32>(s3, finishDot(a31, q3, k1, n4, n) * scale, 4);
}

/** o_i += p_i · v for four queries' outputs sharing one value vector; per element the single-query operations. */
@inline function accumulate4q(o0: usize, o1: usize, o2: usize, o3: usize, v: usize, p0: f32, p1: f32, p2: f32, p3: f32,
  n: i32): void {
  const n4 = n & ~3;
  const pv0 = f32x4.splat(p0), pv1 = f32x4.splat(p1), pv2 = f32x4.splat(p2), pv3 = f32x4.splat(p3);
  let d: usize = 0;
  const end4 = <usize>n4 << 2;
  const end = <usize>n << 2;
  for (; d < end4; d += 16) {
    const x = v128.load(v + d);
    v128.store(o0 + d, f32x4.add(v128.load(o0 + d), f32x4.mul(pv0, x)));
    v128.store(o1 + d, f32x4.add(v128.load(o1 + d), f32x4.mul(pv1, x)));
    v128.store(o2 + d, f32x4.add(v128.load(o2 + d), f32x4.mul(pv2, x)));
    v128.store(o3 + d, f32x4.add(v128.load(o3 + d), f32x4.mul(pv3, x)));
  }
  for (; d < end; d += 4) {
    const x = load<f32>(v + d);
    store<f32>(o0 + d, load<f32>(o0 + d) + p0 * x);
    store<f32>(o1 + d, load<f32>(o1 + d) + p1 * x);
    store<f32>(o2 + d, load<f32>(o2 + d) + p2 * x);
    store<f32>(o3 + d, load<f32>(o3 + d) + p3 * x);
  }
}

/** Reads a query record: [kPtr, vPtr, prefixLength, extraSlotsPtr, extraCount, prefixTablePtr]. */
@inline function record(queries: usize, qi: i32): usize {
  return queries + <usize>qi * 24;
}

export function attentionShare(out: usize, q: usize, queries: usize, rows: i32, nHeads: i32, nKvHeads: i32,
  headDim: i32, scale: f32, scratch: usize, scratchStride: i32, tid: i32, nt: i32): void {
  // Work items are (head, query) pairs in head-major order, so that a thread's consecutive items are the same head
  // of consecutive queries: the blocks of four below.
  const total = rows * nHeads;
  const i0 = shareStart(total, 1, tid, nt);
  const i1 = shareEnd(total, 1, tid, nt);
  const group = nHeads / nKvHeads;
  const headBytes = <usize>headDim << 2;
  const slotBytes = <usize>nKvHeads * headBytes;
  const rowBytes = <usize>scratchStride << 2;
  // Four score rows per thread.
  const scores = scratch + <usize>tid * 4 * rowBytes;
  let item = i0;
  while (item < i1) {
    const h = item / rows;
    const qi = item - h * rows;
    const kvOffset = <usize>(h / group) * headBytes;
    const r0 = record(queries, qi);
    const kPtr = load<u32>(r0);
    const vPtr = load<u32>(r0, 4);
    const table = <usize>load<u32>(r0, 20);
    const kBase = <usize>kPtr + kvOffset;
    const vBase = <usize>vPtr + kvOffset;
    // A block needs four items of this head within the share, over the same K / V cache and slot table.
    let block = item + 4 <= i1 && qi + 4 <= rows;
    for (let b = 1; block && b < 4; b++) {
      const rb = record(queries, qi + b);
      block = load<u32>(rb) == kPtr && load<u32>(rb, 4) == vPtr && <usize>load<u32>(rb, 20) == table;
    }
    const count = block ? 4 : 1;
    for (let b = 0; b < count; b++) {
      const n = load<i32>(record(queries, qi + b), 8) + load<i32>(record(queries, qi + b), 16);
      // The host sizes the scratch for maxKeys; a record claiming more keys would overrun another row.
      if (n > scratchStride) unreachable();
    }

    // The prefix shared by the whole block: scores with the key loads shared.
    let shared = 0;
    if (block) {
      shared = load<i32>(r0, 8);
      for (let b = 1; b < 4; b++) shared = min(shared, load<i32>(record(queries, qi + b), 8));
      const q0 = q + (<usize>(qi * nHeads + h)) * headBytes;
      const qStride = <usize>nHeads * headBytes;
      let j = 0;
      for (; j + 2 <= shared; j += 2) {
        const off = <usize>j << 2;
        score4x2(scores + off, scores + rowBytes + off, scores + 2 * rowBytes + off, scores + 3 * rowBytes + off,
          q0, q0 + qStride, q0 + 2 * qStride, q0 + 3 * qStride, prefixAddress(kBase, slotBytes, table, j),
          prefixAddress(kBase, slotBytes, table, j + 1), headDim, scale);
      }
      for (; j < shared; j++) {
        const off = <usize>j << 2;
        const k0 = prefixAddress(kBase, slotBytes, table, j);
        for (let b = 0; b < 4; b++) {
          store<f32>(scores + <usize>b * rowBytes + off, dot(q0 + <usize>b * qStride, k0, headDim) * scale);
        }
      }
    }

    // Each item's own keys, softmax, and zeroed output.
    for (let b = 0; b < count; b++) {
      const rb = record(queries, qi + b);
      const prefix = load<i32>(rb, 8);
      const extra = <usize>load<u32>(rb, 12);
      const n = prefix + load<i32>(rb, 16);
      const s = scores + <usize>b * rowBytes;
      const pairIndex = <usize>((qi + b) * nHeads + h);
      scoreRange(s, q + pairIndex * headBytes, kBase, slotBytes, table, prefix, extra, shared, n, headDim, scale);
      softmaxRow(s, n);
      memory.fill(out + pairIndex * headBytes, 0, headBytes);
    }

    // Values over the shared prefix, each value vector serving the four outputs, then each item's own keys.
    if (block) {
      const o0 = out + (<usize>(qi * nHeads + h)) * headBytes;
      const oStride = <usize>nHeads * headBytes;
      for (let j = 0; j < shared; j++) {
        const off = <usize>j << 2;
        accumulate4q(o0, o0 + oStride, o0 + 2 * oStride, o0 + 3 * oStride, prefixAddress(vBase, slotBytes, table, j),
          load<f32>(scores + off), load<f32>(scores + rowBytes + off), load<f32>(scores + 2 * rowBytes + off),
          load<f32>(scores + 3 * rowBytes + off), headDim);
      }
    }
    for (let b = 0; b < count; b++) {
      const rb = record(queries, qi + b);
      const prefix = load<i32>(rb, 8);
      const extra = <usize>load<u32>(rb, 12);
      const n = prefix + load<i32>(rb, 16);
      const pairIndex = <usize>((qi + b) * nHeads + h);
      accumulateRange(out + pairIndex * headBytes, scores + <usize>b * rowBytes, vBase, slotBytes, table, prefix, extra,
        shared, n, headDim);
    }
    item += count;
  }
}
