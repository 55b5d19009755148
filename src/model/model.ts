// The Llama forward pass (RMSNorm, RoPE, grouped-query attention, SwiGLU), read top to bottom like llama2.c's
// run.c, over a batch of tokens with explicit positions and per-token key sets (architecture.md, invariant 3):
// prefill, autoregressive steps and tree verification are all this one call.

import type { Kernels, Ptr, QuantType } from '../kernels/types.js';
import { QUANT_BLOCK_BYTES, QUERY_RECORD_INTS } from '../kernels/types.js';
import { FormatError } from '../formats/errors.js';
import { quantize } from '../formats/quant.js';
import { resolveContextLength, type LlamaConfig } from './config.js';
import type { Checkpoint } from './checkpoint.js';
import { createKvCache, type KvCache } from './kv-cache.js';
import { fillRopeTable } from './rope.js';

/** How a projection matrix is held in the heap: f32 [out, in], or GGML blocks (rows of in/32 blocks). */
export type MatrixEncoding = 'f32' | QuantType;

interface Matrix {
  ptr: Ptr;
  encoding: MatrixEncoding;
}

interface LayerWeights {
  attnNorm: Ptr;
  wq: Matrix; wk: Matrix; wv: Matrix; wo: Matrix;
  /** Biases of the q/k/v projections (Qwen2), 0 when absent. */
  bq: Ptr; bk: Ptr; bv: Ptr;
  ffnNorm: Ptr;
  /** gate, down, up */
  w1: Matrix; w2: Matrix; w3: Matrix;
}

interface Weights {
  tokenEmbedding: Ptr;
  layers: LayerWeights[];
  norm: Ptr;
  classifier: Matrix;
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
  /**
   * Which rows need logits: every row, only the last, none (prefill chunks that are not last), or the first
   * `logitRowCount` rows listed in `logitRows` (output row j holds row logitRows[j]'s logits).
   */
  logits: 'all' | 'last' | 'none' | 'rows';
  logitRows?: Int32Array;
  logitRowCount?: number;
  /**
   * What the caller reads of those rows: their values (the default), or only each row's argmax (argmaxRow), which
   * pure greedy decoding without log-probabilities needs. A backend whose results cross a bus (WebGPU) then reads
   * back one id per row instead of vocabSize floats (only models with argmaxRow take it; the WebAssembly model
   * computes the values either way).
   */
  logitsAs?: 'values' | 'argmax';
  /** Whether the caller reads the final-norm hidden states (the drafter does; default true). */
  hiddenNeeded?: boolean;
}

/**
 * A forward over rows of several sequences (the batch scheduler's step): row i belongs to caches[cacheOf[i]], writes
 * its K/V at that cache's slot writeSlots[i], and its prefix and extra slots are slots of that cache. Each row's
 * results are bit-identical to the same row in a forward of its sequence alone (invariant 1).
 */
export interface SequenceBatch extends Omit<ForwardBatch, 'writeSlot'> {
  caches: readonly KvCache[];
  cacheOf: Int32Array;
  writeSlots: Int32Array;
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
  /** Bytes of weights read by one single-token forward, in their heap encoding (for bandwidth reports). */
  readonly weightBytes: number;
  /** Projection matrices (and the classifier) by heap encoding, e.g. { f32: 0, q8_0: 85, q4_0: 0 }. */
  readonly matrices: Readonly<Record<MatrixEncoding, number>>;
  /** Largest position the model accepts + 1 (the RoPE table size). */
  readonly contextLength: number;
  /** The token embedding table ([vocabSize, dim] f32), shared with the drafter. */
  readonly tokenEmbedding: Float32Array;
  createCache(capacity: number): KvCache;
  /** The output of the latest forward (the same object forward returns). */
  readonly output: ForwardOutput;
  /** Row r of the latest logits as a vocabSize-long view (cached: no allocation in the decode loop). */
  logitsRow(row: number): Float32Array;
  /**
   * Backends that can read back ids alone (WebGPU) have this: after a forward with `logitsAs: 'argmax'`, the largest
   * logit's id of requested row r (the r of logitsRow), lowest id on ties and never NaN (the greedy sampler's rule,
   * sampling/sampler.ts greedyArgmax); throws when every logit of the row is −Infinity or NaN.
   */
  argmaxRow?(row: number): number;
  forward(cache: KvCache, batch: ForwardBatch): ForwardOutput;
  /** A forward over rows of several sequences' caches (paged or contiguous). */
  forwardSequences(batch: SequenceBatch): ForwardOutput;
  /**
   * Backends whose results arrive later (WebGPU: webgpu/engine-model.ts) have this instead of the synchronous
   * forwards (which then throw); generate() awaits it, one sequence per forward.
   */
  forwardSequencesAsync?(batch: SequenceBatch): Promise<ForwardOutput>;
  /** Releases the weights' memory. */
  dispose(): void;
}

