// What a ReDrafter step costs on this machine, for the speculation controller (controller.ts): the verification
// forward by node count, drafting and acceptance by tree shape, the packed node count by shape, and a plain step.
// Measured once by calibrate() (a few forwards and beam searches, or read back from `redrafter tune`'s file), then
// refined online by every step the decoders run (exponential averages).

import { performance } from 'node:perf_hooks';
import type { ForwardBatch, Model, SequenceBatch } from '../model/model.js';
import type { BeamSearch, DeviceBeamSearch } from '../drafter/beam-search.js';

/** Beam widths the speculation controller chooses from. */
export const CONTROLLER_WIDTHS: readonly number[] = [1, 2, 4, 8];
/** Longest beam the controller drafts (L counts g0). */
export const CONTROLLER_MAX_LENGTH = 8;

/** Index of shape (width index wi, length L) in the per-shape tables. */
export function shapeIndex(wi: number, L: number): number {
  return wi * (CONTROLLER_MAX_LENGTH + 1) + L;
}

const SHAPES = CONTROLLER_WIDTHS.length * (CONTROLLER_MAX_LENGTH + 1);
/** Largest tree the controller drafts: 1 + W·(L − 1) nodes at W = 8, L = 8. */
export const CONTROLLER_MAX_NODES = 1 + CONTROLLER_WIDTHS[CONTROLLER_WIDTHS.length - 1] * (CONTROLLER_MAX_LENGTH - 1);
/** Forward sizes calibrate() measures; other node counts are interpolated, larger ones extrapolated. */
const CALIBRATION_SIZES = [1, 2, 4, 8, 16];
/** Weight of a new measurement in the running averages. */
const AVERAGING = 0.15;
/** Timed forwards in each block of one size (forwardSeconds). */
const FORWARD_TIMED = 2;
/**
 * Untimed forwards that open a block of k tokens: a token after a 16-token forward took three more before it ran at
 * its steady cost, while 4 tokens and more cost the same after any forward (measured: forwardSeconds).
 */
const forwardSettle = (k: number): number => (k <= 2 ? 4 : 1);
/** Untimed passes of beam searches over every width before calibration times them (costsFromMeasurements). */
const DRAFT_WARMUP_ROUNDS = 3;

export interface SpeculationCosts {
  /** verify[n]: seconds of a verification forward over n nodes, n = 1 .. CONTROLLER_MAX_NODES (index 0 unused). */
  readonly verify: Float64Array;
  /** Seconds of a plain decoding step (one-token forward and the pick). */
  plain: number;
  /** Per shape (shapeIndex): seconds of drafting, seconds of acceptance and KV bookkeeping, mean packed nodes. */
  readonly draft: Float64Array;
  readonly accept: Float64Array;
  readonly nodes: Float64Array;
  /**
   * verify at a fractional node count: 0 at 0, linear between the two integers around it, and beyond
   * CONTROLLER_MAX_NODES (batches of several sequences) along the slope of the table's upper half.
   */
  verifyAt(nodes: number): number;
  /** A tree step: its shape's costs, and the forward's time as the cost of its `forwardRows` rows. */
  observeTree(wi: number, L: number, nodes: number, draftSeconds: number, verifySeconds: number,
    acceptSeconds: number, forwardRows: number): void;
  observePlain(seconds: number): void;
  /**
   * A forward over `rows` rows took `seconds`: a sample of the verification cost at that row count. Tree steps give
   * one each (observeTree); so does every plain step, whose forward is the 1-row one (alone) or the batch's.
   */
  observeForward(rows: number, seconds: number): void;
  /** Plain numbers, for the tuning file. */
  toJSON(): SpeculationCostsJson;
}

export interface SpeculationCostsJson {
  verify: number[];
  plain: number;
  draft: number[];
  accept: number[];
  nodes: number[];
}

/**
 * A running average that one outlier (a garbage collection, the thread descheduled) cannot drag far: a sample is
 * capped at three times the current value before it is averaged in.
 */
function averaged(current: number, sample: number): number {
  if (!(current > 0)) return sample;
  return current + AVERAGING * (Math.min(sample, 3 * current) - current);
}

