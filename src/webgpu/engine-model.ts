// The WebGPU model as the engine's steppers see a model (model/model.ts `Model`): the same batch rows, logits rows and
// hidden states, but the forward is asynchronous (`forwardSequencesAsync`), so generate() awaits it instead of
// running it in the batch scheduler's steps synchronously. A forward may hold rows of several sequences (each a
// segment of consecutive rows writing consecutive slots of its own cache): the GPU model keeps one contiguous cache
// per sequence (no paged pool on the GPU yet). The sampler and the verification run on the host from what the forward reads back:
// the requested logits rows (only the last row's when that is all the step asks for), or just their argmax ids where
// the sequence decodes greedily without log-probabilities (one id per row instead of vocabSize floats:
// Model.argmaxRow); every row's hidden state where a drafter on the host reads it, none else. The drafter can also
// run here (createDeviceBeamSearch: webgpu/drafter.ts), drafting from the hidden states the forward left on the GPU.

import type { Kernels } from '../kernels/types.js';
import type { KvCache } from '../model/kv-cache.js';
import type { ForwardBatch, ForwardOutput, Model, SequenceBatch } from '../model/model.js';
import type { Checkpoint } from '../model/checkpoint.js';
import type { WebGpuDevice } from './device.js';
import type { GpuKvCache } from './kv-cache.js';
import { createWebGpuModel, type GpuSegment, type WebGpuModel } from './model.js';
import { argmaxRow } from './async-model.js';
import type { DeviceDrafting } from '../drafter/beam-search.js';
import { createGpuBeamSearch } from './drafter.js';

/** A host-side KvCache over a GPU cache: slot s is row s; the engine only sets `length` and compacts. */
interface HostViewOfGpuCache extends KvCache {
  readonly gpu: GpuKvCache;
}

function wrapCache(gpu: GpuKvCache): HostViewOfGpuCache {
  const notOnHost = (): never => {
    throw new Error('KV cache: this cache lives on the GPU; its rows have no host address');
  };
  return {
    gpu,
    capacity: gpu.capacity,
    get length() {
      return gpu.length;
    },
    set length(value: number) {
      gpu.length = value;
    },
    keys: notOnHost,
    values: notOnHost,
    slotTable: 0,
    physical: (slot) => slot,
    backed: gpu.capacity,
    ensure(slots) {
      if (slots > gpu.capacity) throw new RangeError(`KvCache: ${slots} slots exceed the capacity ${gpu.capacity}`);
    },
    keepSlots: (start, slots, count) => gpu.keepSlots(start, slots, count),
    free: () => gpu.free(),
  };
}

/** Traffic and time of the forwards so far (bytes read back, ms encoding and waiting), for reports. */
export interface GpuForwardTotals {
  forwards: number;
  bytesRead: number;
  encodeMs: number;
  waitMs: number;
}

export interface EngineWebGpuModel extends Model, DeviceDrafting {
  readonly gpu: WebGpuModel;
  readonly totals: GpuForwardTotals;
}

/**
 * `gpu` behind the Model interface. `kernels` are the host's WebAssembly kernels (the drafter runs on them); the
 * synchronous forwards throw, since a GPU's results arrive later.
 */
