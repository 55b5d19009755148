// The quantized matmuls (matmulQ8_0 / matmulQ4_0): against the plain TypeScript reference (the same f32 chain per
// element, bit for bit) and against the f32 product with the dequantized weights (within the activation
// quantization error); the f16 scales of every bit pattern; batch invariance bit for bit across rows, batch
// positions and thread counts (architecture.md, invariant 1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Kernels, type Ptr, type QuantType } from './index.js';
import * as ref from './reference.js';
import { assertSameBits, put, putBytes, randomFloats, randomInt, randomQuantBlocks, read, seeded, useKernelPair } from './testing.js';

const TYPES: readonly QuantType[] = ['q8_0', 'q4_0'];

let one: Kernels;
let two: Kernels;
useKernelPair((a, b) => {
  one = a;
  two = b;
});

function matmulQ(k: Kernels, type: QuantType, out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number,
  bias?: Ptr): void {
  if (type === 'q8_0') k.matmulQ8_0(out, x, w, rows, inDim, outDim, bias);
  else k.matmulQ4_0(out, x, w, rows, inDim, outDim, bias);
}

describe('quantized matmul', () => {
  it('matches the reference chain bit for bit, and the f32 product within the activation rounding', () => {
    const rand = seeded(21);
    for (const k of [one, two]) {
      for (const type of TYPES) {
        for (const inDim of [32, 64, 96, 256, 768]) {
          for (const outDim of [1, 2, 3, 5, 8, 13, 17, 40]) {
            for (const rows of [1, 2, 3, 4, 5, 9]) {
              const what = `${type} rows ${rows} inDim ${inDim} outDim ${outDim} threads ${k.threads}`;
              const x = randomFloats(rand, rows * inDim, 2);
              const w = randomQuantBlocks(rand, type, outDim, inDim);
              const bias = randomFloats(rand, outDim);
              const [px, pw, pb] = [put(k.heap, x), putBytes(k.heap, w), put(k.heap, bias)];
              const out = k.heap.alloc(rows * outDim * 4);
              matmulQ(k, type, out, px, pw, rows, inDim, outDim);
              const got = read(k.heap, out, rows * outDim);
              const expected = new Float32Array(rows * outDim);
              ref.matmulQuant(type, expected, x, w, rows, inDim, outDim);
              assertSameBits(got, expected, `${what}: the reference chain`);
              const wf = ref.dequantizeWeights(type, w, outDim, inDim);
              const { d } = ref.quantizeActivations(x, rows, inDim);
              for (let t = 0; t < rows; t++) {
                for (let o = 0; o < outDim; o++) {
                  let magnitude = 0;
                  let quantError = 0;
                  let exact = 0;
                  for (let i = 0; i < inDim; i++) {
                    const wi = wf[o * inDim + i];
                    magnitude += Math.abs(wi * x[t * inDim + i]);
                    quantError += Math.abs(wi) * d[(t * inDim + i) >> 5] * 0.5;
                    exact += wi * x[t * inDim + i];
                  }
                  const g = got[t * outDim + o];
                  // Quantizing x moves each term by at most half a step (plus float rounding).
                  assert.ok(Math.abs(g - exact) <= quantError * 1.001 + 1e-5 * magnitude,
                    `${what}: [${t}][${o}] = ${g}, f32 product ${exact}, allowed ${quantError}`);
                }
              }
              matmulQ(k, type, out, px, pw, rows, inDim, outDim, pb);
              const withBias = got.map((v, i) => Math.fround(v + bias[i % outDim]));
              assertSameBits(read(k.heap, out, rows * outDim), withBias, `${what}: bias is added after the sum`);
              ref.matmulQuant(type, expected, x, w, rows, inDim, outDim, bias);
              assertSameBits(withBias, expected, `${what}: the reference with bias`);
              for (const p of [px, pw, pb, out]) k.heap.free(p);
            }
          }
        }
      }
    }
  });

  it('decodes every f16 scale exactly (the kernels read scales through a table)', () => {
    // One block per weight row: scale = row index as f16 bits, q = [1, 0, ...]; x = [127, 0, ...] quantizes to
    // q = 127, d = 1. Row o's chain is one step, fma(127, half(o) · 1, +0): 127·s rounded once (an infinite scale
    // gives ±inf, as llama.cpp's FMA does; the lanes of a 4-lane sum would have given 0·inf = NaN).
    const outDim = 65536;
    for (const type of TYPES) {
      const blockBytes = type === 'q8_0' ? 34 : 18;
      const w = new Uint8Array(outDim * blockBytes);
      for (let o = 0; o < outDim; o++) {
        w[o * blockBytes] = o & 0xff;
        w[o * blockBytes + 1] = o >> 8;
        // Q4_0 stores q + 8 in nibbles: element 0 → 9 (q = 1), the others → 8 (q = 0).
        if (type === 'q8_0') w[o * blockBytes + 2] = 1;
        else w.fill(0x88, o * blockBytes + 2, (o + 1) * blockBytes).fill(0x89, o * blockBytes + 2, o * blockBytes + 3);
      }
      const x = new Float32Array(32);
      x[0] = 127;
      for (const k of [one, two]) {
        const [px, pw, out] = [put(k.heap, x), putBytes(k.heap, w), k.heap.alloc(outDim * 4)];
        matmulQ(k, type, out, px, pw, 1, 32, outDim);
        const got = read(k.heap, out, outDim);
        for (let o = 0; o < outDim; o++) {
          const expected = Math.fround(0 + 127 * ref.halfToFloat(o)); // 0 + −0 = +0, as in the chain
          if (Number.isNaN(expected)) assert.ok(Number.isNaN(got[o]), `${type} scale 0x${o.toString(16)}: ${got[o]}, expected NaN`);
          else assertSameBits(got.subarray(o, o + 1), Float32Array.of(expected), `${type} scale 0x${o.toString(16)}`);
        }
        for (const p of [px, pw, out]) k.heap.free(p);
      }
    }
  });

  it('rounds activation scales to float16 as llama.cpp stores them (ties to even, subnormals, overflow)', () => {
    // Block b of x is [a_b, 0, ...]: it quantizes to q = [127, 0, ...] with d = f16(a_b / 127). The weight block is
    // d = 1, q = [1, 0, ...], so output b is 127·d rounded to f32 (see the test above).
    const rand = seeded(23);
    const amax: number[] = [];
    for (let e = -30; e <= 18; e++) for (let i = 0; i < 6; i++) amax.push(Math.fround(2 ** e * (1 + rand())));
    // Exact f16 ties and their neighbours (scaled by 127), the subnormal range, and the overflow edge.
    for (const d of [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -20 * 1.5, 2 ** -24 * 2.5, 2 ** -25, 65504, 65519, 65520]) {
      amax.push(Math.fround(d * 127), Math.fround(d * 127) * (1 + 2 ** -23), Math.fround(d * 127) * (1 - 2 ** -23));
    }
    const n = amax.length;
    const x = new Float32Array(32 * n);
    amax.forEach((a, b) => (x[32 * b] = a));
    const w = new Uint8Array(34 * n);
    for (let b = 0; b < n; b++) {
      w[34 * b + 1] = 0x3c;
      w[34 * b + 2] = 1;
    }
    for (const k of [one, two]) {
      // As n rows of one block each (x's rows), against one weight row of one block: out[b][0].
      const [px, pw, out] = [put(k.heap, x), putBytes(k.heap, w.subarray(0, 34)), k.heap.alloc(n * 4)];
      k.matmulQ8_0(out, px, pw, n, 32, 1);
      const got = read(k.heap, out, n);
      amax.forEach((a, b) => {
        const d = ref.roundToHalf(Math.fround(a / 127));
        const expected = Math.fround(0 + 127 * d); // inf once d overflows to inf, as in llama.cpp's FMA
        assert.ok(Object.is(got[b], expected), `amax ${a}: scale ${d}, got ${got[b]}, expected ${expected}`);
      });
      for (const p of [px, pw, out]) k.heap.free(p);
    }
  });

  it('reads Q4_0 nibbles in GGML order: low nibbles are elements 0-15, high nibbles 16-31', () => {
    // d = 1 (0x3c00); byte j holds element j in its low nibble and element j + 16 in its high nibble, stored + 8.
    const w = new Uint8Array(18);
    w[1] = 0x3c;
    const values = Array.from({ length: 32 }, (_, j) => (j < 16 ? j - 8 : 23 - j));
    for (let j = 0; j < 16; j++) w[2 + j] = (values[j] + 8) | ((values[j + 16] + 8) << 4);
    const k = one;
    const pw = putBytes(k.heap, w);
    const out = k.heap.alloc(4);
    for (let e = 0; e < 32; e++) {
      // x = 127 at element e quantizes exactly (q = 127, d = 1): the output is 127 · w[e].
      const x = new Float32Array(32);
      x[e] = 127;
      const px = put(k.heap, x);
      k.matmulQ4_0(out, px, pw, 1, 32, 1);
      assert.equal(read(k.heap, out, 1)[0], 127 * values[e], `element ${e}`);
      k.heap.free(px);
    }
    k.heap.free(pw);
    k.heap.free(out);
  });

  it('refuses an inDim that is not a multiple of 32', () => {
    assert.throws(() => one.matmulQ8_0(0, 0, 0, 1, 48, 4), /inDim must be a positive multiple of 32, got 48/);
    assert.throws(() => one.matmulQ4_0(0, 0, 0, 1, 0, 4), /multiple of 32/);
  });
});