export function createSpeculationCosts(json: SpeculationCostsJson): SpeculationCosts {
  const check = (name: string, values: readonly number[], length: number): Float64Array => {
    if (!Array.isArray(values) || values.length !== length || values.some((v, i) => !(v >= 0) && !(i === 0 && v === 0))) {
      throw new RangeError(`speculation costs: "${name}" must be ${length} non-negative numbers`);
    }
    return Float64Array.from(values);
  };
  const verify = check('verify', json.verify, CONTROLLER_MAX_NODES + 1);
  const draft = check('draft', json.draft, SHAPES);
  const accept = check('accept', json.accept, SHAPES);
  const nodes = check('nodes', json.nodes, SHAPES);
  if (!(json.plain > 0)) throw new RangeError(`speculation costs: "plain" must be a positive number, got ${json.plain}`);
  // The verification table is the calibration corrected by what steps measured. Each row count is measured only by
  // the steps that run it, so a count never run would keep the calibration's figure for good: on xl F32 at 1 thread a
  // calibration taken while the machine was busy read every forward ~1.6× dearer than the steps then did, the 4-node
  // trees the controller ran corrected 4 nodes alone, 5-node trees still looked 1.8× dearer than 4-node ones, were
  // never explored (the runner-up must promise 90 % of the best), and 1 × 5, the best tree there, never ran. So a
  // count not measured takes the calibration scaled by the measured/calibrated ratio of the measured counts around
  // it (interpolated between the nearest below and above, the nearest one's beyond them).
  const calibrated = Float64Array.from(verify);
  /** Running average of the forwards measured at each row count, 0 where none ran. */
  const measured = new Float64Array(CONTROLLER_MAX_NODES + 1);

  /** measured / calibrated at a measured count m. */
  function ratio(m: number): number {
    return calibrated[m] > 0 ? measured[m] / calibrated[m] : 1;
  }

  /** nextMeasured[j]: the nearest measured count above j, 0 for none (correctVerify's scratch). */
  const nextMeasured = new Int32Array(CONTROLLER_MAX_NODES + 2);

  /**
   * Rebuilds `verify` from `calibrated` and `measured` (see above); allocation-free and linear in the table, since
   * every plain step of a sequence under the controller calls it.
   */
  function correctVerify(): void {
    nextMeasured[CONTROLLER_MAX_NODES] = 0;
    for (let j = CONTROLLER_MAX_NODES - 1; j >= 1; j--) {
      nextMeasured[j] = measured[j + 1] > 0 ? j + 1 : nextMeasured[j + 1];
    }
    let below = 0; // the nearest measured count below j, 0 for none
    for (let j = 1; j <= CONTROLLER_MAX_NODES; j++) {
      if (measured[j] > 0) {
        verify[j] = measured[j];
        below = j;
        continue;
      }
      const above = nextMeasured[j];
      let scale = 1;
      if (below > 0 && above > 0) scale = ratio(below) + (j - below) * (ratio(above) - ratio(below)) / (above - below);
      else if (below > 0) scale = ratio(below);
      else if (above > 0) scale = ratio(above);
      let value = calibrated[j] * scale;
      // Between two measured counts it stays between their costs (the curve is monotone, see observeTree).
      if (j > 1) value = Math.max(value, verify[j - 1]);
      if (above > 0) value = Math.min(value, measured[above]);
      verify[j] = value;
    }
  }

  const costs: SpeculationCosts = {
    verify, draft, accept, nodes,
    plain: json.plain,
    verifyAt(n) {
      if (!(n > 0)) return 0;
      if (n < 1) return n * verify[1];
      if (n > CONTROLLER_MAX_NODES) {
        const half = Math.ceil(CONTROLLER_MAX_NODES / 2);
        const slope = Math.max(0, (verify[CONTROLLER_MAX_NODES] - verify[half]) / (CONTROLLER_MAX_NODES - half));
        return verify[CONTROLLER_MAX_NODES] + (n - CONTROLLER_MAX_NODES) * slope;
      }
      const lo = Math.max(1, Math.min(CONTROLLER_MAX_NODES, Math.floor(n)));
      const hi = Math.min(CONTROLLER_MAX_NODES, lo + 1);
      const t = Math.min(1, Math.max(0, n - lo));
      return verify[lo] + t * (verify[hi] - verify[lo]);
    },
    observeTree(wi, L, n, draftSeconds, verifySeconds, acceptSeconds, forwardRows) {
      const s = shapeIndex(wi, L);
      draft[s] = averaged(draft[s], draftSeconds);
      accept[s] = averaged(accept[s], acceptSeconds);
      nodes[s] += AVERAGING * (n - nodes[s]);
      costs.observeForward(forwardRows, verifySeconds);
    },
    observeForward(m, seconds) {
      if (m >= 1 && m <= CONTROLLER_MAX_NODES) {
        measured[m] = averaged(measured[m] > 0 ? measured[m] : verify[m], seconds);
        // A forward over more rows never costs less than one over fewer. On 2 threads a few noisy samples (±10 %)
        // had made 4 rows look cheaper than 3 and 8 cheaper than 6, so the controller preferred the bigger tree for
        // nothing; the new sample bounds the other measured counts instead (smaller from above, larger from
        // below), which keeps the curve monotone.
        for (let j = m - 1; j >= 1; j--) if (measured[j] > measured[m]) measured[j] = measured[m];
        for (let j = m + 1; j <= CONTROLLER_MAX_NODES; j++) {
          if (measured[j] > 0 && measured[j] < measured[m]) measured[j] = measured[m];
        }
        correctVerify();
      }
    },
    observePlain(seconds) {
      costs.plain = averaged(costs.plain, seconds);
    },
    toJSON: () => ({ verify: Array.from(verify), plain: costs.plain, draft: Array.from(draft),
      accept: Array.from(accept), nodes: Array.from(nodes) }),
  };
  return costs;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median seconds of `repeats` runs of `work` after one unmeasured run. */
function timed(repeats: number, work: () => void): number {
  work();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const started = performance.now();
    work();
    times.push((performance.now() - started) / 1000);
  }
  return median(times);
}

