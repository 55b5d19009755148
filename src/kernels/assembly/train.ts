// Kernels of the drafter's training (src/train/graph.ts, src/train/optim.ts): the two gradient products, SiLU's
// derivative, bias gradients, the cross-entropy gradient of the logits, and AdamW with gradient clipping.
//
// Both products accumulate rank-1 updates: every output element is one scalar chain over the reduction index k in
// order 0, 1, 2, … (acc = 0, acc += a·b), whichever block shape, vector lane or scalar tail computes it, so its bits
// depend neither on the thread count nor on where a share or a block boundary falls. Threads split the outputs,
// never a reduction; each thread writes only its own outputs.
//
// Hot loops advance one pointer per operand and load at immediate offsets; at most 8 accumulators are live.
import { expv, softmaxRow, shareStart, shareEnd } from './common';

// Rows per pass of gradWeight: the pass's lines of dY and x (CHUNK rows of each, strided by whole rows) stay in L1
// while every block of the share runs over them; the accumulators go through out between passes, which keeps each
// chain as it is. Measured at the training shapes: 32 rows a few % faster than 16, 64 or 128; without passes the
// vocabulary-sized gradient (dY rows of 2 KiB) ran at under half the speed.
const CHUNK: i32 = 32;

/** Bytes of scratch per thread for gradInput's packed strips (32 KiB: 512 rows of 16 floats, within L1). */
export const GRAD_INPUT_PACK: usize = 32768;

/**
 * out[o][i] = Σ_r dY[r][o] · x[r][i] (r in order) for dY [rows, outDim], x [rows, inDim], out [outDim, inDim]: the
 * weight gradient dW = dYᵀ·X without transposing either. Threads split o. Blocks of 2 outputs × 16 inputs: per row,
 * 2 broadcasts of dY and 4 vector loads of x (one cache line) feed 8 accumulators (measured a few % faster than
 * 4 × 8, which needs 4 broadcasts, each an extra address add in V8).
 */
export function gradWeightShare(out: usize, dY: usize, x: usize, rows: i32, inDim: i32, outDim: i32, tid: i32, nt: i32): void {
  const o0 = shareStart(outDim, 2, tid, nt);
  const o1 = shareEnd(outDim, 2, tid, nt);
  const strideA = <usize>outDim << 2;
  const strideB = <usize>inDim << 2;
  const i16 = inDim & ~15;
  if (rows <= 0) {
    if (o1 > o0) memory.fill(out + <usize>o0 * strideB, 0, <usize>(o1 - o0) * strideB);
    return;
  }
  for (let rc = 0; rc < rows; rc += CHUNK) {
    const first = rc == 0;
    const chunk = min(CHUNK, rows - rc);
    const ac = dY + <usize>rc * strideA;
    const bc = x + <usize>rc * strideB;
    const chunkEnd = <usize>chunk * strideA;
    let o = o0;
    for (; o + 2 <= o1; o += 2) {
      const pa0 = ac + (<usize>o << 2);
      const endA = pa0 + chunkEnd;
      const po = out + <usize>o * strideB;
      let i = 0;
      for (; i < i16; i += 16) {
        const q = po + (<usize>i << 2);
        let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
        let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
        if (!first) {
          c00 = v128.load(q); c01 = v128.load(q, 16); c02 = v128.load(q, 32); c03 = v128.load(q, 48);
          c10 = v128.load(q + strideB); c11 = v128.load(q + strideB, 16);
          c12 = v128.load(q + strideB, 32); c13 = v128.load(q + strideB, 48);
        }
        let pa = pa0;
        let pb = bc + (<usize>i << 2);
        while (pa < endA) {
          const s0 = v128.load32_splat(pa);
          const s1 = v128.load32_splat(pa, 4);
          let b = v128.load(pb);
          c00 = f32x4.add(c00, f32x4.mul(s0, b));
          c10 = f32x4.add(c10, f32x4.mul(s1, b));
          b = v128.load(pb, 16);
          c01 = f32x4.add(c01, f32x4.mul(s0, b));
          c11 = f32x4.add(c11, f32x4.mul(s1, b));
          b = v128.load(pb, 32);
          c02 = f32x4.add(c02, f32x4.mul(s0, b));
          c12 = f32x4.add(c12, f32x4.mul(s1, b));
          b = v128.load(pb, 48);
          c03 = f32x4.add(c03, f32x4.mul(s0, b));
          c13 = f32x4.add(c13, f32x4.mul(s1, b));
          pa += strideA;
          pb += strideB;
        }
        v128.store(q, c00); v128.store(q, c01, 16); v128.store(q, c02, 32); v128.store(q, c03, 48);
        v128.store(q + strideB, c10); v128.store(q + strideB, c11, 16);
        v128.store(q + strideB, c12, 32); v128.store(q + strideB, c13, 48);
      }
      for (let k = 0; k < 2; k++) gradWeightTail(out, ac, bc, chunk, inDim, outDim, o + k, i, first);
    }
    for (; o < o1; o++) gradWeightTail(out, ac, bc, chunk, inDim, outDim, o, 0, first);
  }
}

