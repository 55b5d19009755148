// The speculation controller (issue 13): before every ReDrafter step it picks the tree shape, W beams of length L, or
// none (plain decoding), that gives the most expected tokens per second. Two things decide:
//
//   cost(W, L)  = draft(W, L) + verify(nodes(W, L)) + accept(W, L)     measured on this machine (speculation-costs.ts)
//   tokens(W,L) = 1 + Σ_{d=1}^{L−1} Π_{j≤d} c_W(j)                      the running acceptance by depth
//
// c_W(d) is the chance that a step with W beams that accepted d − 1 drafted tokens accepts the d-th too. Widths are
// tied together by one model: W beams miss a token as often as one beam misses it raised to the power g(W, d) =
// 1 + 0.25·log2 W at depth 1 and 1 + 0.2·log2 W deeper (beams of a tree mostly differ in their first drafted
// token). Measured with the shipped xl drafter (6 prompts × 96 tokens): at T = 1, two beams miss the first drafted
// token like one beam to the power 1.15–1.25 (2 × 4 commits 2.23 tokens a step where 1 × 4 commits 2.04), greedy
// ~1.1 (W = 2), 1.35 (4), 1.6 (8). The earlier 0.5, fitted to one short round of the W × L sweep, promised 2 × 4 at
// T = 1 some 2.4 tokens a step, and the controller ran it at 0.94-0.95 of 1 × 4's speed.
// So every step teaches every width: the counts of all widths pool into one base rate per depth,
// b(d), each width's own counts then correct its c_W(d) = 1 − (1 − b(d))^g(W). The counts are this sequence's, plus
// a fading memory of the sequences before it (same model, drafter and decoding mode); where nothing was seen at a
// depth, the estimate one depth up stands in (acceptance by depth changes slowly), at depth 1 a default.
//
// The costs of a shape are corrected only by running it, so every EXPLORE_INTERVAL-th tree step runs the runner-up
// shape when it promises nearly as much as the best, or (every other time) the best shape one position longer.
//
// Plain decoding is chosen when no tree beats it by a margin; then the sequence no longer learns how trees would do,
// so every PROBE_INTERVAL plain steps (growing to MAX_PROBE_INTERVAL while probes accept nothing) it runs the best
// tree once, unless even a drafter whose every token is accepted
// could not beat plain decoding here (the drafter costs more than it saves: the stories260K case).
//
// Output never depends on the choice: exact verification emits plain decoding's tokens whatever the tree.

import { CONTROLLER_MAX_LENGTH, CONTROLLER_WIDTHS, shapeIndex, type SpeculationCosts } from './speculation-costs.js';

export { CONTROLLER_MAX_LENGTH, CONTROLLER_WIDTHS } from './speculation-costs.js';

/**
 * Plain steps between two probing tree steps while plain decoding is chosen; after each probe that did not bring
 * trees back the interval doubles, up to MAX_PROBE_INTERVAL (a probe costs at most a tree step's loss).
 */
const PROBE_INTERVAL = 32;
const MAX_PROBE_INTERVAL = 256;
/**
 * Every EXPLORE_INTERVAL-th tree step runs the runner-up shape instead of the best, if it promises at least
 * EXPLORE_FLOOR of the best's rate: the costs of shapes never run are the calibration's guesses, and only running
 * them corrects those (at most (1 − EXPLORE_FLOOR) / EXPLORE_INTERVAL of the speed, ~0.6 %).
 */
const EXPLORE_INTERVAL = 16;
/**
 * Every PLAIN_CHECK_INTERVAL-th step in a row that chose a tree runs a plain step instead: tree steps never measure a
 * plain step, so a plain cost guessed too high (a calibration that caught the JIT cold) would otherwise keep trees
 * chosen for good (< 1/64 of the speed at most).
 */
const PLAIN_CHECK_INTERVAL = 64;
const EXPLORE_FLOOR = 0.9;
/**
 * Every other exploring step runs the best shape one position longer instead, if it promises at least this share of
 * the best's rate. A calibration that read the bigger forwards dear (a busy machine) puts the longer trees far below
 * EXPLORE_FLOOR, so the runner-up rule alone never runs them and never learns their real cost; the next length up is
 * the shape such an error hides most often, and one such step per 2·EXPLORE_INTERVAL tree steps costs ≤ 1.3 %.
 */