/**
 * The forwards a calibration runs, in order (forwardSeconds, calibrateCostsAsync): turns over `sizes` (indices), each
 * size a block of forwardSettle(k) untimed forwards then FORWARD_TIMED timed ones, until each size has `repeats` timed
 * runs (rounded up).
 */
function* calibrationRuns(sizes: readonly number[], repeats: number): Generator<{ size: number; timed: boolean }> {
  for (let runsTimed = 0; runsTimed < repeats; runsTimed += FORWARD_TIMED) {
    for (let size = 0; size < sizes.length; size++) {
      const settle = forwardSettle(sizes[size]);
      for (let run = 0; run < settle + FORWARD_TIMED; run++) yield { size, timed: run >= settle };
    }
  }
}

/**
 * Seconds of one forward over k tokens (all logits) after a context of `context` tokens, for each k of `sizes`, on a
 * cache of its own (the model's output buffers are overwritten), as that forward costs when it repeats: each size
 * runs as a block of forwards in a row, the first forwardSettle(k) untimed, then FORWARD_TIMED timed; blocks of all
 * sizes in turn until each size has `repeats` timed runs (rounded up); the fastest run of each size.
 *
 * Why blocks: a forward's cost depends on the forwards before it. stories260K-xl Q8_0 (80 MB) on an Intel Xeon
 * (2 threads, Node 24): 1.95 ms for a token after tokens, 2.3–2.9 ms for the first three tokens after a 16-token
 * forward, 3.4 ms in rounds that cycled 1, 2, 4, 8, 16 tokens; 2 tokens 3.5–3.9 ms after 2-token forwards. Measured
 * in such rounds, a 2-node tree read 1.3× a plain step where decoding runs at 1.8×, and the controller chose trees
 * that ran at 0.87× plain decoding. What the controller compares is a shape's steady rate, which a block measures.
 * Why turns and the minimum: on a shared host, noise only ever adds time and comes in bursts (a 2-core AMD EPYC: the
 * same 4-token forward read 13.7–25.6 ms across calibrations a minute apart); per-size medians of a few runs had read
 * 4 tokens at 2.5× the cost of 2 and kept the controller on 1 × 2 trees. The verification forward of a k-node tree
 * costs this (calibrateCosts, benchmark.ts verifyCostCurve).
 */
