import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSampler, resolveSamplingOptions, sample, validateSamplingOptions } from './sampler.js';
import type { SamplingOptions } from './sampler.js';

const NO_HISTORY = new Int32Array(0);

function dist(options: SamplingOptions, logits: number[], history: number[] = []): number[] {
  const s = createSampler(options, logits.length);
  const out = new Float32Array(logits.length);
  const h = Int32Array.from(history);
  s.distribution(Float32Array.from(logits), h, h.length, out);
  return Array.from(out);
}

function softmax(x: number[]): number[] {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function assertClose(actual: number[], expected: number[], tol = 1e-6): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol,
      `index ${i}: got ${actual[i]}, expected ${expected[i]} (all: ${actual.join(', ')})`,
    );
  }
}

// ---- greedy ----

test('greedy picks the argmax, lowest id on ties, and ignores u', () => {
  const s = createSampler({}, 5);
  assert.equal(s.greedy, true);
  const logits = Float32Array.from([1, 3, 0.5, 3, 2]);
  assert.equal(s.pick(logits, NO_HISTORY, 0, 0), 1);
  assert.equal(s.pick(logits, NO_HISTORY, 0, 0.999), 1);
  assert.equal(s.pick(Float32Array.from([-1, -1, -1, -1, -1]), NO_HISTORY, 0, 0.5), 0);
  assert.equal(s.pick(Float32Array.from([Number.NaN, 1, 2, -Infinity, 2]), NO_HISTORY, 0, 0), 2);
  assert.deepEqual(dist({}, [1, 3, 0.5, 3, 2]), [0, 1, 0, 0, 0]);
  assert.throws(() => s.pick(Float32Array.from([-Infinity, Number.NaN, -Infinity, -Infinity, -Infinity]), NO_HISTORY, 0, 0), /no token/);
});

test('greedy ignores top-k / top-p / min-p, which can never remove the argmax', () => {
  const logits = [0.1, 2, 2, -3];
  assert.deepEqual(dist({ temperature: 0, topK: 1, topP: 0.1, minP: 0.9 }, logits), [0, 1, 0, 0]);
});

// ---- temperature ----

test('temperature divides the logits before the softmax', () => {
  const logits = [2, 1, 0, -1];
  assertClose(dist({ temperature: 1 }, logits), softmax(logits));
  assertClose(dist({ temperature: 2 }, logits), softmax([1, 0.5, 0, -0.5]));
  assertClose(dist({ temperature: 0.5 }, logits), softmax([4, 2, 0, -2]));
  // A hand-checked value: T = ln 2 turns logit gaps of 1 into probability ratios of e^(1/ln 2) ~ 4.2329.
  const p = dist({ temperature: Math.LN2 }, [1, 0]);
  assert.ok(Math.abs(p[0] / p[1] - Math.exp(1 / Math.LN2)) < 1e-5);
});

test('-Infinity and NaN logits get probability 0; +Infinity is an error', () => {
  assertClose(dist({ temperature: 1 }, [0, -Infinity, 0, Number.NaN]), [0.5, 0, 0.5, 0]);
  const s = createSampler({ temperature: 1 }, 3);
  assert.throws(() => s.pick(Float32Array.from([0, Infinity, 1]), NO_HISTORY, 0, 0.5), /\+Infinity/);
  assert.throws(() => s.pick(Float32Array.from([-Infinity, -Infinity, Number.NaN]), NO_HISTORY, 0, 0.5), /no token/);
});

// ---- top-k ----

test('top-k keeps the k largest logits and renormalises', () => {
  assertClose(dist({ temperature: 1, topK: 2 }, [1, 3, 0, 2]), [0, ...softmax([3, 2]).slice(0, 1), 0, softmax([3, 2])[1]]);
  assertClose(dist({ temperature: 1, topK: 1 }, [1, 3, 0, 2]), [0, 1, 0, 0]);
});

