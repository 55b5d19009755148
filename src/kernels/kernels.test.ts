// Each kernel against the plain TypeScript reference, on odd sizes, with 1 thread and with 2 threads that split
// every call (minParallelWork 0).
import { describe, it } from 'node:test';
import { ropeTable, type Kernels } from './index.js';
import * as ref from './reference.js';
import { assertClose, attentionCase, put, randomFloats, randomInt, read, seeded, onKernelPair } from './testing.js';

const DIMS = [2, 5, 7, 8, 13, 64, 172, 768];

const each = onKernelPair();

describe('matmul', () => {
  it('matches the reference for odd shapes', each((k) => {
    const rand = seeded(1);
    for (const inDim of DIMS) {
      for (const outDim of [1, 2, 5, 7, 8, 13, 64, 172]) {
        for (const rows of [1, 2, 3, 4, 5, 9]) {
          const x = randomFloats(rand, rows * inDim);
          const w = randomFloats(rand, outDim * inDim);
          const bias = randomFloats(rand, outDim);
          const px = put(k.heap, x);
          const pw = put(k.heap, w);
          const pb = put(k.heap, bias);
          const out = k.heap.alloc(rows * outDim * 4);
          const expected = new Float32Array(rows * outDim);
          const what = `rows ${rows} inDim ${inDim} outDim ${outDim} threads ${k.threads}`;
          k.matmul(out, px, pw, rows, inDim, outDim);
          ref.matmul(expected, x, w, rows, inDim, outDim);
          assertClose(read(k.heap, out, rows * outDim), expected, 1e-5 * inDim, 1e-5, `matmul ${what}`);
          k.matmulBias(out, px, pw, pb, rows, inDim, outDim);
          ref.matmulBias(expected, x, w, bias, rows, inDim, outDim);
          assertClose(read(k.heap, out, rows * outDim), expected, 1e-5 * inDim, 1e-5, `matmulBias ${what}`);
          for (const p of [px, pw, pb, out]) k.heap.free(p);
        }
      }
    }
  }));
});

describe('rmsnorm', () => {
  it('matches the reference, also in place', each((k) => {
    const rand = seeded(2);
    for (const dim of DIMS) {
      for (const rows of [1, 3, 6]) {
        const x = randomFloats(rand, rows * dim, 3);
        const weight = randomFloats(rand, dim);
        const px = put(k.heap, x);
        const pw = put(k.heap, weight);
        const out = k.heap.alloc(rows * dim * 4);
        const expected = new Float32Array(rows * dim);
        ref.rmsnorm(expected, x, weight, rows, dim, 1e-5);
        k.rmsnorm(out, px, pw, rows, dim, 1e-5);
        assertClose(read(k.heap, out, rows * dim), expected, 1e-6, 1e-5, `rmsnorm dim ${dim} rows ${rows}`);
        k.rmsnorm(px, px, pw, rows, dim, 1e-5);
        assertClose(read(k.heap, px, rows * dim), expected, 1e-6, 1e-5, `rmsnorm in place dim ${dim} rows ${rows}`);
        for (const p of [px, pw, out]) k.heap.free(p);
      }
    }
  }));
});

describe('rope', () => {
  it('rotates both layouts like the reference', each((k) => {
    const rand = seeded(3);
    const maxPosition = 50;
    for (const headDim of [2, 8, 64, 172]) {
      const table = ropeTable(maxPosition, headDim);
      const pt = put(k.heap, table);
      for (const layout of ['pairs', 'halves'] as const) {
        for (const [rows, nHeads] of [[1, 1], [3, 2], [5, 3]]) {
          const x = randomFloats(rand, rows * nHeads * headDim);
          const positions = Int32Array.from({ length: rows }, () => randomInt(rand, 0, maxPosition - 1));
          const px = put(k.heap, x);
          const pp = put(k.heap, positions);
          k.rope(px, rows, nHeads, headDim, pp, pt, layout);
          ref.rope(x, rows, nHeads, headDim, positions, table, layout);
          assertClose(read(k.heap, px, x.length), x, 1e-6, 1e-5, `rope ${layout} headDim ${headDim} rows ${rows}`);
          k.heap.free(px);
          k.heap.free(pp);
        }
      }
      k.heap.free(pt);
    }
  }));

  it('pairs rotate (x[2i], x[2i+1]) and halves rotate (x[i], x[i+d/2]) by hand', each((k) => {
    // headDim 4, position 1: frequency 0 turns by 1 radian, frequency 1 by 1/100 radian.
    const table = ropeTable(2, 4);
    const pt = put(k.heap, table);
    const pp = put(k.heap, Int32Array.of(1));
    const px = put(k.heap, Float32Array.of(1, 0, 1, 0));
    k.rope(px, 1, 1, 4, pp, pt, 'pairs');
    assertClose(read(k.heap, px, 4), Float32Array.of(Math.cos(1), Math.sin(1), Math.cos(0.01), Math.sin(0.01)), 1e-6, 0, 'pairs');
    const ph = put(k.heap, Float32Array.of(1, 1, 0, 0));
    k.rope(ph, 1, 1, 4, pp, pt, 'halves');
    assertClose(read(k.heap, ph, 4), Float32Array.of(Math.cos(1), Math.cos(0.01), Math.sin(1), Math.sin(0.01)), 1e-6, 0, 'halves');
    for (const p of [pt, pp, px, ph]) k.heap.free(p);
  }));
});

