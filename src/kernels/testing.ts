// Helpers for the kernel tests: a seeded generator, copying arrays into the heap, and comparisons.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { createKernels } from './index.js';
import type { ReferenceQuery } from './reference.js';
import { QUERY_RECORD_INTS, type Heap, type Kernels, type Ptr } from './types.js';

/** mulberry32: a small seeded generator of uniforms in [0, 1). */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n floats uniform in [-scale, scale). */
export function randomFloats(rand: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

export function randomInt(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1));
}

/** Copies `data` into a fresh heap block. */
export function put(heap: Heap, data: Float32Array | Int32Array): Ptr {
  const ptr = heap.alloc(Math.max(4, data.length * 4));
  if (data instanceof Float32Array) heap.f32(ptr, data.length).set(data);
  else heap.i32(ptr, data.length).set(data);
  return ptr;
}

/** A copy of n floats at ptr (the heap view may be overwritten by later calls). */
export function read(heap: Heap, ptr: Ptr, n: number): Float32Array {
  return heap.f32(ptr, n).slice();
}

/** |actual - expected| <= abs + rel·|expected| element-wise. */
export function assertClose(actual: Float32Array, expected: Float32Array, abs: number, rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= abs + rel * Math.abs(expected[i]))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (diff ${diff})`);
    }
  }
}

/** The two arrays hold the same bit patterns. */
export function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}: element ${i} differs: ${actual[i]} vs ${expected[i]}`);
  }
}

/** A layer's K / V cache and some queries over it, in the heap and in reference form. */
export interface AttentionCase {
  q: Float32Array;
  queries: ReferenceQuery[];
  records: Int32Array;
  ptrs: Ptr[];
}

export function attentionCase(k: Kernels, rand: () => number, keyLists: ReadonlyArray<readonly [number, readonly number[]]>,
  slots: number, nHeads: number, nKvHeads: number, headDim: number): AttentionCase {
  const kvDim = nKvHeads * headDim;
  const kc = randomFloats(rand, slots * kvDim);
  const vc = randomFloats(rand, slots * kvDim);
  const pk = put(k.heap, kc);
  const pv = put(k.heap, vc);
  const ptrs = [pk, pv];
  const records = new Int32Array(keyLists.length * QUERY_RECORD_INTS);
  const queries = keyLists.map(([prefixLength, extra], t) => {
    const extraSlots = Int32Array.from(extra);
    const pe = put(k.heap, extraSlots);
    ptrs.push(pe);
    records.set([pk, pv, prefixLength, pe, extraSlots.length, 0], t * QUERY_RECORD_INTS);
    return { k: kc, v: vc, prefixLength, extraSlots };
  });
  return { q: randomFloats(rand, keyLists.length * nHeads * headDim), queries, records, ptrs };
}

/**
 * Random GGML Q8_0 / Q4_0 blocks for a [outDim, inDim] matrix: random quants (all 256 byte values) and f16 scales
 * mostly in [2^-10, 2^-5) of either sign, with some zero and subnormal scales among them.
 */
export function randomQuantBlocks(rand: () => number, type: 'q8_0' | 'q4_0', outDim: number, inDim: number): Uint8Array {
  const blockBytes = type === 'q8_0' ? 34 : 18;
  const blocks = (outDim * inDim) / 32;
  const w = new Uint8Array(blocks * blockBytes);
  for (let i = 0; i < w.length; i++) w[i] = Math.floor(rand() * 256);
  for (let b = 0; b < blocks; b++) {
    const kind = rand();
    // Exponent field 5..9 (2^-10 .. 2^-6 times 1.mantissa); 3% subnormal, 2% zero.
    const exp = kind < 0.02 ? 0 : kind < 0.05 ? 0 : 5 + Math.floor(rand() * 5);
    const mant = kind < 0.02 ? 0 : Math.floor(rand() * 1024);
    const h = (rand() < 0.5 ? 0x8000 : 0) | (exp << 10) | mant;
    w[b * blockBytes] = h & 0xff;
    w[b * blockBytes + 1] = h >> 8;
  }
  return w;
}

/** Copies bytes into a fresh heap block. */
export function putBytes(heap: Heap, data: Uint8Array): Ptr {
  const ptr = heap.alloc(Math.max(1, data.length));
  new Uint8Array(heap.memory.buffer, ptr, data.length).set(data);
  return ptr;
}

/**
 * Registers suite hooks that create a 1-thread kernel set and a 2-thread one whose every call is split
 * (minParallelWork 0, so thread boundaries fall at many different places), and close both afterwards.
 */
/**
 * Wraps a test body so that it runs on both kernel sets of useKernelPair: `it('…', each((k) => { … }))` with
 * `const each = onKernelPair();` at the top of a test file.
 */
export function onKernelPair(): (test: (k: Kernels) => void) => () => void {
  let one: Kernels | undefined;
  let two: Kernels | undefined;
  useKernelPair((a, b) => {
    one = a;
    two = b;
  });
  return (test) => () => {
    test(one!);
    test(two!);
  };
}

export function useKernelPair(assign: (one: Kernels, two: Kernels) => void): void {
  let one: Kernels | undefined;
  let two: Kernels | undefined;
  before(async () => {
    one = await createKernels({ threads: 1 });
    two = await createKernels({ threads: 2, minParallelWork: 0 });
    assign(one, two);
  });
  after(async () => {
    await one?.close();
    await two?.close();
  });
}
