// Attention over explicit key lists (types.ts: QUERY_RECORD_INTS). For each (query, head) pair: the scores of the
// query's keys in list order go to a contiguous per-thread scratch row, then softmax over that row, then
// out = Σ_j p_j · v_j accumulated in list order. A key's score and its contribution are computed by the same code
// whether its slot came from the prefix range or from the extra-slot list, so a token reached either way (cache
// prefix in autoregressive decoding, ancestor slot in tree verification) gives the same bits.
import { dot, softmaxRow, shareStart, shareEnd } from './common';

/** out[d] += p · v[d] for d < n; per element the same mul then add in the vector body and in the tail. */
@inline function addScaled(out: usize, v: usize, p: f32, n: i32): void {
  const n4 = n & ~3;
  const pv = f32x4.splat(p);
  const end4 = out + (<usize>n4 << 2);
  const end = out + (<usize>n << 2);
  let o = out;
  let q = v;
  for (; o < end4; o += 16, q += 16) v128.store(o, f32x4.add(v128.load(o), f32x4.mul(pv, v128.load(q))));
  for (; o < end; o += 4, q += 4) store<f32>(o, load<f32>(o) + p * load<f32>(q));
}

export function attentionShare(out: usize, q: usize, queries: usize, rows: i32, nHeads: i32, nKvHeads: i32,
  headDim: i32, scale: f32, scratch: usize, scratchStride: i32, tid: i32, nt: i32): void {
  const total = rows * nHeads;
  const s0 = shareStart(total, 1, tid, nt);
  const s1 = shareEnd(total, 1, tid, nt);
  const group = nHeads / nKvHeads;
  const headBytes = <usize>headDim << 2;
  const slotBytes = <usize>nKvHeads * headBytes;
  const scores = scratch + ((<usize>tid * <usize>scratchStride) << 2);
  for (let pair = s0; pair < s1; pair++) {
    const qi = pair / nHeads;
    const h = pair - qi * nHeads;
    const rec = queries + <usize>qi * 20;
    const kvOffset = <usize>(h / group) * headBytes;
    const kBase = <usize>load<u32>(rec) + kvOffset;
    const vBase = <usize>load<u32>(rec, 4) + kvOffset;
    const prefix = load<i32>(rec, 8);
    const extra = <usize>load<u32>(rec, 12);
    const extraCount = load<i32>(rec, 16);
    const n = prefix + extraCount;
    const qh = q + (<usize>pair * headBytes);
    const oh = out + (<usize>pair * headBytes);

    for (let j = 0; j < prefix; j++) {
      store<f32>(scores + (<usize>j << 2), dot(qh, kBase + <usize>j * slotBytes, headDim) * scale);
    }
    for (let j = 0; j < extraCount; j++) {
      const slot = <usize>load<u32>(extra + (<usize>j << 2));
      store<f32>(scores + (<usize>(prefix + j) << 2), dot(qh, kBase + slot * slotBytes, headDim) * scale);
    }
    softmaxRow(scores, n);

    memory.fill(oh, 0, headBytes);
    for (let j = 0; j < prefix; j++) {
      addScaled(oh, vBase + <usize>j * slotBytes, load<f32>(scores + (<usize>j << 2)), headDim);
    }
    for (let j = 0; j < extraCount; j++) {
      const slot = <usize>load<u32>(extra + (<usize>j << 2));
      addScaled(oh, vBase + slot * slotBytes, load<f32>(scores + (<usize>(prefix + j) << 2)), headDim);
    }
  }
}
