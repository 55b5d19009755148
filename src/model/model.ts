// The Llama forward pass (RMSNorm, RoPE, grouped-query attention, SwiGLU), read top to bottom like llama2.c's
// run.c, over a batch of tokens with explicit positions and per-token key sets (architecture.md, invariant 3):
// prefill, autoregressive steps and tree verification are all this one call.

import type { Kernels, Ptr } from '../kernels/types.js';
import { QUERY_RECORD_INTS } from '../kernels/types.js';
import { FormatError } from '../formats/errors.js';
import type { LlamaConfig } from './config.js';
import type { Checkpoint } from './checkpoint.js';
import { createKvCache, type KvCache } from './kv-cache.js';
import { fillRopeTable } from './rope.js';

interface LayerWeights {
  attnNorm: Ptr;
  wq: Ptr; wk: Ptr; wv: Ptr; wo: Ptr;
  /** Biases of the q/k/v projections (Qwen2), 0 when absent. */
  bq: Ptr; bk: Ptr; bv: Ptr;
  ffnNorm: Ptr;
  /** gate, down, up */
  w1: Ptr; w2: Ptr; w3: Ptr;
}

interface Weights {
  tokenEmbedding: Ptr;
  layers: LayerWeights[];
  norm: Ptr;
  classifier: Ptr;
}

/**
 * One forward call. Token i is written to KV slot `writeSlot + i` and attends cache slots 0 .. prefixLengths[i]-1,
 * then the slots extraSlots[extraStarts[i] .. extraStarts[i+1]) in that order (its tree ancestors by depth, then
 * itself). Arrays are read, never kept, so the caller can reuse them.
 */
export interface ForwardBatch {
  count: number;
  tokens: Int32Array;
  positions: Int32Array;
  writeSlot: number;
  prefixLengths: Int32Array;
  /** count + 1 offsets into extraSlots; omit both for plain causal batches. */
  extraStarts?: Int32Array;
  extraSlots?: Int32Array;
  /** Which rows need logits: every row, only the last, or none (prefill chunks that are not last). */
  logits: 'all' | 'last' | 'none';
}

/** Views over the model's output buffers; valid until the next forward. Row r starts at r·vocabSize / r·dim. */
export interface ForwardOutput {
  /** Logits; with `logits: 'last'` the last row's logits are at row 0. */
  logits: Float32Array;
  /** Final-norm hidden state of every row (the drafter's context vector, spec §1.1). */
  hidden: Float32Array;
}

export interface Model {
  readonly config: LlamaConfig;
  readonly kernels: Kernels;
  /** Bytes of weights read by one single-token forward (for bandwidth reports). */
  readonly weightBytes: number;
  /** Largest position the model accepts + 1 (the RoPE table size). */
  readonly contextLength: number;
  /** The token embedding table ([vocabSize, dim] f32), shared with the drafter. */
  readonly tokenEmbedding: Float32Array;
  createCache(capacity: number): KvCache;
  /** The output of the latest forward (the same object forward returns). */
  readonly output: ForwardOutput;
  /** Row r of the latest logits as a vocabSize-long view (cached: no allocation in the decode loop). */
  logitsRow(row: number): Float32Array;
  forward(cache: KvCache, batch: ForwardBatch): ForwardOutput;
  /** Releases the weights' memory. */
  dispose(): void;
}

export interface ModelOptions {
  /** Positions the model will be asked about (default: the checkpoint's maximum, capped at 4096). */
  contextLength?: number;
}

