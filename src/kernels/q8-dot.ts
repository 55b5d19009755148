// Which dot product the relaxed build's Q8_0 matmul takes (types.ts, Q8Dot). The relaxed int8 dot is one
// instruction only where V8 has AVX-VNNI to lower it to (vpdpbusd); elsewhere it becomes pmaddubsw + pmaddwd + paddd,
// and the Q8_0 kernel needs it twice per weight vector (x⁺ and x⁻, quant.ts), so it loses to the int16 dot:
// measured 1.1–1.6× slower on an AMD EPYC (Zen 3) under Node 24, 1.3–1.8× faster on an AVX-VNNI Xeon. No API says
// which lowering a CPU gets (browsers hide the CPU), so both kernels are timed once per process on the calling thread
// and the faster is kept. Both give the same bits, so a wrong pick costs speed, never a result.
import type { KernelExports } from './dispatch.js';
import type { Heap, Q8Dot, SimdBuild } from './types.js';

/** The timing's matrix: 4 rows (a verification tree's size) against 64 × 512 weights (35 KiB, cache-resident). */
const ROWS = 4;
const IN_DIM = 512;
const OUT_DIM = 64;
/** Calls per timed round, and rounds; the first WARM_ROUNDS rounds let V8 tier both kernels up and are not counted. */
const CALLS = 24;
const ROUNDS = 14;
const WARM_ROUNDS = 6;

/** One measurement per module file: every Kernels of that build in the process shares it. */
const measured = new Map<string, Q8Dot>();

/**
 * The Q8Dot for a new Kernels: the plain build has only 'int16'; the relaxed build takes the forced form, or for
 * 'auto' the faster one by the minimum time per round over the counted rounds (least disturbed by other work), or
 * 'int8' when the module lacks the int16 kernel (an older build passed as KernelOptions.wasmFile).
 */
export function chooseQ8Dot(requested: Q8Dot | 'auto', simd: SimdBuild, moduleKey: string, ex: KernelExports,
  heap: Heap): Q8Dot {
  const hasWide = typeof ex.matmulQ8_0Wide === 'function';
  if (simd === 'plain') {
    if (requested === 'int8') {
      throw new Error("createKernels: KernelOptions.q8Dot 'int8' needs the relaxed-SIMD build, but the plain one is loaded");
    }
    return 'int16';
  }
  if (requested === 'int16' && !hasWide) {
    throw new Error("createKernels: KernelOptions.q8Dot 'int16': this kernels module has no matmulQ8_0Wide (rebuild it)");
  }
  if (requested !== 'auto') return requested;
  if (!hasWide) return 'int8';
  let choice = measured.get(moduleKey);
  if (choice === undefined) {
    choice = timeBoth(ex, heap);
    measured.set(moduleKey, choice);
  }
  return choice;
}

function timeBoth(ex: KernelExports, heap: Heap): Q8Dot {
  const blocks = IN_DIM / 32;
  const w = heap.alloc(OUT_DIM * blocks * 34);
  const x = heap.alloc(ROWS * IN_DIM * 4);
  // Two activation buffers, one per layout: int8/int16 values (64 bytes a block), then scales (and Q4_0 sums).
  const xqBytes = ROWS * IN_DIM * 2 + 2 * ROWS * blocks * 4;
  const xq8 = heap.alloc(xqBytes);
  const xq16 = heap.alloc(xqBytes);
  const out = heap.alloc(ROWS * OUT_DIM * 4);
  try {
    const bytes = new Uint8Array(heap.memory.buffer, w, OUT_DIM * blocks * 34);
    let s = 12345;
    for (let i = 0; i < bytes.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      bytes[i] = s >>> 24;
    }
    // Every block's scale: f16 1/64 (0x2400), so that no value is inf or NaN (the timing does not depend on it).
    for (let b = 0; b < OUT_DIM * blocks; b++) {
      bytes[b * 34] = 0x00;
      bytes[b * 34 + 1] = 0x24;
    }
    heap.f32(x, ROWS * IN_DIM).forEach((_, i, a) => (a[i] = Math.sin(i * 0.37)));
    const xd8 = xq8 + ROWS * IN_DIM * 2;
    const xd16 = xq16 + ROWS * IN_DIM * 2;
    ex.quantizeActivations(x, xq8, xd8, ROWS, IN_DIM, 0);
    ex.quantizeActivations(x, xq16, xd16, ROWS, IN_DIM, 2);
    const best = { int8: Infinity, int16: Infinity };
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which goes first, so that neither always runs on a warmer core.
      for (const form of round % 2 === 0 ? (['int8', 'int16'] as const) : (['int16', 'int8'] as const)) {
        const t0 = performance.now();
        for (let c = 0; c < CALLS; c++) {
          if (form === 'int8') ex.matmulQ8_0(out, xq8, xd8, w, 0, ROWS, IN_DIM, OUT_DIM, 0, 1);
          else ex.matmulQ8_0Wide(out, xq16, xd16, w, 0, ROWS, IN_DIM, OUT_DIM, 0, 1);
        }
        const ms = performance.now() - t0;
        if (round >= WARM_ROUNDS) best[form] = Math.min(best[form], ms);
      }
    }
    return best.int8 < best.int16 ? 'int8' : 'int16';
  } finally {
    for (const p of [w, x, xq8, xq16, out]) heap.free(p);
  }
}
