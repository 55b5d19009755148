// The exactness contract of the sampler: the optimised paths (top-k heap, top-p histogram bound and partial heap
// selection, min-p prefilter) give bit-identical results to a plain sort-everything reference of the documented
// pipeline; pick() draws from distribution(); pick() allocates nothing per call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createRng } from './random.js';
import type { Rng } from './random.js';
import { createSampler, resolveSamplingOptions } from './sampler.js';
import type { SamplingOptions } from './sampler.js';

interface Reference {
  pick(u: number): number;
  dist: Float32Array;
}

/** The documented pipeline written the slow, obvious way (full sort, arrays, closures). */
function reference(logits: Float32Array, history: Int32Array, historyLength: number, o: SamplingOptions): Reference {
  const r = resolveSamplingOptions(o);
  const V = logits.length;
  const z = Float32Array.from(logits);
  const f32 = Math.fround;
  for (const [id, bias] of Object.entries(r.logitBias)) z[Number(id)] = f32(z[Number(id)] + f32(bias));
  const start = r.repetitionWindow === 0 ? 0 : Math.max(0, historyLength - r.repetitionWindow);
  const counts = new Map<number, number>();
  for (let i = start; i < historyLength; i++) counts.set(history[i], (counts.get(history[i]) ?? 0) + 1);
  for (const [t, c] of counts) {
    if (r.repetitionPenalty !== 1) z[t] = z[t] > 0 ? z[t] / r.repetitionPenalty : z[t] * r.repetitionPenalty;
    // llama.cpp's float32 steps: logit -= float(c) * penalty_freq + float(c > 0) * penalty_present.
    if (r.frequencyPenalty !== 0 || r.presencePenalty !== 0) {
      z[t] = f32(z[t] - f32(f32(c * f32(r.frequencyPenalty)) + f32(r.presencePenalty)));
    }
  }
  const dist = new Float32Array(V);
  if (r.temperature === 0) {
    let arg = -1;
    for (let i = 0; i < V; i++) if (arg < 0 ? z[i] > -Infinity : z[i] > z[arg]) arg = i;
    dist[arg] = 1;
    return { pick: () => arg, dist };
  }
  const ranked: number[] = [];
  for (let i = 0; i < V; i++) if (z[i] > -Infinity) ranked.push(i);
  ranked.sort((a, b) => (z[a] !== z[b] ? z[b] - z[a] : a - b));
  const m = z[ranked[0]];
  const w = new Map<number, number>(ranked.map((id) => [id, Math.exp((z[id] - m) / r.temperature)]));
  const byId = (ids: number[]): number[] => [...ids].sort((a, b) => a - b);
  let kept = r.topK > 0 ? ranked.slice(0, r.topK) : ranked;
  if (r.topP < 1) {
    const S = byId(kept).reduce((s, id) => s + (w.get(id) ?? 0), 0);
    let cum = 0;
    let n = kept.length;
    for (let j = 0; j < kept.length; j++) {
      cum += w.get(kept[j]) ?? 0;
      if (cum >= r.topP * S) {
        n = j + 1;
        break;
      }
    }
    kept = kept.slice(0, n);
  }
  if (r.minP > 0) kept = kept.filter((id) => (w.get(id) ?? 0) >= r.minP);
  kept = byId(kept);
  const total = kept.reduce((s, id) => s + (w.get(id) ?? 0), 0);
  for (const id of kept) dist[id] = (w.get(id) ?? 0) / total;
  return {
    dist,
    pick(u: number): number {
      let cum = 0;
      let last = -1;
      for (const id of kept) {
        const x = w.get(id) ?? 0;
        if (x > 0) {
          cum += x;
          last = id;
          if (u * total < cum) return id;
        }
      }
      return last;
    },
  };
}

function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.nextUniform())) * Math.cos(2 * Math.PI * rng.nextUniform());
}

function choose<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng.nextUniform() * xs.length)];
}

function randomLogits(rng: Rng, V: number): Float32Array {
  const kind = choose(rng, ['normal', 'peaked', 'flat', 'ties', 'holes'] as const);
  const out = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    const g = normal(rng);
    if (kind === 'normal') out[i] = 3 * g;
    else if (kind === 'peaked') out[i] = i % 97 === 5 ? 12 + g : 2 * g; // a few dominant tokens
    else if (kind === 'flat') out[i] = 0.01 * g; // huge nucleus: exercises the large survivor sets
    else if (kind === 'ties') out[i] = Math.round(g * 2) / 2;
    else out[i] = rng.nextUniform() < 0.3 ? (rng.nextUniform() < 0.5 ? -Infinity : Number.NaN) : 2 * g;
  }
  return out;
}

