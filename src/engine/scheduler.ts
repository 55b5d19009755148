// Continuous batching (issue 14): every step is one forward over all running sequences of a model — chunks of new
// prompts (chunked prefill under a per-step row budget) beside the plain tokens and ReDrafter trees of sequences
// already decoding, each row attending only its own sequence's cache and tree ancestors. Sequences join and leave
// between steps. The kernels are batch-invariant, so a sequence's tokens do not depend on what it was batched with.
//
// KV memory is one block-paged pool (model/kv-pool.ts) for all sequences, with prefix reuse. A sequence is admitted
// when fewer than maxSequences run and the pool can promise it the blocks its prompt, its token limit and its largest
// tree could need (so a running sequence never runs out of blocks and nothing is ever preempted); until then it
// waits, first come first served.
//
// Steps are pulled: a consumer waiting for its sequence's next tokens runs a step when none are buffered, and that
// step advances every running sequence; other consumers then find their tokens waiting. A sequence alone therefore
// runs exactly as fast as a plain decode loop (no timers, no event-loop turn per step); when a step brings a consumer
// nothing (its prompt is still being fed, or it waits for admission) it yields to the event loop before the next, so
// servers stay responsive. A sequence more than RUN_AHEAD tokens ahead of its consumer sits out steps.
//
// A server tells the scheduler of requests on their way (noteArrival: a connection accepted, a request being read).
// libuv accepts one connection per event-loop turn (libuv#3696) and a step holds the loop for its whole forward, so
// under load a burst of new connections was accepted one per step (16 connections at ~100 ms a step: the last one
// accepted after 1.5 s); after an arrival is noted the next step waits for turns of the event loop with none noted
// in a row (SETTLED_TURNS; at most MAX_SETTLE_TURNS in all), so that the burst joins one step.
//
// A model whose forward is asynchronous (WebGPU) is scheduled the same way, one step in flight at a time, each step
// awaited in the model's turn (inModelTurn): its plans may await the device (a drafter there), then its forward. Its
// KV caches are the model's own (contiguous, on the device; no prefix reuse), each a whole context, counted against
// the same block budget.

import type { LoadedModel } from './load.js';
import type { Model } from '../model/model.js';
import type { KvCache } from '../model/kv-cache.js';
import { createBlockReservations, createKvPool, DEFAULT_BLOCK_SIZE, type KvPool } from '../model/kv-pool.js';
import type { SequenceStepper } from './decoder.js';
import { createStepBatch } from './step-batch.js';
import { CONTROLLER_MAX_NODES } from './speculation-costs.js';
import { tokenLogprobs, type EmittedLogprob } from '../sampling/index.js';

export interface SchedulerOptions {
  /** Sequences decoded at once (default 8); later ones wait. */
  maxSequences?: number;
  /**
   * Bytes of KV memory for all sequences (default: room for maxSequences sequences at the full context, at most
   * 1 GiB and what the WebAssembly memory has left, at least one such sequence).
   */
  kvBudgetBytes?: number;
  /** Rows per forward that prompt chunks may fill, decoding rows included (default 256). */
  stepRows?: number;
  /** Slots per KV block (default 16). */
  blockSize?: number;
}

export interface SequenceRequest {
  promptIds: readonly number[];
  /** Most tokens the sequence commits (the first token included); it ends there. */
  maxTokens: number;
  /** Tokens that end the sequence once committed. */
  stopTokens: ReadonlySet<number>;
  /** KV slots beyond the context its stepper needs (a ReDrafter tree's nodes). */
  extraSlots: number;
  /** Makes the sequence's decoding strategy on the paged cache it was given, when it is admitted. */
  createStepper(cache: KvCache): SequenceStepper;
  /** Aborting ends the sequence (next() then returns 0). */
  signal?: AbortSignal;
  /** Keep each committed token's log-probability and this many top alternatives (takeLogprobs). */
  logprobs?: number;
}

export interface ScheduledSequence {
  /**
   * Waits for the next step's committed tokens (the first call: the prompt's first generated token) and writes them
   * into `out` (at least maxTokensPerStep long); returns how many, 0 once the sequence has ended (token limit, stop
   * token, cancel or abort) and everything it committed was read.
   */
  next(out: Int32Array): Promise<number>;
  /** Ends the sequence now and frees its KV blocks (a no-op once ended). */
  cancel(): void;
  /** With request.logprobs: the log-probabilities of the tokens the latest next() returned, in order. */
  takeLogprobs(): EmittedLogprob[];
  /** The sequence's strategy, once admitted (its stats). */
  readonly stepper: SequenceStepper | null;
  /** Prompt tokens whose KV came from the pool's cached blocks instead of a forward. */
  readonly cachedPromptTokens: number;
}