describe('quantized matmul batch invariance', () => {
  it('a row has the same bits alone, in batches of any size at any position, on 1 or 2 threads', () => {
    const rand = seeded(22);
    for (const type of TYPES) {
      for (let trial = 0; trial < 10; trial++) {
        const inDim = 32 * randomInt(rand, 1, 12);
        const outDim = randomInt(rand, 1, 90);
        const w = randomQuantBlocks(rand, type, outDim, inDim);
        const bias = randomFloats(rand, outDim);
        const row = randomFloats(rand, inDim, 3);
        for (const withBias of [false, true]) {
          let first: Float32Array | undefined;
          for (const k of [one, two]) {
            const [pw, pbias] = [putBytes(k.heap, w), put(k.heap, bias)];
            for (const size of [1, 2, 3, 4, 5, 7, 8, 11, 16]) {
              const at = randomInt(rand, 0, size - 1);
              const batch = randomFloats(rand, size * inDim, 2);
              batch.set(row, at * inDim);
              const pb = put(k.heap, batch);
              const out = k.heap.alloc(size * outDim * 4);
              matmulQ(k, type, out, pb, pw, size, inDim, outDim, withBias ? pbias : 0);
              const got = read(k.heap, out + at * outDim * 4, outDim);
              if (first === undefined) first = got;
              else {
                assertSameBits(got, first, `${type} ${inDim}x${outDim}${withBias ? ' with bias' : ''}: batch of ${size} ` +
                  `at ${at}, threads ${k.threads}`);
              }
              k.heap.free(pb);
              k.heap.free(out);
            }
            k.heap.free(pw);
            k.heap.free(pbias);
          }
        }
      }
    }
  });
});
