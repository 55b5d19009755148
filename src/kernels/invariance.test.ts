// Batch invariance (architecture.md, invariant 1): a row's outputs have the same bits whether it is computed alone,
// in batches of other sizes at other positions, with 1 thread or with 2 threads splitting the call.
import { describe, it } from 'node:test';
import { QUERY_RECORD_INTS, ropeTable, type Kernels, type Ptr } from './index.js';
import { assertSameBits, attentionCase, put, randomFloats, randomInt, read, seeded, useKernelPair } from './testing.js';

let one: Kernels;
let two: Kernels;
useKernelPair((a, b) => {
  one = a;
  two = b;
});

/**
 * A batch of `size` rows of width `width` in which `row` sits at index `at` and the others are random.
 * Returns the batch and the index.
 */
function embed(rand: () => number, row: Float32Array, size: number): { batch: Float32Array; at: number } {
  const at = randomInt(rand, 0, size - 1);
  const batch = randomFloats(rand, size * row.length, 2);
  batch.set(row, at * row.length);
  return { batch, at };
}

/**
 * Runs `run(kernels, batchPtr, size) -> output ptr` for the row alone and inside random batches on both kernel sets;
 * asserts every result row has the bits of the first one.
 */
function checkRowInvariance(rand: () => number, row: Float32Array, outWidth: number, what: string,
  run: (k: Kernels, batch: Ptr, size: number, at: number) => Ptr, sizes = [1, 2, 3, 4, 5, 8, 11]): void {
  let first: Float32Array | undefined;
  for (const k of [one, two]) {
    for (const size of sizes) {
      const { batch, at } = size === 1 ? { batch: row, at: 0 } : embed(rand, row, size);
      const pb = put(k.heap, batch);
      const out = run(k, pb, size, at);
      const got = read(k.heap, out + at * outWidth * 4, outWidth);
      if (first === undefined) first = got;
      else assertSameBits(got, first, `${what}: batch of ${size} at ${at}, threads ${k.threads}`);
      if (out !== pb) k.heap.free(out);
      k.heap.free(pb);
    }
  }
}

