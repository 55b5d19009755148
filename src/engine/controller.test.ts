import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  continuationEstimates, createAcceptanceCounts, createSpeculationController, recordAcceptance, widthExponent,
  type SpeculationController, type SpeculationPolicy, type TreeShape,
} from './controller.js';
import {
  CONTROLLER_MAX_LENGTH, CONTROLLER_MAX_NODES, CONTROLLER_WIDTHS, createSpeculationCosts, shapeIndex,
  type SpeculationCosts,
} from './speculation-costs.js';
import { loadDrafter, loadModel } from './load.js';
import { generateText, type GenerateOptions } from './generate.js';
import { createRedrafterDecoder } from './redrafter.js';
import { speculationController } from './speculation.js';
import { defaultDrafterPath } from './default-model.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { bigramDrafter } from '../../test/drafters.js';

const D = CONTROLLER_MAX_LENGTH - 1;
const WIDTH_INDEX = (beams: number): number => CONTROLLER_WIDTHS.indexOf(beams);

/** Costs from formulas: verify(n) and draft(W, L) in units of one plain step. */
function syntheticCosts(verify: (nodes: number) => number, draft: (beams: number, length: number) => number):
  SpeculationCosts {
  const shapes = CONTROLLER_WIDTHS.length * (CONTROLLER_MAX_LENGTH + 1);
  const draftTable = new Array<number>(shapes).fill(0);
  const nodes = new Array<number>(shapes).fill(0);
  CONTROLLER_WIDTHS.forEach((W, wi) => {
    for (let L = 2; L <= CONTROLLER_MAX_LENGTH; L++) {
      draftTable[shapeIndex(wi, L)] = draft(W, L);
      nodes[shapeIndex(wi, L)] = 1 + W * (L - 1);
    }
  });
  return createSpeculationCosts({
    verify: Array.from({ length: CONTROLLER_MAX_NODES + 1 }, (_, n) => (n === 0 ? 0 : verify(n))),
    plain: verify(1), draft: draftTable, accept: new Array<number>(shapes).fill(0), nodes,
  });
}

test('acceptance estimates: defaults before any step, one base rate pooled across widths after', () => {
  const none = continuationEstimates(createAcceptanceCounts(), null, 0, new Float64Array(CONTROLLER_WIDTHS.length * D));
  assert.ok(Math.abs(none[0] - 0.7) < 1e-12, `W=1 depth 1: ${none[0]}`);
  const w8 = WIDTH_INDEX(8) * D;
  assert.ok(Math.abs(none[w8] - (1 - Math.pow(0.3, widthExponent(8, 1)))) < 1e-12);
  assert.ok(none[w8] > none[w8 + 1], 'a wide tree gains more at depth 1 than deeper');

  // 200 one-beam steps of which 40 accepted their first drafted token: every width learns from them.
  const counts = createAcceptanceCounts();
  for (let i = 0; i < 200; i++) recordAcceptance(counts, 0, 2, i % 5 === 0 ? 1 : 0, 1);
  const seen = continuationEstimates(counts, null, 0, new Float64Array(CONTROLLER_WIDTHS.length * D));
  assert.ok(Math.abs(seen[0] - 0.2) < 0.01, `W=1 depth 1: ${seen[0]}`);
  const w4 = seen[WIDTH_INDEX(4) * D];
  assert.ok(w4 > seen[0] && w4 < 0.45, `W=4 depth 1, from W=1's counts: ${w4}`);
  // Depth 2 was never drafted: it inherits depth 1's estimate.
  assert.ok(Math.abs(seen[1] - seen[0]) < 0.01, `W=1 depth 2: ${seen[1]}`);
});

test('a sequence that ends leaves its counts to the next sequence of the controller', () => {
  const costs = syntheticCosts((n) => 1 + 0.1 * n, () => 0.01);
  const controller = createSpeculationController(costs);
  const first = controller.createPolicy();
  const before = first.expectedRate({ beams: 1, beamLength: 4 });
  for (let i = 0; i < 100; i++) first.observeTree({ beams: 1, beamLength: 4 }, 4, 3, 0.01, 1.4, 0);
  first.finish();
  const second = controller.createPolicy();
  assert.ok(second.expectedRate({ beams: 1, beamLength: 4 }) > before, 'a perfect drafter raised the next sequence\'s rate');
  assert.ok(controller.shared.trials[0] > 30, `memory: ${controller.shared.trials[0]} trials`);
});

