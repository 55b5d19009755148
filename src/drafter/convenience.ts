// One-call versions of beam search and tree packing for people who embed the building blocks. They allocate their
// buffers on every call; the decoder uses the preallocated forms (createBeamSearch, createPackedTree).

import type { Drafter } from './drafter.js';
import { createBeamSearch } from './beam-search.js';
import { buildTree, createPackedTree, type PackedTree } from './tree.js';

export interface Beams {
  /** W beams of L tokens; index 0 of each is g0. Best first. */
  beams: number[][];
  /** Σ log q of each beam's drafted tokens. */
  scores: number[];
  /** logQ[w][k−1] = the drafter's log-distribution (length V) that produced beams[w][k]. */
  logQ: Float32Array[][];
}

/**
 * Drafts W beams of length L (counting g0) from context vector `h` (the LLM's final-norm hidden state at the last
 * committed token) and the LLM's own next token `g0` (spec §2). The drafter reads the LLM embedding table it was
 * created with (`createDrafter(kernels, weights, model.tokenEmbedding, maxRows)` or `loadDrafter`).
 */
export function beamSearch(drafter: Drafter, h: Float32Array, g0: number, width: number, length: number): Beams {
  const result = createBeamSearch(drafter, { maxWidth: width, maxLength: length, keepDistributions: true })
    .search(h, 0, g0, width, length);
  const V = drafter.config.vocabSize;
  const logQ = result.logQ!;
  return {
    beams: Array.from({ length: width }, (_, w) => Array.from(result.beams.subarray(w * length, (w + 1) * length))),
    scores: Array.from(result.scores.subarray(0, width)),
    logQ: Array.from({ length: width }, (_, w) => Array.from({ length: length - 1 }, (_, k) =>
      logQ.slice((w * (length - 1) + k) * V, (w * (length - 1) + k + 1) * V))),
  };
}

/**
 * Packs beams ([W][L]) into a prefix tree (spec §3): tokens, depths, unpack map, ancestors. Beams from beamSearch all
 * start with g0 (one root); beams that do not share their first token are packed too, as several roots.
 */
export function packBeams(beams: readonly (readonly number[])[]): PackedTree {
  const width = beams.length;
  const length = beams[0]?.length ?? 0;
  if (width === 0 || beams.some((beam) => beam.length !== length)) {
    throw new RangeError('packBeams: expected at least one beam, all of the same length');
  }
  return buildTree(Int32Array.from(beams.flat()), width, length, createPackedTree(width, length));
}