export interface ModelOptions {
  /** Positions the model will be asked about (default: the checkpoint's maximum, capped at 4096). */
  contextLength?: number;
  /**
   * How projection matrices stored quantized in the checkpoint run (default 'native'):
   * - 'native': Q8_0 / Q4_0 blocks stay as they are and use the quantized kernels (activations quantized to Q8_0
   *   per 32-block, as llama.cpp does); Q4_K / Q6_K are dequantized and re-quantized to Q8_0 at load (see
   *   loadMatrix); matrices whose rows are not whole 32-blocks, and every float type, run in f32.
   * - 'f32': everything is dequantized to f32 at load (exact ggml dequantization) and runs on the f32 kernels.
   */
  weights?: 'native' | 'f32';
}

/** Row i's token is an id of the vocabulary and its position inside the context (every backend's forward checks). */
export function checkTokenAndPosition(batch: { tokens: Int32Array; positions: Int32Array }, i: number, vocabSize: number,
  contextLength: number): void {
  const token = batch.tokens[i];
  if (!(token >= 0 && token < vocabSize)) {
    throw new RangeError(`forward: token ${i} is ${token}, expected an id in 0..${vocabSize - 1}`);
  }
  const position = batch.positions[i];
  if (!(position >= 0 && position < contextLength)) {
    throw new RangeError(`forward: position ${position} of token ${i} is outside the context (0..${contextLength - 1})`);
  }
}