function decide(policy: SpeculationPolicy, steps: number, room = CONTROLLER_MAX_LENGTH): (TreeShape | null)[] {
  const out: (TreeShape | null)[] = [];
  for (let i = 0; i < steps; i++) {
    const shape = policy.choose(room);
    out.push(shape && { ...shape });
  }
  return out;
}

test('a drafter that costs more than it could save is never run (no probing either)', () => {
  // Drafting a position costs twice a plain step; verification is compute-bound.
  const costs = syntheticCosts((n) => 1 + 0.2 * (n - 1), (_, L) => 2 * (L - 1));
  const policy = createSpeculationController(costs).createPolicy();
  assert.deepEqual(decide(policy, 200).filter((shape) => shape !== null), []);
});

test('where a tree costs about one token (GPU-like), the controller drafts deep trees', () => {
  const costs = syntheticCosts(() => 1, (W, L) => 0.002 * W * (L - 1));
  const policy = createSpeculationController(costs).createPolicy();
  const shapes = decide(policy, 5);
  assert.ok(shapes.every((shape) => shape !== null && shape.beamLength === CONTROLLER_MAX_LENGTH), JSON.stringify(shapes));
  // Near the end of the context the tree is cut to the room left.
  const short = policy.choose(3);
  assert.ok(short !== null && short.beamLength <= 3);
  assert.equal(policy.choose(1), null);
});

test('acceptance that falls turns speculation off, and probing turns it back on when it recovers', () => {
  const verify = (n: number): number => 1 + 0.25 * (n - 1);
  const costs = syntheticCosts(verify, (_, L) => 0.05 * (L - 1));
  const policy = createSpeculationController(costs).createPolicy();
  const first = policy.choose(CONTROLLER_MAX_LENGTH);
  assert.ok(first !== null, 'with the default acceptance a tree pays');
  // Nothing drafted is ever accepted: trees lose.
  for (let i = 0; i < 60; i++) {
    const shape = policy.choose(CONTROLLER_MAX_LENGTH);
    if (shape) policy.observeTree(shape, 1 + shape.beams * (shape.beamLength - 1), 0, 0.05, verify(4), 0);
    else policy.observePlain(1);
  }
  // Speculation is off but for a probing tree now and then, rarer while probes accept nothing (32, 64, 128 …).
  const probes: number[] = [];
  for (let i = 0; i < 500; i++) {
    const shape = policy.choose(CONTROLLER_MAX_LENGTH);
    if (shape === null) continue;
    probes.push(i);
    policy.observeTree(shape, 1 + shape.beams * (shape.beamLength - 1), 0, 0.05, verify(4), 0);
  }
  const gaps = probes.slice(1).map((at, i) => at - probes[i]);
  assert.ok(gaps.length >= 2, JSON.stringify(probes));
  assert.ok(gaps.every((gap, i) => i === 0 || gap === Math.min(256, 2 * gaps[i - 1])), `gaps ${JSON.stringify(gaps)}`);
  // The drafter is now always right: speculation comes back.
  let trees = 0;
  for (let i = 0; i < 400; i++) {
    const shape = policy.choose(CONTROLLER_MAX_LENGTH);
    if (shape) {
      trees++;
      policy.observeTree(shape, 1 + shape.beams * (shape.beamLength - 1), shape.beamLength - 1, 0.05,
        verify(1 + shape.beams * (shape.beamLength - 1)), 0);
    } else {
      policy.observePlain(1);
    }
  }
  // Back on (but for the one plain step every 64 trees that keeps the plain cost measured).
  const last = decide(policy, 64);
  assert.equal(last.filter((shape) => shape === null).length, 1, 'speculation is back on');
  assert.ok(trees > 25, `${trees} tree steps`);
});

