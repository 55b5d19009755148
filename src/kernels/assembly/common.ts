// Helpers shared by the kernels. Every helper is deterministic: the same inputs give the same bits whichever
// thread, batch position or vector/tail path computes them (architecture.md, invariant 1).

/** The share [start, end) of `total` items that thread `tid` of `nt` computes, in chunks that are multiples of `align`. */
@inline export function shareStart(total: i32, align: i32, tid: i32, nt: i32): i32 {
  const chunk = ((total + nt - 1) / nt + align - 1) / align * align;
  const start = tid * chunk;
  return start < total ? start : total;
}

@inline export function shareEnd(total: i32, align: i32, tid: i32, nt: i32): i32 {
  return shareStart(total, align, tid + 1, nt);
}

/** The fixed horizontal reduction of a 4-lane accumulator: (l0 + l1) + (l2 + l3). */
@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * Finishes one dot product from its 4-lane accumulator over i < n4: the horizontal reduction, then the scalar tail
 * n4 <= i < n added in i order. Every dot product in the kernels (matmul, rmsnorm, attention) ends this way.
 */
@inline export function finishDot(acc: v128, a: usize, b: usize, n4: i32, n: i32): f32 {
  let s = hsum(acc);
  for (let i = n4; i < n; i++) {
    const off = <usize>i << 2;
    s += load<f32>(a + off) * load<f32>(b + off);
  }
  return s;
}

/** Σ a[i]·b[i] for i < n: one 4-lane chain over i in steps of 4, then finishDot. */
@inline export function dot(a: usize, b: usize, n: i32): f32 {
  const n4 = n & ~3;
  let acc = f32x4.splat(0);
  const end = a + (<usize>n4 << 2);
  let pa = a;
  let pb = b;
  while (pa < end) {
    acc = f32x4.add(acc, f32x4.mul(v128.load(pa), v128.load(pb)));
    pa += 16;
    pb += 16;
  }
  return finishDot(acc, a, b, n4, n);
}

// exp(x) per lane, Cephes expf: x = n·ln2 + r with n = round(x·log2 e) and |r| <= ln2/2, exp(r) by a degree-6
// polynomial, then the 2^n scale built in the exponent bits. n is rounded by adding 1.5·2^23, which leaves n + 127
// in the low mantissa bits of the sum, ready to shift into place: no floor and no float-to-int conversion, both slow
// in V8. Only IEEE-exact basic operations, so a lane's result does not depend on the other lanes; scalar callers go
// through expScalar, which runs this very function on lane 0.
// Inputs below -87.34 (exp < FLT_MIN) give 0; inputs above 88 are clamped to 88 (exp(88) = 1.65e38); NaN stays NaN.
const EXP_LO: f32 = -87.33654;
const EXP_HI: f32 = 88.0;
const ROUNDER: f32 = 12582912.0;

@inline export function expv(x: v128): v128 {
  const lo = f32x4.splat(EXP_LO);
  let r = f32x4.pmax(f32x4.pmin(x, f32x4.splat(EXP_HI)), lo);
  const t = f32x4.add(f32x4.mul(r, f32x4.splat(1.44269504088896341)), f32x4.splat(ROUNDER));
  const n = f32x4.sub(t, f32x4.splat(ROUNDER));
  // ln2 split in two so that n·C1 is exact: C1 + C2 = ln2.
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), f32x4.splat(1.0));
  // t's bits are 0x4B400000 + n; adding 127 and shifting by 23 drops the 0x4B4 and leaves (n + 127) << 23 = 2^n.
  const pow2n = i32x4.shl(i32x4.add(t, i32x4.splat(127)), 23);
  y = f32x4.mul(y, pow2n);
  return v128.bitselect(f32x4.splat(0), y, f32x4.lt(x, lo));
}

@inline export function expScalar(x: f32): f32 {
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

/** silu(x) = x · (1 / (1 + exp(-x))), the llama2.c expression, per lane. */
@inline export function siluv(x: v128): v128 {
  const one = f32x4.splat(1.0);
  return f32x4.mul(x, f32x4.div(one, f32x4.add(one, expv(f32x4.neg(x)))));
}

@inline export function siluScalar(x: f32): f32 {
  return f32x4.extract_lane(siluv(f32x4.splat(x)), 0);
}

/**
 * In-place softmax of n floats at p: max, e = exp(x - max) stored, the sum of the e in a fixed order (4 lanes over
 * i < n4, horizontal reduction, tail), then each e multiplied by 1/sum. Shared by `softmax` and `attention`.
 */
export function softmaxRow(p: usize, n: i32): void {
  if (n <= 0) return;
  const n4 = n & ~3;
  const end4 = p + (<usize>n4 << 2);
  const end = p + (<usize>n << 2);
  // The maximum does not depend on the visiting order for ordinary values.
  // (pmax / the select below are plain compares: with NaN or ±0 the result depends on the visiting order, which
  // is fixed, and the exp of x - max is the same for either zero.)
  let m: f32 = -Infinity;
  if (n4 > 0) {
    let mv = f32x4.splat(-Infinity);
    for (let q = p; q < end4; q += 16) mv = f32x4.pmax(mv, v128.load(q));
    const m01 = f32x4.extract_lane(mv, 0) < f32x4.extract_lane(mv, 1) ? f32x4.extract_lane(mv, 1) : f32x4.extract_lane(mv, 0);
    const m23 = f32x4.extract_lane(mv, 2) < f32x4.extract_lane(mv, 3) ? f32x4.extract_lane(mv, 3) : f32x4.extract_lane(mv, 2);
    m = m01 < m23 ? m23 : m01;
  }
  for (let q = end4; q < end; q += 4) {
    const v = load<f32>(q);
    if (m < v) m = v;
  }
  const mv = f32x4.splat(m);
  let sv = f32x4.splat(0);
  for (let q = p; q < end4; q += 16) {
    const e = expv(f32x4.sub(v128.load(q), mv));
    v128.store(q, e);
    sv = f32x4.add(sv, e);
  }
  let s = hsum(sv);
  for (let q = end4; q < end; q += 4) {
    const e = expScalar(load<f32>(q) - m);
    store<f32>(q, e);
    s += e;
  }
  const inv: f32 = 1.0 / s;
  const iv = f32x4.splat(inv);
  for (let q = p; q < end4; q += 16) v128.store(q, f32x4.mul(v128.load(q), iv));
  for (let q = end4; q < end; q += 4) store<f32>(q, load<f32>(q) * inv);
}
