// The training kernels (types.ts, assembly/train.ts) against reference.ts on odd sizes, with 1 thread and with 2
// threads that split every call (minParallelWork 0). The products, column sums, the cross-entropy gradient and
// AdamW follow the kernels' own f32 / f64 chains, so they are compared bit for bit: that also shows each result is
// independent of the thread count and of where share and block boundaries fall.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Kernels, Ptr } from './index.js';
import * as ref from './reference.js';
import { assertClose, assertSameBits, put, randomFloats, randomInt, read, seeded, onKernelPair } from './testing.js';

const each = onKernelPair();

function free(k: Kernels, ...ptrs: Ptr[]): void {
  for (const p of ptrs) k.heap.free(p);
}

describe('gradWeight', () => {
  it('is dYᵀ·X, one chain per element in row order, for odd shapes (rows across pass boundaries)', each((k) => {
    const rand = seeded(41);
    for (const rows of [0, 1, 3, 31, 32, 33, 70]) {
      for (const inDim of [1, 5, 16, 17, 40]) {
        for (const outDim of [1, 2, 3, 5, 8, 13]) {
          const dY = randomFloats(rand, rows * outDim);
          const x = randomFloats(rand, rows * inDim, 2);
          const pd = put(k.heap, dY);
          const px = put(k.heap, x);
          const out = put(k.heap, randomFloats(rand, outDim * inDim));
          const expected = new Float32Array(outDim * inDim);
          k.gradWeight(out, pd, px, rows, inDim, outDim);
          ref.gradWeight(expected, dY, x, rows, inDim, outDim);
          assertSameBits(read(k.heap, out, outDim * inDim), expected,
            `gradWeight rows ${rows} inDim ${inDim} outDim ${outDim} threads ${k.threads}`);
          free(k, pd, px, out);
        }
      }
    }
  }));
});

describe('gradInput', () => {
  it('is dY·W (plus add, over a column range), one chain per element in order', each((k) => {
    const rand = seeded(42);
    for (const rows of [1, 2, 3, 7]) {
      for (const inDim of [1, 5, 16, 17, 40]) {
        for (const outDim of [1, 3, 8, 13]) {
          const first = randomInt(rand, 0, inDim - 1);
          const count = randomInt(rand, 0, inDim - first);
          const dY = randomFloats(rand, rows * outDim);
          const w = randomFloats(rand, outDim * inDim, 2);
          const add = randomFloats(rand, rows * count);
          const pd = put(k.heap, dY);
          const pw = put(k.heap, w);
          const out = k.heap.alloc(Math.max(1, rows * inDim) * 4);
          const what = `rows ${rows} inDim ${inDim} outDim ${outDim} threads ${k.threads}`;
          const expected = new Float32Array(rows * inDim);
          k.gradInput(out, pd, pw, rows, inDim, outDim);
          ref.gradInput(expected, dY, w, rows, inDim, outDim);
          assertSameBits(read(k.heap, out, rows * inDim), expected, `gradInput ${what}`);
          // Columns first .. first+count, added to `add` in place (out = add).
          const inPlace = put(k.heap, add);
          const part = new Float32Array(rows * count);
          k.gradInput(inPlace, pd, pw, rows, inDim, outDim, inPlace, first, count);
          ref.gradInput(part, dY, w, rows, inDim, outDim, add, first, count);
          assertSameBits(read(k.heap, inPlace, rows * count), part, `gradInput columns ${first}+${count} ${what}`);
          free(k, pd, pw, out, inPlace);
        }
      }
    }
  }));

  it('refuses a column range outside the matrix', each((k) => {
    assert.throws(() => k.gradInput(0, 0, 0, 1, 4, 2, 0, 3, 2), RangeError);
  }));
});

describe('siluGrad and columnSums', () => {
  it('siluGrad matches the derivative, and an element has the same bits in the vector body and in the tail', each((k) => {
    const rand = seeded(43);
    const n = 67;
    const x = randomFloats(rand, n, 12);
    const d = randomFloats(rand, n, 2);
    const px = put(k.heap, x);
    const pd = put(k.heap, d);
    const out = k.heap.alloc(n * 4);
    k.siluGrad(out, pd, px, n);
    const full = read(k.heap, out, n);
    const expected = new Float32Array(n);
    ref.siluGrad(expected, d, x, n);
    assertClose(full, expected, 1e-6, 1e-5, `siluGrad threads ${k.threads}`);
    for (let start = 1; start < 8; start++) {
      k.siluGrad(out, pd + start * 4, px + start * 4, n - start);
      assertSameBits(read(k.heap, out, n - start), full.subarray(start), `siluGrad from ${start}`);
    }
    // In place, over dOut.
    k.siluGrad(pd, pd, px, n);
    assertSameBits(read(k.heap, pd, n), full, 'siluGrad in place');
    free(k, px, pd, out);
  }));

  it('columnSums adds the rows in order', each((k) => {
    const rand = seeded(44);
    for (const rows of [1, 2, 9, 40]) {
      for (const cols of [1, 3, 16, 17, 40, 100]) {
        const x = randomFloats(rand, rows * cols, 3);
        const px = put(k.heap, x);
        const out = k.heap.alloc(cols * 4);
        const expected = new Float32Array(cols);
        k.columnSums(out, px, rows, cols);
        ref.columnSums(expected, x, rows, cols);
        assertSameBits(read(k.heap, out, cols), expected, `columnSums ${rows}×${cols} threads ${k.threads}`);
        free(k, px, out);
      }
    }
  }));
});