export interface SchedulerStats {
  running: number;
  waiting: number;
  maxSequences: number;
  blockSize: number;
  blocks: number;
  /** Blocks held by running sequences. */
  usedBlocks: number;
  /** Blocks kept only for prefix reuse. */
  cachedBlocks: number;
  /** Forwards run, and their rows (all sequences). */
  steps: number;
  rows: number;
}

/**
 * The KV memory the scheduler draws on: model/kv-pool.ts's paged pool on WebAssembly; on a model with its own caches
 * (WebGPU) an account of whole-context caches in the same blocks.
 */
export interface SchedulerKvPool extends Omit<KvPool, 'createCache'> {
  createCache(capacity: number): KvCache;
}

export interface Scheduler {
  readonly model: Model;
  readonly pool: SchedulerKvPool;
  readonly maxSequences: number;
  add(request: SequenceRequest): ScheduledSequence;
  /**
   * A request is on its way and may soon be added (a server: a connection accepted, a request arrived): the next step
   * first lets the event loop turn until a turn passes with no arrival noted (MAX_SETTLE_TURNS at most).
   */
  noteArrival(): void;
  stats(): SchedulerStats;
  /** Frees the pool; every sequence must have ended. */
  dispose(): void;
}

/** Tokens a sequence may hold unread before it sits out steps. */
const RUN_AHEAD = 64;
const DEFAULT_MAX_SEQUENCES = 8;
const DEFAULT_STEP_ROWS = 256;
const MAX_DEFAULT_BUDGET = 2 ** 30;
/** Most event-loop turns one step waits for arrivals (noteArrival): a flood of connections cannot stall decoding. */
const MAX_SETTLE_TURNS = 64;
/**
 * Turns in a row with no arrival noted that end the wait: a request's way from its connection to add() may pass a
 * turn with nothing to note (its body read in a later segment than its headers), and the notes of code that runs in
 * the same phase as the wait (after it in a turn) count in the next turn.
 */
const SETTLED_TURNS = 2;

interface Entry extends ScheduledSequence {
  request: SequenceRequest;
  blocks: number;
  cache: KvCache | null;
  stepperOrNull: SequenceStepper | null;
  ended: boolean;
  committed: number;
  /** Unread committed tokens, and how many each unread step committed. */
  tokens: IntQueue;
  stepSizes: IntQueue;
  /** Rows planned in the current step (0: sitting out). */
  planned: number;
  /** Per-step scratch for committed tokens. */
  out: Int32Array;
  /** The stepper failed: next() rethrows this. */
  error: unknown;
  /** next() has given the event loop a turn before this sequence's first step, and after step number yieldedAtStep. */
  yielded: boolean;
  yieldedAtStep: number;
  /** With request.logprobs: unread tokens' log-probabilities, and those of the step next() returned last. */
  logprobs: EmittedLogprob[];
  returned: EmittedLogprob[];
}

/**
 * A turn of the event loop: setImmediate in Node; elsewhere (browsers, where timers are clamped to ≥ 1–4 ms) a
 * MessageChannel message, which runs as soon as the loop is free.
 */
/** A FIFO of integers on a ring buffer that doubles when full (so steady use allocates nothing). */
class IntQueue {
  private ring: Int32Array;
  private head = 0;
  size = 0;

  constructor(capacity: number) {
    this.ring = new Int32Array(capacity);
  }

  push(value: number): void {
    if (this.size === this.ring.length) {
      const grown = new Int32Array(this.ring.length * 2);
      for (let i = 0; i < this.size; i++) grown[i] = this.ring[(this.head + i) % this.ring.length];
      this.ring = grown;
      this.head = 0;
    }
    this.ring[(this.head + this.size) % this.ring.length] = value;
    this.size++;
  }

  peek(): number {
    return this.ring[this.head];
  }

  shift(): number {
    const value = this.ring[this.head];
    this.head = (this.head + 1) % this.ring.length;
    this.size--;
    return value;
  }
}