const LONGER_FLOOR = 0.6;
/** A tree must promise this much more than plain decoding to be chosen (noise in the measured costs). */
const MARGIN = 1.1;
/** Pseudo-counts of the prior in each estimate. */
const PRIOR_WEIGHT = 4;
/** Per observed step, a sequence's older counts fade by this much: its acceptance is a running one. */
const SEQUENCE_DECAY = 0.98;
/** When a sequence ends, the memory of earlier sequences fades by this much before its counts join it. */
const SHARED_DECAY = 0.8;
/** Weight of that memory beside the sequence's own counts. */
const SHARED_WEIGHT = 0.5;
/** Base acceptance at depth 1 before anything is seen: mildly optimistic, so that trees get tried. */
const DEFAULT_BASE = 0.7;

/** One step's choice: a tree shape, or null for plain decoding. */
export interface TreeShape {
  beams: number;
  beamLength: number;
}

/**
 * Acceptance counts by width and depth: trials[wi·D + d − 1] steps of width CONTROLLER_WIDTHS[wi] reached depth
 * d − 1 with depth d drafted, successes[...] of them accepted depth d (D = CONTROLLER_MAX_LENGTH − 1).
 */
export interface AcceptanceCounts {
  readonly trials: Float64Array;
  readonly successes: Float64Array;
}

export function createAcceptanceCounts(): AcceptanceCounts {
  const size = CONTROLLER_WIDTHS.length * (CONTROLLER_MAX_LENGTH - 1);
  return { trials: new Float64Array(size), successes: new Float64Array(size) };
}

/** Records a step of width index wi that drafted L − 1 tokens and accepted `accepted` of them. */
export function recordAcceptance(counts: AcceptanceCounts, wi: number, beamLength: number, accepted: number,
  decay: number): void {
  const D = CONTROLLER_MAX_LENGTH - 1;
  if (decay !== 1) {
    for (let i = 0; i < counts.trials.length; i++) {
      counts.trials[i] *= decay;
      counts.successes[i] *= decay;
    }
  }
  for (let d = 1; d <= Math.min(accepted + 1, beamLength - 1); d++) {
    counts.trials[wi * D + d - 1] += 1;
    if (d <= accepted) counts.successes[wi * D + d - 1] += 1;
  }
}

/** The width exponent g(W, d) of the miss model (see the header). */
export function widthExponent(beams: number, depth: number): number {
  return 1 + (depth === 1 ? 0.25 : 0.2) * Math.log2(beams);
}

/**
 * c_W(d) for every width index and depth into out[wi·D + d − 1], from counts = own + weight·memory (memory may be
 * null). See the header for the model.
 */
export function continuationEstimates(own: AcceptanceCounts, memory: AcceptanceCounts | null, memoryWeight: number,
  out: Float64Array): Float64Array {
  const D = CONTROLLER_MAX_LENGTH - 1;
  let base = DEFAULT_BASE;
  for (let d = 1; d <= D; d++) {
    // Pool: each width's rate, turned into a one-beam rate, weighted by its trials; the depth above as the prior.
    let weighted = PRIOR_WEIGHT * base;
    let weight = PRIOR_WEIGHT;
    for (let wi = 0; wi < CONTROLLER_WIDTHS.length; wi++) {
      const i = wi * D + d - 1;
      const trials = own.trials[i] + (memory ? memoryWeight * memory.trials[i] : 0);
      if (trials <= 0) continue;
      const rate = (own.successes[i] + (memory ? memoryWeight * memory.successes[i] : 0)) / trials;
      weighted += trials * (1 - Math.pow(Math.max(0, 1 - rate), 1 / widthExponent(CONTROLLER_WIDTHS[wi], d)));
      weight += trials;
    }
    base = weighted / weight;
    for (let wi = 0; wi < CONTROLLER_WIDTHS.length; wi++) {
      const i = wi * D + d - 1;
      const prior = 1 - Math.pow(1 - base, widthExponent(CONTROLLER_WIDTHS[wi], d));
      const trials = own.trials[i] + (memory ? memoryWeight * memory.trials[i] : 0);
      const successes = own.successes[i] + (memory ? memoryWeight * memory.successes[i] : 0);
      out[i] = (successes + PRIOR_WEIGHT * prior) / (trials + PRIOR_WEIGHT);
    }
  }
  return out;
}

