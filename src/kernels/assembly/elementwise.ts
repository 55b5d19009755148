// Row-wise and element-wise kernels. Element-wise kernels split the elements across threads; the vector body and
// the scalar tail compute each element with the same operations, so where a thread boundary falls never matters.
import { dot, siluv, siluScalar, softmaxRow, shareStart, shareEnd } from './common';

// Element chunks per thread are multiples of 16 floats (one cache line).
const ALIGN: i32 = 16;

export function rmsnormShare(out: usize, x: usize, weight: usize, rows: i32, dim: i32, eps: f32, tid: i32, nt: i32): void {
  const r0 = shareStart(rows, 1, tid, nt);
  const r1 = shareEnd(rows, 1, tid, nt);
  const rowBytes = <usize>dim << 2;
  const n4 = dim & ~3;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * rowBytes;
    const ss = dot(xr, xr, dim);
    const scale: f32 = <f32>1.0 / Mathf.sqrt(ss / <f32>dim + eps);
    const sv = f32x4.splat(scale);
    let i = 0;
    for (; i < n4; i += 4) {
      const off = <usize>i << 2;
      v128.store(or + off, f32x4.mul(f32x4.mul(v128.load(xr + off), sv), v128.load(weight + off)));
    }
    for (; i < dim; i++) {
      const off = <usize>i << 2;
      store<f32>(or + off, load<f32>(xr + off) * scale * load<f32>(weight + off));
    }
  }
}

export function softmaxShare(x: usize, rows: i32, n: i32, tid: i32, nt: i32): void {
  const r0 = shareStart(rows, 1, tid, nt);
  const r1 = shareEnd(rows, 1, tid, nt);
  for (let r = r0; r < r1; r++) softmaxRow(x + ((<usize>r * <usize>n) << 2), n);
}

/** layout 0 = pairs (x[2i], x[2i+1]); 1 = halves (x[i], x[i + headDim/2]). Threads split the (row, head) pairs. */
export function ropeShare(x: usize, rows: i32, nHeads: i32, headDim: i32, positions: usize, table: usize, layout: i32,
  tid: i32, nt: i32): void {
  const total = rows * nHeads;
  const s0 = shareStart(total, 1, tid, nt);
  const s1 = shareEnd(total, 1, tid, nt);
  const half = headDim >> 1;
  const tableRowBytes = <usize>half << 3;
  // Offsets in bytes of the second element of a rotated pair: the neighbour, or the element half a head away.
  const step: usize = layout == 0 ? 4 : <usize>half << 2;
  const stride: usize = layout == 0 ? 8 : 4;
  for (let pair = s0; pair < s1; pair++) {
    const r = pair / nHeads;
    const pos = <usize>load<u32>(positions + (<usize>r << 2));
    let t = table + pos * tableRowBytes;
    let p = x + ((<usize>pair * <usize>headDim) << 2);
    for (let i = 0; i < half; i++) {
      const c = load<f32>(t);
      const s = load<f32>(t, 4);
      const x0 = load<f32>(p);
      const x1 = load<f32>(p + step);
      store<f32>(p, x0 * c - x1 * s);
      store<f32>(p + step, x0 * s + x1 * c);
      t += 8;
      p += stride;
    }
  }
}

export function siluMulShare(out: usize, gate: usize, up: usize, n: i32, tid: i32, nt: i32): void {
  const i0 = shareStart(n, ALIGN, tid, nt);
  const i1 = shareEnd(n, ALIGN, tid, nt);
  const v1 = i0 + ((i1 - i0) & ~3);
  let i = i0;
  for (; i < v1; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.mul(siluv(v128.load(gate + off)), v128.load(up + off)));
  }
  for (; i < i1; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, siluScalar(load<f32>(gate + off)) * load<f32>(up + off));
  }
}

export function siluShare(out: usize, x: usize, n: i32, tid: i32, nt: i32): void {
  const i0 = shareStart(n, ALIGN, tid, nt);
  const i1 = shareEnd(n, ALIGN, tid, nt);
  const v1 = i0 + ((i1 - i0) & ~3);
  let i = i0;
  for (; i < v1; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, siluv(v128.load(x + off)));
  }
  for (; i < i1; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, siluScalar(load<f32>(x + off)));
  }
}

export function addShare(out: usize, a: usize, b: usize, n: i32, tid: i32, nt: i32): void {
  const i0 = shareStart(n, ALIGN, tid, nt);
  const i1 = shareEnd(n, ALIGN, tid, nt);
  const v1 = i0 + ((i1 - i0) & ~3);
  let i = i0;
  for (; i < v1; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, f32x4.add(v128.load(a + off), v128.load(b + off)));
  }
  for (; i < i1; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, load<f32>(a + off) + load<f32>(b + off));
  }
}