const yieldToEventLoop: () => Promise<void> = typeof setImmediate === 'function'
  ? () => new Promise((resolve) => setImmediate(resolve))
  : (() => {
    const channel = new MessageChannel();
    const waiting: (() => void)[] = [];
    // The DOM's MessagePort (an EventTarget; Node's typings describe worker_threads' instead).
    const port = channel.port1 as unknown as EventTarget & { start(): void };
    port.addEventListener('message', () => waiting.shift()?.());
    port.start();
    return () => new Promise<void>((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
  })();

export function createScheduler(model: Model, options: SchedulerOptions = {}): Scheduler {
  const maxSequences = options.maxSequences ?? DEFAULT_MAX_SEQUENCES;
  if (!Number.isInteger(maxSequences) || maxSequences < 1) {
    throw new RangeError(`maxSequences: expected a positive integer, got ${maxSequences}`);
  }
  const stepRows = options.stepRows ?? DEFAULT_STEP_ROWS;
  if (!Number.isInteger(stepRows) || stepRows < 1) {
    throw new RangeError(`stepRows: expected a positive integer, got ${stepRows}`);
  }
  const { nLayers, nKvHeads, headDim } = model.config;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const bytesPerBlock = nLayers * 2 * nKvHeads * headDim * 4 * blockSize;
  const sequenceBlocks = Math.ceil((model.contextLength + CONTROLLER_MAX_NODES) / blockSize) + 1;
  const onDevice = model.forwardSequencesAsync !== undefined;
  let budget = options.kvBudgetBytes;
  if (budget === undefined) {
    // What the WebAssembly memory (4 GiB, the weights already in it) can still take, less room for scratch buffers;
    // a device's caches are not in it.
    const room = onDevice ? Infinity : 4 * 2 ** 30 - model.kernels.heap.memory.buffer.byteLength - 2 ** 28;
    budget = Math.max(sequenceBlocks * bytesPerBlock, Math.min(onDevice ? Infinity : MAX_DEFAULT_BUDGET, room,
      maxSequences * sequenceBlocks * bytesPerBlock));
  }
  if (!(Number.isFinite(budget) && budget > 0)) throw new RangeError(`kvBudgetBytes: expected a positive number, got ${budget}`);
  const blocks = Math.floor(budget / bytesPerBlock);
  if (blocks < 2) {
    throw new RangeError(`kvBudgetBytes: ${budget} bytes hold ${blocks} KV blocks of ${bytesPerBlock} bytes ` +
      `(${blockSize} tokens); at least 2 are needed`);
  }
  const pool: SchedulerKvPool = onDevice ? deviceCacheAccount(model, blocks, blockSize, bytesPerBlock)
    : createKvPool(model.kernels.heap, nLayers, nKvHeads * headDim, { blocks, blockSize });
  // A device cache holds a whole context from the start: that is what a sequence there reserves.
  const blocksOf = (request: SequenceRequest): number => onDevice
    ? Math.ceil((model.contextLength + request.extraSlots) / blockSize)
    : Math.ceil((Math.min(request.promptIds.length + request.maxTokens, model.contextLength) + request.extraSlots) /
      blockSize) + 1;
  const batch = createStepBatch();
  const running: Entry[] = [];
  const waiting: Entry[] = [];
  const stepping: Entry[] = [];
  let steps = 0;
  let rows = 0;
  let disposed = false;

  function admit(): void {
    while (waiting.length > 0 && running.length < maxSequences) {
      const entry = waiting[0];
      if (!pool.reserve(entry.blocks)) return;
      waiting.shift();
      try {
        const cache = pool.createCache(model.contextLength + entry.request.extraSlots);
        entry.cache = cache;
        const stepper = entry.request.createStepper(cache);
        entry.stepperOrNull = stepper;
        stepper.start(entry.request.promptIds);
        entry.out = new Int32Array(stepper.maxTokensPerStep);
        running.push(entry);
      } catch (error) {
        fail(entry, error);
      }
    }
  }

  /** Ends a sequence: its stepper learns the end, its blocks go back (or stay cached for reuse). */
  function end(entry: Entry): void {
    if (entry.ended) return;
    entry.ended = true;
    const at = running.indexOf(entry);
    if (at >= 0) running.splice(at, 1);
    const queued = waiting.indexOf(entry);
    if (queued >= 0) waiting.splice(queued, 1);
    try {
      entry.stepperOrNull?.dispose();
    } finally {
      if (entry.cache) {
        entry.cache.free();
        pool.release(entry.blocks);
        entry.cache = null;
      }
    }
  }

  function fail(entry: Entry, error: unknown): void {
    entry.error = error;
    try {
      end(entry);
    } catch {
      // The sequence's own error is the one to report.
    }
  }

  /** Whether another running sequence holds committed tokens its consumer has not read. */
  function othersUnread(entry: Entry): boolean {
    for (const other of running) if (other !== entry && other.tokens.size > 0) return true;
    return false;
  }

  // A step's plans, in order: prompt chunks first (arrival order, within what the decoding rows leave of the step's
  // rows); then sequences with settled shapes (plain decoding, fixed trees); then the adaptive ones, each weighing its
  // tree against those rows and its adaptive peers taking the same shape, so the order they choose in does not
  // matter. nextPlan() gives the next sequence to plan and its arguments (in `call`), recordPlan() what it planned.
  const call = { entry: null as Entry | null, budget: 0, otherRows: 0, otherTokens: 0, peers: 0 };
  let phase = 0;
  let cursor = 0;
  let promptRows = 0;
  let adaptive = 0;
  let settledTokens = 0;
  let settledRows = 0;

  /** Admits and gathers this step's sequences; false when none runs. */
  function beginStep(): boolean {
    admit();
    batch.reset();
    // This step's sequences, copied: a failing one leaves `running` while the step goes on.
    stepping.length = 0;
    let decoding = 0;
    adaptive = 0;
    for (const entry of running) {
      entry.planned = 0;
      stepping.push(entry);
      const stepper = entry.stepperOrNull!;
      if (!stepper.prefilling && entry.tokens.size < RUN_AHEAD) {
        decoding++;
        if (stepper.adaptive) adaptive++;
      }
    }
    promptRows = Math.max(stepRows - decoding, Math.min(stepRows, 16));
    phase = 0;
    cursor = 0;
    settledTokens = 0;
    return stepping.length > 0;
  }

  function nextPlan(): boolean {
    for (; phase < 3; phase++, cursor = 0) {
      if (phase === 2 && cursor === 0) settledRows = batch.count;
      while (cursor < stepping.length) {
        const entry = stepping[cursor++];
        const stepper = entry.stepperOrNull!;
        if (entry.ended) continue;
        if (phase === 0) {
          if (!stepper.prefilling || promptRows <= 0) continue;
          call.budget = promptRows;
          call.otherRows = call.otherTokens = call.peers = 0;
        } else {
          if (stepper.prefilling || entry.tokens.size >= RUN_AHEAD || stepper.adaptive !== (phase === 2)) continue;
          call.budget = 0;
          call.otherRows = phase === 2 ? settledRows : 0;
          call.otherTokens = phase === 2 ? settledTokens : 0;
          call.peers = phase === 2 ? adaptive - 1 : 0;
        }
        call.entry = entry;
        return true;
      }
    }
    return false;
  }

  function recordPlan(planned: number): void {
    const entry = call.entry!;
    entry.planned = planned;
    if (phase === 0) {
      promptRows -= planned;
      // A chunk that ends its prompt (its last row asks for logits) commits the sequence's first token in this
      // forward: tokens the adaptive sequences weigh their trees against (a 21-node tree had ridden on a step that
      // fed 15 prompts to their first token, costing each of them its share of those rows, as if they brought none).
      if (planned > 0 && batch.logitIndex[batch.count - 1] >= 0) settledTokens++;
    } else if (phase === 1) {
      settledTokens++;
    }
  }

  /** After the forward: every planned sequence commits its tokens. */
  function completeStep(): void {
    steps++;
    rows += batch.count;
    for (const entry of stepping) {
      if (entry.planned === 0 || entry.ended) continue;
      entry.planned = 0;
      let count: number;
      try {
        count = entry.stepperOrNull!.complete(batch, entry.out);
      } catch (error) {
        fail(entry, error);
        continue;
      }
      const kept = keptOfStep(model, entry.request, entry.stepperOrNull!, entry.out, count, entry.committed,
        entry.logprobs);
      entry.committed += kept;
      for (let i = 0; i < kept; i++) entry.tokens.push(entry.out[i]);
      if (kept === 0) continue;
      entry.stepSizes.push(kept);
      if (entry.request.stopTokens.has(entry.out[kept - 1]) || entry.committed >= entry.request.maxTokens) end(entry);
    }
  }

  /** One forward over every running sequence that is not too far ahead of its consumer. */
  function step(): void {
    if (!beginStep()) return;
    while (nextPlan()) {
      const { entry, budget, otherRows, otherTokens, peers } = call;
      try {
        recordPlan(entry!.stepperOrNull!.plan(batch, budget, otherRows, otherTokens, peers));
      } catch (error) {
        fail(entry!, error);
      }
    }
    if (batch.count === 0) return;
    const started = performance.now();
    model.forwardSequences(batch);
    batch.forwardSeconds = (performance.now() - started) / 1000;
    completeStep();
  }

  /** step() on a model whose forward (and perhaps a stepper's plan) is awaited, in the model's turn. */
  async function stepAsync(): Promise<void> {
    if (!beginStep()) return;
    while (nextPlan()) {
      const { entry, budget, otherRows, otherTokens, peers } = call;
      const stepper = entry!.stepperOrNull!;
      try {
        recordPlan(stepper.planAsync ? await stepper.planAsync(batch, budget, otherRows, otherTokens, peers)
          : stepper.plan(batch, budget, otherRows, otherTokens, peers));
      } catch (error) {
        fail(entry!, error);
      }
    }
    if (batch.count === 0) return;
    const started = performance.now();
    await model.forwardSequencesAsync!(batch);
    batch.forwardSeconds = (performance.now() - started) / 1000;
    completeStep();
  }

  // Arrivals (noteArrival): the turns the next step waits for, shared by every consumer about to step.
  let arrivalNoted = false;
  let settling: Promise<void> | null = null;
  async function settle(): Promise<void> {
    try {
      let quiet = 0;
      for (let turn = 0; quiet < SETTLED_TURNS && turn < MAX_SETTLE_TURNS; turn++) {
        arrivalNoted = false;
        await yieldToEventLoop();
        quiet = arrivalNoted ? 0 : quiet + 1;
      }
    } finally {
      arrivalNoted = false;
      settling = null;
    }
  }

  // On an asynchronous model: the step in flight, which every consumer waits for instead of starting another.
  let inFlight: Promise<void> | null = null;
  const runStepAsync = (): Promise<void> => {
    inFlight ??= inModelTurn(model, stepAsync).finally(() => {
      inFlight = null;
    });
    return inFlight;
  };

  function add(request: SequenceRequest): ScheduledSequence {
    if (disposed) throw new Error('scheduler: disposed');
    const blocksNeeded = blocksOf(request);
    if (blocksNeeded > pool.blocks) {
      throw new RangeError(`KV budget: the sequence needs ${blocksNeeded} blocks of ${blockSize} tokens ` +
        `(${request.promptIds.length} prompt + ${request.maxTokens} generated tokens), the pool has ${pool.blocks} ` +
        `(${pool.blocks * pool.bytesPerBlock} bytes); raise the KV budget or lower max tokens`);
    }
    const entry: Entry = {
      request,
      blocks: blocksNeeded,
      cache: null,
      stepperOrNull: null,
      ended: false,
      committed: 0,
      tokens: new IntQueue(16),
      stepSizes: new IntQueue(8),
      planned: 0,
      out: new Int32Array(1),
      error: undefined,
      yielded: false,
      yieldedAtStep: -1,
      logprobs: [],
      returned: [],
      get stepper() {
        return entry.stepperOrNull;
      },
      get cachedPromptTokens() {
        return entry.stepperOrNull?.reusedPromptTokens ?? 0;
      },
      async next(out) {
        for (;;) {
          if (entry.stepSizes.size > 0) {
            const count = entry.stepSizes.peek();
            if (out.length < count) throw new RangeError(`next: out holds ${out.length} tokens, the step has ${count}`);
            entry.stepSizes.shift();
            for (let i = 0; i < count; i++) out[i] = entry.tokens.shift();
            if (request.logprobs !== undefined) entry.returned = entry.logprobs.splice(0, count);
            return count;
          }
          if (entry.error !== undefined) {
            const error = entry.error;
            entry.error = undefined;
            throw error;
          }
          if (entry.ended) return 0;
          if (request.signal?.aborted) {
            end(entry);
            return 0;
          }
          // A sequence not yet admitted lets the event loop run once first, so that requests arriving together
          // (a server's burst, a Promise.all) join the same first step instead of one step each. And while other
          // sequences still hold tokens their consumers have not read, their consumers get a turn before the next
          // step: a consumer that reads without pausing would otherwise run step after step until the others sit
          // out (RUN_AHEAD), and the batch would fall apart.
          if (entry.stepperOrNull === null ? !entry.yielded : entry.yieldedAtStep !== steps && othersUnread(entry)) {
            entry.yielded = true;
            entry.yieldedAtStep = steps;
            await yieldToEventLoop();
            continue;
          }
          if (settling) {
            await settling;
            continue;
          }
          if (onDevice) await runStepAsync();
          else step();
          if (entry.tokens.size > 0 || entry.ended) continue;
          await yieldToEventLoop();
        }
      },
      cancel() {
        end(entry);
      },
      takeLogprobs() {
        const taken = entry.returned;
        entry.returned = [];
        return taken;
      },
    };
    waiting.push(entry);
    return entry;
  }

  return {
    model,
    pool,
    maxSequences,
    add,
    noteArrival() {
      arrivalNoted = true;
      settling ??= settle();
    },
    stats: () => ({
      running: running.length, waiting: waiting.length, maxSequences, blockSize, blocks: pool.blocks,
      usedBlocks: pool.usedBlocks, cachedBlocks: pool.cachedBlocks, steps, rows,
    }),
    dispose() {
      if (disposed) return;
      if (running.length > 0 || waiting.length > 0) {
        throw new Error(`scheduler: ${running.length} running and ${waiting.length} waiting sequences`);
      }
      disposed = true;
      pool.clearCached();
      pool.dispose();
    },
  };
}

/**
 * The KV account of a model with its own caches (WebGPU): each cache is the model's (createCache, on the device) and
 * holds a whole context, so a sequence reserves that many blocks; nothing is kept for reuse.
 */
function deviceCacheAccount(model: Model, blocks: number, blockSize: number, bytesPerBlock: number): SchedulerKvPool {
  const reservations = createBlockReservations(blocks);
  let used = 0;
  const blocksOf = (capacity: number): number => Math.ceil(capacity / blockSize);
  return {
    blockSize,
    blocks,
    bytesPerBlock,
    get usedBlocks() {
      return used;
    },
    cachedBlocks: 0,
    get reservedBlocks() {
      return reservations.reserved;
    },
    reserve: reservations.reserve,
    release: reservations.release,
    createCache(capacity) {
      const cache = model.createCache(capacity);
      used += blocksOf(capacity);
      const free = cache.free.bind(cache);
      let freed = false;
      cache.free = () => {
        if (!freed) {
          freed = true;
          used -= blocksOf(capacity);
        }
        free();
      };
      return cache;
    },
    clearCached() {},
    dispose() {},
  };
}

const schedulers = new WeakMap<Model, Scheduler>();

/**
 * The scheduler every generate() on this model goes through, made on first use (with `options`, or the defaults).
 * Options for a scheduler that already exists must match it, or it must be idle (then it is remade).
 */
export function schedulerFor(loaded: LoadedModel | Model, options?: SchedulerOptions): Scheduler {
  const model = 'model' in loaded ? loaded.model : loaded;
  const existing = schedulers.get(model);
  if (existing && options === undefined) return existing;
  if (existing) {
    const stats = existing.stats();
    if (stats.running > 0 || stats.waiting > 0) {
      throw new Error('scheduler: cannot change the options of a scheduler with sequences in flight');
    }
    existing.dispose();
  }
  const scheduler = createScheduler(model, options);
  schedulers.set(model, scheduler);
  return scheduler;
}

/**
 * How many of the `count` tokens a step committed into `out` the sequence keeps: up to and including the first stop
 * token, and no more than its token limit allows after `committed`. With request.logprobs, each kept token's
 * log-probabilities go to `logprobs` (read from the step's logits rows, valid until the next forward).
 */
function keptOfStep(model: Model, request: SequenceRequest, stepper: SequenceStepper, out: Int32Array, count: number,
  committed: number, logprobs: EmittedLogprob[]): number {
  let kept = 0;
  while (kept < count) {
    const token = out[kept++];
    if (request.logprobs !== undefined) {
      logprobs.push(tokenLogprobs(model.logitsRow(stepper.committedLogitRows[kept - 1]), token, request.logprobs));
    }
    if (request.stopTokens.has(token) || committed + kept >= request.maxTokens) break;
  }
  return kept;
}

const modelTurns = new WeakMap<Model, Promise<void>>();

/**
 * Runs `work` on a model whose forward is asynchronous when the sequences before it have ended, holding the model
 * meanwhile (calibrations and timings run forwards of their own: they must not interleave with a sequence's).
 */
export async function inModelTurn<T>(model: Model, work: () => Promise<T>): Promise<T> {
  const previous = modelTurns.get(model) ?? Promise.resolve();
  let release: () => void = () => undefined;
  const turn = new Promise<void>((resolve) => {
    release = resolve;
  });
  modelTurns.set(model, previous.then(() => turn));
  await previous;
  try {
    return await work();
  } finally {
    release();
  }
}

