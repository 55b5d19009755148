import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBeamSearch, drafterLogProbs, validateBeamShape } from './beam-search.js';
import type { Drafter } from './drafter.js';
import { DEFAULT_TOP_K, LOG_0, type DrafterConfig } from './config.js';

/** A drafter whose next-token distribution depends only on the last token, given as probabilities (spec §2.3). */
function tableDrafter(vocab: number, table: Record<number, number[]>, maxRows = 8): Drafter {
  const config: DrafterConfig = { vocabSize: vocab, hiddenSize: 4, exitDim: 8, numDraftLayers: 0, rnn: false,
    numLookbackTokens: -1, embNorm: false, rmsNormEps: 1e-5, topK: DEFAULT_TOP_K, log0: LOG_0 };
  const logits = new Float32Array(maxRows * vocab);
  return {
    config,
    maxRows,
    setContext() {},
    resetState() {},
    step(tokens, rows) {
      for (let r = 0; r < rows; r++) {
        const probabilities = table[tokens[r]];
        for (let v = 0; v < vocab; v++) logits[r * vocab + v] = Math.log(probabilities[v]);
      }
      return logits;
    },
    reorderState() {},
    dispose() {},
  };
}

test('§2.3 toy trace: V = 5, W = 2, L = 3', () => {
  const g0 = 4;
  const drafter = tableDrafter(5, {
    4: [0.5, 0.3, 0.1, 0.05, 0.05], // after g0
    0: [0.1, 0.6, 0.2, 0.05, 0.05], // q_A, after [g0, 0]
    1: [0.9, 0.05, 0.03, 0.01, 0.01], // q_B, after [g0, 1]
  });
  const search = createBeamSearch(drafter, { maxWidth: 2, maxLength: 3, keepDistributions: true });
  const result = search.search(new Float32Array(4), 0, g0, 2, 3);
  assert.deepEqual([...result.beams.subarray(0, 6)], [g0, 0, 1, g0, 1, 0]);
  assert.ok(Math.abs(result.scores[0] - Math.log(0.3)) < 1e-5, `score 0 = ${result.scores[0]}`);
  assert.ok(Math.abs(result.scores[1] - Math.log(0.27)) < 1e-5, `score 1 = ${result.scores[1]}`);
  // logQ[w][k-1] is the distribution that produced beams[w][k].
  const logQ = result.logQ!;
  assert.ok(Math.abs(logQ[0 * 5 + 0] - Math.log(0.5)) < 1e-5);
  assert.ok(Math.abs(logQ[1 * 5 + 1] - Math.log(0.6)) < 1e-5); // beam 0, k = 2: q_A
  assert.ok(Math.abs(logQ[3 * 5 + 0] - Math.log(0.9)) < 1e-5); // beam 1, k = 2: q_B
});

test('W above the live candidates fills with dead-copy junk as the reference does (spec §2.2)', () => {
  const drafter = tableDrafter(3, { 2: [0.7, 0.2, 0.1], 0: [0.5, 0.3, 0.2], 1: [0.4, 0.4, 0.2] });
  const search = createBeamSearch(drafter, { maxWidth: 5, maxLength: 2 });
  const result = search.search(new Float32Array(4), 0, 2, 5, 2);
  // The 3 live children first, then the best children of dead copies (token 0 of copies 1 and 2).
  assert.deepEqual([...result.beams.subarray(0, 10)], [2, 0, 2, 1, 2, 2, 2, 0, 2, 0]);
  assert.ok(result.scores[3] < -49000);
});

test('drafterLogProbs: centering, top-k with ties kept, log-softmax', () => {
  const row = Float32Array.of(3, 1, 2, 2, 0);
  drafterLogProbs(row, 0, 5, 2, LOG_0, new Float32Array(5));
  // Top-2 threshold is 2 and both 2s survive (>50 survivors are possible in the reference too).
  const lse = Math.log(1 + 2 * Math.exp(-1));
  assert.ok(Math.abs(row[0] + lse) < 1e-6);
  assert.ok(Math.abs(row[2] - (-1 - lse)) < 1e-6);
  assert.ok(Math.abs(row[3] - (-1 - lse)) < 1e-6);
  assert.ok(row[1] < -49999 && row[4] < -49999);
});