test('top-k ties at the boundary keep the lowest ids', () => {
  // Tokens 1, 2, 3 tie for second place; k = 2 keeps token 0 and the lowest tied id.
  const p = dist({ temperature: 1, topK: 2 }, [5, 4, 4, 4]);
  assertClose(p, [softmax([5, 4])[0], softmax([5, 4])[1], 0, 0]);
  // Ties listed in a different position order: still the lowest ids win.
  assertClose(dist({ temperature: 1, topK: 2 }, [4, 9, 4, 4, 9]), [0, 0.5, 0, 0, 0.5]);
  assertClose(dist({ temperature: 1, topK: 3 }, [4, 9, 4, 4, 9]), [...softmax([4, 9, 9]).slice(0, 2), 0, 0, softmax([4, 9, 9])[2]]);
});

test('top-k >= vocabSize or fewer finite logits than k keeps everything finite', () => {
  const logits = [0.3, -1, 2];
  assertClose(dist({ temperature: 1, topK: 3 }, logits), softmax(logits));
  assertClose(dist({ temperature: 1, topK: 50 }, logits), softmax(logits));
  assertClose(dist({ temperature: 1, topK: 3 }, [0, -Infinity, 0, -Infinity]), [0.5, 0, 0.5, 0]);
});

// ---- top-p ----

test('top-p boundary: a cumulative probability exactly equal to p stops the nucleus', () => {
  // Four equal logits: every weight is exactly 1, S = 4, the running sums 1, 2, 3, 4 are exact.
  const eq = [0, 0, 0, 0];
  assert.deepEqual(dist({ temperature: 1, topP: 0.5 }, eq), [0.5, 0.5, 0, 0]);
  assert.deepEqual(dist({ temperature: 1, topP: 0.5000001 }, eq), [1 / 3, 1 / 3, 1 / 3, 0].map(Math.fround));
  assert.deepEqual(dist({ temperature: 1, topP: 0.25 }, eq), [1, 0, 0, 0]);
  assert.deepEqual(dist({ temperature: 1, topP: 0.1 }, eq), [1, 0, 0, 0]); // at least one token
  assert.deepEqual(dist({ temperature: 1, topP: 1 }, eq), [0.25, 0.25, 0.25, 0.25]);
});

test('top-p boundary is exact for large nuclei too (the radix-sorted path)', () => {
  // T = 1 / ln 2 turns a logit gap of 1 into a weight of exactly 0.5, so every running sum below is exact.
  const T = 1 / Math.LN2;
  assert.equal(Math.exp(-1 / T), 0.5);
  // Even ids weigh 1, odd ids 0.5: S = 512 + 256 = 768, p = 0.875 → target 672 = 512 + 320 · 0.5.
  const logits = Array.from({ length: 1024 }, (_, i) => (i % 2 === 0 ? 0 : -1));
  const p = dist({ temperature: T, topP: 0.875 }, logits);
  const kept = p.flatMap((x, i) => (x > 0 ? [i] : []));
  assert.equal(kept.length, 832);
  assert.ok(kept.every((i) => i % 2 === 0 || i < 640), 'the lowest odd ids are kept');
  assert.equal(p[0], Math.fround(1 / 672));
  assert.equal(p[1], Math.fround(0.5 / 672));
  // Through top-k: 300 equal survivors, p = 0.5 → exactly 150 of them, the lowest ids.
  const q = dist({ temperature: 1, topK: 300, topP: 0.5 }, new Array<number>(400).fill(0));
  assert.deepEqual(q.flatMap((x, i) => (x > 0 ? [i] : [])), Array.from({ length: 150 }, (_, i) => i));
});

test('pick(): a target equal to a running sum goes to the next token (the sum must exceed it)', () => {
  const logits = Float32Array.from([0, 0, 0, 0]);
  for (const options of [{ temperature: 1 }, { temperature: 1, topK: 3 }, { temperature: 1, topP: 0.9 }]) {
    const s = createSampler(options, 4);
    const n = options.topK ?? 4;
    // Equal weights 1: u = j / n puts the target exactly on the running sum j.
    for (let j = 0; j < n; j++) assert.equal(s.pick(logits, NO_HISTORY, 0, j / n), j, JSON.stringify(options));
    assert.equal(s.pick(logits, NO_HISTORY, 0, 1 - 2 ** -53), n - 1);
  }
});