export function createModel(kernels: Kernels, checkpoint: Checkpoint, options: ModelOptions = {}): Model {
  const { config } = checkpoint;
  const heap = kernels.heap;
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const contextLength = resolveContextLength(config, options.contextLength);

  const owned: Ptr[] = [];
  let weightBytes = 0;
  const matrices: Record<MatrixEncoding, number> = { f32: 0, q8_0: 0, q4_0: 0 };
  const checkShape = (name: string, shape: number[]): void => {
    const got = checkpoint.tensors.shape(name);
    if (!got) throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
      expected: `shape [${shape.join(', ')}]`, got: 'missing' });
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
        expected: `shape [${shape.join(', ')}]`, got: `[${got.join(', ')}]` });
    }
  };
  const upload = (bytes: Uint8Array): Ptr => {
    const ptr = heap.alloc(bytes.length);
    new Uint8Array(heap.memory.buffer, ptr, bytes.length).set(bytes);
    owned.push(ptr);
    return ptr;
  };
  const load = (name: string, shape: number[], countsAsWeight = true): Ptr => {
    checkShape(name, shape);
    const data = checkpoint.tensors.read(name);
    const ptr = heap.alloc(data.length * 4);
    heap.f32(ptr, data.length).set(data);
    owned.push(ptr);
    if (countsAsWeight) weightBytes += data.length * 4;
    return ptr;
  };
  /**
   * The blocks a quantized kernel takes for matrix `name` ([rows, columns]), or undefined to keep it f32. Q8_0 and
   * Q4_0 are the file's own bytes. Q4_K and Q6_K are dequantized and re-quantized to Q8_0: one integer kernel
   * instead of two complex ones, at a small cost in accuracy (measured on Gaussian weights, re-quantization adds a
   * relative RMS error of 5e-3 to Q4_K's 7.8e-2 and Q6_K's 1.9e-2; re-quantizing to Q4_0 would add 8e-2) and in
   * speed (8.5 bits per weight read instead of 4.5 / 6.6). Rows that are not whole 32-blocks stay f32.
   */
  type Blocks = { encoding: QuantType; bytes: Uint8Array };
  const quantizedBlocks = (name: string, rows: number, columns: number): Blocks | undefined => {
    if ((options.weights ?? 'native') !== 'native' || columns % 32 !== 0) return undefined;
    const raw = checkpoint.tensors.raw?.(name);
    if (raw === undefined) return undefined;
    if (raw.type === 'Q8_0' || raw.type === 'Q4_0') {
      const encoding = raw.type === 'Q8_0' ? 'q8_0' : 'q4_0';
      const bytes = raw.bytes();
      const expected = (rows * columns / 32) * QUANT_BLOCK_BYTES[encoding];
      if (bytes.length !== expected) {
        throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
          expected: `${expected} bytes of ${raw.type} blocks`, got: `${bytes.length} bytes` });
      }
      return { encoding, bytes };
    }
    if (raw.type === 'Q4_K' || raw.type === 'Q6_K') {
      return { encoding: 'q8_0', bytes: quantize('Q8_0', checkpoint.tensors.read(name)) };
    }
    return undefined;
  };
  const loadMatrix = (name: string, rows: number, columns: number): Matrix => {
    checkShape(name, [rows, columns]);
    const blocks = quantizedBlocks(name, rows, columns);
    if (blocks === undefined) {
      matrices.f32++;
      return { ptr: load(name, [rows, columns]), encoding: 'f32' };
    }
    matrices[blocks.encoding]++;
    weightBytes += blocks.bytes.length;
    return { ptr: upload(blocks.bytes), encoding: blocks.encoding };
  };

  const weights: Weights = {
    // Rows of the embedding are copied, never multiplied, so it is always f32 (dequantized at load if the file
    // stores it quantized); only one row is read per token: it does not count as weight traffic.
    tokenEmbedding: load('token_embd', [vocabSize, dim], false),
    layers: [],
    norm: 0,
    classifier: { ptr: 0, encoding: 'f32' },
  };
  for (let l = 0; l < nLayers; l++) {
    const p = `layers.${l}.`;
    weights.layers.push({
      attnNorm: load(p + 'attn_norm', [dim]),
      wq: loadMatrix(p + 'wq', qDim, dim),
      wk: loadMatrix(p + 'wk', kvDim, dim),
      wv: loadMatrix(p + 'wv', kvDim, dim),
      wo: loadMatrix(p + 'wo', dim, qDim),
      bq: config.qkvBias ? load(p + 'bq', [qDim]) : 0,
      bk: config.qkvBias ? load(p + 'bk', [kvDim]) : 0,
      bv: config.qkvBias ? load(p + 'bv', [kvDim]) : 0,
      ffnNorm: load(p + 'ffn_norm', [dim]),
      w1: loadMatrix(p + 'w1', hiddenDim, dim),
      w2: loadMatrix(p + 'w2', dim, hiddenDim),
      w3: loadMatrix(p + 'w3', hiddenDim, dim),
    });
  }
  weights.norm = load('norm', [dim]);
  if (config.tiedClassifier) {
    // A tied classifier multiplies by the embedding's quantized form when the file stores it quantized (as llama.cpp
    // does: it multiplies by token_embd's blocks), at the cost of holding both forms; else by the f32 table.
    const blocks = quantizedBlocks('token_embd', vocabSize, dim);
    if (blocks === undefined) {
      weights.classifier = { ptr: weights.tokenEmbedding, encoding: 'f32' };
      weightBytes += vocabSize * dim * 4;
      matrices.f32++;
    } else {
      weights.classifier = { ptr: upload(blocks.bytes), encoding: blocks.encoding };
      weightBytes += blocks.bytes.length;
      matrices[blocks.encoding]++;
    }
  } else {
    weights.classifier = loadMatrix('output', vocabSize, dim);
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

  /** out = x · mᵀ (+ bias) for `rows` rows, with the kernel of m's encoding. */
  function project(out: Ptr, x: Ptr, m: Matrix, rows: number, inDim: number, outDim: number, bias: Ptr = 0): void {
    const k = kernels;
    switch (m.encoding) {
      case 'f32':
        if (bias !== 0) k.matmulBias(out, x, m.ptr, bias, rows, inDim, outDim);
        else k.matmul(out, x, m.ptr, rows, inDim, outDim);
        return;
      case 'q8_0':
        k.matmulQ8_0(out, x, m.ptr, rows, inDim, outDim, bias);
        return;
      case 'q4_0':
        k.matmulQ4_0(out, x, m.ptr, rows, inDim, outDim, bias);
        return;
    }
  }

  /**
   * The whole heap as floats, for row copies by offset. Re-made whenever the memory has grown: a view made before a
   * growth ends at the old size, and copyWithin clips silently at a view's end, so a row copied to or from memory
   * allocated since (scratch grown by this forward or by a kernel call inside it) would be left stale. That happened:
   * a paged cache's keys and values, copied from scratch rows allocated past the old end, kept an earlier
   * sequence's rows (session 8; model.test.ts "copies rows into memory grown during the forward").
   */
  const heapFloats = (): Float32Array => {
    if (memory.length * 4 !== heap.memory.buffer.byteLength) memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
    return memory;
  };

  // Keys and values of the batch's rows before they go to their caches (rows of several sequences, or a paged cache).
  let kvScratch = 0, kvScratchRows = 0;
  const ensureKvScratch = (needed: number): void => {
    if (needed <= kvScratchRows) return;
    if (kvScratch) heap.free(kvScratch);
    kvScratchRows = Math.max(needed, 16);
    kvScratch = heap.alloc(2 * kvScratchRows * kvDim * 4);
  };

  // Where the current forward's rows go, set by forward / forwardSequences (fields, not closures: nothing is allocated
  // per call). `single`: every row in one cache at slots writeSlot + i; else row i in caches[cacheOf[i]] at slot
  // writeSlots[i].
  let single: KvCache | null = null;
  let writeSlot = 0;
  let caches: readonly KvCache[] = [];
  let cacheOf: Int32Array = new Int32Array(0);
  let writeSlots: Int32Array = new Int32Array(0);
  const cacheOfRow = (i: number): KvCache => single ?? caches[cacheOf[i]];
  const slotOfRow = (i: number): number => (single ? writeSlot + i : writeSlots[i]);

  function forward(cache: KvCache, batch: ForwardBatch): ForwardOutput {
    single = cache;
    writeSlot = batch.writeSlot;
    checkBatch(batch);
    return run(batch);
  }

  function forwardSequences(batch: SequenceBatch): ForwardOutput {
    for (let i = 0; i < batch.count; i++) {
      if (!(batch.cacheOf[i] >= 0 && batch.cacheOf[i] < batch.caches.length)) {
        throw new RangeError(`forward: row ${i} names cache ${batch.cacheOf[i]}, expected 0..${batch.caches.length - 1}`);
      }
    }
    single = null;
    caches = batch.caches;
    cacheOf = batch.cacheOf;
    writeSlots = batch.writeSlots;
    checkBatch(batch);
    // One contiguous cache written at consecutive slots (a sequence alone): the single-cache path.
    let consecutive = caches.length === 1;
    for (let i = 1; consecutive && i < batch.count; i++) consecutive = writeSlots[i] === writeSlots[0] + i;
    if (consecutive) {
      single = caches[0];
      writeSlot = writeSlots[0];
    }
    return run(batch);
  }

  /**
   * The forward proper, over the rows placed by forward / forwardSequences. A contiguous single cache receives k and v
   * straight from the projections; otherwise they go through scratch rows and are copied to their slots (same bits:
   * a copy).
   */
  function run(batch: Omit<ForwardBatch, 'writeSlot'>): ForwardOutput {
    const n = batch.count;
    ensureRows(n);
    const extraCount = batch.extraStarts ? batch.extraStarts[n] : 0;
    ensureExtras(extraCount);
    const k = kernels;
    const direct = single !== null && single.slotTable === 0;
    if (!direct) ensureKvScratch(n);
    let mem = heapFloats();
    const keyScratch = kvScratch;
    const valueScratch = kvScratch + n * kvDim * 4;

    // Token embeddings into the residual stream; positions and attention records into the heap. Extra slots are
    // given as the cache's slots and passed to the kernel as rows of its region.
    let maxKeys = 0;
    for (let i = 0; i < n; i++) {
      const token = batch.tokens[i];
      const from = weights.tokenEmbedding / 4 + token * dim;
      mem.copyWithin(x / 4 + i * dim, from, from + dim);
      positionsView[i] = batch.positions[i];
      const first = batch.extraStarts ? batch.extraStarts[i] : 0;
      const count = batch.extraStarts ? batch.extraStarts[i + 1] - first : 0;
      const r = i * QUERY_RECORD_INTS;
      const rowCache = cacheOfRow(i);
      recordsView[r + 2] = batch.prefixLengths[i];
      recordsView[r + 3] = extras + first * 4;
      recordsView[r + 4] = count;
      recordsView[r + 5] = rowCache.slotTable;
      maxKeys = Math.max(maxKeys, batch.prefixLengths[i] + count);
      const extraSlots = batch.extraSlots;
      if (extraSlots) {
        if (rowCache.slotTable === 0) for (let j = first; j < first + count; j++) extrasView[j] = extraSlots[j];
        else for (let j = first; j < first + count; j++) extrasView[j] = rowCache.physical(extraSlots[j]);
      }
    }

    for (let l = 0; l < nLayers; l++) {
      const w = weights.layers[l];
      const keys = direct ? single!.keys(l) + writeSlot * kvDim * 4 : keyScratch;
      const values = direct ? single!.values(l) + writeSlot * kvDim * 4 : valueScratch;

      // Attention: q, k, v projections (k and v straight into a contiguous cache's slots), RoPE, attention, output
      // projection.
      k.rmsnorm(xb, x, w.attnNorm, n, dim, config.normEps);
      project(q, xb, w.wq, n, dim, qDim, w.bq);
      project(keys, xb, w.wk, n, dim, kvDim, w.bk);
      project(values, xb, w.wv, n, dim, kvDim, w.bv);
      k.rope(q, n, nHeads, headDim, positions, ropeTable, config.ropeLayout);
      k.rope(keys, n, nKvHeads, headDim, positions, ropeTable, config.ropeLayout);
      if (!direct) {
        mem = heapFloats(); // the projections may have grown the memory (a quantized matmul's scratch)
        for (let i = 0; i < n; i++) {
          const rowCache = cacheOfRow(i);
          const row = rowCache.physical(slotOfRow(i));
          const keyTo = rowCache.keys(l) / 4 + row * kvDim;
          const valueTo = rowCache.values(l) / 4 + row * kvDim;
          mem.copyWithin(keyTo, keyScratch / 4 + i * kvDim, keyScratch / 4 + (i + 1) * kvDim);
          mem.copyWithin(valueTo, valueScratch / 4 + i * kvDim, valueScratch / 4 + (i + 1) * kvDim);
        }
      }
      for (let i = 0; i < n; i++) {
        const rowCache = cacheOfRow(i);
        recordsView[i * QUERY_RECORD_INTS] = rowCache.keys(l);
        recordsView[i * QUERY_RECORD_INTS + 1] = rowCache.values(l);
      }
      k.attention(att, q, records, n, nHeads, nKvHeads, headDim, scale, maxKeys);
      project(xb, att, w.wo, n, qDim, dim);
      k.add(x, x, xb, n * dim);

      // Feed-forward: SwiGLU.
      k.rmsnorm(xb, x, w.ffnNorm, n, dim, config.normEps);
      project(ffnGate, xb, w.w1, n, dim, hiddenDim);
      project(ffnUp, xb, w.w3, n, dim, hiddenDim);
      k.siluMul(ffnGate, ffnGate, ffnUp, n * hiddenDim);
      project(xb, ffnGate, w.w2, n, hiddenDim, dim);
      k.add(x, x, xb, n * dim);
    }

    // Final norm (the drafter's h) and classifier: rows are independent, so the rows that need logits are gathered
    // and multiplied alone (the same bits as in a full multiply, invariant 1).
    k.rmsnorm(hidden, x, weights.norm, n, dim, config.normEps);
    if (batch.logits === 'all') {
      project(logits, hidden, weights.classifier, n, dim, vocabSize);
    } else if (batch.logits === 'last') {
      project(logits, hidden + (n - 1) * dim * 4, weights.classifier, 1, dim, vocabSize);
    } else if (batch.logits === 'rows') {
      const count = batch.logitRowCount ?? 0;
      mem = heapFloats();
      for (let j = 0; j < count; j++) {
        const row = batch.logitRows![j];
        mem.copyWithin(xb / 4 + j * dim, hidden / 4 + row * dim, hidden / 4 + (row + 1) * dim);
      }
      if (count > 0) project(logits, xb, weights.classifier, count, dim, vocabSize);
    }
    return output;
  }

  function checkBatch(batch: Omit<ForwardBatch, 'writeSlot'>): void {
    const n = batch.count;
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`forward: count must be a positive integer, got ${n}`);
    for (let i = 0; i < n; i++) {
      const cache = cacheOfRow(i);
      const slot = slotOfRow(i);
      if (!(slot >= 0 && slot < cache.backed)) {
        throw new RangeError(`forward: row ${i} writes slot ${slot}, outside the cache's ${cache.backed} slots ` +
          `(capacity ${cache.capacity})`);
      }
      checkTokenAndPosition(batch, i, vocabSize, contextLength);
      if (!(batch.prefixLengths[i] >= 0 && batch.prefixLengths[i] <= cache.backed)) {
        throw new RangeError(`forward: prefix length ${batch.prefixLengths[i]} of token ${i} exceeds the cache's ` +
          `${cache.backed} slots`);
      }
    }
    if (batch.extraStarts && batch.extraSlots) {
      const total = batch.extraStarts[n];
      if (batch.extraStarts[0] !== 0 || total > batch.extraSlots.length) {
        throw new RangeError(`forward: extraStarts must run from 0 to at most extraSlots.length (${batch.extraSlots.length}), ` +
          `got ${batch.extraStarts[0]}..${total}`);
      }
      for (let i = 0; i < n; i++) {
        const backed = cacheOfRow(i).backed;
        for (let j = batch.extraStarts[i]; j < batch.extraStarts[i + 1]; j++) {
          const slot = batch.extraSlots[j];
          if (!(slot >= 0 && slot < backed)) {
            throw new RangeError(`forward: extra slot ${slot} (entry ${j}) is outside the cache (0..${backed - 1})`);
          }
        }
      }
    }
    if (batch.logits === 'rows') {
      const count = batch.logitRowCount ?? 0;
      if (!batch.logitRows || !(Number.isInteger(count) && count >= 0 && count <= batch.logitRows.length)) {
        throw new RangeError(`forward: logits "rows" needs logitRows and a logitRowCount within it, got ${count}`);
      }
      for (let j = 0; j < count; j++) {
        if (!(batch.logitRows[j] >= 0 && batch.logitRows[j] < n)) {
          throw new RangeError(`forward: logit row ${batch.logitRows[j]} (entry ${j}) is outside the batch (0..${n - 1})`);
        }
      }
    }
  }

  return {
    config,
    kernels,
    weightBytes,
    matrices,
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
    forwardSequences,
    dispose() {
      for (const ptr of [...owned, ...scratch]) heap.free(ptr);
      if (extras) heap.free(extras);
      if (kvScratch) heap.free(kvScratch);
      owned.length = 0;
      scratch.length = 0;
    },
  };
}