export function createModel(kernels: Kernels, checkpoint: Checkpoint, options: ModelOptions = {}): Model {
  const { config } = checkpoint;
  const heap = kernels.heap;
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const contextLength = options.contextLength ?? Math.min(config.maxSequenceLength, 4096);
  if (!Number.isInteger(contextLength) || contextLength <= 0 || contextLength > config.maxSequenceLength) {
    throw new RangeError(`contextLength: expected an integer in 1..${config.maxSequenceLength}, got ${contextLength}`);
  }

  const owned: Ptr[] = [];
  let weightBytes = 0;
  const load = (name: string, shape: number[], countsAsWeight = true): Ptr => {
    const got = checkpoint.tensors.shape(name);
    if (!got) throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
      expected: `shape [${shape.join(', ')}]`, got: 'missing' });
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
        expected: `shape [${shape.join(', ')}]`, got: `[${got.join(', ')}]` });
    }
    const data = checkpoint.tensors.read(name);
    const ptr = heap.alloc(data.length * 4);
    heap.f32(ptr, data.length).set(data);
    owned.push(ptr);
    if (countsAsWeight) weightBytes += data.length * 4;
    return ptr;
  };

  const weights: Weights = {
    // Only one row of the embedding is read per token: it does not count as weight traffic.
    tokenEmbedding: load('token_embd', [vocabSize, dim], false),
    layers: [],
    norm: 0,
    classifier: 0,
  };
  for (let l = 0; l < nLayers; l++) {
    const p = `layers.${l}.`;
    weights.layers.push({
      attnNorm: load(p + 'attn_norm', [dim]),
      wq: load(p + 'wq', [qDim, dim]),
      wk: load(p + 'wk', [kvDim, dim]),
      wv: load(p + 'wv', [kvDim, dim]),
      wo: load(p + 'wo', [dim, qDim]),
      bq: config.qkvBias ? load(p + 'bq', [qDim]) : 0,
      bk: config.qkvBias ? load(p + 'bk', [kvDim]) : 0,
      bv: config.qkvBias ? load(p + 'bv', [kvDim]) : 0,
      ffnNorm: load(p + 'ffn_norm', [dim]),
      w1: load(p + 'w1', [hiddenDim, dim]),
      w2: load(p + 'w2', [dim, hiddenDim]),
      w3: load(p + 'w3', [hiddenDim, dim]),
    });
  }
  weights.norm = load('norm', [dim]);
  if (config.tiedClassifier) {
    weights.classifier = weights.tokenEmbedding;
    weightBytes += vocabSize * dim * 4;
  } else {
    weights.classifier = load('output', [vocabSize, dim]);
  }

  const ropeTable = heap.alloc(contextLength * headDim * 4);
  owned.push(ropeTable);
  fillRopeTable(heap.f32(ropeTable, contextLength * headDim), contextLength, headDim, config.ropeTheta,
    config.ropeScaling);
  const tokenEmbedding = heap.f32(weights.tokenEmbedding, vocabSize * dim);

  // Scratch for `rows` tokens, grown (never shrunk) when a larger batch arrives; steady-state decoding allocates nothing.
  let rows = 0;
  let x = 0, xb = 0, q = 0, att = 0, ffnGate = 0, ffnUp = 0, hidden = 0, logits = 0, positions = 0, records = 0;
  let extras = 0, extraCapacity = 0;
  // A view of the whole memory for row copies without creating subarrays in the loop.
  let memory: Float32Array = new Float32Array(0);
  let positionsView: Int32Array = new Int32Array(0);
  let recordsView: Int32Array = new Int32Array(0);
  let extrasView: Int32Array = new Int32Array(0);
  const output: ForwardOutput = { logits: new Float32Array(0), hidden: new Float32Array(0) };
  const rowViews: Float32Array[] = [];
  const scratch: Ptr[] = [];

  const ensureRows = (needed: number): void => {
    if (needed <= rows) return;
    for (const ptr of scratch) heap.free(ptr);
    scratch.length = 0;
    rows = Math.max(needed, 16);
    const alloc = (bytes: number): Ptr => {
      const ptr = heap.alloc(bytes);
      scratch.push(ptr);
      return ptr;
    };
    x = alloc(rows * dim * 4);
    xb = alloc(rows * Math.max(dim, qDim) * 4);
    q = alloc(rows * qDim * 4);
    att = alloc(rows * qDim * 4);
    ffnGate = alloc(rows * hiddenDim * 4);
    ffnUp = alloc(rows * hiddenDim * 4);
    hidden = alloc(rows * dim * 4);
    logits = alloc(rows * vocabSize * 4);
    positions = alloc(rows * 4);
    records = alloc(rows * QUERY_RECORD_INTS * 4);
    positionsView = heap.i32(positions, rows);
    recordsView = heap.i32(records, rows * QUERY_RECORD_INTS);
    output.logits = heap.f32(logits, rows * vocabSize);
    output.hidden = heap.f32(hidden, rows * dim);
    rowViews.length = 0;
    memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
  };
  const ensureExtras = (needed: number): void => {
    if (needed <= extraCapacity) return;
    if (extras) heap.free(extras);
    extraCapacity = Math.max(needed, 256);
    extras = heap.alloc(extraCapacity * 4);
    extrasView = heap.i32(extras, extraCapacity);
    memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
  };
  ensureRows(16);
  ensureExtras(256);

  const scale = 1 / Math.sqrt(headDim);

  function forward(cache: KvCache, batch: ForwardBatch): ForwardOutput {
    const n = batch.count;
    checkBatch(cache, batch);
    ensureRows(n);
    const extraCount = batch.extraStarts ? batch.extraStarts[n] : 0;
    ensureExtras(extraCount);
    const k = kernels;

    // Token embeddings into the residual stream; positions and attention records into the heap.
    let maxKeys = 0;
    for (let i = 0; i < n; i++) {
      const token = batch.tokens[i];
      const from = weights.tokenEmbedding / 4 + token * dim;
      memory.copyWithin(x / 4 + i * dim, from, from + dim);
      positionsView[i] = batch.positions[i];
      const first = batch.extraStarts ? batch.extraStarts[i] : 0;
      const count = batch.extraStarts ? batch.extraStarts[i + 1] - first : 0;
      const r = i * QUERY_RECORD_INTS;
      recordsView[r + 2] = batch.prefixLengths[i];
      recordsView[r + 3] = extras + first * 4;
      recordsView[r + 4] = count;
      maxKeys = Math.max(maxKeys, batch.prefixLengths[i] + count);
    }
    const extraSlots = batch.extraSlots;
    if (extraSlots) for (let j = 0; j < extraCount; j++) extrasView[j] = extraSlots[j];

    for (let l = 0; l < nLayers; l++) {
      const w = weights.layers[l];
      const keys = cache.keys(l) + batch.writeSlot * kvDim * 4;
      const values = cache.values(l) + batch.writeSlot * kvDim * 4;

      // Attention: q, k, v projections (k and v straight into the cache slots), RoPE, attention, output projection.
      k.rmsnorm(xb, x, w.attnNorm, n, dim, config.normEps);
      if (config.qkvBias) {
        k.matmulBias(q, xb, w.wq, w.bq, n, dim, qDim);
        k.matmulBias(keys, xb, w.wk, w.bk, n, dim, kvDim);
        k.matmulBias(values, xb, w.wv, w.bv, n, dim, kvDim);
      } else {
        k.matmul(q, xb, w.wq, n, dim, qDim);
        k.matmul(keys, xb, w.wk, n, dim, kvDim);
        k.matmul(values, xb, w.wv, n, dim, kvDim);
      }
      k.rope(q, n, nHeads, headDim, positions, ropeTable, config.ropeLayout);
      k.rope(keys, n, nKvHeads, headDim, positions, ropeTable, config.ropeLayout);
      for (let i = 0; i < n; i++) {
        recordsView[i * QUERY_RECORD_INTS] = cache.keys(l);
        recordsView[i * QUERY_RECORD_INTS + 1] = cache.values(l);
      }
      k.attention(att, q, records, n, nHeads, nKvHeads, headDim, scale, maxKeys);
      k.matmul(xb, att, w.wo, n, qDim, dim);
      k.add(x, x, xb, n * dim);

      // Feed-forward: SwiGLU.
      k.rmsnorm(xb, x, w.ffnNorm, n, dim, config.normEps);
      k.matmul(ffnGate, xb, w.w1, n, dim, hiddenDim);
      k.matmul(ffnUp, xb, w.w3, n, dim, hiddenDim);
      k.siluMul(ffnGate, ffnGate, ffnUp, n * hiddenDim);
      k.matmul(xb, ffnGate, w.w2, n, hiddenDim, dim);
      k.add(x, x, xb, n * dim);
    }

    // Final norm (the drafter's h) and classifier.
    k.rmsnorm(hidden, x, weights.norm, n, dim, config.normEps);
    if (batch.logits === 'all') {
      k.matmul(logits, hidden, weights.classifier, n, dim, vocabSize);
    } else if (batch.logits === 'last') {
      k.matmul(logits, hidden + (n - 1) * dim * 4, weights.classifier, 1, dim, vocabSize);
    }
    return output;
  }

  function checkBatch(cache: KvCache, batch: ForwardBatch): void {
    const n = batch.count;
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`forward: count must be a positive integer, got ${n}`);
    if (batch.writeSlot < 0 || batch.writeSlot + n > cache.capacity) {
      throw new RangeError(`forward: slots ${batch.writeSlot}..${batch.writeSlot + n - 1} exceed the cache capacity ` +
        `${cache.capacity}`);
    }
    for (let i = 0; i < n; i++) {
      const token = batch.tokens[i];
      if (!(token >= 0 && token < vocabSize)) {
        throw new RangeError(`forward: token ${i} is ${token}, expected an id in 0..${vocabSize - 1}`);
      }
      const position = batch.positions[i];
      if (!(position >= 0 && position < contextLength)) {
        throw new RangeError(`forward: position ${position} of token ${i} is outside the context (0..${contextLength - 1})`);
      }
      if (batch.prefixLengths[i] < 0 || batch.prefixLengths[i] > cache.capacity) {
        throw new RangeError(`forward: prefix length ${batch.prefixLengths[i]} of token ${i} exceeds the cache capacity`);
      }
    }
    if (batch.extraStarts && batch.extraSlots) {
      const total = batch.extraStarts[n];
      if (batch.extraStarts[0] !== 0 || total > batch.extraSlots.length) {
        throw new RangeError(`forward: extraStarts must run from 0 to at most extraSlots.length (${batch.extraSlots.length}), ` +
          `got ${batch.extraStarts[0]}..${total}`);
      }
      for (let j = 0; j < total; j++) {
        const slot = batch.extraSlots[j];
        if (!(slot >= 0 && slot < cache.capacity)) {
          throw new RangeError(`forward: extra slot ${slot} (entry ${j}) is outside the cache (0..${cache.capacity - 1})`);
        }
      }
    }
  }

  return {
    config,
    kernels,
    weightBytes,
    contextLength,
    tokenEmbedding,
    createCache: (capacity) => createKvCache(heap, nLayers, kvDim, capacity),
    output,
    logitsRow(row) {
      let view = rowViews[row];
      if (!view) {
        if (!(row >= 0 && row < rows)) throw new RangeError(`logitsRow: row ${row} outside 0..${rows - 1}`);
        view = rowViews[row] = heap.f32(logits + row * vocabSize * 4, vocabSize);
      }
      return view;
    },
    forward,
    dispose() {
      for (const ptr of [...owned, ...scratch]) heap.free(ptr);
      if (extras) heap.free(extras);
      owned.length = 0;
      scratch.length = 0;
    },
  };
}