const skip = missing('stories260K', 'stories260K.bin');

/** A controller that runs a fixed schedule of shapes (plain steps included) whatever it measures. */
function scheduledController(costs: SpeculationCosts, schedule: readonly (TreeShape | null)[]): SpeculationController {
  return {
    costs,
    shared: createAcceptanceCounts(),
    createPolicy() {
      let step = 0;
      return {
        choose(maxLength) {
          const shape = schedule[step++ % schedule.length];
          if (shape === null || maxLength < 2) return null;
          return { beams: shape.beams, beamLength: Math.min(shape.beamLength, maxLength) };
        },
        observeTree() {},
        observePlain() {},
        observeForward() {},
        expectedRate: () => 0,
        finish() {},
      };
    },
    treesCanPayAlone: () => true,
  };
}

test('whatever shape each step takes, plain steps included, the ids are plain decoding\'s (greedy and seeded)',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    const prompts = ['Once upon a time', 'The cat', 'Lily and Tom went to the park', 'One day, a little dog',
      'She was sad because', 'Ben had a big red ball.'];
    const references: number[][] = [];
    for (const prompt of prompts) references.push((await generateText(loaded, { prompt, maxTokens: 96 })).ids);
    const drafter = bigramDrafter(loaded, references, 64);
    const costs = syntheticCosts(() => 1, () => 0.01);
    const schedule: (TreeShape | null)[] = [{ beams: 1, beamLength: 4 }, null, { beams: 8, beamLength: 8 },
      { beams: 3, beamLength: 2 }, null, null, { beams: 2, beamLength: 6 }, { beams: 4, beamLength: 3 }];
    const samplings: GenerateOptions[] = [{}, { temperature: 1, seed: 7 }, { temperature: 0.8, topP: 0.9, seed: 3 }];
    for (const mode of ['greedy', 'sampled'] as const) {
      speculationController(loaded, drafter, mode, { costs: costs.toJSON(), updatedAt: '', machine: '' });
    }
    try {
      for (const [i, prompt] of prompts.entries()) {
        for (const sampling of samplings) {
          const base = { prompt, maxTokens: 96, ...sampling };
          const plain = await generateText(loaded, base);
          // The decoder directly, with the scheduled controller.
          const decoder = createRedrafterDecoder(loaded.model, drafter.drafter,
            { ...sampling, controller: scheduledController(costs, schedule.slice(i % schedule.length)) });
          const ids = [decoder.prefill(plain.promptIds)];
          const out = new Int32Array(CONTROLLER_MAX_LENGTH);
          while (ids.length < plain.ids.length) ids.push(...out.subarray(0, decoder.step(out)));
          decoder.dispose();
          assert.deepEqual(ids.slice(0, plain.ids.length), plain.ids, `"${prompt}" ${JSON.stringify(sampling)}`);
          assert.ok(decoder.stats!.shapes['plain'] > 0 && Object.keys(decoder.stats!.shapes).length > 2,
            JSON.stringify(decoder.stats!.shapes));
          // And through generate() with the real controller on GPU-like costs (it drafts deep trees).
          const auto = await generateText(loaded, { ...base, drafter });
          assert.deepEqual(auto.ids, plain.ids, `auto: "${prompt}" ${JSON.stringify(sampling)}`);
          // GPU-like costs: every step drafts a tree, but for one plain step in 64 that keeps the plain cost measured.
          const plainSteps = auto.stats.redrafter!.shapes['plain'] ?? 0;
          assert.ok(plainSteps <= Math.ceil(auto.stats.steps / 32), `${plainSteps} plain of ${auto.stats.steps} steps`);
        }
      }
    } finally {
      drafter.dispose();
      await loaded.close();
    }
  });

