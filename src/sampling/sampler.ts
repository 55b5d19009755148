// Logit processors and the token picker. Exact tree verification (redrafter-spec.md §4.4) calls pick() at every
// visited tree node with the uniform autoregressive decoding would have drawn at that position, so pick() must be a
// pure function of (logits, history, historyLength, u): the pipeline below is part of that contract.
//
// Pipeline, per call:
//  1. z = copy of the logits (float32; skipped when no bias, penalty or constraint is set: nothing is then written).
//  2. Logit bias (OpenAI logit_bias, llama.cpp's logit-bias sampler, which runs first there too): z[t] += bias[t],
//     rounded to float32, in ascending id order.
//  3. Penalties over the last `repetitionWindow` history entries (all of them when the window is 0), as llama.cpp's
//     penalties sampler applies them: each distinct token t seen there c > 0 times gets, first, the repetition penalty
//     (CTRL) z[t] = z[t] > 0 ? z[t] / penalty : z[t] · penalty, rounded to float32; then the frequency and presence
//     penalties (OpenAI frequency_penalty / presence_penalty) z[t] −= c · frequency + presence, in float32 steps
//     (llama.cpp: logit -= float(c) · penalty_freq + float(c > 0) · penalty_present).
//     Then a constraint (JSON mode): every token it disallows after this history gets z[t] = −Infinity.
//  4. Greedy (temperature 0): the argmax of z, lowest id on ties. One pass; top-k / top-p / min-p are skipped because
//     none of them can remove the argmax.
//  Otherwise tokens whose z is -Infinity or NaN are never candidates, and the rank order is "higher z first, lower id
//  on equal z" (the order of z / T, since T > 0).
//  5. Temperature: weight w[t] = Math.exp((z[t] − m) / T) in float64, m = the largest z. The top token weighs 1.
//  6. Top-k: keep the first k tokens in rank order (ties at the boundary keep the lower ids).
//  7. Top-p: with S = the sum of the surviving weights in ascending id order, keep the shortest rank-order prefix whose
//     running weight sum (float64, rank order) reaches p · S; all survivors when it never does. At least one token.
//  8. Min-p: drop tokens with w[t] < minP (= prob < minP · maxProb, as the top token weighs 1).
//  9. Renormalise and sample: inverse CDF over the survivors in ascending id order with target u · total, where total
//     is their weight sum in that order; see sample() for the rounding rule. Normalising is implicit in that target.
//     distribution() writes w[t] / total (rounded to float32) for survivors and 0 elsewhere.
// Errors (RangeError): no logit above -Infinity (NaN counts as none); when sampling, a largest logit of +Infinity.
//
// Nothing allocates per call: every buffer is sized in createSampler (architecture.md, invariant 4). Top-k is one
// pass with a k-sized heap. Without top-k, top-p avoids sorting the vocabulary: the softmax pass also fills a
// 64-bucket histogram of weights by power of two, which bounds where the nucleus can end; only the tokens above that
// bound are collected, then either popped from a heap in rank order until the running sum reaches p · S (small
// nuclei) or radix-sorted (large ones). The collected tokens are a rank-order prefix of all tokens, so the running sums
// are exactly those of a full sort; if rounding makes the bound too tight, the collection is redone with every token.
// sampler-exactness.test.ts checks all of this against a sort-everything reference, bit for bit.

import { createRankScratch, selectTopK, siftDownBest, sortByRank, sortIdsAscending } from './rank.js';
import type { TokenConstraint } from './constraints.js';

