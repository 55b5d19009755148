// The ReDrafter decoding strategy (spec §5.4): draft W beams of length L from the last hidden state, pack them into a
// prefix tree, verify the whole tree in one forward, commit the accepted path plus the LLM's own next token, keep only
// the committed KV entries, and draft again from the hidden state of the last committed token. With a speculation
// controller (controller.ts) the tree's shape is chosen before every step, plain decoding included; the output is the
// same whatever it chooses.

import type { Model } from '../model/model.js';
import type { Drafter } from '../drafter/drafter.js';
import {
  createBeamSearch, validateBeamShape, type BeamSearchResult, type DeviceBeamSearch,
} from '../drafter/beam-search.js';
import { buildTree, createPackedTree } from '../drafter/tree.js';
import {
  acceptApple, acceptExact, createAcceptance, createAppleScratch, type NodePicker,
} from '../drafter/verify.js';
import { CONTROLLER_MAX_LENGTH, CONTROLLER_WIDTHS, type SpeculationController, type TreeShape } from './controller.js';
import {
  createPrefill, createSequenceState, decoderOf, emptyDecoderStats, pickToken, publishCommitted, type Decoder,
  type SequenceOptions, type SequenceStepper,
} from './decoder.js';
import type { StepBatch } from './step-batch.js';

export type AcceptanceRule = 'exact' | 'apple';

export interface RedrafterOptions extends SequenceOptions {
  /** Beam width W of a fixed tree (give beams and beamLength, or a controller). */
  beams?: number;
  /** Beam length L of a fixed tree, counting g0 (Apple's `beam_length`; TensorRT-LLM's draft length is L − 1). */
  beamLength?: number;
  /** Chooses each step's shape (or plain decoding) when no fixed shape is given. */
  controller?: SpeculationController;
  /** Verification rule (default exact). */
  acceptance?: AcceptanceRule;
  /** Called after each tree step with the step's internals (for `redrafter draft` and debugging); not for hot paths. */
  onStep?: (step: RedrafterStep) => void;
  /**
   * The drafter on the model's device (WebGPU), used by the exact rule: it drafts from the forward's hidden states
   * where they are, so the step reads none back, and the stepper plans through `planAsync`.
   */
  deviceSearch?: DeviceBeamSearch;
}

/** What one ReDrafter step did, for display. Arrays are copies. */
export interface RedrafterStep {
  /** Position of g0. */
  position: number;
  g0: number;
  /** Beams [W][L] (index 0 = g0) and their drafter log-probabilities. */
  beams: number[][];
  scores: number[];
  /** Packed tree: token, depth and parent (−1 for the root) of every node. */
  nodes: { token: number; depth: number; parent: number }[];
  /** Packed nodes on the accepted path, root first. */
  acceptedPath: number[];
  /** Tokens committed: accepted drafts then the LLM's next token (the bonus). */
  committed: number[];
}

export function createRedrafterDecoder(model: Model, drafter: Drafter, options: RedrafterOptions): Decoder {
  return decoderOf(model, createRedrafterStepper(model, drafter, options));
}