test('beam shape validation names the parameter and range', () => {
  assert.throws(() => validateBeamShape(0, 5), /beams: expected an integer in 1\.\.64, got 0/);
  assert.throws(() => validateBeamShape(4, 1), /beam length: expected an integer in 2\.\.16 \(it counts g0\), got 1/);
  assert.throws(() => validateBeamShape(4, 17), /got 17/);
});

test('beamSearch / packBeams convenience forms return plain arrays', async () => {
  const { beamSearch, packBeams } = await import('./convenience.js');
  const drafter = tableDrafter(5, {
    4: [0.5, 0.3, 0.1, 0.05, 0.05], 0: [0.1, 0.6, 0.2, 0.05, 0.05], 1: [0.9, 0.05, 0.03, 0.01, 0.01],
  });
  const result = beamSearch(drafter, new Float32Array(4), 4, 2, 3);
  assert.deepEqual(result.beams, [[4, 0, 1], [4, 1, 0]]);
  assert.equal(result.logQ.length, 2);
  assert.equal(result.logQ[1].length, 2);
  assert.ok(Math.abs(result.logQ[1][1][0] - Math.log(0.9)) < 1e-5);
  const tree = packBeams(result.beams);
  assert.equal(tree.size, 5);
  assert.deepEqual([...tree.tokens.subarray(0, 5)], [4, 0, 1, 1, 0]);
  assert.throws(() => packBeams([]), /at least one beam/);
});

/** Spec §2.1 verbatim: every beam (dead copies included) computes its full distribution; a full sort picks the top W. */
function referenceBeamSearch(table: (token: number) => Float32Array, vocab: number, g0: number, W: number, L: number):
  { beams: number[][]; scores: number[] } {
  let beams = Array.from({ length: W }, () => [g0]);
  let scores: number[] = Array.from({ length: W }, (_, w) => (w === 0 ? 0 : LOG_0));
  for (let t = 1; t < L; t++) {
    const candidates: { joint: number; flat: number }[] = [];
    beams.forEach((beam, w) => {
      const row = Float32Array.from(table(beam[beam.length - 1]));
      drafterLogProbs(row, 0, vocab, DEFAULT_TOP_K, LOG_0, new Float32Array(vocab));
      for (let v = 0; v < vocab; v++) candidates.push({ joint: Math.fround(scores[w] + row[v]), flat: w * vocab + v });
    });
    candidates.sort((a, b) => b.joint - a.joint || a.flat - b.flat);
    const top = candidates.slice(0, W);
    beams = top.map((c) => [...beams[Math.floor(c.flat / vocab)], c.flat % vocab]);
    scores = top.map((c) => c.joint);
  }
  return { beams, scores };
}

test('beam search equals the spec reference on random drafters (survivor fast path and full scan)', () => {
  let seed = 99;
  const random = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  for (let trial = 0; trial < 60; trial++) {
    const vocab = [3, 7, 40, 60, 300][trial % 5];
    const W = 1 + Math.floor(random() * (trial % 3 === 0 ? 64 : 12));
    const L = 2 + Math.floor(random() * 5);
    const rows = Array.from({ length: vocab }, () => Float32Array.from({ length: vocab }, () =>
      // Coarse values make exact ties common.
      Math.round(random() * 8) / 2));
    const table = (token: number): Float32Array => rows[token];
    const logits = new Float32Array(64 * vocab);
    const drafter: Drafter = {
      config: { vocabSize: vocab, hiddenSize: 4, exitDim: 8, numDraftLayers: 0, rnn: false, numLookbackTokens: -1,
        embNorm: false, rmsNormEps: 1e-5, topK: DEFAULT_TOP_K, log0: LOG_0 },
      maxRows: 64, setContext() {}, resetState() {}, reorderState() {}, dispose() {},
      step(tokens, n) {
        for (let r = 0; r < n; r++) logits.set(table(tokens[r]), r * vocab);
        return logits;
      },
    };
    const g0 = Math.floor(random() * vocab);
    const got = createBeamSearch(drafter, { maxWidth: W, maxLength: L }).search(new Float32Array(4), 0, g0, W, L);
    const expected = referenceBeamSearch(table, vocab, g0, W, L);
    const gotBeams = Array.from({ length: W }, (_, w) => Array.from(got.beams.subarray(w * L, (w + 1) * L)));
    assert.deepEqual(gotBeams, expected.beams, `trial ${trial}: V=${vocab} W=${W} L=${L}`);
    assert.deepEqual(Array.from(got.scores.subarray(0, W)), expected.scores, `trial ${trial} scores`);
  }
});