export interface SamplingOptions {
  /** 0 = greedy (the default); otherwise logits are divided by it. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 (the default) = off. k >= vocabSize is also off. */
  topK?: number;
  /** Nucleus sampling: keep the smallest most-likely set whose probability reaches p; 1 (the default) = off. */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely one; 0 (the default) = off. */
  minP?: number;
  /** Penalty for tokens seen in the window; 1 (the default) = off, > 1 discourages repetition. */
  repetitionPenalty?: number;
  /**
   * Subtracted from a token's logit once for every time it occurs in the window (OpenAI's frequency_penalty,
   * llama.cpp's penalty_freq); 0 (the default) = off, > 0 discourages repetition in proportion to it.
   */
  frequencyPenalty?: number;
  /** Subtracted once from the logit of every token that occurs in the window (presence_penalty); 0 (the default) = off. */
  presencePenalty?: number;
  /** How many of the last history tokens the penalties look at; default 64, 0 = the whole history. */
  repetitionWindow?: number;
  /**
   * Added to the logits of these token ids before anything else (OpenAI's logit_bias): a large negative bias all but
   * bans a token, -Infinity bans it, a large positive one all but forces it. Default none.
   */
  logitBias?: Readonly<Record<number, number>>;
}

export type ResolvedSamplingOptions = Readonly<Required<SamplingOptions>>;

export interface Sampler {
  /**
   * Picks the next token from raw logits (length vocabSize). history/historyLength: the tokens before this position
   * (prompt + generated), for the repetition penalty. u: a uniform in [0,1) drawn by the caller (ignored when greedy).
   * Does not modify logits.
   */
  pick(logits: Float32Array, history: Int32Array, historyLength: number, u: number): number;
  /** The final probability distribution pick() samples from (for tests/statistics), written into out (length vocabSize). */
  distribution(logits: Float32Array, history: Int32Array, historyLength: number, out: Float32Array): void;
  readonly greedy: boolean;
  /**
   * pick() is the argmax of the raw logits (greedy with no logit bias, penalty or constraint), so a caller may pick
   * from a backend's argmax (Model.argmaxRow) without the logits themselves; the ids are the same (greedyArgmax's
   * rule).
   */
  readonly argmaxOnly: boolean;
  readonly options: ResolvedSamplingOptions;
  readonly vocabSize: number;
}

export const DEFAULT_SAMPLING_OPTIONS: ResolvedSamplingOptions = Object.freeze({
  temperature: 0,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  repetitionWindow: 64,
  logitBias: Object.freeze({}),
});

function invalid(name: string, expected: string, got: unknown): RangeError {
  return new RangeError(`SamplingOptions.${name} must be ${expected}; got ${String(got)}`);
}

function isNumber(v: unknown): v is number {
  return typeof v === 'number' && !Number.isNaN(v);
}

/** Throws a RangeError naming the first invalid parameter, the range it must be in and the value it had. */
export function validateSamplingOptions(o: SamplingOptions): void {
  if (typeof o !== 'object' || o === null) {
    throw new RangeError(`SamplingOptions must be an object; got ${String(o)}`);
  }
  const { temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty, presencePenalty, repetitionWindow,
    logitBias } = o;
  if (temperature !== undefined && !(isNumber(temperature) && Number.isFinite(temperature) && temperature >= 0)) {
    throw invalid('temperature', 'a finite number >= 0 (0 = greedy)', temperature);
  }
  if (topK !== undefined && !(Number.isSafeInteger(topK) && topK >= 0)) {
    throw invalid('topK', 'an integer >= 0 (0 = off)', topK);
  }
  if (topP !== undefined && !(isNumber(topP) && topP > 0 && topP <= 1)) {
    throw invalid('topP', 'a number in (0, 1] (1 = off)', topP);
  }
  if (minP !== undefined && !(isNumber(minP) && minP >= 0 && minP <= 1)) {
    throw invalid('minP', 'a number in [0, 1] (0 = off)', minP);
  }
  if (
    repetitionPenalty !== undefined &&
    !(isNumber(repetitionPenalty) && Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)
  ) {
    throw invalid('repetitionPenalty', 'a finite number > 0 (1 = off)', repetitionPenalty);
  }
  if (frequencyPenalty !== undefined && !(isNumber(frequencyPenalty) && Number.isFinite(frequencyPenalty))) {
    throw invalid('frequencyPenalty', 'a finite number (0 = off)', frequencyPenalty);
  }
  if (presencePenalty !== undefined && !(isNumber(presencePenalty) && Number.isFinite(presencePenalty))) {
    throw invalid('presencePenalty', 'a finite number (0 = off)', presencePenalty);
  }
  if (repetitionWindow !== undefined && !(Number.isSafeInteger(repetitionWindow) && repetitionWindow >= 0)) {
    throw invalid('repetitionWindow', 'an integer >= 0 (0 = whole history)', repetitionWindow);
  }
  if (logitBias !== undefined) {
    if (typeof logitBias !== 'object' || logitBias === null || Array.isArray(logitBias)) {
      throw invalid('logitBias', 'an object of token id → bias', Array.isArray(logitBias) ? 'an array' : logitBias);
    }
    for (const [key, bias] of Object.entries(logitBias)) {
      if (!/^(0|[1-9][0-9]*)$/.test(key) || !Number.isSafeInteger(Number(key))) {
        throw invalid('logitBias', 'keyed by token ids (integers >= 0)', `the key "${key}"`);
      }
      if (!(isNumber(bias) && (Number.isFinite(Math.fround(bias)) || bias === -Infinity))) {
        throw invalid(`logitBias[${key}]`, 'a number within float32 range, or -Infinity', bias);
      }
    }
  }
}