describe('crossEntropyGrad', () => {
  it('softmaxes like `softmax` and follows the f64 loss and gradient of the reference, also without a teacher',
    each((k) => {
      const rand = seeded(45);
      for (const n of [3, 8, 37]) {
        for (const soft of [0, 0.3, 1]) {
          const rows = 9;
          const logits = randomFloats(rand, rows * n, 6);
          const teacher = randomFloats(rand, rows * n, 6);
          const targets = Int32Array.from({ length: rows }, (_, r) => (r % 4 === 3 ? -1 : randomInt(rand, 0, n - 1)));
          const scales = Float64Array.from({ length: rows }, () => rand() * 0.1);
          const params = new Float64Array([soft, ...scales]);
          const pl = put(k.heap, logits);
          const pt = soft > 0 ? put(k.heap, teacher) : 0;
          const ptargets = put(k.heap, targets);
          const pparams = k.heap.alloc(params.length * 8);
          new Float64Array(k.heap.memory.buffer, pparams, params.length).set(params);
          const presults = k.heap.alloc(rows * 16);
          const out = put(k.heap, randomFloats(rand, rows * n));
          k.crossEntropyGrad(out, pl, pt, ptargets, pparams, presults, rows, n);
          const results = new Float64Array(k.heap.memory.buffer, presults, rows * 2).slice();

          // The expected softmaxes come from the softmax kernel itself.
          const probs = put(k.heap, logits);
          k.softmax(probs, rows, n);
          const expected = read(k.heap, probs, rows * n);
          let teacherProbs: Float32Array | null = null;
          if (soft > 0) {
            const q = put(k.heap, teacher);
            k.softmax(q, rows, n);
            teacherProbs = read(k.heap, q, rows * n);
            k.heap.free(q);
            const softened = read(k.heap, pt, rows * n);
            for (let r = 0; r < rows; r++) {
              if (targets[r] < 0) continue;
              const row = (from: Float32Array): Float32Array => from.subarray(r * n, (r + 1) * n);
              assertSameBits(row(softened), row(teacherProbs), `teacher row ${r} softmaxed in place`);
            }
          }
          const expectedResults = ref.crossEntropyGrad(expected, logits, teacherProbs, targets, soft, scales, rows, n);
          const what = `n ${n} soft ${soft} threads ${k.threads}`;
          assertSameBits(read(k.heap, out, rows * n), expected, `gradient ${what}`);
          for (let r = 0; r < rows; r++) {
            assert.equal(results[2 * r + 1], expectedResults[2 * r + 1], `best of row ${r} ${what}`);
            // ln is musl's in the kernel and V8's here: equal to within an ulp or so.
            const ce = expectedResults[2 * r];
            assert.ok(Math.abs(results[2 * r] - ce) <= 1e-12 * Math.max(1, Math.abs(ce)), `ce of row ${r} ${what}`);
          }
          free(k, pl, ptargets, pparams, presults, out, probs);
          if (pt !== 0) k.heap.free(pt);
        }
      }
    }));
});

describe('adamW, sumOfSquares, scale', () => {
  it('adamW is the f64 loop of optim.ts, bit for bit', each((k) => {
    const rand = seeded(46);
    for (const n of [1, 2, 7, 33, 100]) {
      const data = randomFloats(rand, n);
      const grad = randomFloats(rand, n, 0.1);
      const m = randomFloats(rand, n, 0.01);
      const v = Float32Array.from(randomFloats(rand, n, 0.001), Math.abs);
      const [beta1, beta2, lr, epsilon, decay] = [0.9, 0.999, 3e-3, 1e-8, 1 - 3e-3 * 0.1];
      const [c1, c2] = [1 - beta1 ** 7, 1 - beta2 ** 7];
      const pdata = put(k.heap, data);
      const pgrad = put(k.heap, grad);
      const pm = put(k.heap, m);
      const pv = put(k.heap, v);
      const params = k.heap.alloc(9 * 8);
      new Float64Array(k.heap.memory.buffer, params, 9).set([beta1, 1 - beta1, beta2, 1 - beta2, c1, c2, epsilon, lr,
        decay]);
      k.adamW(pdata, pgrad, pm, pv, n, params);
      ref.adamW(data, grad, m, v, beta1, beta2, c1, c2, epsilon, lr, decay);
      const what = `n ${n} threads ${k.threads}`;
      assertSameBits(read(k.heap, pdata, n), data, `adamW data ${what}`);
      assertSameBits(read(k.heap, pm, n), m, `adamW m ${what}`);
      assertSameBits(read(k.heap, pv, n), v, `adamW v ${what}`);
      free(k, pdata, pgrad, pm, pv, params);
    }
  }));

  it('sumOfSquares adds in 4 lanes then the tail; scale multiplies in f64', each((k) => {
    const rand = seeded(47);
    for (const n of [0, 1, 3, 4, 9, 101]) {
      const x = randomFloats(rand, n, 3);
      const px = put(k.heap, x);
      const lanes = [0, 0, 0, 0];
      const n4 = n & ~3;
      for (let i = 0; i < n4; i++) lanes[i & 3] += x[i] * x[i];
      let expected = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
      for (let i = n4; i < n; i++) expected += x[i] * x[i];
      assert.equal(k.sumOfSquares(px, n), expected, `sumOfSquares n ${n}`);
      const factor = 0.1 + rand();
      k.scale(px, n, factor);
      assertSameBits(read(k.heap, px, n), x.map((value) => value * factor), `scale n ${n}`);
      k.heap.free(px);
    }
  }));
});
