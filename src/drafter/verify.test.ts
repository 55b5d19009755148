import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng, createSampler } from '../sampling/index.js';
import { buildTree, createPackedTree } from './tree.js';
import { acceptApple, acceptExact, samplerPicker, createAcceptance, createAppleScratch } from './verify.js';
import type { BeamSearchResult } from './beam-search.js';

// A synthetic step: V = 6, g0 = 5, W = 2 beams of length 3: [5, 0, 1] and [5, 1, 2].
const V = 6;
const W = 2;
const L = 3;
const beams = Int32Array.of(5, 0, 1, 5, 1, 2);
const tree = buildTree(beams, W, L, createPackedTree(W, L)); // nodes: 0:5  1:0  2:1(under 0)  3:1  4:2(under 3)
// LLM logits per packed node.
const rootLogits = Float32Array.of(1.2, 0.9, 0.1, -0.5, 0.4, -2);
const nodeLogits = [rootLogits, ...Array.from({ length: 4 }, (_, n) => Float32Array.from({ length: V }, (_, v) =>
  Math.sin(3 * n + v)))];
const logitsOf = (node: number): Float32Array => nodeLogits[node];

function chiSquare(counts: number[], probabilities: ArrayLike<number>, draws: number): number {
  let statistic = 0;
  counts.forEach((count, v) => {
    const expected = probabilities[v] * draws;
    if (expected > 0) statistic += (count - expected) ** 2 / expected;
    else assert.equal(count, 0, `token ${v} has probability 0 but was drawn`);
  });
  return statistic;
}

test('greedy exact acceptance follows the argmax path and emits the bonus token', () => {
  const sampler = createSampler({ temperature: 0 }, V);
  // Root argmax is 0 → child node 1; node 1's argmax decides the rest.
  const history = new Int32Array(16);
  history[0] = 5;
  const result = acceptExact(tree, samplerPicker(logitsOf, sampler, history, createRng(1)), history, 1, createAcceptance(L));
  const argmax = (row: Float32Array) => row.indexOf(Math.max(...row));
  assert.equal(result.tokens[0], 0);
  assert.equal(result.path[0], 0);
  assert.equal(result.path[1], 1);
  const second = argmax(nodeLogits[1]);
  assert.equal(result.tokens[1], second);
  assert.equal(result.count, second === 1 ? 3 : 2);
  assert.deepEqual([...history.subarray(1, 1 + result.count)], [...result.tokens.subarray(0, result.count)]);
});

test('exact acceptance reproduces the LLM distribution of the first emitted token (chi-square)', () => {
  const sampler = createSampler({ temperature: 1 }, V);
  const p = new Float32Array(V);
  const history = new Int32Array(16);
  sampler.distribution(rootLogits, history, 1, p);
  const draws = 20000;
  const counts = new Array<number>(V).fill(0);
  const random = createRng(7);
  const out = createAcceptance(L);
  const pick = samplerPicker(logitsOf, sampler, history, random);
  for (let i = 0; i < draws; i++) {
    history[0] = 5;
    acceptExact(tree, pick, history, 1, out);
    counts[out.tokens[0]]++;
  }
  // df = 5: the 0.1% critical value is 20.5.
  const statistic = chiSquare(counts, p, draws);
  assert.ok(statistic < 20.5, `chi-square ${statistic.toFixed(1)} for the exact rule`);
});

test("Apple's rule measurably does not reproduce the LLM distribution (spec §4.4)", () => {
  // Drafter distributions that under-rate the drafted tokens: u < p/q then (almost) always accepts them.
  const logQ = new Float32Array(W * (L - 1) * V).fill(Math.log(0.02));
  const setQ = (beam: number, k: number, token: number, q: number) => (logQ[(beam * (L - 1) + k - 1) * V + token] =
    Math.log(q));
  setQ(0, 1, 0, 0.1);
  setQ(0, 2, 1, 0.1);
  setQ(1, 1, 1, 0.1);
  setQ(1, 2, 2, 0.1);
  const drafts: BeamSearchResult = { width: W, length: L, beams, scores: new Float32Array(W), logQ };
  const sampler = createSampler({ temperature: 1 }, V);
  const p = new Float32Array(V);
  sampler.distribution(rootLogits, new Int32Array(1), 0, p);
  const draws = 20000;
  const counts = new Array<number>(V).fill(0);
  const random = createRng(7);
  const out = createAcceptance(L);
  const scratch = createAppleScratch(V);
  for (let i = 0; i < draws; i++) {
    acceptApple(tree, drafts, logitsOf, 1, 50, -50000, random, scratch, out);
    counts[out.tokens[0]]++;
  }
  const statistic = chiSquare(counts.map((c, v) => (p[v] > 0 ? c : 0)), p, draws);
  assert.ok(statistic > 1000, `chi-square ${statistic.toFixed(1)}: Apple's rule should be visibly biased`);
});

test("Apple's rule requires the drafter distributions", () => {
  const drafts: BeamSearchResult = { width: W, length: L, beams, scores: new Float32Array(W), logQ: null };
  assert.throws(() => acceptApple(tree, drafts, logitsOf, 1, 50, -50000, createRng(1), createAppleScratch(V),
    createAcceptance(L)), /keepDistributions/);
});