/** Validates and fills in the defaults. */
export function resolveSamplingOptions(o: SamplingOptions): ResolvedSamplingOptions {
  validateSamplingOptions(o);
  const d = DEFAULT_SAMPLING_OPTIONS;
  return Object.freeze({
    temperature: o.temperature ?? d.temperature,
    topK: o.topK ?? d.topK,
    topP: o.topP ?? d.topP,
    minP: o.minP ?? d.minP,
    repetitionPenalty: o.repetitionPenalty ?? d.repetitionPenalty,
    frequencyPenalty: o.frequencyPenalty ?? d.frequencyPenalty,
    presencePenalty: o.presencePenalty ?? d.presencePenalty,
    repetitionWindow: o.repetitionWindow ?? d.repetitionWindow,
    logitBias: o.logitBias === undefined ? d.logitBias : Object.freeze({ ...o.logitBias }),
  });
}

// Callers test u inline and call this only to throw: passing a double to a call that is not inlined boxes it.
function badUniform(u: number): RangeError {
  return new RangeError(`u must be a uniform in [0, 1); got ${String(u)}`);
}

/**
 * Inverse CDF over probs[0 .. length) in index order. The weights need not sum to 1: the target is u · total, where
 * total is the sum of the positive entries in index order (float64); entries <= 0 or NaN are never chosen. Returns the
 * first index whose running sum exceeds the target, so u = 0 gives the first positive entry. When rounding makes
 * u · total land at or past the final running sum (which is total itself; for u < 1 this takes a subnormal total),
 * the last positive entry is returned.
 * Throws a RangeError when there is no positive entry.
 */
export function sample(probs: Float32Array | Float64Array, u: number, length: number = probs.length): number {
  if (!(u >= 0 && u < 1)) throw badUniform(u);
  if (!Number.isInteger(length) || length < 1 || length > probs.length) {
    throw new RangeError(`sample: length must be an integer in [1, ${probs.length}]; got ${String(length)}`);
  }
  let total = 0;
  for (let i = 0; i < length; i++) {
    const p = probs[i];
    if (p > 0) total += p;
  }
  if (!(total > 0 && total < Infinity)) {
    throw new RangeError(`sample: probs must have a positive, finite total; got ${total}`);
  }
  const target = u * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < length; i++) {
    const p = probs[i];
    if (p > 0) {
      cum += p;
      last = i;
      if (target < cum) return i;
    }
  }
  return last;
}