/** Output row o of gradWeight from column i on over one pass, one element at a time (the same chain as the blocks). */
function gradWeightTail(out: usize, dY: usize, x: usize, rows: i32, inDim: i32, outDim: i32, o: i32, from: i32, first: bool): void {
  const strideA = <usize>outDim << 2;
  const strideB = <usize>inDim << 2;
  for (let i = from; i < inDim; i++) {
    const q = out + <usize>o * strideB + (<usize>i << 2);
    let acc: f32 = first ? 0 : load<f32>(q);
    let pa = dY + (<usize>o << 2);
    let pb = x + (<usize>i << 2);
    for (let r = 0; r < rows; r++) {
      acc += load<f32>(pa) * load<f32>(pb);
      pa += strideA;
      pb += strideB;
    }
    store<f32>(q, acc);
  }
}

/**
 * out[r][c] = (add[r][c] +) Σ_o dY[r][o] · w[o][first + c] (o in order) for c < count: dY [rows, outDim], w [outDim,
 * inDim], out and add [rows, count]; the input gradient dX = dY·W (or the columns first .. first+count of it) without
 * transposing W. add 0 means none; add may equal out. Threads split r. Columns go in strips of 16 floats, each strip
 * passing over every row pair of the share while its outDim × 64 bytes of w stay in L1: when they fit in
 * GRAD_INPUT_PACK bytes and the caller gives scratch (GRAD_INPUT_PACK bytes per thread), the strip is first copied
 * there contiguously. Read in place, a strip's lines lie inDim·4 bytes apart, and with power-of-two widths (256, 512)
 * they all fall into a few L1 sets and evict each other (measured: inDim 256 ran at 17 GFLOP/s, 272 at 23).
 */
