// Machine ceilings, for the benches' rooflines (bench/kernels-bench.ts): how fast a thread streams memory, and how
// many f32 multiply-adds per second SIMD128 gives it with no memory traffic. Both run as pool kernels, so that two
// threads are measured running at once, as the matmuls run.
import { shareStart, shareEnd } from './common';

/**
 * Sums thread tid's share of n floats at p and writes the sum to out[tid] (so the reads cannot be dropped). The share
 * is read as 8 runs advancing together, the matmul kernels' access pattern (matmul.ts: one core reads ~8 GB/s from
 * one stream, ~15 from 4–16).
 */
export function streamReadShare(out: usize, p: usize, n: i32, tid: i32, nt: i32): void {
  const i0 = shareStart(n, 32, tid, nt);
  const i1 = shareEnd(n, 32, tid, nt);
  const run = <usize>(((i1 - i0) >> 3) & ~3) << 2;
  let q0 = p + (<usize>i0 << 2);
  const end = q0 + run;
  const q1 = run, q2 = run * 2, q3 = run * 3, q4 = run * 4, q5 = run * 5, q6 = run * 6, q7 = run * 7;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  while (q0 < end) {
    a0 = f32x4.add(a0, f32x4.add(v128.load(q0), v128.load(q0 + q1)));
    a1 = f32x4.add(a1, f32x4.add(v128.load(q0 + q2), v128.load(q0 + q3)));
    a2 = f32x4.add(a2, f32x4.add(v128.load(q0 + q4), v128.load(q0 + q5)));
    a3 = f32x4.add(a3, f32x4.add(v128.load(q0 + q6), v128.load(q0 + q7)));
    q0 += 16;
  }
  const s = f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3));
  store<f32>(out + (<usize>tid << 2), f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 2));
}

/**
 * `iterations` steps of the matmul's register block (matmul.ts chunk2x4: 2 activation and 4 weight vectors, 8
 * accumulators, 8 multiplies and 8 adds a step) on values held in registers: 64 flops a step. Writes a lane of the
 * result to out[tid] so that the work stays.
 */
export function simdPeakShare(out: usize, seed: usize, iterations: i32, tid: i32, nt: i32): void {
  const c0 = v128.load(seed), c1 = v128.load(seed, 16);
  const b0 = v128.load(seed, 32), b1 = v128.load(seed, 48), b2 = v128.load(seed, 64), b3 = v128.load(seed, 80);
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  for (let i = 0; i < iterations; i++) {
    a00 = f32x4.add(a00, f32x4.mul(c0, b0));
    a10 = f32x4.add(a10, f32x4.mul(c1, b0));
    a01 = f32x4.add(a01, f32x4.mul(c0, b1));
    a11 = f32x4.add(a11, f32x4.mul(c1, b1));
    a02 = f32x4.add(a02, f32x4.mul(c0, b2));
    a12 = f32x4.add(a12, f32x4.mul(c1, b2));
    a03 = f32x4.add(a03, f32x4.mul(c0, b3));
    a13 = f32x4.add(a13, f32x4.mul(c1, b3));
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a00, a01), f32x4.add(a02, a03)),
    f32x4.add(f32x4.add(a10, a11), f32x4.add(a12, a13)));
  store<f32>(out + (<usize>tid << 2), f32x4.extract_lane(s, 0) + <f32>nt);
}