export function createRedrafterStepper(model: Model, drafter: Drafter, options: RedrafterOptions): SequenceStepper {
  const fixed = options.beams !== undefined || options.beamLength !== undefined;
  if (!fixed && !options.controller) {
    throw new RangeError('redrafter: give a tree shape (beams and beamLength) or a speculation controller');
  }
  const policy = fixed ? null : options.controller!.createPolicy();
  // Buffers are sized for the largest tree this decoder may build.
  const W = fixed ? options.beams ?? 4 : CONTROLLER_WIDTHS[CONTROLLER_WIDTHS.length - 1];
  const L = fixed ? options.beamLength ?? 5 : CONTROLLER_MAX_LENGTH;
  validateBeamShape(W, L);
  if (drafter.config.hiddenSize !== model.config.dim || drafter.config.vocabSize !== model.config.vocabSize) {
    throw new RangeError(`drafter: hidden size ${drafter.config.hiddenSize} / vocabulary ${drafter.config.vocabSize} ` +
      `do not match the model's ${model.config.dim} / ${model.config.vocabSize}`);
  }
  if (drafter.maxRows < W) throw new RangeError(`drafter: prepared for ${drafter.maxRows} beams, asked for ${W}`);
  const rule = options.acceptance ?? 'exact';
  if (rule !== 'exact' && rule !== 'apple') {
    throw new RangeError(`acceptance: expected "exact" or "apple", got "${String(rule)}"`);
  }
  // Apple's rule reads the drafter's distributions, which only the host search keeps.
  const deviceSearch = rule === 'exact' && options.deviceSearch && options.deviceSearch.maxWidth >= W &&
    options.deviceSearch.maxLength >= L ? options.deviceSearch : undefined;
  const maxNodes = 1 + W * (L - 1);
  const state = createSequenceState(model, { ...options, extraSlots: maxNodes, readsLogitValues: rule === 'apple' });
  const { cache, history, sampler, random } = state;
  const contextLength = model.contextLength;
  const dim = model.config.dim;
  const prefill = createPrefill(state);
  // The host search only where the host drafts (its buffers are W·V survivors and more).
  const search = deviceSearch ? null
    : createBeamSearch(drafter, { maxWidth: W, maxLength: L, keepDistributions: rule === 'apple' });
  const tree = createPackedTree(W, L);
  const acceptance = createAcceptance(L);
  const appleScratch = rule === 'apple' ? createAppleScratch(model.config.vocabSize) : null;
  const temperature = sampler.options.temperature;
  const keep = new Int32Array(L);
  const committedLogitRows = new Int32Array(L);
  // h: the final-norm hidden state of the last committed token (spec §5.3), copied to the host, or (drafting on the
  // device) kept there.
  const context = new Float32Array(dim);
  const deviceContext = deviceSearch?.createContext();
  // A device search's result is shared by every sequence drafting with it: this step's beams are copied here.
  const ownBeams: BeamSearchResult = { width: 0, length: 0, beams: new Int32Array(W * L), scores: new Float32Array(W),
    logQ: null };
  // This step's rows in the batch: tree nodes are rows firstRow .. firstRow + P − 1 (logits for all of them, in
  // order, from the batch's output row firstLogits); a plain step is row firstRow.
  let firstRow = 0;
  let firstLogits = 0;
  let stepKind: 'plain' | 'tree' = 'plain';
  let width = W;
  let length = L;
  let draftSeconds = 0;
  let otherRowsThisStep = 0;
  let drafts: BeamSearchResult | null = null;
  const logitsOf = (node: number): Float32Array => model.logitsRow(firstLogits + node);
  // The exact rule's picks: node p's logits are row firstLogits + p (sampler, or argmax where only ids are read).
  const pickAt: NodePicker = (node, length) => pickToken(state, firstLogits + node, history, length);

  const stats = emptyDecoderStats(L, deviceSearch ? 'device' : 'host');
  // Stats keys made once per shape, so that counting a step allocates nothing.
  const keys = new Map<number, string>();
  const countShape = (beams: number, beamLength: number): void => {
    const id = beams * 64 + beamLength;
    let key = keys.get(id);
    if (key === undefined) {
      key = beams === 0 ? 'plain' : `${beams}x${beamLength}`;
      keys.set(id, key);
    }
    stats.shapes[key] = (stats.shapes[key] ?? 0) + 1;
  };
  const stepShape: TreeShape = { beams: W, beamLength: L };

  const setContext = (row: number): void => {
    if (deviceContext) {
      deviceContext.capture(row);
      return;
    }
    const hidden = model.output.hidden;
    for (let i = 0; i < dim; i++) context[i] = hidden[row * dim + i];
  };

  /** A plain step's row (also near the end of the context, where no tree fits). */
  function planPlain(batch: StepBatch): number {
    const position = cache.length;
    cache.ensure(position + 1);
    stepKind = 'plain';
    firstRow = batch.addRow(batch.cacheIndex(cache), history[state.length - 1], position, position, position + 1, true);
    return 1;
  }

  function completePlain(batch: StepBatch, out: Int32Array): number {
    const started = performance.now();
    cache.length++;
    publishCommitted(state);
    setContext(firstRow);
    committedLogitRows[0] = batch.logitIndex[firstRow];
    const token = pickToken(state, committedLogitRows[0], history, state.length);
    history[state.length++] = token;
    out[0] = token;
    const seconds = batch.forwardSeconds + (performance.now() - started) / 1000;
    stats.plainSeconds += seconds;
    // Alone, a plain step's time is the plain cost; batched, the forward served others too. Either way its forward
    // measures the verification cost at its row count.
    policy?.observeForward(batch.count, batch.forwardSeconds);
    if (batch.count === 1) policy?.observePlain(seconds);
    countShape(0, 1);
    return 1;
  }

  /** The tree step's rows from `beams`, drafted since `started` (performance.now()). */
  function planTree(batch: StepBatch, beams: BeamSearchResult, started: number): number {
    const S = cache.length;
    drafts = beams;
    buildTree(drafts.beams, width, length, tree);
    const P = tree.size;
    cache.ensure(S + P);
    const c = batch.cacheIndex(cache);
    firstRow = batch.count;
    for (let p = 0; p < P; p++) {
      batch.addRow(c, tree.tokens[p], S + tree.depths[p], S + p, S, true);
      for (let j = tree.ancestorStarts[p]; j < tree.ancestorStarts[p + 1]; j++) batch.addExtra(S + tree.ancestors[j]);
    }
    firstLogits = batch.logitIndex[firstRow];
    stepKind = 'tree';
    draftSeconds = (performance.now() - started) / 1000;
    return P;
  }

  function completeTree(batch: StepBatch, out: Int32Array): number {
    const started = performance.now();
    const S = cache.length;
    const P = tree.size;
    const beams = drafts!;
    // Accept, keep the committed KV entries, draft next from the last committed node.
    if (rule === 'exact') {
      acceptExact(tree, pickAt, history, state.length, acceptance);
    } else {
      acceptApple(tree, beams, logitsOf, temperature, drafter.config.topK, drafter.config.log0, random,
        appleScratch!, acceptance);
      for (let k = 0; k < acceptance.count; k++) history[state.length + k] = acceptance.tokens[k];
    }
    const count = acceptance.count;
    state.length += count;
    for (let k = 0; k < count; k++) {
      keep[k] = S + acceptance.path[k];
      out[k] = acceptance.tokens[k];
      committedLogitRows[k] = firstLogits + acceptance.path[k];
    }
    cache.keepSlots(S, keep, count);
    publishCommitted(state);
    setContext(firstRow + acceptance.path[count - 1]);
    for (let k = 0; k < count - 1; k++) stats.acceptedAtDepth[k]++;
    if (options.onStep) {
      options.onStep({
        position: S, g0: beams.beams[0],
        beams: Array.from({ length: width }, (_, w) => Array.from(beams.beams.subarray(w * length, (w + 1) * length))),
        scores: Array.from(beams.scores.subarray(0, width)),
        nodes: Array.from({ length: P }, (_, p) => ({ token: tree.tokens[p], depth: tree.depths[p],
          parent: tree.parents[p] })),
        acceptedPath: Array.from(acceptance.path.subarray(0, count)),
        committed: Array.from(acceptance.tokens.subarray(0, count)),
      });
    }
    const acceptSeconds = (performance.now() - started) / 1000;
    stats.draftSeconds += draftSeconds;
    stats.verifySeconds += batch.forwardSeconds;
    stats.bookkeepingSeconds += acceptSeconds;
    countShape(width, length);
    if (policy) {
      stepShape.beams = width;
      stepShape.beamLength = length;
      policy.observeTree(stepShape, P, count - 1, draftSeconds, batch.forwardSeconds, acceptSeconds, batch.count);
    }
    return count;
  }

  /**
   * This step's shape: the rows of a prefill chunk or a plain step (added to the batch), or −1 when a tree of
   * `width` × `length` is to be drafted.
   */
  function planShape(batch: StepBatch, budget: number, otherRows: number, otherTokens: number, peers: number): number {
    // The drafter reads the committed row's hidden state (on the host, unless it drafts on the device).
    batch.declareReads(!state.idsOnly, deviceSearch === undefined);
    if (prefill.active) {
      stepKind = 'plain';
      return prefill.plan(batch, budget);
    }
    otherRowsThisStep = otherRows;
    const room = Math.min(L, contextLength - cache.length);
    width = W;
    length = room;
    if (policy) {
      const shape = policy.choose(room, otherRowsThisStep, otherTokens, peers);
      if (shape === null) return planPlain(batch);
      width = shape.beams;
      length = shape.beamLength;
    }
    if (length < 2) return planPlain(batch);
    return -1;
  }

  return {
    maxTokensPerStep: L,
    adaptive: policy !== null,
    committedLogitRows,
    stats,
    get position() {
      return cache.length;
    },
    get reusedPromptTokens() {
      return prefill.reused;
    },
    ...(state.promptLogprobs ? { promptLogprobs: state.promptLogprobs } : {}),
    get prefilling() {
      return prefill.active;
    },
    start(promptIds) {
      prefill.start(promptIds);
    },
    plan(batch, budget, otherRows, otherTokens, peers) {
      if (!search) throw new Error('redrafter: the drafter runs on the device; plan with planAsync');
      const rows = planShape(batch, budget, otherRows, otherTokens, peers);
      if (rows >= 0) return rows;
      const started = performance.now();
      return planTree(batch, search.search(context, 0, history[state.length - 1], width, length), started);
    },
    planAsync: deviceSearch && (async (batch, budget, otherRows, otherTokens, peers) => {
      const rows = planShape(batch, budget, otherRows, otherTokens, peers);
      if (rows >= 0) return rows;
      const started = performance.now();
      const drafted = await deviceSearch.search(deviceContext!, history[state.length - 1], width, length);
      ownBeams.width = drafted.width;
      ownBeams.length = drafted.length;
      ownBeams.beams.set(drafted.beams.subarray(0, width * length));
      ownBeams.scores.set(drafted.scores.subarray(0, width));
      return planTree(batch, ownBeams, started);
    }),
    complete(batch, out) {
      if (prefill.active) {
        const last = prefill.complete(batch);
        if (last < 0) return 0;
        setContext(last);
        committedLogitRows[0] = batch.logitIndex[last];
        const token = pickToken(state, committedLogitRows[0], history, state.length);
        history[state.length++] = token;
        out[0] = token;
        return 1;
      }
      return stepKind === 'tree' ? completeTree(batch, out) : completePlain(batch, out);
    },
    dispose() {
      policy?.finish();
      deviceContext?.free();
      if (state.ownsCache) cache.free();
    },
  };
}
