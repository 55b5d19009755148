// The two kernel builds (simd.ts): which one createKernels picks and when it refuses, and that the relaxed build
// (the int8 relaxed dot product in the quantized matmuls) gives the plain build's bits, for any weights including
// Q8_0's −128, from either of V8's compilers, on 1 and 2 threads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { createKernels, type Kernels, type Ptr, type QuantType } from './index.js';
import * as ref from './reference.js';
import { chooseSimd, relaxedUnavailable } from './simd.js';
import { assertSameBits, put, putBytes, randomFloats, randomInt, randomQuantBlocks, read, seeded } from './testing.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);
const unavailable = relaxedUnavailable();

/** Runs body with REDRAFTER_SIMD set to value (undefined: unset), restoring it afterwards. */
function withEnv<T>(value: string | undefined, body: () => T): T {
  const saved = process.env.REDRAFTER_SIMD;
  if (value === undefined) delete process.env.REDRAFTER_SIMD;
  else process.env.REDRAFTER_SIMD = value;
  try {
    return body();
  } finally {
    if (saved === undefined) delete process.env.REDRAFTER_SIMD;
    else process.env.REDRAFTER_SIMD = saved;
  }
}

describe('kernel build choice', () => {
  it('relaxed SIMD is usable exactly on Node 22 and later', () => {
    // Node 22+ validates relaxed SIMD by default; Node 20 does not (and is refused even with the flag).
    if (nodeMajor >= 22) assert.equal(unavailable, null);
    else assert.match(unavailable ?? '', /does not accept relaxed SIMD|computes the relaxed int8 dot product wrong/);
  });

  it('auto takes the relaxed build where usable, REDRAFTER_SIMD overrides auto, explicit options override both', () => {
    const best = unavailable === null ? 'relaxed' : 'plain';
    withEnv(undefined, () => {
      assert.equal(chooseSimd(), best);
      assert.equal(chooseSimd('auto'), best);
      assert.equal(chooseSimd('plain'), 'plain');
    });
    withEnv('plain', () => {
      assert.equal(chooseSimd(), 'plain');
      if (unavailable === null) assert.equal(chooseSimd('relaxed'), 'relaxed');
    });
    withEnv('auto', () => assert.equal(chooseSimd(), best));
    withEnv('', () => assert.equal(chooseSimd(), best));
    withEnv('avx512', () => assert.throws(() => chooseSimd(), /REDRAFTER_SIMD=avx512: expected plain, relaxed or auto/));
    withEnv('relaxed', () => {
      if (unavailable === null) assert.equal(chooseSimd(), 'relaxed');
      else assert.throws(() => chooseSimd(), /REDRAFTER_SIMD=relaxed asks for the relaxed-SIMD kernels, but/);
      assert.equal(chooseSimd('plain'), 'plain');
    });
  });

  it('createKernels reports the build it loaded, and refuses a forced relaxed build where it cannot run', async () => {
    const plain = await createKernels({ simd: 'plain' });
    assert.equal(plain.simd, 'plain');
    assert.equal(plain.q8Dot, 'int16');
    await plain.close();
    await assert.rejects(createKernels({ simd: 'plain', q8Dot: 'int8' }),
      /KernelOptions.q8Dot 'int8' needs the relaxed-SIMD build, but the plain one is loaded/);
    if (unavailable === null) {
      const relaxed = await createKernels({ simd: 'relaxed', threads: 2 });
      assert.equal(relaxed.simd, 'relaxed');
      await relaxed.close();
      // The Q8_0 dot product: forced forms are kept; 'auto' times both once per process, so two sets agree.
      for (const q8Dot of ['int8', 'int16'] as const) {
        const k = await createKernels({ simd: 'relaxed', q8Dot });
        assert.equal(k.q8Dot, q8Dot);
        await k.close();
      }
      const [a, b] = [await createKernels({ simd: 'relaxed' }), await createKernels({ simd: 'relaxed' })];
      assert.ok(a.q8Dot === 'int8' || a.q8Dot === 'int16', a.q8Dot);
      assert.equal(b.q8Dot, a.q8Dot);
      await Promise.all([a.close(), b.close()]);
    } else {
      await assert.rejects(createKernels({ simd: 'relaxed' }),
        /KernelOptions.simd 'relaxed' asks for the relaxed-SIMD kernels, but/);
    }
  });
});