test('generate() without a shape uses the controller; with one, the fixed tree', { skip }, async () => {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  const drafter = loadDrafter(loaded, defaultDrafterPath()!);
  try {
    const auto = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 40, drafter });
    const shapes = auto.stats.redrafter!.shapes;
    assert.equal(Object.values(shapes).reduce((a, b) => a + b, 0), auto.stats.steps);
    assert.ok((auto.stats.redrafter!.calibrationSeconds ?? 0) > 0, 'the first use calibrated');
    const again = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 40, drafter });
    assert.equal(again.stats.redrafter!.calibrationSeconds, 0, 'the second reused the calibration');
    assert.deepEqual(again.ids, auto.ids);
    const fixed = await generateText(loaded, { prompt: 'Once upon a time', maxTokens: 40, drafter, beams: 2 });
    assert.deepEqual(Object.keys(fixed.stats.redrafter!.shapes).filter((k) => k !== 'plain'), ['2x5']);
    assert.deepEqual(fixed.ids, auto.ids);
  } finally {
    drafter.dispose();
    await loaded.close();
  }
});

test('trees can pay alone only where a fully accepted tree beats plain decoding', () => {
  const flat = (): number => 1;
  assert.equal(createSpeculationController(syntheticCosts(flat, () => 0.02)).treesCanPayAlone(), true);
  assert.equal(createSpeculationController(syntheticCosts(flat, () => 0.02)).treesCanPayAlone(1), false,
    'no tree fits in one position');
  // The stories260K case: drafting one beam step costs more than the model's whole forward.
  const dear = createSpeculationController(syntheticCosts(flat, (W, L) => 1.2 * W * (L - 1)));
  assert.equal(dear.treesCanPayAlone(), false);
  // A verification that grows with the nodes: a 1 × 2 tree (2 tokens for 1.9 of a token's time) pays at most.
  const linear = createSpeculationController(syntheticCosts((n) => 0.1 + 0.9 * n, () => 0));
  assert.equal(linear.treesCanPayAlone(), true);
  const steep = createSpeculationController(syntheticCosts((n) => (n === 1 ? 1 : 1.5 * n), () => 0));
  assert.equal(steep.treesCanPayAlone(), false);
});

test('where trees cannot pay, generate() decodes autoregressively, reports plain steps and feeds back their time',
  { skip }, async () => {
    const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
    const drafter = loadDrafter(loaded, defaultDrafterPath()!);
    try {
      // Drafting dearer than 100 forwards; the plain cost saved far too high (10 s a step).
      const costs = syntheticCosts(() => 10, () => 1000);
      const { controller } = speculationController(loaded, drafter, 'greedy',
        { costs: costs.toJSON(), updatedAt: '', machine: '' });
      assert.equal(controller.treesCanPayAlone(), false);
      const base = { prompt: 'Once upon a time', maxTokens: 48 };
      const plain = await generateText(loaded, base);
      const auto = await generateText(loaded, { ...base, drafter });
      assert.deepEqual(auto.ids, plain.ids);
      const stats = auto.stats.redrafter!;
      assert.deepEqual(stats.shapes, { plain: auto.stats.steps });
      assert.equal(stats.draftSeconds + stats.verifySeconds, 0);
      assert.ok(stats.plainSeconds > 0 && stats.plainSeconds <= auto.stats.decodeSeconds,
        `plain ${stats.plainSeconds} s of ${auto.stats.decodeSeconds} s`);
      // The measured steps (well under 10 s each) pulled the plain cost down.
      assert.ok(controller.costs.plain < 9, `plain cost ${controller.costs.plain}`);
    } finally {
      drafter.dispose();
      await loaded.close();
    }
  });