describe('batch invariance', () => {
  it('matmul and matmulBias', () => {
    const rand = seeded(11);
    for (let trial = 0; trial < 12; trial++) {
      const inDim = randomInt(rand, 1, 300);
      const outDim = randomInt(rand, 1, 90);
      const w = randomFloats(rand, inDim * outDim);
      const bias = randomFloats(rand, outDim);
      const row = randomFloats(rand, inDim, 3);
      const weights = new Map<Kernels, [Ptr, Ptr]>([[one, [put(one.heap, w), put(one.heap, bias)]],
        [two, [put(two.heap, w), put(two.heap, bias)]]]);
      for (const withBias of [false, true]) {
        checkRowInvariance(rand, row, outDim, `matmul${withBias ? 'Bias' : ''} ${inDim}x${outDim}`, (k, pb, size) => {
          const [pw, pbias] = weights.get(k) ?? [0, 0];
          const out = k.heap.alloc(size * outDim * 4);
          if (withBias) k.matmulBias(out, pb, pw, pbias, size, inDim, outDim);
          else k.matmul(out, pb, pw, size, inDim, outDim);
          return out;
        }, [1, 2, 3, 4, 5, 8, 11, 16, 17, 64, 65, 150]); // 2..16 rows: the chunked schedule; > 64: the training one
      }
      for (const [k, ptrs] of weights) for (const p of ptrs) k.heap.free(p);
    }
  });

  it('matmulBias is matmul plus the bias, bit for bit', () => {
    const rand = seeded(12);
    const [rows, inDim, outDim] = [5, 37, 19];
    for (const k of [one, two]) {
      const px = put(k.heap, randomFloats(rand, rows * inDim));
      const pw = put(k.heap, randomFloats(rand, outDim * inDim));
      const bias = randomFloats(rand, outDim);
      const pbias = put(k.heap, bias);
      const plain = k.heap.alloc(rows * outDim * 4);
      const biased = k.heap.alloc(rows * outDim * 4);
      k.matmul(plain, px, pw, rows, inDim, outDim);
      k.matmulBias(biased, px, pw, pbias, rows, inDim, outDim);
      const expected = read(k.heap, plain, rows * outDim).map((v, i) => Math.fround(v + bias[i % outDim]));
      assertSameBits(read(k.heap, biased, rows * outDim), expected, 'matmulBias');
      for (const p of [px, pw, pbias, plain, biased]) k.heap.free(p);
    }
  });

  it('rmsnorm, softmax and rope', () => {
    const rand = seeded(13);
    for (let trial = 0; trial < 8; trial++) {
      const dim = randomInt(rand, 1, 200);
      const weight = randomFloats(rand, dim);
      const row = randomFloats(rand, dim, 4);
      const pws = new Map<Kernels, Ptr>([[one, put(one.heap, weight)], [two, put(two.heap, weight)]]);
      checkRowInvariance(rand, row, dim, `rmsnorm dim ${dim}`, (k, pb, size) => {
        const out = k.heap.alloc(size * dim * 4);
        k.rmsnorm(out, pb, pws.get(k) ?? 0, size, dim, 1e-6);
        return out;
      });
      checkRowInvariance(rand, row, dim, `softmax n ${dim}`, (k, pb, size) => {
        k.softmax(pb, size, dim);
        return pb;
      });
      for (const [k, p] of pws) k.heap.free(p);

      const headDim = 2 * randomInt(rand, 1, 40);
      const nHeads = randomInt(rand, 1, 4);
      const table = ropeTable(64, headDim);
      const position = randomInt(rand, 0, 63);
      const qrow = randomFloats(rand, nHeads * headDim);
      for (const layout of ['pairs', 'halves'] as const) {
        checkRowInvariance(rand, qrow, nHeads * headDim, `rope ${layout} headDim ${headDim}`, (k, pb, size, at) => {
          const positions = Int32Array.from({ length: size }, (_, i) => (i === at ? position : randomInt(rand, 0, 63)));
          const pp = put(k.heap, positions);
          const pt = put(k.heap, table);
          k.rope(pb, size, nHeads, headDim, pp, pt, layout);
          k.heap.free(pp);
          k.heap.free(pt);
          return pb;
        });
      }
    }
  });

  it('silu and siluMul give an element the same bits in the vector body and in the tail', () => {
    const rand = seeded(14);
    const n = 67;
    const g = randomFloats(rand, n, 30);
    const u = randomFloats(rand, n, 2);
    for (const k of [one, two]) {
      const pg = put(k.heap, g);
      const pu = put(k.heap, u);
      const full = k.heap.alloc(n * 4);
      const part = k.heap.alloc(n * 4);
      k.silu(full, pg, n);
      const silu = read(k.heap, full, n);
      k.siluMul(full, pg, pu, n);
      const siluMul = read(k.heap, full, n);
      // Shifting the start moves every element between the 4-wide body and the scalar tail.
      for (let start = 1; start < 8; start++) {
        const m = n - start;
        k.silu(part, pg + start * 4, m);
        assertSameBits(read(k.heap, part, m), silu.subarray(start), `silu from ${start}`);
        k.siluMul(part, pg + start * 4, pu + start * 4, m);
        assertSameBits(read(k.heap, part, m), siluMul.subarray(start), `siluMul from ${start}`);
      }
      for (const p of [pg, pu, full, part]) k.heap.free(p);
    }
  });

  it('attention: a query alone, with its keys reached as prefix or as extra slots, in batches, on 1 or 2 threads', () => {
    const rand = seeded(15);
    for (let trial = 0; trial < 6; trial++) {
      const nKvHeads = randomInt(rand, 1, 3);
      const nHeads = nKvHeads * randomInt(rand, 1, 2);
      const headDim = randomInt(rand, 1, 70);
      const slots = 48;
      const length = randomInt(rand, 1, 40);
      const scale = 1 / Math.sqrt(headDim);
      let first: Float32Array | undefined;
      for (const k of [one, two]) {
        // The same ordered key list 0..length-1 written three ways, then the query inside random batches.
        const split = randomInt(rand, 0, length);
        const lists: Array<readonly [number, readonly number[]]> = [
          [length, []],
          [split, Array.from({ length: length - split }, (_, j) => split + j)],
          [0, Array.from({ length }, (_, j) => j)],
        ];
        for (let b = 0; b < 4; b++) {
          const size = randomInt(rand, 2, 6);
          const batch = Array.from({ length: size }, (): readonly [number, readonly number[]] =>
            [randomInt(rand, 0, 30), [randomInt(rand, 30, slots - 1)]]);
          batch[randomInt(rand, 0, size - 1)] = lists[b % 3];
          lists.push(...batch);
        }
        // One cache, one query vector, shared by every list: build them once, then point records at them.
        const c = attentionCase(k, seeded(1000 + trial), lists, slots, nHeads, nKvHeads, headDim);
        const qRow = c.q.subarray(0, nHeads * headDim);
        for (let t = 0; t < lists.length; t++) c.q.set(qRow, t * nHeads * headDim);
        const pq = put(k.heap, c.q);
        const width = nHeads * headDim;
        const out = k.heap.alloc(lists.length * width * 4);
        // Each of the first three lists alone, then the whole set as one batch.
        for (let t = 0; t < 3; t++) {
          const pr = put(k.heap, c.records.subarray(t * QUERY_RECORD_INTS, (t + 1) * QUERY_RECORD_INTS));
          k.attention(out, pq, pr, 1, nHeads, nKvHeads, headDim, scale, slots);
          const got = read(k.heap, out, width);
          if (first === undefined) first = got;
          else assertSameBits(got, first, `attention list ${t} alone, threads ${k.threads}`);
          k.heap.free(pr);
        }
        const pr = put(k.heap, c.records);
        k.attention(out, pq, pr, lists.length, nHeads, nKvHeads, headDim, scale, slots);
        const all = read(k.heap, out, lists.length * width);
        lists.forEach((list, t) => {
          if (list === lists[0] || list === lists[1] || list === lists[2]) {
            assertSameBits(all.subarray(t * width, (t + 1) * width), first ?? all, `attention in batch at ${t}, threads ${k.threads}`);
          }
        });
        for (const p of [...c.ptrs, pq, pr, out]) k.heap.free(p);
      }
    }
  });
});