describe('relaxed build against the plain build', { skip: unavailable === null ? false :
  `relaxed SIMD unavailable on Node ${process.versions.node} (${unavailable}): only the plain build runs here` }, () => {
  // [plain 1 thread, plain 2 threads, then relaxed with each Q8_0 dot product (q8-dot.ts) on 1 and 2 threads]; the
  // 2-thread sets split every call.
  let sets: Kernels[] = [];
  before(async () => {
    for (const [simd, q8Dot] of [['plain', 'int16'], ['relaxed', 'int8'], ['relaxed', 'int16']] as const) {
      sets.push(await createKernels({ simd, q8Dot, threads: 1 }));
      sets.push(await createKernels({ simd, q8Dot, threads: 2, minParallelWork: 0 }));
    }
  });
  after(async () => {
    await Promise.all(sets.map((k) => k.close()));
    sets = [];
  });

  function matmulQ(k: Kernels, type: QuantType, out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number,
    outDim: number, bias: Ptr): void {
    if (type === 'q8_0') k.matmulQ8_0(out, x, w, rows, inDim, outDim, bias);
    else k.matmulQ4_0(out, x, w, rows, inDim, outDim, bias);
  }

  /** Every set's output for x · wᵀ (+ bias); asserts they all have the bits of the first (plain, 1 thread). */
  function assertAllSame(type: QuantType, x: Float32Array, w: Uint8Array, rows: number, inDim: number, outDim: number,
    bias: Float32Array | null, what: string): Float32Array {
    let first: Float32Array | undefined;
    for (const k of sets) {
      const [px, pw] = [put(k.heap, x), putBytes(k.heap, w)];
      const pb = bias === null ? 0 : put(k.heap, bias);
      const out = k.heap.alloc(rows * outDim * 4);
      matmulQ(k, type, out, px, pw, rows, inDim, outDim, pb);
      const got = read(k.heap, out, rows * outDim);
      if (first === undefined) first = got;
      else assertSameBits(got, first, `${what}: ${k.simd} (Q8_0 ${k.q8Dot}) on ${k.threads} thread(s) against plain on 1`);
      for (const p of [px, pw, pb, out]) if (p !== 0) k.heap.free(p);
    }
    return first ?? new Float32Array(0);
  }

  it('gives the same bits on random shapes, batch sizes and weights (uniform bytes: Q8_0 −128 included)', () => {
    const rand = seeded(31);
    for (const type of ['q8_0', 'q4_0'] as const) {
      for (let trial = 0; trial < 40; trial++) {
        const inDim = 32 * randomInt(rand, 1, 24);
        const outDim = randomInt(rand, 1, 70);
        const rows = randomInt(rand, 1, 13);
        const x = randomFloats(rand, rows * inDim, 3);
        const w = randomQuantBlocks(rand, type, outDim, inDim);
        const bias = trial % 2 === 0 ? null : randomFloats(rand, outDim);
        const got = assertAllSame(type, x, w, rows, inDim, outDim, bias,
          `${type} rows ${rows} inDim ${inDim} outDim ${outDim}`);
        const expected = new Float32Array(rows * outDim);
        ref.matmulQuant(type, expected, x, w, rows, inDim, outDim, bias ?? undefined);
        assertSameBits(got, expected, `${type} rows ${rows} inDim ${inDim} outDim ${outDim}: the reference chain`);
      }
    }
  });

  it('is exact at the int8 extremes: Q8_0 weights of −128 and 127 against activations of ±127', () => {
    // Every activation quantizes to ±127 (each block's |x| is constant), the weights are −128 / 127 / −127 / 0 in a
    // pattern that puts −128 against negative activations: w·x = +16256 per element, the case where moving x's sign
    // onto w would overflow int8, and block sums of ±520192, far above any 16-bit pair sum.
    const rand = seeded(32);
    const [rows, inDim, outDim] = [6, 256, 12];
    const x = Float32Array.from({ length: rows * inDim }, () => (rand() < 0.5 ? -1.5 : 1.5));
    const w = new Uint8Array(outDim * (inDim / 32) * 34);
    for (let b = 0; b < w.length / 34; b++) {
      w[b * 34 + 1] = 0x3c; // d = 1
      const pattern = b % 4;
      for (let j = 0; j < 32; j++) {
        const v = pattern === 0 ? -128 : pattern === 1 ? 127 : pattern === 2 ? (j % 2 === 0 ? -128 : 127) :
          [-128, -127, 0, 127][Math.floor(rand() * 4)];
        w[b * 34 + 2 + j] = v & 0xff;
      }
    }
    // Row 0 all negative, row 1 all positive, so that some blocks are all −128 against all −127.
    x.fill(-1.5, 0, inDim);
    x.fill(1.5, inDim, 2 * inDim);
    const got = assertAllSame('q8_0', x, w, rows, inDim, outDim, null, 'q8_0 extremes');
    const expected = new Float32Array(rows * outDim);
    ref.matmulQuant('q8_0', expected, x, w, rows, inDim, outDim);
    assertSameBits(got, expected, 'q8_0 extremes: the reference chain');

    const w4 = new Uint8Array(outDim * (inDim / 32) * 18);
    for (let b = 0; b < w4.length / 18; b++) {
      w4[b * 18 + 1] = 0x3c;
      w4.fill([0x00, 0xff, 0x0f, 0xf0][b % 4], b * 18 + 2, (b + 1) * 18);
    }
    const got4 = assertAllSame('q4_0', x, w4, rows, inDim, outDim, null, 'q4_0 extremes');
    ref.matmulQuant('q4_0', expected, x, w4, rows, inDim, outDim);
    assertSameBits(got4, expected, 'q4_0 extremes: the reference chain');
  });

  it('gives the same bits from V8\'s baseline compiler alone and from its optimizing compiler alone', () => {
    // Node 20's baseline compiler (Liftoff) got the relaxed dot product wrong while its optimizing one (TurboFan)
    // got it right, and which tier runs a call depends on timing: pin each tier in a child process.
    const script = `
      import { createKernels } from ${JSON.stringify(new URL('./index.js', import.meta.url).href)};
      import * as ref from ${JSON.stringify(new URL('./reference.js', import.meta.url).href)};
      import { put, putBytes, read, randomFloats, randomQuantBlocks, seeded } from
        ${JSON.stringify(new URL('./testing.js', import.meta.url).href)};
      const sets = [await createKernels({ simd: 'plain' }), await createKernels({ simd: 'relaxed', q8Dot: 'int8' }),
        await createKernels({ simd: 'relaxed', q8Dot: 'int8', threads: 2, minParallelWork: 0 }),
        await createKernels({ simd: 'relaxed', q8Dot: 'int16' })];
      const rand = seeded(33);
      let checked = 0;
      for (const type of ['q8_0', 'q4_0']) {
        for (const [rows, inDim, outDim] of [[1, 64, 9], [5, 256, 24], [9, 96, 13]]) {
          const x = randomFloats(rand, rows * inDim, 2);
          const w = randomQuantBlocks(rand, type, outDim, inDim);
          const expected = new Float32Array(rows * outDim);
          ref.matmulQuant(type, expected, x, w, rows, inDim, outDim);
          for (const k of sets) {
            const [px, pw, out] = [put(k.heap, x), putBytes(k.heap, w), k.heap.alloc(rows * outDim * 4)];
            if (type === 'q8_0') k.matmulQ8_0(out, px, pw, rows, inDim, outDim);
            else k.matmulQ4_0(out, px, pw, rows, inDim, outDim);
            const got = read(k.heap, out, rows * outDim);
            const bad = got.findIndex((v, i) => !Object.is(v, expected[i]));
            if (bad >= 0) {
              console.error(type + ' ' + k.simd + ' ' + k.q8Dot + ' ' + k.threads + 't ' + rows + 'x' + inDim + 'x' + outDim + ' [' + bad +
                '] = ' + got[bad] + ', expected ' + expected[bad]);
              process.exit(1);
            }
            checked++;
          }
        }
      }
      await Promise.all(sets.map((k) => k.close()));
      console.log('checked ' + checked);`;
    for (const tier of [['--liftoff-only'], ['--no-liftoff']]) {
      const child = spawnSync(process.execPath, [...tier, '--input-type=module', '-e', script], { encoding: 'utf8',
        timeout: 60_000 });
      assert.equal(child.status, 0, `${tier.join(' ')}: ${child.stderr}`);
      assert.match(child.stdout, /checked 24/, `${tier.join(' ')}: ${child.stdout}`);
    }
  });
});