test('top-p keeps the smallest most-likely set reaching p, in probability order not id order', () => {
  // Probabilities ~ [0.125, 0.5, 0.125, 0.25] (ids deliberately shuffled against rank).
  const logits = [0, Math.log(4), 0, Math.log(2)];
  assertClose(dist({ temperature: 1, topP: 0.7 }, logits), [0, 2 / 3, 0, 1 / 3]);
  assertClose(dist({ temperature: 1, topP: 0.8 }, logits), [1 / 7, 4 / 7, 0, 2 / 7]); // tie: lower id 0 first
  assertClose(dist({ temperature: 1, topP: 0.45 }, logits), [0, 1, 0, 0]);
});

test('top-p runs after top-k, on the renormalised top-k distribution', () => {
  const logits = [0, Math.log(4), 0, Math.log(2)];
  // Alone, p = 0.6 needs the two best (0.5 < 0.6 <= 0.75) ...
  assertClose(dist({ temperature: 1, topP: 0.6 }, logits), [0, 2 / 3, 0, 1 / 3]);
  // ... after top-2 the best token alone has 2/3 >= 0.6.
  assertClose(dist({ temperature: 1, topK: 2, topP: 0.6 }, logits), [0, 1, 0, 0]);
});

test('top-p after temperature: a higher temperature flattens the nucleus', () => {
  const logits = [Math.log(4), Math.log(2), 0];
  assertClose(dist({ temperature: 1, topP: 0.6 }, logits), [2 / 3, 1 / 3, 0]); // 4/7 < 0.6 <= 6/7
  // At T = 100 the three are nearly equal: two of them cannot reach 0.7.
  const p = dist({ temperature: 100, topP: 0.7 }, logits);
  assert.ok(p.every((v) => v > 0.3), p.join(', '));
});

// ---- min-p ----

test('min-p drops tokens below minP times the top probability', () => {
  // Ratios to the top token: 1, 0.5, 0.25, 0.25.
  const logits = [Math.log(4), Math.log(2), 0, 0];
  assertClose(dist({ temperature: 1, minP: 0.3 }, logits), [2 / 3, 1 / 3, 0, 0]);
  assertClose(dist({ temperature: 1, minP: 0.6 }, logits), [1, 0, 0, 0]);
  assertClose(dist({ temperature: 1, minP: 0.2 }, logits), [0.5, 0.25, 0.125, 0.125]);
  // minP = 1 keeps exactly the tokens tied at the top.
  assertClose(dist({ temperature: 1, minP: 1 }, [3, 1, 3]), [0.5, 0, 0.5]);
});

test('min-p applies after temperature and after top-p', () => {
  const logits = [Math.log(4), Math.log(2), 0, 0];
  // T = 0.5 squares the ratios: 1, 0.25, 0.0625, 0.0625.
  assertClose(dist({ temperature: 0.5, minP: 0.2 }, logits), [0.8, 0.2, 0, 0]);
  // top-p 0.8 keeps {0, 1, 2}; min-p 0.2 then keeps all three of them but never resurrects token 3.
  assertClose(dist({ temperature: 1, topP: 0.8, minP: 0.2 }, logits), [4 / 7, 2 / 7, 1 / 7, 0]);
  assertClose(dist({ temperature: 1, topP: 0.8, minP: 0.3 }, logits), [2 / 3, 1 / 3, 0, 0]);
});

// ---- repetition penalty ----

test('repetition penalty divides positive and multiplies negative logits, once per distinct token', () => {
  const logits = [2, -2, 1, 0.5, 0];
  // Tokens 0 (twice), 1 and 4 are in the history: 2 -> 1, -2 -> -4, 0 -> 0 (unchanged by either rule).
  assertClose(dist({ temperature: 1, repetitionPenalty: 2 }, logits, [0, 1, 0, 4]), softmax([1, -4, 1, 0.5, 0]));
  // A penalty below 1 encourages repetition instead.
  assertClose(dist({ temperature: 1, repetitionPenalty: 0.5 }, logits, [0, 1]), softmax([4, -1, 1, 0.5, 0]));
});