test('every path matches the sort-everything reference bit for bit', () => {
  const rng = createRng(2024);
  let compared = 0;
  for (let trial = 0; trial < 400; trial++) {
    const V = choose(rng, [1, 2, 5, 17, 100, 300, 3000]);
    const options: SamplingOptions = {
      temperature: choose(rng, [0, 0.01, 0.3, 0.7, 1, 1.5, 4]),
      topK: choose(rng, [0, 0, 1, 2, 5, 40, 100, 5000]),
      topP: choose(rng, [1, 1, 0.3, 0.9, 0.95, 0.999]),
      minP: choose(rng, [0, 0, 0.001, 0.05, 0.3, 1]),
      repetitionPenalty: choose(rng, [1, 1, 1.3, 0.8]),
      frequencyPenalty: choose(rng, [0, 0, 0.1, 0.7, -0.5]),
      presencePenalty: choose(rng, [0, 0, 0.3, 1.9, -1]),
      repetitionWindow: choose(rng, [0, 3, 64]),
      logitBias: V > 2 ? choose(rng, [{}, {}, { 0: 5 }, { [V - 1]: -100, 0: 0.3 }, { [V >> 1]: -Infinity }]) : {},
    };
    const logits = randomLogits(rng, V);
    // A token to pick: one finite logit that no bias bans (V >> 1 may be banned; V − 1 never is).
    if (!logits.some((x, i) => x > -Infinity && i !== V >> 1)) logits[V - 1] = 0;
    const history = Int32Array.from({ length: 1 + Math.floor(rng.nextUniform() * 80) }, () =>
      Math.floor(rng.nextUniform() * V),
    );
    const historyLength = Math.floor(rng.nextUniform() * (history.length + 1));
    const s = createSampler(options, V);
    const ref = reference(logits, history, historyLength, options);
    const out = new Float32Array(V);
    s.distribution(logits, history, historyLength, out);
    const where = `trial ${trial}, V ${V}, ${JSON.stringify(options)}`;
    assert.deepEqual(out, ref.dist, where);
    for (let j = 0; j < 20; j++) {
      const u = j === 0 ? 0 : j === 1 ? 1 - 2 ** -53 : rng.nextUniform();
      assert.equal(s.pick(logits, history, historyLength, u), ref.pick(u), `${where}, u ${u}`);
      compared++;
    }
  }
  assert.equal(compared, 8000);
});

test('top-p recollects every token when rounding makes the histogram bound too tight', () => {
  // Bucket 0 holds the tokens within a factor 2 of the top. Its histogram total A is summed in id order, the nucleus
  // sum B in rank order; when A > B by rounding and p · S falls in (B, A], the bound says "bucket 0 is enough" but the
  // nucleus needs one more token from a lighter bucket. Search for such logits, then check against the reference.
  const rng = createRng(5);
  const T = 1;
  for (let attempt = 0; attempt < 20000; attempt++) {
    const logits = new Float32Array(12);
    for (let i = 0; i < 8; i++) logits[i] = Math.fround(-0.69 * rng.nextUniform()); // weights in (0.5, 1]
    logits[0] = 0; // the top token
    for (let i = 8; i < 12; i++) logits[i] = Math.fround(-1 - 3 * rng.nextUniform()); // lighter buckets
    const w = Array.from(logits, (x) => Math.exp((x - 0) / T));
    let A = 0;
    for (let i = 0; i < 8; i++) A += w[i];
    const rank = Array.from({ length: 8 }, (_, i) => i).sort((a, b) =>
      logits[a] !== logits[b] ? logits[b] - logits[a] : a - b,
    );
    let B = 0;
    for (const i of rank) B += w[i];
    if (!(A > B)) continue;
    let S = 0;
    for (const x of w) S += x;
    let p = A / S;
    while (p * S > A) p -= 2 ** -53;
    if (!(p * S > B && p <= 1)) continue;
    const options: SamplingOptions = { temperature: T, topP: p };
    const ref = reference(logits, new Int32Array(0), 0, options);
    const out = new Float32Array(12);
    createSampler(options, 12).distribution(logits, new Int32Array(0), 0, out);
    assert.deepEqual(out, ref.dist);
    assert.equal(ref.dist.filter((x) => x > 0).length, 9, 'the nucleus reaches into the lighter buckets');
    return;
  }
  assert.fail('no logits found that exercise the recollection');
});

/** Upper 0.1% point of chi-square with df degrees of freedom (Wilson-Hilferty). */
function chiSquareCritical(df: number): number {
  const zq = 3.0902; // standard normal 0.999 quantile
  const a = 2 / (9 * df);
  return df * (1 - a + zq * Math.sqrt(a)) ** 3;
}

