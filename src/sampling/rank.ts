// Rank order over token ids (sampler.ts, steps 5-6): higher logit first, lower id on equal logits. Helpers here
// take every buffer as an argument and allocate nothing. NaN and -Infinity logits never reach them; -0 and +0 rank
// as equal, as `===` says.

/** Sift-down in a heap whose root is the WORST token in rank order (used to keep the k best). */
export function siftDownWorst(ids: Int32Array, size: number, start: number, z: Float32Array): void {
  const id = ids[start];
  const v = z[id];
  let pos = start;
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    let cid = ids[child];
    let cv = z[cid];
    const right = child + 1;
    if (right < size) {
      const rid = ids[right];
      const rv = z[rid];
      if (rv < cv || (rv === cv && rid > cid)) {
        child = right;
        cid = rid;
        cv = rv;
      }
    }
    if (cv < v || (cv === v && cid > id)) {
      ids[pos] = cid;
      pos = child;
    } else break;
  }
  ids[pos] = id;
}

export function siftUpWorst(ids: Int32Array, start: number, z: Float32Array): void {
  const id = ids[start];
  const v = z[id];
  let pos = start;
  while (pos > 0) {
    const parent = (pos - 1) >> 1;
    const pid = ids[parent];
    const pv = z[pid];
    if (v < pv || (v === pv && id > pid)) {
      ids[pos] = pid;
      pos = parent;
    } else break;
  }
  ids[pos] = id;
}

/** Sift-down in a heap whose root is the BEST token in rank order (used to pop the nucleus in rank order). */
export function siftDownBest(ids: Int32Array, size: number, start: number, z: Float32Array): void {
  const id = ids[start];
  const v = z[id];
  let pos = start;
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    let cid = ids[child];
    let cv = z[cid];
    const right = child + 1;
    if (right < size) {
      const rid = ids[right];
      const rv = z[rid];
      if (rv > cv || (rv === cv && rid < cid)) {
        child = right;
        cid = rid;
        cv = rv;
      }
    }
    if (cv > v || (cv === v && cid < id)) {
      ids[pos] = cid;
      pos = child;
    } else break;
  }
  ids[pos] = id;
}

/**
 * The min(k, finite count) best tokens of v[0 .. vocabSize) into ids[0 .. n), in heap order; returns n. One pass:
 * a worst-at-root heap of size k, which a later token enters only with a strictly larger logit (an equal logit
 * with a higher id ranks lower), so ties at the boundary keep the lowest ids.
 */
export function selectTopK(v: Float32Array, vocabSize: number, k: number, ids: Int32Array): number {
  let n = 0;
  let i = 0;
  for (; i < vocabSize && n < k; i++) {
    if (v[i] > -Infinity) {
      ids[n] = i;
      siftUpWorst(ids, n++, v);
    }
  }
  if (n < k) return n;
  let floor = v[ids[0]];
  for (; i < vocabSize; i++) {
    if (v[i] > floor) {
      ids[0] = i;
      siftDownWorst(ids, n, 0, v);
      floor = v[ids[0]];
    }
  }
  return n;
}

/** Below this many ids an insertion sort beats marking and scanning the vocabulary. */
const SMALL_SORT = 64;

/** Sorts the distinct ids[0 .. n) ascending; mark (length vocabSize, all zero) is left all zero. */
export function sortIdsAscending(ids: Int32Array, n: number, mark: Uint8Array, vocabSize: number): void {
  if (n <= SMALL_SORT) {
    for (let i = 1; i < n; i++) {
      const id = ids[i];
      let j = i - 1;
      while (j >= 0 && ids[j] > id) {
        ids[j + 1] = ids[j];
        j--;
      }
      ids[j + 1] = id;
    }
    return;
  }
  for (let i = 0; i < n; i++) mark[ids[i]] = 1;
  let k = 0;
  for (let t = 0; t < vocabSize; t++) {
    if (mark[t] !== 0) {
      mark[t] = 0;
      ids[k++] = t;
    }
  }
}

/** Buffers for sortByRank, for up to `capacity` ids. */
export interface RankScratch {
  readonly keys: Uint32Array;
  readonly keysAlt: Uint32Array;
  readonly idsAlt: Int32Array;
  /** Four 256-entry digit histograms. */
  readonly counts: Uint32Array;
  /** One float aliased by one uint32: reads a float's bit pattern without a DataView. */
  readonly bits: Float32Array;
  readonly bitsU: Uint32Array;
}

export function createRankScratch(capacity: number): RankScratch {
  const bits = new Float32Array(1);
  return {
    keys: new Uint32Array(capacity),
    keysAlt: new Uint32Array(capacity),
    idsAlt: new Int32Array(capacity),
    counts: new Uint32Array(4 * 256),
    bits,
    bitsU: new Uint32Array(bits.buffer),
  };
}

/**
 * Sorts ids[0 .. n), which must be in ascending id order, into rank order: an LSD radix sort (4 passes of 8 bits)
 * of the float32 logits mapped to uint32 keys that grow as the logit falls. The sort is stable, so equal logits keep
 * ascending ids. Linear in n: used for large nuclei, where popping a heap one token at a time costs n log n.
 */
export function sortByRank(ids: Int32Array, n: number, v: Float32Array, s: RankScratch): void {
  if (n < 2) return;
  const { keys, counts, bits, bitsU } = s;
  counts.fill(0);
  for (let i = 0; i < n; i++) {
    const x = v[ids[i]];
    bits[0] = x === 0 ? 0 : x; // -0 and +0 must share a key
    const b = bitsU[0];
    // Negative floats: the raw bits grow as the value falls. Non-negative: flipping the bits does the same, and the
    // cleared top bit puts them all before the negatives.
    const key = (b & 0x80000000) !== 0 ? b : ~b & 0x7fffffff;
    keys[i] = key;
    counts[key & 255]++;
    counts[256 + ((key >>> 8) & 255)]++;
    counts[512 + ((key >>> 16) & 255)]++;
    counts[768 + (key >>> 24)]++;
  }
  let srcK = keys;
  let srcI = ids;
  let dstK = s.keysAlt;
  let dstI = s.idsAlt;
  for (let pass = 0; pass < 4; pass++) {
    const base = pass * 256;
    const shift = pass * 8;
    if (counts[base + ((srcK[0] >>> shift) & 255)] === n) continue; // one digit value only: nothing moves
    let sum = 0;
    for (let d = 0; d < 256; d++) {
      const c = counts[base + d];
      counts[base + d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const key = srcK[i];
      const pos = counts[base + ((key >>> shift) & 255)]++;
      dstK[pos] = key;
      dstI[pos] = srcI[i];
    }
    const k = srcK;
    srcK = dstK;
    dstK = k;
    const t = srcI;
    srcI = dstI;
    dstI = t;
  }
  if (srcI !== ids) for (let i = 0; i < n; i++) ids[i] = srcI[i];
}