export function engineModelOfWebGpu(gpu: WebGpuModel, kernels: Kernels): EngineWebGpuModel {
  const vocab = gpu.config.vocabSize;
  const output: ForwardOutput = { logits: new Float32Array(0), hidden: new Float32Array(0) };
  // logitsRow(j): the j-th requested row, which the readback holds at batch row rowOfLogits[j].
  let rowOfLogits = new Int32Array(64);
  // Whether the latest forward read back argmax ids only, and those ids (by readback row).
  let idsOnly = false;
  let argmax: Int32Array = new Int32Array(0);
  const totals: GpuForwardTotals = { forwards: 0, bytesRead: 0, encodeMs: 0, waitMs: 0 };
  // The drafter runs on the host kernels and reads the embedding at its heap address: a copy in their heap.
  const embeddingPtr = kernels.heap.alloc(gpu.tokenEmbedding.length * 4);
  const tokenEmbedding = kernels.heap.f32(embeddingPtr, gpu.tokenEmbedding.length);
  tokenEmbedding.set(gpu.tokenEmbedding);
  const synchronous = (): never => {
    throw new Error('WebGPU model: forwards are asynchronous; use forwardSequencesAsync');
  };
  const rows: ForwardBatch = { count: 0, tokens: new Int32Array(0), positions: new Int32Array(0), writeSlot: 0,
    prefixLengths: new Int32Array(0), logits: 'none' };
  // The forward's segments (one per sequence), reused.
  const segments: GpuSegment[] = [];
  const segmentPool: GpuSegment[] = [];
  const seen = new Set<GpuKvCache>();

  return {
    gpu,
    totals,
    config: gpu.config,
    kernels,
    weightBytes: gpu.weightBytes,
    matrices: { f32: gpu.matrices.f32 ?? 0, q8_0: gpu.matrices.q8_0 ?? 0, q4_0: gpu.matrices.q4_0 ?? 0 },
    contextLength: gpu.contextLength,
    tokenEmbedding,
    createCache: (capacity) => wrapCache(gpu.createCache(capacity)),
    output,
    logitsRow(row) {
      if (idsOnly) {
        throw new RangeError(`logitsRow: the latest forward read back argmax ids only (logitsAs 'argmax'), not row ` +
          `${row}'s logits`);
      }
      const at = rowOfLogits[row];
      if (!(row >= 0 && at >= 0 && (at + 1) * vocab <= output.logits.length)) {
        throw new RangeError(`logitsRow: row ${row} was not read back by the latest forward`);
      }
      return output.logits.subarray(at * vocab, (at + 1) * vocab);
    },
    argmaxRow(row) {
      const at = rowOfLogits[row];
      // In a batch where some sequence reads the values, every row's values came back: the argmax is taken here, by
      // the kernel's rule (the first largest; NaN never).
      const fromValues = !idsOnly && row >= 0 && at >= 0 && (at + 1) * vocab <= output.logits.length;
      if (!fromValues && (!idsOnly || !(row >= 0 && at >= 0 && at < argmax.length))) {
        throw new RangeError(`argmaxRow: row ${row}'s argmax was not read back by the latest forward`);
      }
      const id = fromValues ? firstLargest(output.logits, at * vocab, vocab) : argmax[at];
      // The kernel's "no candidate" (every logit −Infinity or NaN) as the sampler reports it.
      if (!(id >= 0 && id < vocab)) {
        throw new RangeError('logits: every logit is -Infinity or NaN, there is no token to pick');
      }
      return id;
    },
    forward: synchronous,
    forwardSequences: synchronous,
    createDeviceBeamSearch: (weights, options) => createGpuBeamSearch({ device: gpu.device, pipelines: gpu.pipelines,
      tokenEmbedding: gpu.tokenEmbeddingBuffer, hiddenStates: () => gpu.hiddenStates() }, weights, options),
    async forwardSequencesAsync(batch: SequenceBatch): Promise<ForwardOutput> {
      const n = batch.count;
      // Segments: runs of rows of one cache writing consecutive slots. Each sequence brings one.
      segments.length = 0;
      seen.clear();
      for (let i = 0; i < n; i++) {
        const view = batch.caches[batch.cacheOf[i]] as HostViewOfGpuCache | undefined;
        const cache = view?.gpu;
        if (cache === undefined) throw new RangeError('WebGPU model: the cache was not made by this model');
        const last = segments[segments.length - 1];
        if (last !== undefined && last.cache === cache) {
          if (batch.writeSlots[i] !== last.writeSlot + last.count) {
            throw new RangeError('WebGPU model: a sequence\'s rows write consecutive slots');
          }
          last.count++;
          continue;
        }
        if (seen.has(cache)) throw new RangeError('WebGPU model: a sequence\'s rows must be consecutive in the batch');
        seen.add(cache);
        const segment = segmentPool[segments.length] ??= { cache, first: 0, count: 0, writeSlot: 0 };
        segment.cache = cache;
        segment.first = i;
        segment.count = 1;
        segment.writeSlot = batch.writeSlots[i];
        segments.push(segment);
      }
      // The GPU forward computes the last row's logits or every row's: only the last when that is all the batch asks
      // for (a prefill chunk, a plain step), else every row's (then logitsRow maps the request to its row).
      const wanted = batch.logits === 'rows' ? batch.logitRowCount ?? 0 : batch.logits === 'none' ? 0 : n;
      const lastOnly = batch.logits === 'last' ||
        (batch.logits === 'rows' && wanted === 1 && batch.logitRows![0] === n - 1);
      if (rowOfLogits.length < n) rowOfLogits = new Int32Array(Math.max(n, 2 * rowOfLogits.length));
      if (lastOnly) rowOfLogits[0] = 0;
      else if (batch.logits === 'rows') for (let j = 0; j < wanted; j++) rowOfLogits[j] = batch.logitRows![j];
      else for (let j = 0; j < wanted; j++) rowOfLogits[j] = j;
      rows.count = n;
      rows.tokens = batch.tokens;
      rows.positions = batch.positions;
      rows.prefixLengths = batch.prefixLengths;
      rows.extraStarts = batch.extraStarts;
      rows.extraSlots = batch.extraSlots;
      rows.logits = wanted === 0 ? 'none' : lastOnly ? 'last' : 'all';
      // Pure greedy decoding reads one id per row instead of vocabSize floats, and a sequence without a drafter
      // no hidden states (StepBatch.declareReads).
      idsOnly = batch.logitsAs === 'argmax';
      const result = await gpu.forwardSegments(segments, rows, { logits: idsOnly ? 'argmax' : 'values',
        hidden: batch.hiddenNeeded === false ? 'none' : 'all' });
      output.logits = result.logits;
      output.hidden = result.hidden;
      argmax = result.argmax;
      totals.forwards++;
      totals.bytesRead += result.stats.bytesRead;
      totals.encodeMs += result.stats.encodeMs;
      totals.waitMs += result.stats.waitMs;
      return output;
    },
    dispose() {
      gpu.dispose();
      kernels.heap.free(embeddingPtr);
    },
  };
}