test('repetition penalty looks only at the last repetitionWindow tokens (0 = all)', () => {
  const logits = [2, -2, 1, 0.5];
  const history = [1, 0, 2];
  assertClose(dist({ temperature: 1, repetitionPenalty: 2, repetitionWindow: 2 }, logits, history), softmax([1, -2, 0.5, 0.5]));
  assertClose(dist({ temperature: 1, repetitionPenalty: 2, repetitionWindow: 0 }, logits, history), softmax([1, -4, 0.5, 0.5]));
  assertClose(dist({ temperature: 1, repetitionPenalty: 2, repetitionWindow: 1 }, logits, history), softmax([2, -2, 0.5, 0.5]));
  // historyLength cuts the history array: only [1, 0] counts here.
  const s = createSampler({ temperature: 1, repetitionPenalty: 2, repetitionWindow: 0 }, 4);
  const out = new Float32Array(4);
  s.distribution(Float32Array.from(logits), Int32Array.from(history), 2, out);
  assertClose(Array.from(out), softmax([1, -4, 1, 0.5]));
});

test('repetition penalty can change the greedy choice, and leaves the caller logits intact', () => {
  const s = createSampler({ repetitionPenalty: 1.5 }, 3);
  const logits = Float32Array.from([3, 2.5, -1]);
  assert.equal(s.pick(logits, Int32Array.from([0]), 1, 0), 1); // 3 / 1.5 = 2 < 2.5
  assert.equal(s.pick(logits, Int32Array.from([0]), 1, 0), 1); // the same history again is penalised again
  assert.equal(s.pick(logits, Int32Array.from([0]), 0, 0), 0); // empty history: the previous penalty is gone
  assert.deepEqual(Array.from(logits), [3, 2.5, -1]);
  // Calls do not leak penalties into each other (the seen-token marks are per call).
  assert.equal(s.pick(logits, Int32Array.from([1]), 1, 0), 0);
  assert.equal(s.pick(logits, Int32Array.from([2]), 1, 0), 0);
});

// ---- frequency and presence penalties, logit bias ----

test('frequency and presence penalties subtract count · frequency + presence, after the repetition penalty', () => {
  const logits = [2, -2, 1, 0.5, 0];
  // Token 0 twice, 1 once, 4 once: 2 − (2·0.5 + 0.25), −2 − (0.5 + 0.25), 0 − (0.5 + 0.25).
  const history = [0, 1, 0, 4];
  assertClose(dist({ temperature: 1, frequencyPenalty: 0.5, presencePenalty: 0.25 }, logits, history),
    softmax([0.75, -2.75, 1, 0.5, -0.75]));
  // With a repetition penalty of 2 first (llama.cpp's order): 2 / 2 − 1.25, −2 · 2 − 0.75, 0 − 0.75.
  assertClose(dist({ temperature: 1, repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 0.25 }, logits,
    history), softmax([-0.25, -4.75, 1, 0.5, -0.75]));
  // Negative penalties encourage repetition; the window bounds what counts (only [0, 4] here).
  assertClose(dist({ temperature: 1, frequencyPenalty: -1, repetitionWindow: 2 }, logits, history),
    softmax([3, -2, 1, 0.5, 1]));
});

test('a frequency penalty changes the greedy choice as a token repeats, and calls do not leak counts', () => {
  const s = createSampler({ frequencyPenalty: 0.4 }, 3);
  assert.equal(s.argmaxOnly, false);
  const logits = Float32Array.from([3, 2.5, -1]);
  assert.equal(s.pick(logits, Int32Array.from([0]), 1, 0), 0); // 3 − 0.4 = 2.6 > 2.5
  assert.equal(s.pick(logits, Int32Array.from([0, 0]), 2, 0), 1); // 3 − 0.8 = 2.2 < 2.5
  assert.equal(s.pick(logits, Int32Array.from([0, 0, 1, 1, 1]), 5, 0), 0); // 2.2 against 2.5 − 1.2 = 1.3
  assert.equal(s.pick(logits, Int32Array.from([0, 0]), 1, 0), 0); // historyLength 1: one occurrence counts
  assert.deepEqual(Array.from(logits), [3, 2.5, -1]);
});