test('under load a tree costs what it adds to the batch: trees shrink, then plain decoding, as the batch fills', () => {
  // A CPU-like verification: flat up to 8 rows (weight streaming), then compute-bound at 0.25 of a token per row.
  const verify = (n: number): number => (n <= 8 ? 1 : 1 + 0.25 * (n - 8));
  const costs = syntheticCosts(verify, () => 0.02);
  const policy = createSpeculationController(costs).createPolicy();
  // A drafter that is right 80 % of the time.
  for (let i = 0; i < 300; i++) {
    policy.observeTree({ beams: 1, beamLength: 8 }, 8, i % 5 === 0 ? 2 : 7, 0.02, verify(8), 0, 8);
  }
  const nodesOf = (shape: TreeShape | null): number => (shape === null ? 1 : 1 + shape.beams * (shape.beamLength - 1));
  // choose() returns one reused object: copy each answer.
  const copy = (shape: TreeShape | null): TreeShape | null => (shape === null ? null : { ...shape });
  const alone = copy(policy.choose(8, 0));
  assert.ok(alone !== null && nodesOf(alone) >= 8, `alone: ${JSON.stringify(alone)}`);
  // Two other sequences' rows still leave the tree inside the flat part of the cost curve.
  const light = copy(policy.choose(8, 2, 2));
  assert.ok(light !== null, 'a light load still pays for a tree');
  const crowded = copy(policy.choose(8, 600, 600));
  assert.ok(crowded === null || nodesOf(crowded) < nodesOf(alone), `600 other rows: ${JSON.stringify(crowded)}`);
  // Peers that choose as this sequence does: a tree that pays beside 2 plain rows does not when all 3 take one.
  const onPlainNeighbours = copy(policy.choose(8, 2, 2, 0));
  const amongPeers = copy(policy.choose(8, 0, 0, 2));
  assert.ok(onPlainNeighbours !== null, 'one tree beside 2 plain rows pays');
  assert.ok(amongPeers === null || nodesOf(amongPeers) < nodesOf(onPlainNeighbours),
    `3 peers: ${JSON.stringify(amongPeers)} vs ${JSON.stringify(onPlainNeighbours)}`);
  // Past the table, verification cost keeps growing along its compute-bound slope.
  assert.ok(costs.verifyAt(200) > costs.verifyAt(57) + 0.2 * 143);
  assert.equal(costs.verifyAt(0), 0);
});

test('under load, short sequences still probe: the probe clock is shared by the controller\'s sequences', () => {
  // Trees could pay (a perfect drafter would win), but nothing has been accepted yet, so plain decoding is chosen.
  const verify = (n: number): number => (n <= 8 ? 1 : 1 + 0.25 * (n - 8));
  const controller = createSpeculationController(syntheticCosts(verify, () => 0.05));
  const first = controller.createPolicy();
  for (let i = 0; i < 400; i++) first.observeTree({ beams: 1, beamLength: 2 + (i % 7) }, 2 + (i % 7), 0, 0.05, verify(8), 0);
  first.finish();
  // Two waves of 4 sequences of 40 steps, all in one forward: each sequence alone never reaches its probe threshold
  // (32 plain steps × 4 sequences); together they do, about once per 32 forwards.
  let probes = 0;
  for (let wave = 0; wave < 2; wave++) {
    const policies = Array.from({ length: 4 }, () => controller.createPolicy());
    for (let step = 0; step < 40; step++) {
      for (const policy of policies) {
        const shape = policy.choose(8, 0, 0, 3);
        if (shape) {
          probes++;
          policy.observeTree(shape, 1 + shape.beams * (shape.beamLength - 1), 0, 0.05, verify(8), 0, 8);
        } else {
          policy.observePlain(1);
        }
      }
    }
    for (const policy of policies) policy.finish();
  }
  assert.ok(probes >= 1 && probes <= 3, `${probes} probes in 80 forwards of 4 sequences`);
});