/** argmaxRow (the kernel's rule: the first largest, NaN never), or −1 when every value is −Infinity or NaN. */
function firstLargest(values: Float32Array, start: number, n: number): number {
  const id = argmaxRow(values, start, n);
  return values[start + id] > -Infinity ? id : -1;
}

/** A WebGPU model opened for the engine: loadModel's result on the webgpu backend. */
export interface OpenedWebGpuModel {
  model: EngineWebGpuModel;
  /** "vendor architecture device", e.g. "nvidia … (NVIDIA H200)" or "google swiftshader". */
  adapterName: string;
  close(): void;
}

/** The checkpoint's weights on `device`, behind the Model interface; closing releases the model and the device. */
export function openEngineModelOnDevice(device: WebGpuDevice, checkpoint: Checkpoint, kernels: Kernels,
  options: { contextLength?: number; weights?: 'native' | 'f32' }): OpenedWebGpuModel {
  try {
    const gpu = createWebGpuModel(device.device, checkpoint, { contextLength: options.contextLength,
      weights: options.weights === 'f32' ? 'f32' : 'native' });
    const model = engineModelOfWebGpu(gpu, kernels);
    return {
      model,
      adapterName: device.adapterName,
      close() {
        model.dispose();
        device.destroy();
      },
    };
  } catch (error) {
    device.destroy();
    throw error;
  }
}