test('logit bias is added before the penalties; -Infinity bans a token; ids are checked against the vocabulary', () => {
  const logits = [2, -2, 1, 0.5];
  assertClose(dist({ temperature: 1, logitBias: { 1: 3, 3: -0.5 } }, logits), softmax([2, 1, 1, 0]));
  // Bias first, then the repetition penalty on the biased logit: (−2 + 3) / 2.
  assertClose(dist({ temperature: 1, logitBias: { 1: 3 }, repetitionPenalty: 2 }, logits, [1]),
    softmax([2, 0.5, 1, 0.5]));
  const banned = createSampler({ logitBias: { 0: -Infinity } }, 4);
  assert.equal(banned.argmaxOnly, false);
  assert.equal(banned.pick(Float32Array.from(logits), NO_HISTORY, 0, 0), 2);
  assert.equal(createSampler({ logitBias: {} }, 4).argmaxOnly, true);
  const forced = createSampler({ temperature: 1, logitBias: { 3: 100 } }, 4);
  for (const u of [0.01, 0.5, 0.999]) assert.equal(forced.pick(Float32Array.from(logits), NO_HISTORY, 0, u), 3);
  assert.throws(() => createSampler({ logitBias: { 4: 1 } }, 4),
    /logitBias: token id 4 is outside the vocabulary 0\.\.3/);
});

// ---- inputs ----

test('pick and distribution check their inputs', () => {
  const s = createSampler({ temperature: 1, repetitionPenalty: 1.2 }, 4);
  const logits = new Float32Array(4);
  assert.throws(() => s.pick(new Float32Array(3), NO_HISTORY, 0, 0.5), /length vocabSize = 4; got 3/);
  assert.throws(() => s.pick(logits, Int32Array.from([1]), 2, 0.5), /historyLength/);
  assert.throws(() => s.pick(logits, Int32Array.from([4]), 1, 0.5), /history\[0\] must be a token id in \[0, 4\); got 4/);
  assert.throws(() => s.pick(logits, Int32Array.from([-1]), 1, 0.5), /got -1/);
  assert.throws(() => s.pick(logits, NO_HISTORY, 0, 1), /u must be a uniform in \[0, 1\); got 1/);
  assert.throws(() => s.pick(logits, NO_HISTORY, 0, -0.1), RangeError);
  assert.throws(() => s.distribution(logits, NO_HISTORY, 0, new Float32Array(5)), /out must have length/);
  assert.throws(() => createSampler({}, 0), /vocabSize/);
  assert.throws(() => createSampler({}, 2.5), /vocabSize/);
});

// ---- sample() ----

test('sample: inverse CDF in index order; u = 0 gives the first positive entry', () => {
  const p = Float64Array.from([0.1, 0.2, 0.3, 0.4]);
  assert.equal(sample(p, 0), 0);
  assert.equal(sample(p, 0.05), 0);
  assert.equal(sample(p, 0.1), 1); // the running sum must exceed the target: 0.1 is not < 0.1
  assert.equal(sample(p, 0.35), 2);
  assert.equal(sample(p, 0.7), 3);
  assert.equal(sample(Float32Array.from([0, 0, 0.3, 0.7]), 0), 2);
  // Weights need not be normalised.
  assert.equal(sample(Float32Array.from([2, 6]), 0.2), 0);
  assert.equal(sample(Float32Array.from([2, 6]), 0.3), 1);
  // length restricts the range.
  assert.equal(sample(Float32Array.from([1, 1, 100]), 0.9, 2), 1);
});

test('sample: u close to 1 and rounding past the end return the last positive entry', () => {
  const nearOne = 1 - 2 ** -53;
  assert.equal(sample(Float32Array.from([0.5, 0.5, 0, 0]), nearOne), 1);
  assert.equal(sample(Float32Array.from([0.2, 0, 0.8, 0]), nearOne), 2);
  // With a subnormal total, u · total rounds up to the total itself, which no running sum exceeds.
  const tiny = Float64Array.from([0, 5e-324, 0]);
  assert.equal(0.9 * 5e-324, 5e-324);
  assert.equal(sample(tiny, 0.9), 1);
  // Negative and NaN entries are skipped, not subtracted.
  assert.equal(sample(Float64Array.from([-5, Number.NaN, 1]), 0), 2);
});

