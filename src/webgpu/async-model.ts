// The model as the engine's decode loop will see it once forwards may complete later (a GPU's results arrive by an
// asynchronous map): prepare a batch → `await forward(cache, batch, read)` → complete the step with what came back.
// Both backends fit it: the WebGPU model (model.ts in this folder) and the WebAssembly model wrapped by
// asyncModelFromWasm, whose forward has already run when its promise is made, so the WebAssembly path only pays one
// resolved promise per step.

import type { LlamaConfig } from '../model/config.js';
import type { KvCache } from '../model/kv-cache.js';
import type { ForwardBatch, ForwardOutput, Model } from '../model/model.js';

/** The part of a KV cache the engine touches (model/kv-cache.ts's KvCache and webgpu's GpuKvCache both have it). */
export interface SequenceCache {
  readonly capacity: number;
  /** Slots 0 .. length-1 hold committed tokens (the engine sets it after a forward commits). */
  length: number;
  /** Compaction after verification (spec §5.4): slots[j] moves to start + j, then length = start + count. */
  keepSlots(start: number, slots: ArrayLike<number>, count: number): void;
  free(): void;
}

/**
 * What a forward brings back to the host. Reading less is what makes a GPU step cheap: a greedy verification needs
 * only the argmax of each row (4 bytes instead of 4·vocab) and the hidden state of the row the drafter continues
 * from.
 */
export interface ReadbackRequest {
  /** The logits rows the batch asks for (`batch.logits`): their values (default), their argmax ids only, or both. */
  logits?: 'values' | 'argmax' | 'both';
  /**
   * Final-norm hidden states: every row (default; ForwardOutput.hidden as model.ts gives it), none, or the listed
   * rows, packed in list order (row i of `hidden` is batch row rows[i]).
   */
  hidden?: 'all' | 'none' | ArrayLike<number>;
}

/** Time and traffic of one forward (for the benchmark and the speculation controller's costs). */
export interface ForwardStats {
  /** Bytes copied from the device to the host. */
  bytesRead: number;
  /** Host time to write the batch and encode and submit the commands, in ms. */
  encodeMs: number;
  /** From submission until the readback was mapped (the GPU's work plus the map), in ms. */
  waitMs: number;
}

export interface AsyncForwardOutput extends ForwardOutput {
  /**
   * Argmax id of each logits row when requested (`logits: 'argmax' | 'both'`): with `batch.logits` 'last' one id
   * for the last row, with 'all' one per row. Empty otherwise.
   */
  argmax: Int32Array;
  stats: ForwardStats;
}

/**
 * The model interface the engine calls, for either backend. Same batch semantics as model.ts's `forward` (tokens,
 * positions, writeSlot, prefixLengths, extraStarts / extraSlots, logits 'all' | 'last' | 'none'); the views it
 * returns stay valid until the next forward. One forward at a time per model: await each before the next.
 */
export interface AsyncModel<Cache extends SequenceCache = SequenceCache> {
  readonly backend: 'wasm' | 'webgpu';
  readonly config: LlamaConfig;
  /** Largest position the model accepts + 1. */
  readonly contextLength: number;
  /** Bytes of weights one single-token forward reads, in their device encoding (for bandwidth reports). */
  readonly weightBytes: number;
  /** The token embedding table ([vocabSize, dim] f32) on the host, for the drafter. */
  readonly tokenEmbedding: Float32Array;
  createCache(capacity: number): Cache;
  forward(cache: Cache, batch: ForwardBatch, read?: ReadbackRequest): Promise<AsyncForwardOutput>;
  dispose(): void;
}

/** First index of the largest value (what greedy decoding takes; NaN never wins). */
export function argmaxRow(values: Float32Array, start: number, length: number): number {
  let best = 0;
  let bestValue = -Infinity;
  let found = false;
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    if (v > bestValue || (!found && v === bestValue)) {
      bestValue = v;
      best = i;
      found = true;
    }
  }
  return best;
}

/** The WebAssembly model behind the AsyncModel interface: the forward runs synchronously, the readback is a view. */
export function asyncModelFromWasm(model: Model): AsyncModel<KvCache> {
  const noStats: ForwardStats = { bytesRead: 0, encodeMs: 0, waitMs: 0 };
  let argmax = new Int32Array(16);
  return {
    backend: 'wasm',
    config: model.config,
    contextLength: model.contextLength,
    weightBytes: model.weightBytes,
    tokenEmbedding: model.tokenEmbedding,
    createCache: (capacity) => model.createCache(capacity),
    forward(cache, batch, read = {}) {
      const started = performance.now();
      const output = model.forward(cache, batch);
      const rows = batch.logits === 'all' ? batch.count : batch.logits === 'last' ? 1 : 0;
      const wantIds = read.logits === 'argmax' || read.logits === 'both';
      if (wantIds && argmax.length < rows) argmax = new Int32Array(rows);
      const vocab = model.config.vocabSize;
      if (wantIds) for (let r = 0; r < rows; r++) argmax[r] = argmaxRow(output.logits, r * vocab, vocab);
      return Promise.resolve({ logits: output.logits, hidden: output.hidden, argmax: argmax.subarray(0, wantIds ? rows : 0),
        stats: { ...noStats, encodeMs: performance.now() - started } });
    },
    dispose: () => model.dispose(),
  };
}