test('pick() with fresh uniforms reproduces distribution() (chi-square, several paths)', () => {
  const logits = Float32Array.from([1.2, -0.3, 2.5, 0.7, 2.4, -1.5, 0.1, 1.9, -Infinity, 0.4, 3.1, -0.8]);
  const history = Int32Array.from([10, 2, 2, 5]);
  const configs: SamplingOptions[] = [
    { temperature: 0.9, topK: 8, topP: 0.95, minP: 0.02, repetitionPenalty: 1.3 },
    { temperature: 1.3 },
    { temperature: 0.8, topP: 0.9 },
    { temperature: 1.1, minP: 0.1, repetitionPenalty: 1.5, repetitionWindow: 2 },
  ];
  const rng = createRng(31337);
  const N = 40000;
  for (const options of configs) {
    const s = createSampler(options, logits.length);
    const p = new Float32Array(logits.length);
    s.distribution(logits, history, history.length, p);
    const counts = new Array<number>(logits.length).fill(0);
    for (let i = 0; i < N; i++) counts[s.pick(logits, history, history.length, rng.nextUniform())]++;
    let chi2 = 0;
    let df = -1;
    for (let t = 0; t < logits.length; t++) {
      if (p[t] === 0) {
        assert.equal(counts[t], 0, `token ${t} has probability 0 but was drawn (${JSON.stringify(options)})`);
        continue;
      }
      const expected = N * p[t];
      chi2 += (counts[t] - expected) ** 2 / expected;
      df++;
    }
    assert.ok(df >= 2, `config keeps too few tokens to test: ${JSON.stringify(options)}`);
    assert.ok(chi2 < chiSquareCritical(df), `chi2 ${chi2.toFixed(2)} df ${df} for ${JSON.stringify(options)}`);
  }
});

test('pick() is the inverse CDF of distribution() in ascending id order', () => {
  const logits = Float32Array.from([0.5, 2, -1, 1.5, 2, 0.2, -3, 1]);
  const s = createSampler({ temperature: 1, topP: 0.97 }, logits.length);
  const p = new Float32Array(logits.length);
  s.distribution(logits, new Int32Array(0), 0, p);
  const G = 200000;
  const counts = new Array<number>(logits.length).fill(0);
  let previous = -1;
  for (let j = 0; j < G; j++) {
    const t = s.pick(logits, new Int32Array(0), 0, (j + 0.5) / G);
    assert.ok(t >= previous, `pick is not monotone in u at u = ${(j + 0.5) / G}`);
    previous = t;
    counts[t]++;
  }
  for (let t = 0; t < logits.length; t++) {
    assert.ok(Math.abs(counts[t] / G - p[t]) <= 1 / G + 1e-6, `token ${t}: ${counts[t] / G} vs ${p[t]}`);
  }
});

// ---- no allocation ----

v8.setFlagsFromString('--expose-gc');
const forceGc = vm.runInNewContext('gc') as () => void;

/**
 * Heap growth (bytes) over one call of `run`, measured in rounds after a warm-up and a forced collection; rounds
 * during which a collection ran are discarded (it would hide garbage). Returns the growth of the first clean round
 * with growth below `enough` (or of the smallest clean round); Infinity when no round was clean.
 */
async function heapGrowth(run: () => number, enough: number): Promise<number> {
  const gcTimes: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcTimes.push(e.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });
  const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  let best = Infinity;
  let sink = 0;
  for (let round = 0; round < 8 && !(best < enough); round++) {
    sink += run() + run(); // warm up: the measured round must run optimised code
    forceGc();
    await flush();
    const t0 = performance.now();
    const before = process.memoryUsage().heapUsed;
    sink += run();
    const after = process.memoryUsage().heapUsed;
    const t1 = performance.now();
    await flush();
    if (!gcTimes.some((t) => t >= t0 && t <= t1)) best = Math.min(best, after - before);
  }
  observer.disconnect();
  assert.ok(Number.isFinite(sink));
  return best;
}

const CALLS = 5000;
let escaped: number[] = [];
// Uniforms for the loops below. The allocation probe passes u = 0, a small integer: any other number can be boxed
// afresh by the optimised harness loop when it calls pick() (16 bytes a call that belong to the caller, not to pick();
// seen under heavy CPU contention). u only moves the end of the final CDF walk, which works on locals.
const U1 = 0.3711;
const U2 = 0.9137;

