// Verification (spec §4): which drafted tokens the LLM accepts after the tree forward.
//
// `acceptExact` (the default, spec §4.4): walk the tree from the root; at each node draw the LLM's own token with the
// same sampler and the same random stream autoregressive decoding would use at that position; descend while it equals
// a child's token. Every committed token is a genuine sample of the LLM, so the output equals autoregressive output
// token for token (greedy is the special case of an argmax sampler).
//
// `acceptApple` (spec §4.3): Apple's rule, kept for parity experiments; not distribution-exact.

import { sample, type Rng, type Sampler } from '../sampling/index.js';
import type { PackedTree } from './tree.js';
import { findChild } from './tree.js';
import type { BeamSearchResult } from './beam-search.js';

export interface Acceptance {
  /** Packed indices of the committed nodes, root (g0) first; their KV entries are kept. */
  readonly path: Int32Array;
  /** Tokens committed by this step: the accepted drafts, then the next g0 (from the LLM). */
  readonly tokens: Int32Array;
  /** Nodes on the path = tokens committed = accepted drafts + 1. */
  count: number;
  /** The beam that owns the accepted path (first such beam). */
  beam: number;
}

export function createAcceptance(maxLength: number): Acceptance {
  return { path: new Int32Array(maxLength), tokens: new Int32Array(maxLength), count: 0, beam: 0 };
}

/** Source of the LLM's logits for a packed node (a cached row view of the verification forward). */
export type NodeLogits = (node: number) => Float32Array;

/**
 * The LLM's own token at a packed node, drawn as autoregressive decoding draws it at that position (`historyLength`
 * tokens precede it in the history): a sampler over the node's logits (samplerPicker), or, for pure greedy decoding
 * on a backend that reads back only ids, the node's argmax.
 */
export type NodePicker = (node: number, historyLength: number) => number;

/** The picker of exact sampling: `sampler` over logitsOf(node), one uniform from `random` per pick. */
export function samplerPicker(logitsOf: NodeLogits, sampler: Sampler, history: Int32Array, random: Rng): NodePicker {
  return (node, historyLength) => sampler.pick(logitsOf(node), history, historyLength, random.nextUniform());
}

/**
 * The exact rule. `history` holds the committed tokens ending with g0 (historyLength of them); accepted tokens are
 * appended to it as they are drawn, exactly as autoregressive decoding appends its samples.
 */
export function acceptExact(tree: PackedTree, pick: NodePicker, history: Int32Array, historyLength: number,
  out: Acceptance): Acceptance {
  let node = 0;
  let count = 0;
  let length = historyLength;
  for (;;) {
    const token = pick(node, length);
    history[length++] = token;
    out.path[count] = node;
    out.tokens[count] = token;
    count++;
    const child = findChild(tree, node, token);
    if (child < 0) break;
    node = child;
  }
  out.count = count;
  out.beam = Math.floor(tree.flatIndex[node] / tree.length);
  return out;
}

/** Scratch for Apple's rule: the LLM's log-probabilities at one position and a residual distribution. */
export interface AppleScratch {
  readonly logP: Float64Array;
  readonly probabilities: Float32Array;
  readonly selection: Float64Array;
}

export function createAppleScratch(vocab: number): AppleScratch {
  return { logP: new Float64Array(vocab), probabilities: new Float32Array(vocab), selection: new Float64Array(vocab) };
}

/** Apple's LLM distribution: log_softmax(top50(logits) / T) (spec §4.3: top-k before temperature). */
function appleLogP(logits: Float32Array, temperature: number, topK: number, log0: number, out: Float64Array,
  selection: Float64Array): void {
  const V = logits.length;
  let threshold = -Infinity;
  if (topK < V) {
    for (let v = 0; v < V; v++) selection[v] = logits[v];
    const sorted = selection.sort();
    threshold = sorted[V - topK];
  }
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    out[v] = (logits[v] < threshold ? log0 : logits[v]) / temperature;
    if (out[v] > max) max = out[v];
  }
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(out[v] - max);
  const logSum = max + Math.log(sum);
  for (let v = 0; v < V; v++) out[v] -= logSum;
}

/**
 * Apple's sampling rule: for every beam i and draft k an independent uniform u; accept while u < P(v)/Q(v); take the
 * beam with the longest accepted run (first on ties); the next g0 comes from the residual norm(max(P − Q, 0)) at the
 * first rejection, or from P past the end of the beam. Uniforms are drawn beam-major from `random`.
 */
export function acceptApple(tree: PackedTree, drafts: BeamSearchResult, logitsOf: NodeLogits, temperature: number,
  topK: number, log0: number, random: Rng, scratch: AppleScratch, out: Acceptance): Acceptance {
  const { width: W, length: L, beams, logQ } = drafts;
  if (!logQ) throw new RangeError('acceptApple: the beam search must keep its distributions (keepDistributions)');
  const V = scratch.logP.length;
  let best = 0;
  let bestRun = -1;
  for (let i = 0; i < W; i++) {
    let run = 0;
    let rejected = false;
    for (let k = 1; k < L; k++) {
      const u = random.nextUniform();
      if (rejected) continue; // draw all W·(L−1) uniforms regardless, as the reference does
      appleLogP(logitsOf(tree.unpack[i * L + k - 1]), temperature, topK, log0, scratch.logP, scratch.selection);
      const token = beams[i * L + k];
      const q = logQ[(i * (L - 1) + k - 1) * V + token];
      if (u < Math.exp(scratch.logP[token] - q)) run++;
      else rejected = true;
    }
    if (run > bestRun) {
      bestRun = run;
      best = i;
    }
  }
  const n = bestRun;
  const probabilities = scratch.probabilities;
  appleLogP(logitsOf(tree.unpack[best * L + n]), temperature, topK, log0, scratch.logP, scratch.selection);
  if (n === L - 1) {
    for (let v = 0; v < V; v++) probabilities[v] = Math.exp(scratch.logP[v]);
  } else {
    const q = (best * (L - 1) + n) * V;
    let total = 0;
    for (let v = 0; v < V; v++) {
      probabilities[v] = Math.max(0, Math.exp(scratch.logP[v]) - Math.exp(logQ[q + v]));
      total += probabilities[v];
    }
    // P == Q leaves no residual mass (the draft would have been accepted surely): fall back to P.
    if (!(total > 0)) for (let v = 0; v < V; v++) probabilities[v] = Math.exp(scratch.logP[v]);
  }
  const next = sample(probabilities, random.nextUniform());
  for (let k = 0; k <= n; k++) {
    out.path[k] = tree.unpack[best * L + k];
    out.tokens[k] = k < n ? beams[best * L + k + 1] : next;
  }
  out.count = n + 1;
  out.beam = best;
  return out;
}