test('sample: invalid arguments', () => {
  assert.throws(() => sample(Float32Array.from([0, 0]), 0.5), /positive, finite total/);
  assert.throws(() => sample(Float32Array.from([1]), 1), /u must be/);
  assert.throws(() => sample(Float32Array.from([1]), Number.NaN), /u must be/);
  assert.throws(() => sample(Float32Array.from([1]), 0.5, 2), /length/);
  assert.throws(() => sample(Float32Array.from([1]), 0.5, 0), /length/);
});

// ---- validation ----

test('validateSamplingOptions names the parameter, the range and the value', () => {
  const cases: Array<[SamplingOptions, RegExp]> = [
    [{ temperature: -0.5 }, /temperature must be a finite number >= 0 \(0 = greedy\); got -0.5/],
    [{ temperature: Infinity }, /temperature.*got Infinity/],
    [{ temperature: Number.NaN }, /temperature.*got NaN/],
    [{ topK: -1 }, /topK must be an integer >= 0 \(0 = off\); got -1/],
    [{ topK: 2.5 }, /topK.*got 2.5/],
    [{ topP: 0 }, /topP must be a number in \(0, 1\] \(1 = off\); got 0/],
    [{ topP: 1.5 }, /topP.*got 1.5/],
    [{ minP: -0.1 }, /minP must be a number in \[0, 1\] \(0 = off\); got -0.1/],
    [{ minP: 2 }, /minP.*got 2/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty must be a finite number > 0 \(1 = off\); got 0/],
    [{ repetitionWindow: -3 }, /repetitionWindow must be an integer >= 0 \(0 = whole history\); got -3/],
    [{ frequencyPenalty: Infinity }, /frequencyPenalty must be a finite number \(0 = off\); got Infinity/],
    [{ presencePenalty: Number.NaN }, /presencePenalty must be a finite number \(0 = off\); got NaN/],
    [{ logitBias: [1, 2] as unknown as Record<number, number> }, /logitBias must be an object of token id → bias; got an array/],
    [{ logitBias: { '-1': 2 } }, /logitBias must be keyed by token ids \(integers >= 0\); got the key "-1"/],
    [{ logitBias: { 3: Infinity } }, /logitBias\[3\] must be a number within float32 range, or -Infinity; got Infinity/],
    [{ logitBias: { 3: 1e39 } }, /logitBias\[3\] must be a number within float32 range/],
  ];
  for (const [o, re] of cases) {
    assert.throws(() => validateSamplingOptions(o), (e: unknown) => e instanceof RangeError && re.test(e.message));
    assert.throws(() => createSampler(o, 8), RangeError);
  }
  // A wrongly typed value coming from JSON is caught too.
  const fromJson = JSON.parse('{"topP": "0.9"}') as SamplingOptions;
  assert.throws(() => validateSamplingOptions(fromJson), /topP.*got 0.9/);
  validateSamplingOptions({});
  validateSamplingOptions({ temperature: 0.7, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, repetitionWindow: 0 });
});

test('resolveSamplingOptions fills the documented defaults', () => {
  assert.deepEqual(resolveSamplingOptions({}), {
    temperature: 0,
    topK: 0,
    topP: 1,
    minP: 0,
    repetitionPenalty: 1,
    frequencyPenalty: 0,
    presencePenalty: 0,
    repetitionWindow: 64,
    logitBias: {},
  });
  assert.equal(resolveSamplingOptions({ topP: 0.9 }).topP, 0.9);
  // The bias is copied: changing the caller's object later changes nothing.
  const bias: Record<number, number> = { 2: 1 };
  const resolved = resolveSamplingOptions({ logitBias: bias });
  bias[2] = 5;
  assert.deepEqual(resolved.logitBias, { 2: 1 });
});