test('pick() allocates nothing per call, on every path (and the probe does catch allocation)', async () => {
  const V = 128;
  const rng = createRng(8);
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = 3 * normal(rng);
  const history = Int32Array.from({ length: 100 }, (_, i) => (i * 37) % V);
  const configs: SamplingOptions[] = [
    { repetitionPenalty: 1.2 },
    { temperature: 0.8, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1 },
    { temperature: 0.8, topP: 0.95 },
    { temperature: 2, topP: 0.999 }, // large survivor set: the mark-and-scan id sort
    { temperature: 0.8, minP: 0.05 },
    { temperature: 1 },
    { frequencyPenalty: 0.5, presencePenalty: 0.2, logitBias: { 3: -100 } },
    { temperature: 0.9, topP: 0.95, repetitionPenalty: 1.1, frequencyPenalty: 0.3, logitBias: { 1: 2, 2: -Infinity } },
  ];
  const tinyLogits = Float32Array.from([0.5, -1, 2, 0.25]);
  const tinyHistory = Int32Array.from([1, 2]);
  for (const options of configs) {
    // Warm up on a 4-token vocabulary first. Closures made at one site share their optimised code, and short loops get
    // it through the normal call-count route: a function made hot only by long loops can keep entering through the
    // interpreter and on-stack replacement, whose first loop iteration boxes a number (a JIT artefact, not garbage
    // the optimised sampler makes).
    const tiny = createSampler(options, 4);
    for (let i = 0; i < 20000; i++) tiny.pick(tinyLogits, tinyHistory, 2, 0);
    const s = createSampler(options, V);
    const run = (): number => {
      let acc = 0;
      for (let i = 0; i < CALLS; i++) acc = (acc + s.pick(logits, history, 100, 0)) | 0;
      return acc;
    };
    const growth = await heapGrowth(run, 4096);
    // The smallest per-call garbage, one boxed double, is 12 bytes; JIT activity during a round adds a few kB.
    assert.ok(growth < CALLS * 8, `${JSON.stringify(options)}: heap grew ${growth} bytes over ${CALLS} calls`);
  }
  // Control: the same loop plus one small array per call, kept alive until the next call (so escape analysis cannot
  // remove it), must be caught.
  const s = createSampler({ temperature: 0.8, topK: 40 }, V);
  const leaky = (): number => {
    let acc = 0;
    for (let i = 0; i < CALLS; i++) {
      escaped = [s.pick(logits, history, 100, 0), i];
      acc = (acc + escaped[0]) | 0;
    }
    return acc;
  };
  const leakGrowth = await heapGrowth(leaky, Infinity); // the first clean round decides
  assert.ok(leakGrowth > CALLS * 8, `the probe missed an allocating loop (growth ${leakGrowth})`);
});

test('repeated calls give identical results; scratch state does not leak between calls', () => {
  const V = 500;
  const rng = createRng(77);
  const a = new Float32Array(V);
  const b = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    a[i] = 2 * normal(rng);
    b[i] = 2 * normal(rng);
  }
  const ha = Int32Array.from([1, 2, 3, 4, 400]);
  const hb = Int32Array.from([7, 7, 8]);
  for (const options of [
    { temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.4 },
    { temperature: 0.7, topP: 0.9, minP: 0.01, repetitionPenalty: 1.4 },
    { temperature: 0.7, repetitionPenalty: 1.4 },
    { temperature: 0.7, frequencyPenalty: 0.6, presencePenalty: 0.3 },
  ]) {
    const s = createSampler(options, V);
    const us = Array.from({ length: 50 }, () => rng.nextUniform());
    const first = us.map((u) => s.pick(a, ha, ha.length, u));
    const da = new Float32Array(V);
    s.distribution(a, ha, ha.length, da);
    for (const u of us) s.pick(b, hb, hb.length, u); // a different call in between
    assert.deepEqual(
      us.map((u) => s.pick(a, ha, ha.length, u)),
      first,
    );
    const again = new Float32Array(V);
    s.distribution(a, ha, ha.length, again);
    assert.deepEqual(again, da);
    // A fresh sampler agrees with the reused one.
    const fresh = createSampler(options, V);
    assert.deepEqual(
      us.map((u) => fresh.pick(a, ha, ha.length, u)),
      first,
    );
  }
});

test('speed: vocab 32000 with top-k 40 stays well under 1 ms per pick', () => {
  const V = 32000;
  const rng = createRng(3);
  const logits = new Float32Array(V);
  for (let i = 0; i < V; i++) logits[i] = 3 * normal(rng);
  const history = Int32Array.from({ length: 64 }, (_, i) => i * 101);
  const s = createSampler({ temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1 }, V);
  for (let i = 0; i < 100; i++) s.pick(logits, history, 64, U1);
  // CPU time, not wall time: other processes on a busy machine delay the test but do not add to its CPU time.
  const n = 300;
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) s.pick(logits, history, 64, (i & 1) === 0 ? U1 : U2);
  const used = process.cpuUsage(before);
  const perCall = (used.user + used.system) / 1000 / n;
  assert.ok(perCall < 1, `${perCall.toFixed(3)} ms per pick`);
});