/** The controller of one loaded model and drafter in one decoding mode: costs and acceptance shared by sequences. */
export interface SpeculationController {
  readonly costs: SpeculationCosts;
  /** Fading counts of the sequences that have ended (every new sequence's prior). */
  readonly shared: AcceptanceCounts;
  /** A fresh per-sequence policy. */
  createPolicy(): SpeculationPolicy;
  /**
   * Whether some tree of at most `maxLength` positions could beat plain decoding for a sequence alone even if every
   * drafted token were accepted. When not, a sequence's choices are plain decoding whatever it accepts, so
   * generate() runs it on the autoregressive stepper (no drafter bookkeeping per step: ~1.5 us of a 70 us
   * stories260K step) and feeds its plain steps' mean time back (observePlain), which may bring trees back.
   */
  treesCanPayAlone(maxLength?: number): boolean;
}

/** One sequence's controller state. */
export interface SpeculationPolicy {
  /**
   * The shape of the next step (null: plain decoding), for a tree of at most `maxLength` positions. In a batch (the
   * scheduler), the same forward carries `otherRows` rows that commit `otherTokens` tokens from sequences whose shape
   * is settled, and `peers` other sequences that choose their shape as this one does; the shape chosen maximises the
   * whole forward's tokens per second if the peers took it too (so the answer does not depend on who chooses first).
   * Trees shrink, and give way to plain decoding, as the forward turns compute-bound.
   */
  choose(maxLength: number, otherRows?: number, otherTokens?: number, peers?: number): TreeShape | null;
  /**
   * A tree step's measurements: its shape, packed nodes, accepted drafted tokens and time split (seconds); the
   * forward carried `forwardRows` rows in all (default: the tree's alone), which is what its time measures.
   */
  observeTree(shape: TreeShape, nodes: number, accepted: number, draftSeconds: number, verifySeconds: number,
    acceptSeconds: number, forwardRows?: number): void;
  /** A plain step's time (forward and pick), alone. */
  observePlain(seconds: number): void;
  /**
   * The forward a plain step rode on, alone (1 row) or in a batch: `rows` rows in `seconds`, a sample of the
   * verification cost at that count. Without it the 1-row cost was the calibration's for good, and on xl F32 a
   * calibration that read every forward ~35 % dearer than the steps then ran (10.6 ms plain steps against a
   * calibrated 14.3 ms) left 2-node trees looking no cheaper than a plain step until trees had run: the 1 × 2 tree
   * that pays 1.2× at T = 1 was chosen in only two steps of three.
   */
  observeForward(rows: number, seconds: number): void;
  /** The expected tokens per second of a shape (null: plain) as the policy sees it now; for reports and tests. */
  expectedRate(shape: TreeShape | null): number;
  /** The sequence has ended: its counts join the controller's memory. */
  finish(): void;
}

export function createSpeculationController(costs: SpeculationCosts, shared = createAcceptanceCounts()):
  SpeculationController {
  // Counted across sequences: a sequence of 96 tokens may take fewer than PLAIN_CHECK_INTERVAL steps.
  const run: TreeRun = { steps: 0, plainSteps: 0 };
  return {
    costs,
    shared,
    createPolicy: () => createPolicy(costs, shared, run),
    treesCanPayAlone(maxLength = CONTROLLER_MAX_LENGTH) {
      const plainRate = 1 / costs.plain;
      for (let L = 2; L <= Math.min(maxLength, CONTROLLER_MAX_LENGTH); L++) {
        const s = shapeIndex(0, L);
        if (L / (costs.draft[s] + costs.accept[s] + costs.verifyAt(costs.nodes[s])) > plainRate) return true;
      }
      return false;
    },
  };
}

/** Counters shared by all sequences of a controller. */
interface TreeRun {
  /** Tree steps chosen in a row (a plain step every PLAIN_CHECK_INTERVAL of them). */
  steps: number;
  /**
   * Plain steps since the last probe, by any sequence. Shared because requests are short: 16 sequences of 64 tokens
   * each reach a per-sequence threshold of 32 × 16 plain steps never, so under load nobody probed, acceptance was
   * never learnt, and trees were never chosen where they would pay (4 streams on xl F32: 1 × 2 beats plain ~1.2×).
   */
  plainSteps: number;
}