export function gradInputShare(out: usize, dY: usize, w: usize, add: usize, rows: i32, inDim: i32, outDim: i32,
  first: i32, count: i32, scratch: usize, tid: i32, nt: i32): void {
  const r0 = shareStart(rows, 2, tid, nt);
  const r1 = shareEnd(rows, 2, tid, nt);
  const strideA = <usize>outDim << 2;
  const strideW = <usize>inDim << 2;
  const strideO = <usize>count << 2;
  const wFirst = w + (<usize>first << 2);
  const c16 = count & ~15;
  const pack = scratch != 0 && <usize>outDim <= GRAD_INPUT_PACK >> 6 && r1 - r0 >= 4;
  const packed = scratch + <usize>tid * GRAD_INPUT_PACK;
  const strideStrip: usize = pack ? 64 : strideW;
  for (let c = 0; c < c16; c += 16) {
    let pw0 = wFirst + (<usize>c << 2);
    if (pack) {
      for (let o = 0; o < outDim; o++) {
        const from = pw0 + <usize>o * strideW;
        const to = packed + (<usize>o << 6);
        v128.store(to, v128.load(from));
        v128.store(to, v128.load(from, 16), 16);
        v128.store(to, v128.load(from, 32), 32);
        v128.store(to, v128.load(from, 48), 48);
      }
      pw0 = packed;
    }
    let r = r0;
    for (; r + 2 <= r1; r += 2) {
      let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
      let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
      let pa = dY + <usize>r * strideA;
      const endA = pa + strideA;
      let pw = pw0;
      while (pa < endA) {
        const s0 = v128.load32_splat(pa);
        const s1 = v128.load32_splat(pa + strideA);
        let x = v128.load(pw);
        c00 = f32x4.add(c00, f32x4.mul(s0, x));
        c10 = f32x4.add(c10, f32x4.mul(s1, x));
        x = v128.load(pw, 16);
        c01 = f32x4.add(c01, f32x4.mul(s0, x));
        c11 = f32x4.add(c11, f32x4.mul(s1, x));
        x = v128.load(pw, 32);
        c02 = f32x4.add(c02, f32x4.mul(s0, x));
        c12 = f32x4.add(c12, f32x4.mul(s1, x));
        x = v128.load(pw, 48);
        c03 = f32x4.add(c03, f32x4.mul(s0, x));
        c13 = f32x4.add(c13, f32x4.mul(s1, x));
        pa += 4;
        pw += strideStrip;
      }
      const offset = <usize>r * strideO + (<usize>c << 2);
      const q = out + offset;
      if (add != 0) {
        const p = add + offset;
        c00 = f32x4.add(v128.load(p), c00);
        c01 = f32x4.add(v128.load(p, 16), c01);
        c02 = f32x4.add(v128.load(p, 32), c02);
        c03 = f32x4.add(v128.load(p, 48), c03);
        c10 = f32x4.add(v128.load(p + strideO), c10);
        c11 = f32x4.add(v128.load(p + strideO, 16), c11);
        c12 = f32x4.add(v128.load(p + strideO, 32), c12);
        c13 = f32x4.add(v128.load(p + strideO, 48), c13);
      }
      v128.store(q, c00);
      v128.store(q, c01, 16);
      v128.store(q, c02, 32);
      v128.store(q, c03, 48);
      v128.store(q + strideO, c10);
      v128.store(q + strideO, c11, 16);
      v128.store(q + strideO, c12, 32);
      v128.store(q + strideO, c13, 48);
    }
    if (r < r1) gradInputRow(out, dY, wFirst, add, r, inDim, outDim, count, c, c + 16);
  }
  if (c16 < count) for (let r = r0; r < r1; r++) gradInputRow(out, dY, wFirst, add, r, inDim, outDim, count, c16, count);
}

/** Row r of gradInput over columns [from, to), one element at a time (the same chain as the blocks). */
function gradInputRow(out: usize, dY: usize, w: usize, add: usize, r: i32, inDim: i32, outDim: i32, count: i32,
  from: i32, to: i32): void {
  const strideA = <usize>outDim << 2;
  const strideW = <usize>inDim << 2;
  for (let c = from; c < to; c++) {
    let acc: f32 = 0;
    let pa = dY + <usize>r * strideA;
    let pw = w + (<usize>c << 2);
    for (let o = 0; o < outDim; o++) {
      acc += load<f32>(pa) * load<f32>(pw);
      pa += 4;
      pw += strideW;
    }
    const offset = (<usize>r * <usize>count + <usize>c) << 2;
    if (add != 0) acc = load<f32>(add + offset) + acc;
    store<f32>(out + offset, acc);
  }
}

// Element chunks per thread are multiples of 16 floats (one cache line), as in elementwise.ts.
const ALIGN: i32 = 16;