export function forwardSeconds(model: Model, context: number, sizes: readonly number[], repeats: number): number[] {
  const n = context + Math.max(...sizes);
  const cache = model.createCache(n);
  const tokens = Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % model.config.vocabSize);
  const positions = Int32Array.from({ length: n }, (_, i) => i);
  const prefix = Int32Array.from({ length: n }, (_, i) => i + 1);
  try {
    for (let start = 0; start < context; start += 64) {
      const count = Math.min(64, context - start);
      model.forward(cache, { count, tokens: tokens.subarray(start), positions: positions.subarray(start),
        writeSlot: start, prefixLengths: prefix.subarray(start), logits: 'none' });
    }
    const batch: ForwardBatch = { count: 1, tokens: tokens.subarray(context), positions: positions.subarray(context),
      writeSlot: context, prefixLengths: prefix.subarray(context), logits: 'all' };
    const best = sizes.map(() => Infinity);
    for (const run of calibrationRuns(sizes, repeats)) {
      batch.count = sizes[run.size];
      const started = performance.now();
      model.forward(cache, batch);
      if (run.timed) best[run.size] = Math.min(best[run.size], (performance.now() - started) / 1000);
    }
    return best;
  } finally {
    cache.free();
  }
}

export interface CalibrationOptions {
  /** Measured rounds over the forward sizes (the fastest run of each; default 4). */
  repeats?: number;
  /** Tokens in the cache before the measured forwards (default 32). */
  context?: number;
}

/**
 * Measures the costs: forwards over 1, 2, 4, 8 and 16 tokens after a short context (the verification shapes;
 * node counts between are interpolated, larger ones extrapolated along the 8 → 16 slope, which is the
 * compute-bound part of the curve), and beam searches of every controller width at lengths 2 and 8 (drafting is
 * one drafter step per position, so lengths between are linear). Uses a cache of its own; the model's output
 * buffers are overwritten.
 */
export function calibrateCosts(model: Model, search: BeamSearch, options: CalibrationOptions = {}): SpeculationCosts {
  const repeats = options.repeats ?? 4;
  const context = calibrationContext(model, options);
  return costsFromMeasurements(forwardSeconds(model, context, CALIBRATION_SIZES, repeats),
    hostDraftSeconds(model, search, repeats));
}

/**
 * calibrateCosts for a model whose forward is asynchronous (WebGPU: `forwardSequencesAsync`): the same measurements,
 * each forward awaited; the drafts timed on the device where the drafter runs there (`deviceSearch`).
 */
export async function calibrateCostsAsync(model: Model, search: BeamSearch, options: CalibrationOptions = {},
  deviceSearch?: DeviceBeamSearch): Promise<SpeculationCosts> {
  const forwardAsync = model.forwardSequencesAsync;
  if (!forwardAsync) throw new Error('calibrateCostsAsync: the model has no asynchronous forward');
  const repeats = options.repeats ?? 4;
  const context = calibrationContext(model, options);
  const sizes = CALIBRATION_SIZES;
  const n = context + Math.max(...sizes);
  const cache = model.createCache(n);
  const row = (count: number, start: number, logits: boolean): SequenceBatch => ({
    count, tokens: Int32Array.from({ length: count }, (_, i) => ((start + i) * 7 + 3) % model.config.vocabSize),
    positions: Int32Array.from({ length: count }, (_, i) => start + i),
    prefixLengths: Int32Array.from({ length: count }, (_, i) => start + i + 1), caches: [cache],
    cacheOf: new Int32Array(count), writeSlots: Int32Array.from({ length: count }, (_, i) => start + i),
    logits: logits ? 'all' : 'none' });
  try {
    for (let start = 0; start < context; start += 64) {
      await forwardAsync.call(model, row(Math.min(64, context - start), start, false));
    }
    // As forwardSeconds: the same runs in the same order, the fastest of each size.
    const batches = sizes.map((k) => row(k, context, true));
    const measured = sizes.map(() => Infinity);
    for (const run of calibrationRuns(sizes, repeats)) {
      const started = performance.now();
      await forwardAsync.call(model, batches[run.size]);
      if (run.timed) measured[run.size] = Math.min(measured[run.size], (performance.now() - started) / 1000);
    }
    // The device search drafts from row 0 of the latest forward's hidden states (the last measured batch's).
    return costsFromMeasurements(measured, deviceSearch ? await deviceDraftSeconds(model, deviceSearch, repeats)
      : hostDraftSeconds(model, search, repeats));
  } finally {
    cache.free();
  }
}

