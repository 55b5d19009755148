import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from './random.js';
import { createRankScratch, selectTopK, sortByRank, sortIdsAscending } from './rank.js';

/** Rank order the slow way: higher logit first, lower id on equal logits (=== equality, so -0 equals +0). */
function ranked(v: Float32Array, ids: number[]): number[] {
  return [...ids].sort((a, b) => (v[a] !== v[b] ? v[b] - v[a] : a - b));
}

const SPECIALS = [0, -0, 1e-45, -1e-45, 1.17549435e-38, -1.17549435e-38, 3.4028235e38, -3.4028235e38, 1, -1, 0.5, -0.5];

function randomValues(seed: number, n: number): Float32Array {
  const rng = createRng(seed);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rng.nextUniform();
    if (r < 0.2) v[i] = SPECIALS[Math.floor(rng.nextUniform() * SPECIALS.length)];
    else if (r < 0.5) v[i] = Math.round((rng.nextUniform() - 0.5) * 8); // many ties
    else v[i] = (rng.nextUniform() - 0.5) * 10 ** (rng.nextUniform() * 8 - 4);
  }
  return v;
}

test('sortByRank (radix) equals a comparison sort, including -0/+0, subnormals, extremes and ties', () => {
  for (const n of [1, 2, 3, 300, 5000]) {
    const v = randomValues(n, n);
    const ids = Int32Array.from({ length: n }, (_, i) => i);
    sortByRank(ids, n, v, createRankScratch(n));
    assert.deepEqual(Array.from(ids), ranked(v, Array.from({ length: n }, (_, i) => i)), `n = ${n}`);
  }
  // A subset of ids (ascending, as required), with every key sharing its high bytes: passes are skipped.
  const v = new Float32Array(1000);
  for (let i = 0; i < v.length; i++) v[i] = 1 + (i % 7) * 2 ** -20;
  const subset = Array.from({ length: 400 }, (_, i) => i * 2 + 1);
  const ids = Int32Array.from(subset);
  sortByRank(ids, ids.length, v, createRankScratch(1000));
  assert.deepEqual(Array.from(ids), ranked(v, subset));
});

test('selectTopK keeps the k best in rank order, lowest ids on boundary ties, skipping -Infinity and NaN', () => {
  const v = Float32Array.from([3, Number.NaN, 5, -Infinity, 5, 1, 3, 3, -0, 0]);
  const ids = new Int32Array(v.length);
  const pick = (k: number): number[] => {
    const n = selectTopK(v, v.length, k, ids);
    return ranked(v, Array.from(ids.subarray(0, n)));
  };
  assert.deepEqual(pick(1), [2]);
  assert.deepEqual(pick(2), [2, 4]);
  assert.deepEqual(pick(3), [2, 4, 0]);
  assert.deepEqual(pick(4), [2, 4, 0, 6]);
  assert.deepEqual(pick(8), [2, 4, 0, 6, 7, 5, 8, 9]);
  assert.deepEqual(pick(10), [2, 4, 0, 6, 7, 5, 8, 9]); // only 8 candidates are finite
  for (const seed of [1, 2, 3]) {
    const w = randomValues(seed, 2000);
    const all = ranked(w, Array.from({ length: 2000 }, (_, i) => i));
    const buf = new Int32Array(2000);
    for (const k of [1, 7, 40, 500]) {
      const n = selectTopK(w, w.length, k, buf);
      assert.deepEqual(ranked(w, Array.from(buf.subarray(0, n))), all.slice(0, k), `seed ${seed}, k ${k}`);
    }
  }
});

test('sortIdsAscending: insertion sort and mark-and-scan agree and leave the marks clear', () => {
  const V = 3000;
  const mark = new Uint8Array(V);
  const rng = createRng(4);
  for (const n of [0, 1, 10, 64, 65, 2999]) {
    const pool = Array.from({ length: V }, (_, i) => i);
    for (let i = V - 1; i > 0; i--) {
      const j = Math.floor(rng.nextUniform() * (i + 1));
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    const ids = Int32Array.from(pool.slice(0, n));
    sortIdsAscending(ids, n, mark, V);
    assert.deepEqual(Array.from(ids), pool.slice(0, n).sort((a, b) => a - b));
    assert.ok(mark.every((x) => x === 0));
  }
});
