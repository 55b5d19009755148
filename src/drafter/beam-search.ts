// Beam search over the drafter (spec §2): W beams of length L (L counts g0), scores accumulated in float32, beams
// sorted best first with the lowest flat index winning ties. Deterministic and allocation-free after creation.

import type { Drafter } from './drafter.js';
import type { DrafterWeights } from './checkpoint.js';

export const MAX_BEAM_WIDTH = 64;
export const MAX_BEAM_LENGTH = 16;

export interface BeamSearchResult {
  width: number;
  length: number;
  /** [W, L] row-major; beams[w·L] = g0. Valid for the first width·length entries. */
  readonly beams: Int32Array;
  /** Σ log q of each beam's drafted tokens [W]. */
  readonly scores: Float32Array;
  /**
   * The drafter distributions log q ([W, L−1, V] for this call's W and L): entry (w, k−1), at ((w·(L−1) + k−1)·V,
   * produced beams[w][k]. Only filled when the search
   * was created with `keepDistributions` (Apple's acceptance rule needs them; the exact rule does not).
   */
  readonly logQ: Float32Array | null;
}

export interface BeamSearch {
  /** Drafts from context vector h (h[offset .. offset+H)) and first token g0. */
  search(h: Float32Array, offset: number, g0: number, width: number, length: number): BeamSearchResult;
}

/**
 * The same search with the drafter on the model's device (WebGPU: webgpu/drafter.ts), so that a draft is one
 * submission and the context vector never leaves the device: it is row `row` of the latest forward's final-norm
 * hidden states there. Its scores are float32 sums like the host's, but its softmax sums in float32 (the host's in
 * float64), so where two candidates are within rounding of each other the beams may differ; the verification keeps the
 * output exact either way. No log q is kept (the exact rule does not read it). One search at a time; the result's
 * views stay valid until the next.
 */
export interface DeviceBeamSearch {
  readonly maxWidth: number;
  readonly maxLength: number;
  searchFromRow(row: number, g0: number, width: number, length: number): Promise<BeamSearchResult>;
  /**
   * A sequence's context vector kept on the device: `capture(row)` copies row `row` of the latest forward's hidden
   * states there (queued before any later forward), so the sequence can draft from it after other forwards ran.
   */
  createContext(): DeviceContext;
  search(context: DeviceContext, g0: number, width: number, length: number): Promise<BeamSearchResult>;
  dispose(): void;
}

export interface DeviceContext {
  capture(row: number): void;
  free(): void;
}

/** A model that can run a drafter on its own device (the WebGPU engine model). */
export interface DeviceDrafting {
  createDeviceBeamSearch(weights: DrafterWeights, options: { maxWidth: number; maxLength: number }): DeviceBeamSearch;
}

export function validateBeamShape(width: number, length: number): void {
  if (!Number.isInteger(width) || width < 1 || width > MAX_BEAM_WIDTH) {
    throw new RangeError(`beams: expected an integer in 1..${MAX_BEAM_WIDTH}, got ${width}`);
  }
  if (!Number.isInteger(length) || length < 2 || length > MAX_BEAM_LENGTH) {
    throw new RangeError(`beam length: expected an integer in 2..${MAX_BEAM_LENGTH} (it counts g0), got ${length}`);
  }
}

/**
 * Turns drafter logits into log q in place (spec §1.2 post-processing): subtract the max, replace every entry strictly
 * below the k-th largest by LOG_0 (ties at the threshold survive), log-softmax. `selection` is scratch of length V.
 * With `survivors`, the indices of the entries that were not filtered are written there in ascending order (from
 * `survivorsAt`); returns how many survived.
 */
export function drafterLogProbs(row: Float32Array, offset: number, vocab: number, topK: number, log0: number,
  selection: Float32Array, survivors?: Int32Array, survivorsAt = 0): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) if (row[offset + v] > max) max = row[offset + v];
  for (let v = 0; v < vocab; v++) row[offset + v] = Math.fround(row[offset + v] - max);
  let threshold = -Infinity;
  if (topK < vocab) {
    for (let v = 0; v < vocab; v++) selection[v] = row[offset + v];
    threshold = kthLargest(selection, vocab, topK);
  }
  // exp(LOG_0) is 0 in float64, so filtered entries add nothing; the max is 0 after centering.
  let sum = 0;
  let kept = 0;
  for (let v = 0; v < vocab; v++) {
    const value = row[offset + v];
    if (value < threshold) {
      row[offset + v] = log0;
    } else {
      sum += Math.exp(value);
      if (survivors) survivors[survivorsAt + kept] = v;
      kept++;
    }
  }
  const logSum = Math.log(sum);
  for (let v = 0; v < vocab; v++) row[offset + v] = Math.fround(row[offset + v] - logSum);
  return kept;
}