function calibrationContext(model: Model, options: CalibrationOptions): number {
  const largest = CALIBRATION_SIZES[CALIBRATION_SIZES.length - 1];
  return Math.min(options.context ?? 32, model.contextLength - largest);
}

/**
 * Seconds of beam searches at lengths 2 and CONTROLLER_MAX_LENGTH, [short, long] for each controller width, on the
 * host. The drafter's code is cold at first (measured on xl: a first calibration read 1-beam drafts 1.7-3x their warm
 * cost, which steered the controller away from long and narrow trees until they happened to run): a few untimed
 * searches of every width first.
 */
function hostDraftSeconds(model: Model, search: BeamSearch, repeats: number): [number, number][] {
  const vocab = model.config.vocabSize;
  const h = new Float32Array(model.config.dim);
  for (let i = 0; i < h.length; i++) h[i] = Math.sin(i); // a context vector of ordinary size
  for (let round = 0; round < DRAFT_WARMUP_ROUNDS; round++) {
    for (const W of CONTROLLER_WIDTHS) {
      search.search(h, 0, 3 % vocab, W, 2);
      search.search(h, 0, 3 % vocab, W, CONTROLLER_MAX_LENGTH);
    }
  }
  return CONTROLLER_WIDTHS.map((W) => [timed(repeats, () => search.search(h, 0, 3 % vocab, W, 2)),
    timed(repeats, () => search.search(h, 0, 3 % vocab, W, CONTROLLER_MAX_LENGTH))]);
}

/** hostDraftSeconds for a drafter on the model's device: each search awaited (its submission and readback included). */
async function deviceDraftSeconds(model: Model, search: DeviceBeamSearch, repeats: number): Promise<[number, number][]> {
  const g0 = 3 % model.config.vocabSize;
  const time = async (W: number, L: number): Promise<number> => {
    await search.searchFromRow(0, g0, W, L);
    const times: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const started = performance.now();
      await search.searchFromRow(0, g0, W, L);
      times.push((performance.now() - started) / 1000);
    }
    return median(times);
  };
  const seconds: [number, number][] = [];
  for (const W of CONTROLLER_WIDTHS) seconds.push([await time(W, 2), await time(W, CONTROLLER_MAX_LENGTH)]);
  return seconds;
}

/**
 * The costs from forward times at CALIBRATION_SIZES (`measured`), and beam search times (`drafts`: [length 2, length
 * CONTROLLER_MAX_LENGTH] per controller width). A plain step guessed too slow makes every tree look better than it
 * is; the 1-token figure is safe from a cold JIT because each size's fastest run is taken over turns, the later ones
 * after every size has run (calibrationRuns).
 */
function costsFromMeasurements(measured: number[], drafts: [number, number][]): SpeculationCosts {
  const verify = new Array<number>(CONTROLLER_MAX_NODES + 1).fill(0);
  for (let m = 1; m <= CONTROLLER_MAX_NODES; m++) {
    let i = 0;
    while (i < CALIBRATION_SIZES.length - 2 && CALIBRATION_SIZES[i + 1] < m) i++;
    const [a, b] = [CALIBRATION_SIZES[i], CALIBRATION_SIZES[i + 1]];
    // Never cheaper than a smaller forward: noise must not make a bigger tree look free.
    verify[m] = Math.max(measured[i] + (m - a) * (measured[i + 1] - measured[i]) / (b - a), verify[m - 1]);
  }

  const draft = new Array<number>(SHAPES).fill(0);
  const nodes = new Array<number>(SHAPES).fill(0);
  CONTROLLER_WIDTHS.forEach((W, wi) => {
    const [short, long] = drafts[wi];
    const perPosition = Math.max(0, (long - short) / (CONTROLLER_MAX_LENGTH - 2));
    for (let L = 2; L <= CONTROLLER_MAX_LENGTH; L++) {
      draft[shapeIndex(wi, L)] = short + (L - 2) * perPosition;
      // Until trees are seen, assume beams share nothing but g0: the most nodes a shape can pack.
      nodes[shapeIndex(wi, L)] = 1 + W * (L - 1);
    }
  });
  return createSpeculationCosts({ verify, plain: measured[0], draft, accept: new Array<number>(SHAPES).fill(0), nodes });
}