/** SiLU'(x) = σ(x)·(1 + x·(1 − σ(x))), σ(x) = 1 / (1 + exp(−x)) with the forward's exp; out = dOut · SiLU'(x). */
@inline function siluGradv(dOut: v128, x: v128): v128 {
  const one = f32x4.splat(1.0);
  const s = f32x4.div(one, f32x4.add(one, expv(f32x4.neg(x))));
  return f32x4.mul(f32x4.mul(dOut, s), f32x4.add(one, f32x4.mul(x, f32x4.sub(one, s))));
}

/** out[j] = dOut[j] · SiLU'(x[j]); out may equal dOut or x. */
export function siluGradShare(out: usize, dOut: usize, x: usize, n: i32, tid: i32, nt: i32): void {
  const i0 = shareStart(n, ALIGN, tid, nt);
  const i1 = shareEnd(n, ALIGN, tid, nt);
  const v1 = i0 + ((i1 - i0) & ~3);
  let i = i0;
  for (; i < v1; i += 4) {
    const off = <usize>i << 2;
    v128.store(out + off, siluGradv(v128.load(dOut + off), v128.load(x + off)));
  }
  for (; i < i1; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, f32x4.extract_lane(siluGradv(f32x4.splat(load<f32>(dOut + off)),
      f32x4.splat(load<f32>(x + off))), 0));
  }
}

/** out[c] = Σ_r x[r][c] (r in order, from 0) for x [rows, cols]: a bias gradient. Threads split c. */
export function columnSumsShare(out: usize, x: usize, rows: i32, cols: i32, tid: i32, nt: i32): void {
  const c0 = shareStart(cols, ALIGN, tid, nt);
  const c1 = shareEnd(cols, ALIGN, tid, nt);
  const stride = <usize>cols << 2;
  const end = <usize>rows * stride;
  let c = c0;
  for (; c + 16 <= c1; c += 16) {
    let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
    const p0 = x + (<usize>c << 2);
    const pEnd = p0 + end;
    for (let p = p0; p < pEnd; p += stride) {
      s0 = f32x4.add(s0, v128.load(p));
      s1 = f32x4.add(s1, v128.load(p, 16));
      s2 = f32x4.add(s2, v128.load(p, 32));
      s3 = f32x4.add(s3, v128.load(p, 48));
    }
    const q = out + (<usize>c << 2);
    v128.store(q, s0);
    v128.store(q, s1, 16);
    v128.store(q, s2, 32);
    v128.store(q, s3, 48);
  }
  for (; c < c1; c++) {
    let s: f32 = 0;
    const p0 = x + (<usize>c << 2);
    const pEnd = p0 + end;
    for (let p = p0; p < pEnd; p += stride) s += load<f32>(p);
    store<f32>(out + (<usize>c << 2), s);
  }
}