/** The k-th largest of values[0..n) (k ≥ 1), by quickselect; reorders `values`. */
function kthLargest(values: Float32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = values[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (values[i] > pivot) i++;
      while (values[j] < pivot) j--;
      if (i <= j) {
        const t = values[i];
        values[i] = values[j];
        values[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return values[target];
  }
  return values[target];
}

export interface BeamSearchOptions {
  maxWidth: number;
  maxLength: number;
  /** Keep log q of every drafted position (for Apple's acceptance rule). */
  keepDistributions?: boolean;
}

export function createBeamSearch(drafter: Drafter, options: BeamSearchOptions): BeamSearch {
  const { maxWidth, maxLength } = options;
  validateBeamShape(maxWidth, maxLength);
  if (drafter.maxRows < maxWidth) throw new RangeError(`beam search: the drafter computes ${drafter.maxRows} rows, W = ${maxWidth}`);
  const V = drafter.config.vocabSize;
  const { topK, log0 } = drafter.config;
  const beams = new Int32Array(maxWidth * maxLength);
  const nextBeams = new Int32Array(maxWidth * maxLength);
  const scores = new Float32Array(maxWidth);
  const nextScores = new Float32Array(maxWidth);
  const parents = new Int32Array(maxWidth);
  const picked = new Int32Array(maxWidth);
  const lastTokens = new Int32Array(maxWidth);
  const selection = new Float32Array(V);
  const survivors = new Int32Array(maxWidth * V);
  const survivorCounts = new Int32Array(maxWidth);
  const logQ = options.keepDistributions ? new Float32Array(maxWidth * (maxLength - 1) * V) : null;
  const nextLogQ = options.keepDistributions ? new Float32Array(maxWidth * (maxLength - 1) * V) : null;
  const result: BeamSearchResult = { width: 0, length: 0, beams, scores, logQ };
  let width = 0;
  let found = 0;

  /** Offers candidate (row r, token v) with score `joint` to the sorted top-`width` list. */
  function select(r: number, v: number, joint: number): void {
    if (found === width && joint <= nextScores[width - 1]) return;
    let at = found < width ? found : width - 1;
    while (at > 0 && nextScores[at - 1] < joint) {
      nextScores[at] = nextScores[at - 1];
      parents[at] = parents[at - 1];
      picked[at] = picked[at - 1];
      at--;
    }
    nextScores[at] = joint;
    parents[at] = r;
    picked[at] = v;
    if (found < width) found++;
  }

  function search(h: Float32Array, offset: number, g0: number, beamWidth: number, length: number): BeamSearchResult {
    validateBeamShape(beamWidth, length);
    width = beamWidth;
    if (width > maxWidth || length > maxLength) {
      throw new RangeError(`beam search: ${width} × ${length} exceeds the prepared ${maxWidth} × ${maxLength}`);
    }
    const L = length;
    drafter.setContext(h, offset);
    drafter.resetState();
    for (let w = 0; w < width; w++) beams[w * L] = g0;
    lastTokens[0] = g0;
    let rows = 1; // step 1 computes beam 0 only: the other W−1 beams are dead copies of it (spec §2.2)

    for (let t = 1; t < L; t++) {
      const logits = drafter.step(lastTokens, rows);
      // Filtered entries of a row all hold the same value (LOG_0 − log Σ), the best a non-survivor can score there.
      let bestFiltered = -Infinity;
      for (let r = 0; r < rows; r++) {
        survivorCounts[r] = drafterLogProbs(logits, r * V, V, topK, log0, selection, survivors, r * V);
        if (survivorCounts[r] < V) {
          // Survivors are listed in ascending order, so the first index missing from the list was filtered.
          let filtered = 0;
          while (filtered < survivorCounts[r] && survivors[r * V + filtered] === filtered) filtered++;
          const base = t === 1 ? 0 : scores[r];
          bestFiltered = Math.max(bestFiltered, Math.fround(base + logits[r * V + filtered]));
        }
      }
      // At step 1 the W−1 dead copies (score LOG_0) take part with beam 0's distribution, as in the reference;
      // their children score at most LOG_0.
      if (t === 1 && width > 1) bestFiltered = Math.max(bestFiltered, log0);

      // Top-W of the joint scores over (beam, token), best first, lowest flat index on ties. Survivors are visited
      // first, in flat-index order; if the W-th best of them beats every non-survivor, that is the answer, else every
      // candidate is visited (junk beams, tiny vocabularies, W above the survivors).
      found = 0;
      for (let r = 0; r < rows; r++) {
        const base = t === 1 ? 0 : scores[r];
        for (let j = 0; j < survivorCounts[r]; j++) {
          const v = survivors[r * V + j];
          select(r, v, Math.fround(base + logits[r * V + v]));
        }
      }
      if (found < width || !(nextScores[width - 1] > bestFiltered)) {
        found = 0;
        const candidateRows = t === 1 ? width : rows;
        for (let r = 0; r < candidateRows; r++) {
          const base = t === 1 ? (r === 0 ? 0 : log0) : scores[r];
          const row = (t === 1 ? 0 : r) * V;
          for (let v = 0; v < V; v++) select(r, v, Math.fround(base + logits[row + v]));
        }
      }

      // New beams: parent's prefix + picked token; state and distributions follow the parent.
      for (let w = 0; w < width; w++) {
        const parent = parents[w];
        for (let k = 0; k < t; k++) nextBeams[w * L + k] = beams[parent * L + k];
        nextBeams[w * L + t] = picked[w];
        scores[w] = nextScores[w];
        lastTokens[w] = picked[w];
        if (logQ && nextLogQ) {
          const stride = (L - 1) * V;
          nextLogQ.set(logQ.subarray(parent * stride, parent * stride + (t - 1) * V), w * stride);
          const source = (t === 1 ? 0 : parent) * V;
          nextLogQ.set(logits.subarray(source, source + V), w * stride + (t - 1) * V);
        }
      }
      beams.set(nextBeams.subarray(0, width * L));
      if (logQ && nextLogQ) logQ.set(nextLogQ.subarray(0, width * (L - 1) * V));
      // Dead copies at step 1 share beam 0's state, so parents index row 0 then.
      if (t === 1) parents.fill(0, 0, width);
      drafter.reorderState(parents, width);
      rows = width;
    }
    result.width = width;
    result.length = L;
    return result;
  }

  return { search };
}