function createPolicy(costs: SpeculationCosts, shared: AcceptanceCounts, treeRun: TreeRun): SpeculationPolicy {
  const D = CONTROLLER_MAX_LENGTH - 1;
  const own = createAcceptanceCounts();
  const estimates = new Float64Array(CONTROLLER_WIDTHS.length * D);
  let estimatesValid = false;
  let treeSteps = 0;
  let probeInterval = PROBE_INTERVAL;
  /** The last tree was a probe, whose outcome sets the next probe's interval. */
  let probed = false;
  /** Steps left during which plain decoding is chosen without looking (no tree could pay: nothing to weigh). */
  let quietSteps = 0;

  function refresh(): void {
    if (estimatesValid) return;
    continuationEstimates(own, shared, SHARED_WEIGHT, estimates);
    estimatesValid = true;
  }

  /** Expected committed tokens of a step of width index wi and length L: 1 + Σ_d P(accepted ≥ d). */
  function expectedTokens(wi: number, L: number): number {
    let reach = 1;
    let total = 1;
    for (let d = 1; d < L; d++) {
      reach *= estimates[wi * D + d - 1];
      total += reach;
    }
    return total;
  }

  // The forward being planned (all 0 / 1: this sequence alone): `load` rows and `others` tokens of sequences whose
  // shape is settled (prompt chunks, plain decoding, fixed trees), and `group` sequences choosing as this one does
  // (itself and its peers), all assumed to take the shape it takes: trees that each look cheap on top of plain
  // neighbours cost much more when every neighbour takes one too.
  let load = 0;
  let others = 0;
  let group = 1;

  /** Seconds of the step with this shape: the forward over everyone's rows, the group's drafting and acceptance. */
  function treeSeconds(wi: number, L: number): number {
    const s = shapeIndex(wi, L);
    return group * (costs.draft[s] + costs.accept[s]) + costs.verifyAt(load + group * costs.nodes[s]);
  }

  /** Seconds of the step with plain rows: the forward, and the picks (a plain step's cost beyond its forward). */
  function plainSeconds(): number {
    if (load === 0 && group === 1) return costs.plain;
    return costs.verifyAt(load + group) + group * Math.max(0, costs.plain - costs.verifyAt(1));
  }

  /** The forward's tokens per second when each sequence of the group commits `tokens`. */
  const stepRate = (tokens: number, seconds: number): number => (others + group * tokens) / seconds;

  function rate(shape: TreeShape | null): number {
    if (shape === null) return stepRate(1, plainSeconds());
    refresh();
    const wi = CONTROLLER_WIDTHS.indexOf(shape.beams);
    if (wi < 0) throw new RangeError(`controller: width ${shape.beams} is not one of ${CONTROLLER_WIDTHS.join(', ')}`);
    return stepRate(expectedTokens(wi, shape.beamLength), treeSeconds(wi, shape.beamLength));
  }

  /** Whether some tree could beat plain decoding if every drafted token were accepted. */
  function treesCanPay(maxLength: number): boolean {
    const plainRate = stepRate(1, plainSeconds());
    for (let L = 2; L <= maxLength; L++) if (stepRate(L, treeSeconds(0, L)) > plainRate) return true;
    return false;
  }

  const choice: TreeShape = { beams: 1, beamLength: 2 };

  /** Replaces `choice` by the best other shape if it promises at least EXPLORE_FLOOR of `bestRate`. */
  function chooseRunnerUp(longest: number, bestRate: number): void {
    const bestW = choice.beams;
    const bestL = choice.beamLength;
    let runnerUp = EXPLORE_FLOOR * bestRate;
    for (let wi = 0; wi < CONTROLLER_WIDTHS.length; wi++) {
      for (let L = 2; L <= longest; L++) {
        if (CONTROLLER_WIDTHS[wi] === bestW && L === bestL) continue;
        const r = stepRate(expectedTokens(wi, L), treeSeconds(wi, L));
        if (r >= runnerUp) {
          runnerUp = r;
          choice.beams = CONTROLLER_WIDTHS[wi];
          choice.beamLength = L;
        }
      }
    }
  }

  return {
    choose(maxLength, otherRows = 0, otherTokens = 0, peers = 0) {
      const longest = Math.min(maxLength, CONTROLLER_MAX_LENGTH);
      if (longest < 2) return null;
      load = otherRows;
      others = otherTokens;
      group = 1 + peers;
      if (quietSteps > 0) {
        quietSteps--;
        return null;
      }
      refresh();
      let bestRate = 0;
      let bestW = 0;
      let bestL = 0;
      let bestTokens = 0;
      let bestSeconds = 1;
      for (let wi = 0; wi < CONTROLLER_WIDTHS.length; wi++) {
        for (let L = 2; L <= longest; L++) {
          const tokens = expectedTokens(wi, L);
          const seconds = treeSeconds(wi, L);
          const r = stepRate(tokens, seconds);
          if (r > bestRate) {
            bestRate = r;
            bestW = CONTROLLER_WIDTHS[wi];
            bestL = L;
            bestTokens = tokens;
            bestSeconds = seconds;
          }
        }
      }
      choice.beams = bestW;
      choice.beamLength = bestL;
      // The margin discounts this sequence's own expected tokens (alone: the tree must promise MARGIN× the rate).
      if (stepRate(bestTokens / MARGIN, bestSeconds) > stepRate(1, plainSeconds())) {
        treeRun.plainSteps = 0;
        probed = false;
        probeInterval = PROBE_INTERVAL;
        if (++treeRun.steps % PLAIN_CHECK_INTERVAL === 0) return null;
        if (++treeSteps % EXPLORE_INTERVAL === 0) {
          const wi = CONTROLLER_WIDTHS.indexOf(bestW);
          if (treeSteps % (2 * EXPLORE_INTERVAL) === 0 && bestL < longest &&
            stepRate(expectedTokens(wi, bestL + 1), treeSeconds(wi, bestL + 1)) >= LONGER_FLOOR * bestRate) {
            choice.beamLength = bestL + 1;
          } else {
            chooseRunnerUp(longest, bestRate);
          }
        }
        return choice;
      }
      treeRun.steps = 0;
      if (!treesCanPay(longest)) {
        // Alone, nothing will change that; in a batch, the load may fall.
        if (load === 0 && group === 1) quietSteps = PROBE_INTERVAL;
        return null;
      }
      // In a batch, a probe's tree slows every sequence's step, and each sequence probes for itself: the interval
      // grows with the sequences sharing the forward, so the forward sees about one probe per probeInterval steps.
      if (++treeRun.plainSteps >= probeInterval * (group + others)) {
        treeRun.plainSteps = 0;
        probed = true;
        return choice;
      }
      return null;
    },
    observeTree(shape, nodes, accepted, draftSeconds, verifySeconds, acceptSeconds, forwardRows = nodes) {
      const wi = CONTROLLER_WIDTHS.indexOf(shape.beams);
      if (wi < 0) return; // a forced shape outside the controller's set teaches it nothing it can use
      recordAcceptance(own, wi, shape.beamLength, accepted, SEQUENCE_DECAY);
      if (probed) {
        // A probe that accepted nothing makes the next one wait twice as long; one that accepted drafts, not.
        probed = false;
        probeInterval = accepted > 0 ? PROBE_INTERVAL : Math.min(MAX_PROBE_INTERVAL, 2 * probeInterval);
      }
      costs.observeTree(wi, shape.beamLength, nodes, draftSeconds, verifySeconds, acceptSeconds, forwardRows);
      estimatesValid = false;
    },
    observePlain(seconds) {
      costs.observePlain(seconds);
    },
    observeForward(rows, seconds) {
      costs.observeForward(rows, seconds);
    },
    expectedRate(shape) {
      load = 0;
      others = 0;
      group = 1;
      return rate(shape);
    },
    finish() {
      for (let i = 0; i < shared.trials.length; i++) {
        shared.trials[i] = SHARED_DECAY * shared.trials[i] + own.trials[i];
        shared.successes[i] = SHARED_DECAY * shared.successes[i] + own.successes[i];
        own.trials[i] = 0;
        own.successes[i] = 0;
      }
      estimatesValid = false;
    },
  };
}