/** Two f32 at p widened to f64x2. */
@inline function load2(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

/** The two lanes of an f64x2 stored at p as f32. */
@inline function store2(p: usize, x: v128): void {
  v128.store64_lane(p, f32x4.demote_f64x2_zero(x), 0);
}

/**
 * The cross-entropy of softmax(logits) against targets mixed from a token and a distribution, and its gradient with
 * respect to the logits (src/train/graph.ts's loss), one row at a time while it is in L1. For each row r with
 * targets[r] ≥ 0: out = softmax(logits) and teacher = softmax(teacher), both by softmaxRow (the `softmax` kernel's
 * bits); then, in f64 as the host computed it, best = the first argmax of the logits, lse = ℓ_best − log p_best,
 * ce = (1 − soft)(lse − ℓ_t) + Σ_v soft·q_v·(lse − ℓ_v), and out becomes (p_v − soft·q_v)·scale_r, minus
 * (1 − soft)·scale_r at the target. params f64: soft, then scale_r per row; teacher [rows, n] holds the teacher's
 * logits (0: none, soft must be 0). results f64 [rows, 2] = (ce, best), (0, −1) for an absent target, whose gradient
 * row is zeroed (and teacher row left alone). Σ_v runs in two f64x2 accumulators over v in steps of 4 (lanes v, v+1
 * and v+2, v+3), reduced as ((a0 + a1) + (b0 + b1)), then the tail in order; every gradient element is computed on
 * its own. Threads split r.
 */
export function crossEntropyGradShare(out: usize, logits: usize, teacher: usize, targets: usize, params: usize,
  results: usize, rows: i32, n: i32, tid: i32, nt: i32): void {
  const r0 = shareStart(rows, 1, tid, nt);
  const r1 = shareEnd(rows, 1, tid, nt);
  const soft = load<f64>(params);
  const rowBytes = <usize>n << 2;
  const n4 = n & ~3;
  for (let r = r0; r < r1; r++) {
    const p = out + <usize>r * rowBytes;
    const l = logits + <usize>r * rowBytes;
    const result = results + (<usize>r << 4);
    const target = load<i32>(targets + (<usize>r << 2));
    if (target < 0) {
      memory.fill(p, 0, rowBytes);
      store<f64>(result, 0);
      store<f64>(result, -1, 8);
      continue;
    }
    const scale = load<f64>(params + ((<usize>r + 1) << 3));
    memory.copy(p, l, rowBytes);
    softmaxRow(p, n);
    let best = 0;
    let bestLogit = load<f32>(l);
    for (let v = 1; v < n; v++) {
      const x = load<f32>(l + (<usize>v << 2));
      if (x > bestLogit) {
        best = v;
        bestLogit = x;
      }
    }
    const lse = <f64>bestLogit - Math.log(<f64>load<f32>(p + (<usize>best << 2)));
    let ce = (1 - soft) * (lse - <f64>load<f32>(l + (<usize>target << 2)));
    const sv = f64x2.splat(scale);
    if (soft > 0) {
      const t = teacher + <usize>r * rowBytes;
      softmaxRow(t, n);
      const wv = f64x2.splat(soft);
      const lv = f64x2.splat(lse);
      let a = f64x2.splat(0);
      let b = f64x2.splat(0);
      for (let off: usize = 0, end = <usize>n4 << 2; off < end; off += 16) {
        let weight = f64x2.mul(wv, load2(t + off));
        a = f64x2.add(a, f64x2.mul(weight, f64x2.sub(lv, load2(l + off))));
        store2(p + off, f64x2.mul(f64x2.sub(load2(p + off), weight), sv));
        weight = f64x2.mul(wv, load2(t + off + 8));
        b = f64x2.add(b, f64x2.mul(weight, f64x2.sub(lv, load2(l + off + 8))));
        store2(p + off + 8, f64x2.mul(f64x2.sub(load2(p + off + 8), weight), sv));
      }
      ce += (f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1)) + (f64x2.extract_lane(b, 0) + f64x2.extract_lane(b, 1));
      for (let v = n4; v < n; v++) {
        const off = <usize>v << 2;
        const weight = soft * <f64>load<f32>(t + off);
        ce += weight * (lse - <f64>load<f32>(l + off));
        store<f32>(p + off, <f32>((<f64>load<f32>(p + off) - weight) * scale));
      }
    } else {
      for (let off: usize = 0, end = <usize>n4 << 2; off < end; off += 8) store2(p + off, f64x2.mul(load2(p + off), sv));
      for (let v = n4; v < n; v++) {
        const off = <usize>v << 2;
        store<f32>(p + off, <f32>(<f64>load<f32>(p + off) * scale));
      }
    }
    const pt = p + (<usize>target << 2);
    store<f32>(pt, <f32>(<f64>load<f32>(pt) - (1 - soft) * scale));
    store<f64>(result, ce);
    store<f64>(result, <f64>best, 8);
  }
}

/**
 * One AdamW update of n parameters (src/train/optim.ts), element for element the host's f64 arithmetic with m and v
 * rounded to f32 when stored and read back: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g·g,
 * p ← p·decay − lr·((m / c1) / (√(v / c2) + ε)). params f64: β1, 1 − β1, β2, 1 − β2, c1, c2, ε, lr, decay.
 */
