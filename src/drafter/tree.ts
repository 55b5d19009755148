// Dynamic tree attention (spec §3): beams that share prefixes are deduplicated into a prefix tree, packed in beam
// order, verified in one forward with every node attending the cache plus its ancestors, then mapped back.
// Everything is preallocated for the largest W × L (architecture.md, invariant 4).

export interface PackedTree {
  readonly maxWidth: number;
  readonly maxLength: number;
  /** Beam width W and length L of the latest build. */
  width: number;
  length: number;
  /** Packed node count P: ≤ 1 + W·(L−1) when every beam starts with g0 (ReDrafter's drafts), ≤ W·L otherwise. */
  size: number;
  /** pt[i·L + k] = smallest beam j whose first k+1 tokens equal beam i's (spec §3.1). */
  readonly prefixOwner: Int32Array;
  /** Packed tokens [P]. */
  readonly tokens: Int32Array;
  /** Depth of each packed node [P] (0 = g0): its position offset. */
  readonly depths: Int32Array;
  /** i·L + k of each packed node [P] (`packed_token_indices`). */
  readonly flatIndex: Int32Array;
  /** Packed index of each node's parent [P]; −1 for the root. */
  readonly parents: Int32Array;
  /** unpack[i·L + k] = packed index of the node for beams[i][0..k] (spec §3.3). */
  readonly unpack: Int32Array;
  /** Ancestor-or-self packed indices of node p, root first: ancestors[ancestorStarts[p] .. ancestorStarts[p+1]). */
  readonly ancestorStarts: Int32Array;
  readonly ancestors: Int32Array;
  /** Per beam: depth of its first own token, and where its own tokens start in the packed list. */
  readonly firstNewDepth: Int32Array;
  readonly segmentStart: Int32Array;
}

export function createPackedTree(maxWidth: number, maxLength: number): PackedTree {
  // Sized for beams that share nothing, not even their first token: the public API (packBeams) takes any beams, as
  // Apple's reference packer does, and a tree of several roots must not overflow the node buffers.
  const maxNodes = maxWidth * maxLength;
  return {
    maxWidth,
    maxLength,
    width: 0,
    length: 0,
    size: 0,
    prefixOwner: new Int32Array(maxWidth * maxLength),
    tokens: new Int32Array(maxNodes),
    depths: new Int32Array(maxNodes),
    flatIndex: new Int32Array(maxNodes),
    parents: new Int32Array(maxNodes),
    unpack: new Int32Array(maxWidth * maxLength),
    ancestorStarts: new Int32Array(maxNodes + 1),
    ancestors: new Int32Array(maxNodes * maxLength),
    firstNewDepth: new Int32Array(maxWidth),
    segmentStart: new Int32Array(maxWidth),
  };
}

/**
 * Builds the packed prefix tree of `beams` ([W, L] row-major) into `tree`. ReDrafter's beams all start with g0 and
 * give one root; beams with different first tokens give one root each (parent −1), every node still packed.
 * Allocation-free; O(W²·L), which is nothing next to the forward pass for the W ≤ 64, L ≤ 16 used in practice.
 */
export function buildTree(beams: Int32Array, width: number, length: number, tree: PackedTree): PackedTree {
  if (width < 1 || width > tree.maxWidth || length < 1 || length > tree.maxLength) {
    throw new RangeError(`buildTree: beams of ${width} × ${length} exceed the tree buffers ` +
      `(${tree.maxWidth} × ${tree.maxLength})`);
  }
  const L = length;
  tree.width = width;
  tree.length = length;
  const { prefixOwner: pt, unpack } = tree;

  // §3.1: pt[i][k] = first beam sharing the prefix of length k+1 with beam i.
  for (let i = 0; i < width; i++) {
    for (let k = 0; k < L; k++) pt[i * L + k] = i;
    for (let j = 0; j < i; j++) {
      let common = 0;
      while (common < L && beams[i * L + common] === beams[j * L + common]) common++;
      for (let k = 0; k < common; k++) if (pt[i * L + k] === i) pt[i * L + k] = j;
    }
  }

  // §3.2: pack the new tokens (pt == own beam) row-major over (i, k).
  let size = 0;
  for (let i = 0; i < width; i++) {
    for (let k = 0; k < L; k++) {
      if (pt[i * L + k] !== i) continue;
      tree.tokens[size] = beams[i * L + k];
      tree.depths[size] = k;
      tree.flatIndex[size] = i * L + k;
      size++;
    }
  }
  tree.size = size;

  // §3.3: unpack[i][k] = start of the owner's segment + offset inside it. The owner's new tokens start at depth
  // d_owner (they form a suffix of its row), and a node at depth k in that segment sits k − d_owner places after it.
  let start = 0;
  for (let j = 0; j < width; j++) {
    let k = 0;
    while (k < L && pt[j * L + k] !== j) k++;
    tree.firstNewDepth[j] = k;
    tree.segmentStart[j] = start;
    start += L - k;
  }
  for (let i = 0; i < width; i++) {
    for (let k = 0; k < L; k++) {
      const owner = pt[i * L + k];
      unpack[i * L + k] = tree.segmentStart[owner] + (k - tree.firstNewDepth[owner]);
    }
  }

  // Parents and ancestor-or-self lists, root first (the order the attention visits them).
  let written = 0;
  for (let p = 0; p < size; p++) {
    const beam = Math.floor(tree.flatIndex[p] / L);
    const depth = tree.depths[p];
    tree.parents[p] = depth === 0 ? -1 : unpack[beam * L + depth - 1];
    tree.ancestorStarts[p] = written;
    for (let k = 0; k <= depth; k++) tree.ancestors[written++] = unpack[beam * L + k];
  }
  tree.ancestorStarts[size] = written;
  return tree;
}

/** Packed index of the child of node `parent` carrying `token`, or −1 (children of a node have distinct tokens). */
export function findChild(tree: PackedTree, parent: number, token: number): number {
  // Children are packed after their parent; a node's children all have depth = parent depth + 1.
  for (let q = parent + 1; q < tree.size; q++) {
    if (tree.parents[q] === parent && tree.tokens[q] === token) return q;
  }
  return -1;
}