/** Number of power-of-two weight buckets for the top-p bound; the last one also holds everything lighter. */
const BUCKETS = 64;
const NOT_A_CANDIDATE = 255;
const INV_LN2 = 1.4426950408889634;
const EPOCH_LIMIT = 0x3fffffff; // keeps the epoch a small integer
/** Nuclei smaller than this are popped from a heap; larger ones are radix-sorted (see nucleus()). */
const RADIX_MIN = 256;
// Slots of the f64 scratch array.
const TOTAL = 0;
const TARGET = 1;
const MAX = 2;

/**
 * A sampler for one configuration and vocabulary; it owns its scratch buffers, so give each sequence its own. With a
 * `constraint` (JSON mode, constraints.ts) the tokens it disallows are masked to −Infinity after the bias and
 * penalties, before anything else.
 */
export function createSampler(options: SamplingOptions, vocabSize: number, constraint?: TokenConstraint): Sampler {
  const opts = resolveSamplingOptions(options);
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 0x3fffffff) {
    throw new RangeError(`createSampler: vocabSize must be an integer in [1, 2^30); got ${String(vocabSize)}`);
  }
  const V = vocabSize;
  const T = opts.temperature;
  const greedy = T === 0;
  const topK = opts.topK > 0 && opts.topK < V ? opts.topK : 0;
  const topP = opts.topP;
  const minP = opts.minP;
  const penalty = opts.repetitionPenalty;
  const repetitionOn = penalty !== 1;
  // float32, as llama.cpp holds them (its subtraction runs in float32 steps).
  const frequency = Math.fround(opts.frequencyPenalty);
  const presence = Math.fround(opts.presencePenalty);
  const countsOn = frequency !== 0 || presence !== 0;
  const penaltyOn = repetitionOn || countsOn;
  const window = opts.repetitionWindow;
  // The bias as two arrays in ascending id order (object keys that are ids enumerate in that order anyway).
  const biasEntries = Object.entries(opts.logitBias);
  const biasIds = Int32Array.from(biasEntries, ([key]) => Number(key));
  const biasValues = Float32Array.from(biasEntries, ([, bias]) => bias);
  for (let i = 0; i < biasIds.length; i++) {
    if (biasIds[i] >= V) {
      throw new RangeError(`SamplingOptions.logitBias: token id ${biasIds[i]} is outside the vocabulary 0..${V - 1}`);
    }
  }
  const rewrites = penaltyOn || biasIds.length > 0 || constraint !== undefined;
  const truncating = !greedy && (topK > 0 || topP < 1); // survivors need ranking and an id sort
  // x = (z - m) / T below this cannot pass min-p: exp(x) < minP / e, far outside any rounding error.
  const minPCut = minP > 0 ? Math.log(minP) - 1 : -Infinity;
  // Buckets past this one hold only weights below minP / 2 (bucket b means x <= -b ln 2), so min-p drops them.
  const minPBucket = minP > 0 ? Math.min(BUCKETS - 1, Math.floor(-Math.log2(minP)) + 1) : BUCKETS - 1;

  // Scratch, sized once (architecture.md, invariant 4).
  const z = new Float32Array(rewrites ? V : 0);
  const stamps = new Uint32Array(penaltyOn ? V : 0);
  const counts = new Uint32Array(countsOn ? V : 0);
  const seen = new Int32Array(countsOn ? V : 0); // the distinct tokens of the window, in order of first sight
  let epoch = 0;
  const weights = new Float64Array(greedy ? 0 : V); // w[t] by token id
  const ids = new Int32Array(truncating || (!greedy && minP > 0) ? V : 0); // candidates, then survivors
  const mark = new Uint8Array(truncating ? V : 0);
  const rankScratch = createRankScratch(truncating ? (topK > 0 ? topK : V) : 0);
  const bucketOf = new Uint8Array(!greedy && topK === 0 && topP < 1 ? V : 0);
  const hist = new Float64Array(BUCKETS);
  const histCount = new Int32Array(BUCKETS);
  // Doubles that cross function boundaries live here: a double stored into a closure variable, passed to or returned
  // from a call that is not inlined, is boxed, i.e. allocated.
  const f64 = new Float64Array(3);

  function checkInputs(logits: Float32Array, history: Int32Array, historyLength: number): void {
    if (logits.length !== V) {
      throw new RangeError(`logits must have length vocabSize = ${V}; got ${logits.length}`);
    }
    if (!Number.isInteger(historyLength) || historyLength < 0 || historyLength > history.length) {
      throw new RangeError(`historyLength must be an integer in [0, ${history.length}]; got ${String(historyLength)}`);
    }
  }

  function noCandidate(): RangeError {
    return new RangeError('logits: every logit is -Infinity or NaN, there is no token to pick');
  }

  function infiniteTop(): RangeError {
    return new RangeError('logits: the largest logit is +Infinity, probabilities are undefined');
  }

  /** Steps 1-3: the logits to work on (the caller's array when nothing rewrites them, so nothing is copied). */
  function penalised(logits: Float32Array, history: Int32Array, historyLength: number): Float32Array {
    if (!rewrites) return logits;
    z.set(logits);
    for (let i = 0; i < biasIds.length; i++) z[biasIds[i]] += biasValues[i];
    if (penaltyOn) penalise(history, historyLength);
    if (constraint) {
      const allowed = constraint.allowed(history, historyLength);
      for (let t = 0; t < V; t++) if (allowed[t] === 0) z[t] = -Infinity;
    }
    return z;
  }

  /** Step 3 in place on z. */
  function penalise(history: Int32Array, historyLength: number): void {
    if (++epoch > EPOCH_LIMIT) {
      stamps.fill(0);
      epoch = 1;
    }
    const start = window === 0 ? 0 : Math.max(0, historyLength - window);
    let distinct = 0;
    for (let i = start; i < historyLength; i++) {
      const t = history[i];
      if (!(t >= 0 && t < V)) {
        throw new RangeError(`history[${i}] must be a token id in [0, ${V}); got ${t}`);
      }
      if (stamps[t] === epoch) {
        if (countsOn) counts[t]++;
        continue; // each distinct token is penalised once
      }
      stamps[t] = epoch;
      if (countsOn) {
        counts[t] = 1;
        seen[distinct++] = t;
      }
      if (repetitionOn) {
        const v = z[t];
        z[t] = v > 0 ? v / penalty : v * penalty;
      }
    }
    for (let i = 0; i < distinct; i++) {
      const t = seen[i];
      z[t] = Math.fround(z[t] - Math.fround(Math.fround(counts[t] * frequency) + presence));
    }
  }

  /** Step 4 (greedyArgmax). */
  function argmax(v: Float32Array): number {
    const arg = greedyArgmax(v);
    if (arg < 0) throw noCandidate();
    return arg;
  }

  /** Largest logit, ignoring NaN, into f64[MAX]; throws when there is none or it is +Infinity. */
  function maxLogit(v: Float32Array): void {
    let m = -Infinity;
    for (let i = 0; i < V; i++) {
      const x = v[i];
      if (x > m) m = x;
    }
    if (m === -Infinity) throw noCandidate();
    if (m === Infinity) throw infiniteTop();
    f64[MAX] = m;
  }

  /**
   * Step 7 over candidates ids[0 .. n), in ascending id order, which must be a rank-order prefix of all tokens:
   * leaves the shortest rank-order prefix whose running weight reaches f64[TARGET] in ids[0 .. count) and returns
   * count, or returns -1 (ids[0 .. n) then holds all candidates) when the target is not reached. `expected` estimates
   * count: small nuclei are popped from a best-at-root heap (n + count log n steps), large ones radix-sorted (~6 n).
   */
  function nucleus(v: Float32Array, n: number, expected: number): number {
    const target = f64[TARGET];
    let cum = 0;
    if (n >= RADIX_MIN && expected * Math.log2(n) > 4 * n) {
      sortByRank(ids, n, v, rankScratch);
      for (let i = 0; i < n; i++) {
        cum += weights[ids[i]];
        if (cum >= target) return i + 1;
      }
      return -1;
    }
    for (let i = (n >> 1) - 1; i >= 0; i--) siftDownBest(ids, n, i, v);
    let size = n;
    while (size > 0) {
      const best = ids[0];
      size--;
      ids[0] = ids[size];
      ids[size] = best; // popped tokens collect at the end, best last
      if (size > 0) siftDownBest(ids, size, 0, v);
      cum += weights[best];
      if (cum >= target) {
        ids.copyWithin(0, size, n);
        return n - size;
      }
    }
    return -1;
  }

  /** Step 8 in place over ids[0 .. n); returns the survivor count (the top token, weight 1, always survives). */
  function applyMinP(n: number): number {
    if (minP === 0) return n;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (weights[id] >= minP) ids[k++] = id;
    }
    return k;
  }

  /** Steps 8-9 for survivors ids[0 .. n) of top-p: min-p, id order, total. Returns the survivor count. */
  function finish(n: number): number {
    const k = applyMinP(n);
    sortIdsAscending(ids, k, mark, V);
    let s = 0;
    for (let i = 0; i < k; i++) s += weights[ids[i]];
    f64[TOTAL] = s;
    return k;
  }

  /** Steps 5-8 with top-k: survivors into ids[0 .. n) ascending, weights and f64[TOTAL] set; returns n. */
  function weighTopK(v: Float32Array): number {
    const n = selectTopK(v, V, topK, ids);
    if (n === 0) throw noCandidate();
    sortIdsAscending(ids, n, mark, V);
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, v[ids[i]]);
    if (m === Infinity) throw infiniteTop();
    let s = 0;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      const w = Math.exp((v[id] - m) / T);
      weights[id] = w;
      s += w;
    }
    if (topP === 1) {
      const k = applyMinP(n); // keeps id order
      let total = 0;
      for (let i = 0; i < k; i++) total += weights[ids[i]];
      f64[TOTAL] = total;
      return k;
    }
    f64[TARGET] = topP * s;
    const count = nucleus(v, n, n); // the top-k set is small or the nucleus unknown: assume the worst
    return finish(count > 0 ? count : n);
  }

  /** Steps 5, 7, 8 without top-k: survivors into ids[0 .. n) ascending; returns n. */
  function weighTopP(v: Float32Array): number {
    maxLogit(v);
    const m = f64[MAX];
    hist.fill(0);
    histCount.fill(0);
    let s = 0;
    for (let i = 0; i < V; i++) {
      const x0 = v[i];
      if (x0 > -Infinity) {
        const x = (x0 - m) / T;
        const w = Math.exp(x);
        weights[i] = w;
        s += w;
        // floor(-x / ln 2): monotone in the logit, so "bucket <= b" selects a rank-order prefix.
        const b = -x * INV_LN2;
        const bucket = b < BUCKETS - 1 ? b | 0 : BUCKETS - 1;
        bucketOf[i] = bucket;
        hist[bucket] += w;
        histCount[bucket]++;
      } else {
        weights[i] = 0;
        bucketOf[i] = NOT_A_CANDIDATE;
      }
    }
    const target = topP * s;
    f64[TARGET] = target;
    // The first bucket where the histogram's running mass reaches the target bounds the nucleus, up to rounding.
    let limit = BUCKETS - 1;
    let acc = 0;
    let before = 0; // tokens in the buckets before `limit`, nearly all of them in the nucleus
    for (let b = 0; b < BUCKETS; b++) {
      acc += hist[b];
      if (acc >= target) {
        limit = b;
        break;
      }
      before += histCount[b];
    }
    const truncatedByMinP = minPBucket < limit;
    if (truncatedByMinP) limit = minPBucket;
    for (;;) {
      let n = 0;
      for (let i = 0; i < V; i++) if (bucketOf[i] <= limit) ids[n++] = i;
      const count = nucleus(v, n, before);
      // Not reached inside the collected prefix: fine if that is everything, or if min-p drops all the rest anyway.
      if (count > 0 || limit === BUCKETS - 1 || truncatedByMinP) return finish(count > 0 ? count : n);
      limit = BUCKETS - 1; // the histogram bound was too tight by rounding: collect every token
    }
  }

  /** Steps 5, 8 with min-p only: survivors into ids[0 .. n) ascending; returns n. */
  function weighMinP(v: Float32Array): number {
    maxLogit(v);
    const m = f64[MAX];
    let n = 0;
    let s = 0;
    for (let i = 0; i < V; i++) {
      const x0 = v[i];
      if (x0 > -Infinity) {
        const x = (x0 - m) / T;
        if (x >= minPCut) {
          const w = Math.exp(x);
          if (w >= minP) {
            weights[i] = w;
            ids[n++] = i;
            s += w;
          }
        }
      }
    }
    f64[TOTAL] = s;
    return n;
  }

  /** Step 5 alone: weights[t] for every token, f64[TOTAL] set. */
  function weighAll(v: Float32Array): void {
    maxLogit(v);
    const m = f64[MAX];
    let s = 0;
    for (let i = 0; i < V; i++) {
      const x0 = v[i];
      const w = x0 > -Infinity ? Math.exp((x0 - m) / T) : 0;
      weights[i] = w;
      s += w;
    }
    f64[TOTAL] = s;
  }

  /** Steps 5-8: returns the survivor count in ids (ascending), or -1 when every token survives (weights is dense). */
  function weigh(v: Float32Array): number {
    if (topK > 0) return weighTopK(v);
    if (topP < 1) return weighTopP(v);
    if (minP > 0) return weighMinP(v);
    weighAll(v);
    return -1;
  }

  function pick(logits: Float32Array, history: Int32Array, historyLength: number, u: number): number {
    checkInputs(logits, history, historyLength);
    if (greedy) return argmax(penalised(logits, history, historyLength));
    if (!(u >= 0 && u < 1)) throw badUniform(u);
    const n = weigh(penalised(logits, history, historyLength));
    // Step 9, the rule of sample(): the first running sum above u · total, else the last positive weight.
    const target = u * f64[TOTAL];
    let cum = 0;
    let last = -1;
    if (n < 0) {
      for (let i = 0; i < V; i++) {
        const w = weights[i];
        if (w > 0) {
          cum += w;
          last = i;
          if (target < cum) return i;
        }
      }
    } else {
      for (let i = 0; i < n; i++) {
        const id = ids[i];
        const w = weights[id];
        if (w > 0) {
          cum += w;
          last = id;
          if (target < cum) return id;
        }
      }
    }
    return last; // unreachable in practice: the top token weighs 1, so target < total = the final running sum
  }

  function distribution(logits: Float32Array, history: Int32Array, historyLength: number, out: Float32Array): void {
    checkInputs(logits, history, historyLength);
    if (out.length !== V) throw new RangeError(`out must have length vocabSize = ${V}; got ${out.length}`);
    if (greedy) {
      const arg = argmax(penalised(logits, history, historyLength));
      out.fill(0);
      out[arg] = 1;
      return;
    }
    const n = weigh(penalised(logits, history, historyLength));
    const s = f64[TOTAL];
    if (n < 0) {
      for (let i = 0; i < V; i++) out[i] = weights[i] / s;
      return;
    }
    out.fill(0);
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      out[id] = weights[id] / s;
    }
  }

  return { pick, distribution, greedy, argmaxOnly: greedy && !rewrites, options: opts, vocabSize: V };
}

/**
 * The greedy choice (pipeline step 4): the first index of the largest value in one pass, so ties go to the lowest
 * id and NaN never wins; −1 when every value is −Infinity or NaN. The WebGPU argmax kernel follows the same rule.
 */
export function greedyArgmax(values: Float32Array): number {
  let best = -Infinity;
  let arg = -1;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (x > best) {
      best = x;
      arg = i;
    }
  }
  return arg;
}