export function adamWShare(data: usize, grad: usize, m: usize, v: usize, n: i32, params: usize, tid: i32, nt: i32): void {
  const i0 = shareStart(n, ALIGN, tid, nt);
  const i1 = shareEnd(n, ALIGN, tid, nt);
  const beta1 = load<f64>(params), rest1 = load<f64>(params, 8);
  const beta2 = load<f64>(params, 16), rest2 = load<f64>(params, 24);
  const c1 = load<f64>(params, 32), c2 = load<f64>(params, 40);
  const epsilon = load<f64>(params, 48), lr = load<f64>(params, 56), decay = load<f64>(params, 64);
  const b1 = f64x2.splat(beta1), r1 = f64x2.splat(rest1), b2 = f64x2.splat(beta2), r2 = f64x2.splat(rest2);
  const cv1 = f64x2.splat(c1), cv2 = f64x2.splat(c2), ev = f64x2.splat(epsilon), lv = f64x2.splat(lr);
  const dv = f64x2.splat(decay);
  const v1 = i0 + ((i1 - i0) & ~1);
  let i = i0;
  for (; i < v1; i += 2) {
    const off = <usize>i << 2;
    const g = load2(grad + off);
    const mNew = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(b1, load2(m + off)), f64x2.mul(r1, g)));
    const vNew = f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(b2, load2(v + off)), f64x2.mul(f64x2.mul(r2, g), g)));
    v128.store64_lane(m + off, mNew, 0);
    v128.store64_lane(v + off, vNew, 0);
    const update = f64x2.div(f64x2.div(f64x2.promote_low_f32x4(mNew), cv1),
      f64x2.add(f64x2.sqrt(f64x2.div(f64x2.promote_low_f32x4(vNew), cv2)), ev));
    store2(data + off, f64x2.sub(f64x2.mul(load2(data + off), dv), f64x2.mul(lv, update)));
  }
  for (; i < i1; i++) {
    const off = <usize>i << 2;
    const g = <f64>load<f32>(grad + off);
    const mNew = <f32>(beta1 * <f64>load<f32>(m + off) + rest1 * g);
    const vNew = <f32>(beta2 * <f64>load<f32>(v + off) + rest2 * g * g);
    store<f32>(m + off, mNew);
    store<f32>(v + off, vNew);
    const update = (<f64>mNew / c1) / (Math.sqrt(<f64>vNew / c2) + epsilon);
    store<f32>(data + off, <f32>(<f64>load<f32>(data + off) * decay - lr * update));
  }
}

/** Σ x_j² in f64 for n f32 at x: two f64x2 accumulators over j in steps of 4, reduced ((a0 + a1) + (b0 + b1)), then the tail in order. */
export function sumOfSquares(x: usize, n: i32): f64 {
  const n4 = n & ~3;
  let a = f64x2.splat(0);
  let b = f64x2.splat(0);
  for (let off: usize = 0, end = <usize>n4 << 2; off < end; off += 16) {
    const u = load2(x + off);
    const w = load2(x + off + 8);
    a = f64x2.add(a, f64x2.mul(u, u));
    b = f64x2.add(b, f64x2.mul(w, w));
  }
  let s = (f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1)) + (f64x2.extract_lane(b, 0) + f64x2.extract_lane(b, 1));
  for (let j = n4; j < n; j++) {
    const u = <f64>load<f32>(x + (<usize>j << 2));
    s += u * u;
  }
  return s;
}

/** x_j ← f32(x_j · factor) in f64, for n f32 at x. */
export function scale(x: usize, n: i32, factor: f64): void {
  const fv = f64x2.splat(factor);
  const n2 = n & ~1;
  for (let off: usize = 0, end = <usize>n2 << 2; off < end; off += 8) store2(x + off, f64x2.mul(load2(x + off), fv));
  if (n2 < n) {
    const p = x + (<usize>n2 << 2);
    store<f32>(p, <f32>(<f64>load<f32>(p) * factor));
  }
}
