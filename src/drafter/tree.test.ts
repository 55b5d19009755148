import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, createPackedTree, findChild } from './tree.js';

// Spec §3.7: the reference repository's own vectors (batch of 2, W = 3, L = 4), one batch row at a time.
const row0 = [91, 92, 93, 95, 91, 92, 94, 96, 91, 92, 93, 97];
const row1 = [93, 94, 95, 92, 93, 95, 96, 93, 93, 94, 97, 96];

test('§3.7 row 0: prefix owners, packed tokens, flat indices, depths, unpacker, ancestors', () => {
  const tree = buildTree(Int32Array.from(row0), 3, 4, createPackedTree(4, 5));
  assert.deepEqual([...tree.prefixOwner.subarray(0, 12)], [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 2]);
  assert.equal(tree.size, 7);
  assert.deepEqual([...tree.tokens.subarray(0, 7)], [91, 92, 93, 95, 94, 96, 97]);
  assert.deepEqual([...tree.flatIndex.subarray(0, 7)], [0, 1, 2, 3, 6, 7, 11]);
  assert.deepEqual([...tree.depths.subarray(0, 7)], [0, 1, 2, 3, 2, 3, 3]);
  assert.deepEqual([...tree.unpack.subarray(0, 12)], [0, 1, 2, 3, 0, 1, 4, 5, 0, 1, 2, 6]);
  // The packed-block mask of §3.7, as ancestor-or-self lists.
  const lists = Array.from({ length: 7 }, (_, p) =>
    [...tree.ancestors.subarray(tree.ancestorStarts[p], tree.ancestorStarts[p + 1])]);
  assert.deepEqual(lists, [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 4], [0, 1, 4, 5], [0, 1, 2, 6]]);
  assert.deepEqual([...tree.parents.subarray(0, 7)], [-1, 0, 1, 2, 1, 4, 2]);
  assert.equal(findChild(tree, 2, 97), 6);
  assert.equal(findChild(tree, 2, 95), 3);
  assert.equal(findChild(tree, 2, 94), -1);
});

test('§3.7 row 1', () => {
  const tree = buildTree(Int32Array.from(row1), 3, 4, createPackedTree(3, 4));
  assert.equal(tree.size, 9);
  assert.deepEqual([...tree.tokens.subarray(0, 9)], [93, 94, 95, 92, 95, 96, 93, 97, 96]);
  assert.deepEqual([...tree.flatIndex.subarray(0, 9)], [0, 1, 2, 3, 5, 6, 7, 10, 11]);
  assert.deepEqual([...tree.depths.subarray(0, 9)], [0, 1, 2, 3, 1, 2, 3, 2, 3]);
  assert.deepEqual([...tree.unpack.subarray(0, 12)], [0, 1, 2, 3, 0, 4, 5, 6, 0, 1, 7, 8]);
});

/** Brute force: a node per distinct prefix, in order of first appearance over (beam, depth) row-major. */
function bruteForce(beams: number[], W: number, L: number) {
  const keys: string[] = [];
  const unpack: number[] = [];
  for (let i = 0; i < W; i++) {
    for (let k = 0; k < L; k++) {
      const key = beams.slice(i * L, i * L + k + 1).join(',');
      let index = keys.indexOf(key);
      if (index < 0) index = keys.push(key) - 1;
      unpack.push(index);
    }
  }
  return { keys, unpack };
}

test('random beams agree with a brute-force prefix comparison', () => {
  let seed = 12345;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const tree = createPackedTree(16, 7);
  for (let trial = 0; trial < 500; trial++) {
    const W = 1 + next(16);
    const L = 1 + next(7);
    const vocab = 2 + next(4); // small vocabularies force many shared prefixes
    const beams: number[] = [];
    // Every other trial lets the beams start with different tokens (several roots), as the public packBeams allows.
    const oneRoot = trial % 2 === 0;
    for (let i = 0; i < W; i++) for (let k = 0; k < L; k++) beams.push(k === 0 && oneRoot ? 7 : next(vocab));
    buildTree(Int32Array.from(beams), W, L, tree);
    const expected = bruteForce(beams, W, L);
    // Packing is in order of first appearance only within the owner's segment; compare as prefix sets and maps.
    assert.equal(tree.size, expected.keys.length, `trial ${trial}`);
    for (let i = 0; i < W; i++) {
      for (let k = 0; k < L; k++) {
        const p = tree.unpack[i * L + k];
        assert.equal(tree.tokens[p], beams[i * L + k]);
        assert.equal(tree.depths[p], k);
        const path = [...tree.ancestors.subarray(tree.ancestorStarts[p], tree.ancestorStarts[p + 1])]
          .map((q) => tree.tokens[q]);
        assert.deepEqual(path, beams.slice(i * L, i * L + k + 1));
        assert.equal(tree.parents[p], k === 0 ? -1 : tree.unpack[i * L + k - 1]);
      }
    }
    // Distinct prefixes map to distinct nodes.
    const seen = new Map<string, number>();
    for (let f = 0; f < W * L; f++) {
      const i = Math.floor(f / L);
      const k = f % L;
      const key = beams.slice(i * L, i * L + k + 1).join(',');
      const p = tree.unpack[f];
      if (seen.has(key)) assert.equal(seen.get(key), p);
      else seen.set(key, p);
    }
    assert.equal(new Set(seen.values()).size, seen.size);
  }
});

test('buildTree rejects beams larger than its buffers', () => {
  assert.throws(() => buildTree(new Int32Array(20), 5, 4, createPackedTree(4, 4)), /5 × 4 exceed the tree buffers \(4 × 4\)/);
});

test('beams that share no first token pack into one root each, no node dropped', async () => {
  const { packBeams } = await import('./convenience.js');
  // 3 beams × 3 tokens, nothing shared: 9 nodes, more than the 1 + W·(L−1) = 7 of a single-root tree.
  const tree = packBeams([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  assert.equal(tree.size, 9);
  assert.deepEqual([...tree.tokens.subarray(0, 9)], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual([...tree.parents.subarray(0, 9)], [-1, 0, 1, -1, 3, 4, -1, 6, 7]);
  assert.deepEqual([...tree.ancestors.subarray(tree.ancestorStarts[8], tree.ancestorStarts[9])], [6, 7, 8]);
  // Two roots, one of them shared by two beams.
  const mixed = packBeams([[1, 2, 3], [4, 5, 6], [1, 2, 7]]);
  assert.equal(mixed.size, 7);
  assert.deepEqual([...mixed.unpack.subarray(0, 9)], [0, 1, 2, 3, 4, 5, 0, 1, 6]);
});