test('online verify costs stay monotone in the row count however noisy the samples', () => {
  const costs = syntheticCosts((n) => 1 + 0.1 * n, () => 0.01);
  const wi = WIDTH_INDEX(1);
  // Four-row forwards that happened to run fast (as 2-thread noise does), then three-row ones that ran slow.
  for (let i = 0; i < 40; i++) costs.observeTree(wi, 4, 4, 0.01, 1.0, 0, 4);
  for (let i = 0; i < 40; i++) costs.observeTree(wi, 3, 3, 0.01, 1.6, 0, 3);
  assert.ok(costs.verifyAt(4) >= 1.55, `4 rows after slow 3-row samples: ${costs.verifyAt(4)}`);
  for (let i = 0; i < 40; i++) costs.observeTree(wi, 6, 6, 0.01, 1.1, 0, 6);
  for (let n = 2; n <= CONTROLLER_MAX_NODES; n++) {
    assert.ok(costs.verifyAt(n) >= costs.verifyAt(n - 1), `verify(${n}) ${costs.verifyAt(n)} < verify(${n - 1})`);
  }
  assert.ok(costs.verifyAt(3) <= costs.verifyAt(6) && costs.verifyAt(6) < 1.11, 'a fast 6-row forward bounds 3 rows too');
  // Counts never measured follow the calibration, scaled as the nearest measured count was (6 rows: 1.1 against a
  // calibrated 1.6).
  assert.ok(Math.abs(costs.verifyAt(20) / (1 + 0.1 * 20) - costs.verifyAt(6) / 1.6) < 1e-9,
    `20 rows: ${costs.verifyAt(20)}`);
});

test('a calibration taken on a busy machine is corrected for tree sizes never run, so longer trees get their chance', () => {
  // The machine's real verification cost, and a calibration that read every forward 1.6× dearer (it ran while the
  // machine was busy); the drafter's every token is accepted, so the longest tree is the best.
  const real = (n: number): number => 1 + 0.1 * (n - 1);
  const controller = createSpeculationController(syntheticCosts((n) => 1.6 * real(n), () => 0.01));
  const policy = controller.createPolicy();
  // Steps of one shape only (1 × 4: 4 nodes), which is what a controller misled by the calibration runs.
  for (let i = 0; i < 60; i++) policy.observeTree({ beams: 1, beamLength: 4 }, 4, 3, 0.01, real(4), 0);
  for (const n of [5, 8, 20]) {
    assert.ok(Math.abs(controller.costs.verifyAt(n) / real(n) - 1) < 0.02,
      `${n} nodes: ${controller.costs.verifyAt(n)} against a real ${real(n)}`);
  }
  const next = policy.choose(8);
  assert.ok(next !== null && next.beams === 1 && next.beamLength === 8, `chosen: ${JSON.stringify(next)}`);
});

test('plain steps measure the 1-row forward, so a calibration read too dear stops hiding a tree that pays', () => {
  // As measured on xl F32 at T = 1: plain steps of ~10.6 ms against a calibration that read every forward ~35 %
  // dearer, and a drafter whose first draft is accepted about half the time, so that small trees (two or three rows:
  // ~1.05-1.1 plain steps' forward) pay ~1.3x. Here the calibration reads 1.5x: on it no tree passes the margin.
  const real = (n: number): number => 1 + 0.05 * (n - 1);
  const costs = syntheticCosts((n) => 1.5 * real(n), () => 0.04);
  costs.plain = 1; // plain steps have measured their real cost (observePlain)
  // What earlier sequences accepted (no tree step of this one has run yet, so no tree has measured a forward).
  const earlier = createAcceptanceCounts();
  for (let i = 0; i < 60; i++) recordAcceptance(earlier, WIDTH_INDEX(1), 3, i % 2, 1);
  const controller = createSpeculationController(costs, earlier);
  const policy = controller.createPolicy();
  const before = policy.choose(2);
  assert.equal(before, null, `on the calibration no tree should pass the margin: ${JSON.stringify(before)}`);
  // Plain steps' forwards (1 row, alone) correct the table: the counts no step ran are scaled as 1 row was.
  for (let i = 0; i < 30; i++) policy.observeForward(1, real(1));
  assert.ok(Math.abs(costs.verifyAt(2) / real(2) - 1) < 0.02, `2 rows: ${costs.verifyAt(2)} against ${real(2)}`);
  const after = policy.choose(2);
  assert.ok(after !== null && after.beamLength === 2, `after the plain steps' forwards: ${JSON.stringify(after)}`);
  // A plain step in a batch measures the batch's row count, not one row.
  for (let i = 0; i < 30; i++) policy.observeForward(6, real(6));
  assert.ok(Math.abs(costs.verifyAt(6) / real(6) - 1) < 0.02, `6 rows: ${costs.verifyAt(6)} against ${real(6)}`);
});