describe('softmax, silu, siluMul, add', () => {
  it('match the reference', each((k) => {
    const rand = seeded(4);
    for (const n of [...DIMS, 1, 3, 1000]) {
      const rows = 3;
      const x = randomFloats(rand, rows * n, 20);
      const px = put(k.heap, x);
      k.softmax(px, rows, n);
      ref.softmax(x, rows, n);
      assertClose(read(k.heap, px, rows * n), x, 1e-7, 1e-5, `softmax n ${n}`);

      const g = randomFloats(rand, n, 12);
      const u = randomFloats(rand, n, 2);
      const pg = put(k.heap, g);
      const pu = put(k.heap, u);
      const out = k.heap.alloc(n * 4);
      const expected = new Float32Array(n);
      k.silu(out, pg, n);
      ref.silu(expected, g, n);
      assertClose(read(k.heap, out, n), expected, 1e-6, 1e-5, `silu n ${n}`);
      k.siluMul(out, pg, pu, n);
      ref.siluMul(expected, g, u, n);
      assertClose(read(k.heap, out, n), expected, 1e-6, 1e-5, `siluMul n ${n}`);
      k.add(out, pg, pu, n);
      ref.add(expected, g, u, n);
      assertClose(read(k.heap, out, n), expected, 0, 0, `add n ${n}`);
      k.siluMul(pg, pg, pu, n);
      ref.siluMul(expected, g, u, n);
      assertClose(read(k.heap, pg, n), expected, 1e-6, 1e-5, `siluMul in place n ${n}`);
      for (const p of [px, pg, pu, out]) k.heap.free(p);
    }
  }));

  it('handle extreme inputs: softmax of -Infinity is 0, silu saturates', each((k) => {
    const px = put(k.heap, Float32Array.of(0, -Infinity, 0, -1000, 100, 100));
    k.softmax(px, 1, 6);
    assertClose(read(k.heap, px, 6), Float32Array.of(0, 0, 0, 0, 0.5, 0.5), 1e-7, 0, 'softmax extremes');
    const ps = put(k.heap, Float32Array.of(-1000, -100, -20, 0, 20, 100, 1000));
    const out = k.heap.alloc(7 * 4);
    k.silu(out, ps, 7);
    const expected = new Float32Array(7);
    ref.silu(expected, read(k.heap, ps, 7), 7);
    assertClose(read(k.heap, out, 7), expected, 1e-6, 1e-6, 'silu extremes');
    for (const p of [px, ps, out]) k.heap.free(p);
  }));
});

describe('attention', () => {
  it('matches the reference with prefix-only and prefix + extra key lists, with and without GQA', each((k) => {
    const rand = seeded(5);
    for (const [nHeads, nKvHeads] of [[1, 1], [2, 2], [4, 2], [6, 3]]) {
      for (const headDim of [2, 5, 8, 13, 64]) {
        const slots = 40;
        const keyLists: Array<readonly [number, readonly number[]]> = [
          [1, []], [7, []], [30, []], [10, [30, 31, 35]], [0, [3, 1, 39]], [25, [26]], [0, [12]],
        ];
        const c = attentionCase(k, rand, keyLists, slots, nHeads, nKvHeads, headDim);
        const rows = keyLists.length;
        const pq = put(k.heap, c.q);
        const pr = put(k.heap, c.records);
        const out = k.heap.alloc(rows * nHeads * headDim * 4);
        const scale = 1 / Math.sqrt(headDim);
        k.attention(out, pq, pr, rows, nHeads, nKvHeads, headDim, scale, 40);
        const expected = new Float32Array(rows * nHeads * headDim);
        ref.attention(expected, c.q, c.queries, nHeads, nKvHeads, headDim, scale);
        assertClose(read(k.heap, out, expected.length), expected, 1e-5, 1e-4,
          `attention heads ${nHeads}/${nKvHeads} headDim ${headDim} threads ${k.threads}`);
        for (const p of [...c.ptrs, pq, pr, out]) k.heap.free(p);
      }
    }
  }));

  it('grows its scratch when maxKeys grows', each((k) => {
    const rand = seeded(6);
    const c = attentionCase(k, rand, [[300, [1, 2]], [5, []]], 300, 2, 1, 8);
    const pq = put(k.heap, c.q);
    const pr = put(k.heap, c.records);
    const out = k.heap.alloc(2 * 2 * 8 * 4);
    k.attention(out, pq, pr, 2, 2, 1, 8, 0.5, 302);
    const expected = new Float32Array(2 * 2 * 8);
    ref.attention(expected, c.q, c.queries, 2, 1, 8, 0.5);
    assertClose(read(k.heap, out, expected.length), expected, 1e-5, 1e-4, 'attention 302 keys');
    for (const p of [...c.ptrs, pq, pr, out]) k.heap.free(p);
  }));
});
