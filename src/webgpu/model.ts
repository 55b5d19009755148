/// <reference types="@webgpu/types" />
// The Llama forward pass on WebGPU, with model.ts's batch semantics (ForwardBatch: explicit positions, per-token key
// sets of cache prefix + extra slots, logits 'all' | 'last' | 'none'). Weights and KV caches live on the GPU; a
// forward writes the batch and the kernel sizes (two buffer writes), records every kernel into one compute pass,
// submits once and maps back only what was asked for (logits rows, or just their argmax ids, and the chosen hidden
// rows). The layer loop below is model.ts's, kernel for kernel; the residual adds happen in the output projections'
// epilogue (out = out + x·wᵀ, the same f32 addition).

import type { Checkpoint } from '../model/checkpoint.js';
import { resolveContextLength, type LlamaConfig } from '../model/config.js';
import type { ForwardBatch } from '../model/model.js';
import { fillRopeTable } from '../model/rope.js';
import { BATCH_FIELDS } from './attention.js';
import type { AsyncForwardOutput, AsyncModel, ReadbackRequest } from './async-model.js';
import { checkBatch } from './batch.js';
import { createGpuKvCache, type GpuKvCache } from './kv-cache.js';
import { CPU_KERNEL_SHAPE, GPU_KERNEL_SHAPE, MATMUL_ACCUMULATE, MATMUL_BIAS, matmulColumns, matmulVectorized,
  type GpuMatrixEncoding, type KernelShape } from './matmul.js';
import { bytesOf, createParamSlots, createPipelines, uploadBuffer, workgroupGrid, type Pipelines } from './pipelines.js';
import { uploadMatrix, uploadVector, type GpuMatrix, type WeightEncodingChoice } from './weights.js';

export interface WebGpuModelOptions {
  /** Positions the model will be asked about (default: the checkpoint's maximum, capped at 4096). */
  contextLength?: number;
  /** How matrices are held on the GPU (weights.ts; default 'native'). */
  weights?: WeightEncodingChoice;
  /** Rows the scratch buffers are first sized for (they grow when a larger batch arrives; default 64). */
  rows?: number;
  /** Workgroup shape of the kernels (matmul.ts); default: the CPU shape on fallback (CPU) adapters, else the GPU one. */
  kernelShape?: KernelShape;
}

/** The kernel shape for a device: CPU_KERNEL_SHAPE on a software adapter (SwiftShader), else GPU_KERNEL_SHAPE. */
export function defaultKernelShape(device: GPUDevice): KernelShape {
  const info = device.adapterInfo as GPUAdapterInfo | undefined;
  const software = info !== undefined && (info.isFallbackAdapter || info.architecture === 'swiftshader');
  return software ? CPU_KERNEL_SHAPE : GPU_KERNEL_SHAPE;
}

export interface WebGpuModel extends AsyncModel<GpuKvCache> {
  readonly backend: 'webgpu';
  readonly device: GPUDevice;
  /** Projection matrices (and the classifier) by GPU encoding. */
  readonly matrices: Readonly<Record<GpuMatrixEncoding, number>>;
  readonly kernelShape: KernelShape;
  /** The compiled kernels (a drafter on the same device shares them). */
  readonly pipelines: Pipelines;
  /** The token embedding table on the GPU, [vocabSize, dim] f32. */
  readonly tokenEmbeddingBuffer: GPUBuffer;
  /**
   * The latest forward's final-norm hidden states on the GPU ([rows, dim] f32, row i = batch row i), whatever was
   * read back; valid until the next forward (the buffer is replaced when a larger batch arrives).
   */
  hiddenStates(): GPUBuffer;
  /**
   * One forward over the rows of several sequences: segment j is rows first .. first + count − 1 of `batch`, writing
   * slots writeSlot .. writeSlot + count − 1 of its own cache and attending only that cache (prefix lengths and extra
   * slots are that cache's). Weights are read once for all rows; the kernels are batch-invariant, so each row gets
   * the bits it gets alone. `batch.writeSlot` is unused; logits and readback as in `forward`.
   */
  forwardSegments(segments: readonly GpuSegment[], batch: ForwardBatch, read?: ReadbackRequest): Promise<AsyncForwardOutput>;
}

/** Rows of one sequence in a forward over several (WebGpuModel.forwardSegments). */
export interface GpuSegment {
  cache: GpuKvCache;
  first: number;
  count: number;
  writeSlot: number;
}

interface LayerWeights {
  attnNorm: GPUBuffer; ffnNorm: GPUBuffer;
  wq: GpuMatrix; wk: GpuMatrix; wv: GpuMatrix; wo: GpuMatrix; w1: GpuMatrix; w2: GpuMatrix; w3: GpuMatrix;
  bq: GPUBuffer; bk: GPUBuffer; bv: GPUBuffer;
}

// Uniform slots, one per distinct set of sizes (shared by the layers, whose sizes are the same). The kernels that
// touch a cache (k and v projections, k rotation, attention) have one set per segment, in their own slots.
const SLOT = { embed: 0, norm: 1, q: 2, ropeQ: 3, o: 4, up: 5, swiglu: 6, down: 7, classifier: 8, argmax: 9 } as const;
const SLOT_COUNT = 10;
const SEGMENT_SLOT = { k: 0, v: 1, ropeK: 2, attention: 3 } as const;
const SLOTS_PER_SEGMENT = 4;

/**
 * Bind groups that name a cache's buffers for one segment position of a forward, per layer: k and v projections,
 * k rotation, attention.
 */
interface CacheBindings { version: number; k: GPUBindGroup[]; v: GPUBindGroup[]; ropeK: GPUBindGroup[]; attention: GPUBindGroup[] }

export function createWebGpuModel(device: GPUDevice, checkpoint: Checkpoint, options: WebGpuModelOptions = {}): WebGpuModel {
  const config: LlamaConfig = checkpoint.config;
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const contextLength = resolveContextLength(config, options.contextLength);
  const choice = options.weights ?? 'native';
  const kernelShape = options.kernelShape ?? defaultKernelShape(device);
  const pipelines = createPipelines(device, kernelShape);
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const owned: GPUBuffer[] = [];
  const own = (buffer: GPUBuffer): GPUBuffer => (owned.push(buffer), buffer);
  const matrices: Record<GpuMatrixEncoding, number> = { f32: 0, f16: 0, bf16: 0, q8_0: 0, q4_0: 0 };
  let weightBytes = 0;
  const matrix = (name: string, rows: number, columns: number): GpuMatrix => {
    const m = uploadMatrix(device, checkpoint, name, rows, columns, choice);
    own(m.buffer);
    matrices[m.encoding]++;
    weightBytes += m.bytes;
    return m;
  };
  const vector = (name: string, length: number): GPUBuffer => {
    weightBytes += length * 4;
    return own(uploadVector(device, checkpoint, name, [length]));
  };
  // Bound where a kernel has no bias (WebGPU bindings cannot be left empty).
  const noBias = own(uploadBuffer(device, new Uint8Array(16), 'no bias'));

  // The embedding table stays f32 (rows are copied, not multiplied; one row a token is not weight traffic).
  const tokenEmbedding = checkpoint.tensors.read('token_embd');
  if (tokenEmbedding.length !== vocabSize * dim) {
    throw new RangeError(`${checkpoint.tensors.origin}: tensor "token_embd": expected ${vocabSize * dim} values, got ${tokenEmbedding.length}`);
  }
  const embedding = own(uploadBuffer(device, bytesOf(tokenEmbedding), 'token_embd'));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < nLayers; l++) {
    const p = `layers.${l}.`;
    layers.push({
      attnNorm: vector(p + 'attn_norm', dim), ffnNorm: vector(p + 'ffn_norm', dim),
      wq: matrix(p + 'wq', qDim, dim), wk: matrix(p + 'wk', kvDim, dim), wv: matrix(p + 'wv', kvDim, dim),
      wo: matrix(p + 'wo', dim, qDim),
      w1: matrix(p + 'w1', hiddenDim, dim), w2: matrix(p + 'w2', dim, hiddenDim), w3: matrix(p + 'w3', hiddenDim, dim),
      bq: config.qkvBias ? vector(p + 'bq', qDim) : noBias, bk: config.qkvBias ? vector(p + 'bk', kvDim) : noBias,
      bv: config.qkvBias ? vector(p + 'bv', kvDim) : noBias,
    });
  }
  const finalNorm = vector('norm', dim);
  let classifier: GpuMatrix;
  if (config.tiedClassifier) {
    // In f32 the tied classifier is the embedding buffer itself; in any other encoding its own copy.
    const encoded = uploadMatrix(device, checkpoint, 'token_embd', vocabSize, dim, choice);
    if (encoded.encoding === 'f32') {
      encoded.buffer.destroy();
      classifier = { ...encoded, buffer: embedding };
    } else {
      classifier = { ...encoded, buffer: own(encoded.buffer) };
    }
    matrices[classifier.encoding]++;
    weightBytes += classifier.bytes;
  } else {
    classifier = matrix('output', vocabSize, dim);
  }
  const ropeValues = new Float32Array(contextLength * headDim);
  fillRopeTable(ropeValues, contextLength, headDim, config.ropeTheta, config.ropeScaling);
  const ropeTable = own(uploadBuffer(device, bytesOf(ropeValues), 'rope table'));

  const params = createParamSlots(device, SLOT_COUNT, 'kernel sizes');
  owned.push(params.buffer);
  // Per-segment sizes, grown (by remaking, with every cache's bind groups) when a forward has more segments.
  let segmentParams = createParamSlots(device, 4 * SLOTS_PER_SEGMENT, 'segment sizes');
  let segmentCapacity = 4;
  let segmentVersion = 0;
  const segmentSlot = (segment: number, kind: number): number => segment * SLOTS_PER_SEGMENT + kind;

  // Scratch for `rows` tokens, grown (never shrunk); the bind groups that name scratch buffers are rebuilt with it.
  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  let rows = 0;
  let extraCapacity = 0;
  let scoreCapacity = 0;
  let version = 0;
  let scratch: GPUBuffer[] = [];
  let x!: GPUBuffer, xb!: GPUBuffer, q!: GPUBuffer, att!: GPUBuffer, gate!: GPUBuffer, up!: GPUBuffer,
    hidden!: GPUBuffer, logits!: GPUBuffer, ids!: GPUBuffer, batchBuffer!: GPUBuffer, scores!: GPUBuffer;
  let batchHost = new Uint32Array(0);
  type Static = { embed: GPUBindGroup; finalNorm: GPUBindGroup; classifier: GPUBindGroup; argmax: GPUBindGroup;
    layers: { attnNorm: GPUBindGroup; q: GPUBindGroup; ropeQ: GPUBindGroup; o: GPUBindGroup; ffnNorm: GPUBindGroup;
      w1: GPUBindGroup; w3: GPUBindGroup; swiglu: GPUBindGroup; w2: GPUBindGroup }[] };
  let groups!: Static;

  const bind = (pipeline: GPUComputePipeline, label: string, resources: (GPUBuffer | GPUBufferBinding)[]): GPUBindGroup =>
    device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((resource, binding) => ({ binding, resource: 'buffer' in resource ? resource : { buffer: resource } })) });
  const matmulPipeline = (m: GpuMatrix): GPUComputePipeline => pipelines.matmul(m.encoding, matmulVectorized(m.encoding, m.columns));

  const allocate = (neededRows: number, neededExtras: number, neededScores: number): void => {
    if (neededRows <= rows && neededExtras <= extraCapacity && neededScores <= scoreCapacity) return;
    for (const buffer of scratch) buffer.destroy();
    rows = Math.max(neededRows, rows, options.rows ?? 64);
    extraCapacity = Math.max(neededExtras, extraCapacity, 4 * rows);
    scoreCapacity = Math.max(neededScores, scoreCapacity, rows * nHeads * 256);
    const make = (label: string, floats: number): GPUBuffer => device.createBuffer({ label, size: Math.max(16, floats * 4), usage: STORAGE });
    x = make('x', rows * dim);
    xb = make('xb', rows * Math.max(dim, qDim));
    q = make('q', rows * qDim);
    att = make('att', rows * qDim);
    gate = make('ffn gate', rows * hiddenDim);
    up = make('ffn up', rows * hiddenDim);
    hidden = make('hidden', rows * dim);
    logits = make('logits', rows * vocabSize);
    ids = make('argmax ids', rows);
    batchHost = new Uint32Array(5 * rows + extraCapacity);
    batchBuffer = make('batch', batchHost.length);
    scores = make('attention scores', scoreCapacity);
    scratch = [x, xb, q, att, gate, up, hidden, logits, ids, batchBuffer, scores];
    version++;
    const norm = pipelines.kernel('rmsnorm');
    const rope = pipelines.kernel('rope');
    const swiglu = pipelines.kernel('swiglu');
    groups = {
      embed: bind(pipelines.kernel('embed'), 'embed', [params.binding(SLOT.embed), batchBuffer, embedding, x]),
      finalNorm: bind(norm, 'final norm', [params.binding(SLOT.norm), x, finalNorm, hidden]),
      classifier: bind(matmulPipeline(classifier), 'classifier', [params.binding(SLOT.classifier), hidden, classifier.buffer, noBias, logits]),
      argmax: bind(pipelines.kernel('argmax'), 'argmax', [params.binding(SLOT.argmax), logits, ids]),
      layers: layers.map((w, l) => ({
        attnNorm: bind(norm, `attn norm ${l}`, [params.binding(SLOT.norm), x, w.attnNorm, xb]),
        q: bind(matmulPipeline(w.wq), `wq ${l}`, [params.binding(SLOT.q), xb, w.wq.buffer, w.bq, q]),
        ropeQ: bind(rope, `rope q ${l}`, [params.binding(SLOT.ropeQ), batchBuffer, ropeTable, q]),
        o: bind(matmulPipeline(w.wo), `wo ${l}`, [params.binding(SLOT.o), att, w.wo.buffer, noBias, x]),
        ffnNorm: bind(norm, `ffn norm ${l}`, [params.binding(SLOT.norm), x, w.ffnNorm, xb]),
        w1: bind(matmulPipeline(w.w1), `w1 ${l}`, [params.binding(SLOT.up), xb, w.w1.buffer, noBias, gate]),
        w3: bind(matmulPipeline(w.w3), `w3 ${l}`, [params.binding(SLOT.up), xb, w.w3.buffer, noBias, up]),
        swiglu: bind(swiglu, `swiglu ${l}`, [params.binding(SLOT.swiglu), up, gate]),
        w2: bind(matmulPipeline(w.w2), `w2 ${l}`, [params.binding(SLOT.down), gate, w.w2.buffer, noBias, x]),
      })),
    };
  };
  allocate(options.rows ?? 64, 0, 0);

  // By cache, then by the segment position it takes in a forward (its uniform slots).
  const cacheBindings = new WeakMap<GpuKvCache, CacheBindings[]>();
  const bindingsFor = (cache: GpuKvCache, segment: number): CacheBindings => {
    let byPosition = cacheBindings.get(cache);
    if (byPosition === undefined) {
      byPosition = [];
      cacheBindings.set(cache, byPosition);
    }
    let found = byPosition[segment];
    const current = version * 65536 + segmentVersion;
    if (found === undefined || found.version !== current) {
      const rope = pipelines.kernel('rope');
      const attention = pipelines.kernel('attention');
      const slot = (kind: number): GPUBufferBinding => segmentParams.binding(segmentSlot(segment, kind));
      found = {
        version: current,
        k: layers.map((w, l) => bind(matmulPipeline(w.wk), `wk ${l}`, [slot(SEGMENT_SLOT.k), xb, w.wk.buffer, w.bk, cache.layers[l]])),
        v: layers.map((w, l) => bind(matmulPipeline(w.wv), `wv ${l}`, [slot(SEGMENT_SLOT.v), xb, w.wv.buffer, w.bv, cache.layers[l]])),
        ropeK: layers.map((_, l) => bind(rope, `rope k ${l}`, [slot(SEGMENT_SLOT.ropeK), batchBuffer, ropeTable, cache.layers[l]])),
        attention: layers.map((_, l) => bind(attention, `attention ${l}`,
          [slot(SEGMENT_SLOT.attention), q, cache.layers[l], batchBuffer, scores, att])),
      };
      byPosition[segment] = found;
    }
    return found;
  };

  // Host side of the readback: one staging buffer, grown; views handed out until the next forward.
  let staging: GPUBuffer | undefined;
  let stagingBytes = 0;
  let hostLogits = new Float32Array(0);
  let hostHidden = new Float32Array(0);
  let hostIds = new Int32Array(0);

  /** Sets a matmul slot (of `slots`: the forward's or the segments'); returns its workgroup grid. */
  const matmulSizes = (slot: number, count: number, inDim: number, outDim: number, xOffset: number, outOffset: number,
    flags: number, slots = params): [number, number] => {
    const grid = workgroupGrid(Math.ceil(outDim / matmulColumns(kernelShape)), maxGroups);
    slots.u32(slot).set([count, inDim, outDim, xOffset, outOffset, flags, grid[0]], 0);
    return grid;
  };
  const segmentBindings: CacheBindings[] = [];
  // Each segment's grids, reused across forwards.
  type SegmentGrids = { k: [number, number]; v: [number, number]; ropeK: [number, number]; attention: [number, number] };
  const segmentGrids: SegmentGrids[] = [];
  // forward()'s one segment, reused.
  const single: GpuSegment[] = [];
  let segmentStarts = new Int32Array(65);
  // A segment's rows as a batch of their own, for validation against its cache.
  const segmentView: ForwardBatch = { count: 0, tokens: new Int32Array(0), positions: new Int32Array(0), writeSlot: 0,
    prefixLengths: new Int32Array(0), logits: 'none' };
  const elementGrid = (elements: number): [number, number] => workgroupGrid(Math.ceil(elements / kernelShape.workgroup), maxGroups);

  function forward(cache: GpuKvCache, batch: ForwardBatch, read: ReadbackRequest = {}): Promise<AsyncForwardOutput> {
    const segment = single[0] ??= { cache, first: 0, count: 0, writeSlot: 0 };
    segment.cache = cache;
    segment.count = batch.count;
    segment.writeSlot = batch.writeSlot;
    single.length = 1;
    return forwardSegments(single, batch, read);
  }

  async function forwardSegments(segments: readonly GpuSegment[], batch: ForwardBatch, read: ReadbackRequest = {}):
    Promise<AsyncForwardOutput> {
    const started = performance.now();
    const n = batch.count;
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`forward: count must be a positive integer, got ${n}`);
    if (segments.length === 0) throw new RangeError('forward: no segment');
    let covered = 0;
    for (const [j, segment] of segments.entries()) {
      const { cache } = segment;
      if (cache.freed) throw new Error(`forward: the cache of segment ${j} has been freed`);
      if (cache.nLayers !== nLayers || cache.kvDim !== kvDim) {
        throw new RangeError(`forward: the cache was made for ${cache.nLayers} layers of ${cache.kvDim} KV values, ` +
          `this model has ${nLayers} of ${kvDim}`);
      }
      if (segment.first !== covered || !(Number.isInteger(segment.count) && segment.count > 0)) {
        throw new RangeError(`forward: segment ${j} covers rows ${segment.first}..${segment.first + segment.count - 1}, ` +
          `expected consecutive non-empty segments from row ${covered}`);
      }
      covered += segment.count;
      if (covered > n) throw new RangeError(`forward: the segments cover ${covered} rows, the batch has ${n}`);
      // The segment's rows against its own cache (the extra slots they list are that cache's).
      const first = segment.first;
      const extraBase = batch.extraStarts ? batch.extraStarts[first] : 0;
      segmentView.count = segment.count;
      segmentView.tokens = batch.tokens.subarray(first, first + segment.count);
      segmentView.positions = batch.positions.subarray(first, first + segment.count);
      segmentView.prefixLengths = batch.prefixLengths.subarray(first, first + segment.count);
      segmentView.writeSlot = segment.writeSlot;
      if (batch.extraStarts && batch.extraSlots) {
        // The segment's extra starts from 0, in a buffer kept across forwards.
        if (segmentStarts.length < segment.count + 1) segmentStarts = new Int32Array(2 * (segment.count + 1));
        for (let i = 0; i <= segment.count; i++) segmentStarts[i] = batch.extraStarts[first + i] - extraBase;
        segmentView.extraStarts = segmentStarts;
        segmentView.extraSlots = batch.extraSlots.subarray(extraBase, extraBase + segmentStarts[segment.count]);
      } else {
        segmentView.extraStarts = undefined;
        segmentView.extraSlots = undefined;
      }
      checkBatch(cache.capacity, vocabSize, contextLength, segmentView);
    }
    if (covered !== n) throw new RangeError(`forward: the segments cover ${covered} rows, the batch has ${n}`);
    const extraCount = batch.extraStarts ? batch.extraStarts[n] : 0;
    let maxKeys = 1;
    for (let i = 0; i < n; i++) {
      const extras = batch.extraStarts ? batch.extraStarts[i + 1] - batch.extraStarts[i] : 0;
      maxKeys = Math.max(maxKeys, batch.prefixLengths[i] + extras);
    }
    allocate(n, extraCount, n * nHeads * maxKeys);
    if (segments.length > segmentCapacity) {
      segmentParams.buffer.destroy();
      segmentCapacity = Math.max(segments.length, 2 * segmentCapacity);
      segmentParams = createParamSlots(device, segmentCapacity * SLOTS_PER_SEGMENT, 'segment sizes');
      segmentVersion++;
    }

    // The batch: tokens, positions, prefix lengths, extra starts and counts (stride `rows`), then the extra slots.
    const stride = rows;
    for (let i = 0; i < n; i++) {
      batchHost[BATCH_FIELDS.tokens * stride + i] = batch.tokens[i];
      batchHost[BATCH_FIELDS.positions * stride + i] = batch.positions[i];
      batchHost[BATCH_FIELDS.prefix * stride + i] = batch.prefixLengths[i];
      const first = batch.extraStarts ? batch.extraStarts[i] : 0;
      batchHost[BATCH_FIELDS.extraStart * stride + i] = first;
      batchHost[BATCH_FIELDS.extraCount * stride + i] = batch.extraStarts ? batch.extraStarts[i + 1] - first : 0;
    }
    if (batch.extraSlots) batchHost.set(batch.extraSlots.subarray(0, extraCount), BATCH_FIELDS.extraSlots * stride);
    device.queue.writeBuffer(batchBuffer, 0, batchHost.buffer, 0, (BATCH_FIELDS.extraSlots * stride + extraCount) * 4);

    const logitRows = batch.logits === 'all' ? n : batch.logits === 'last' ? 1 : 0;
    const wantValues = logitRows > 0 && read.logits !== 'argmax';
    const wantIds = logitRows > 0 && (read.logits === 'argmax' || read.logits === 'both');
    const hiddenRows: ArrayLike<number> = read.hidden === 'none' ? [] : read.hidden === undefined || read.hidden === 'all'
      ? { length: n } as ArrayLike<number> : read.hidden;
    const hiddenAll = read.hidden === undefined || read.hidden === 'all';
    for (let i = 0; i < hiddenRows.length && !hiddenAll; i++) {
      const row = hiddenRows[i];
      if (!(Number.isInteger(row) && row >= 0 && row < n)) {
        throw new RangeError(`forward: read.hidden[${i}] is ${row}, expected a row in 0..${n - 1}`);
      }
    }

    // Kernel sizes.
    const embedGrid = elementGrid(n * dim);
    params.u32(SLOT.embed).set([n, dim, embedGrid[0]]);
    params.u32(SLOT.norm).set([n, dim]);
    params.f32(SLOT.norm)[2] = config.normEps;
    const qkvFlags = config.qkvBias ? MATMUL_BIAS : 0;
    const qGrid = matmulSizes(SLOT.q, n, dim, qDim, 0, 0, qkvFlags);
    const layout = config.ropeLayout === 'pairs' ? 0 : 1;
    const ropeQGrid = elementGrid(n * nHeads * headDim / 2);
    params.u32(SLOT.ropeQ).set([n, nHeads, headDim, layout, 0, ropeQGrid[0], BATCH_FIELDS.positions * stride]);
    // Per segment: k and v of its rows into its cache's slots, their rotation there, its rows' attention over it.
    const cacheGroups = segmentBindings;
    cacheGroups.length = segments.length;
    for (const [j, { cache, first, count, writeSlot }] of segments.entries()) {
      cacheGroups[j] = bindingsFor(cache, j);
      const grids = (segmentGrids[j] ??= { k: [0, 0], v: [0, 0], ropeK: [0, 0], attention: [0, 0] });
      grids.k = matmulSizes(segmentSlot(j, SEGMENT_SLOT.k), count, dim, kvDim, first * dim, writeSlot * kvDim, qkvFlags,
        segmentParams);
      grids.v = matmulSizes(segmentSlot(j, SEGMENT_SLOT.v), count, dim, kvDim, first * dim,
        cache.valuesOffset + writeSlot * kvDim, qkvFlags, segmentParams);
      grids.ropeK = elementGrid(count * nKvHeads * headDim / 2);
      segmentParams.u32(segmentSlot(j, SEGMENT_SLOT.ropeK)).set([count, nKvHeads, headDim, layout, writeSlot * kvDim,
        grids.ropeK[0], BATCH_FIELDS.positions * stride + first]);
      grids.attention = workgroupGrid(count * nHeads, maxGroups);
      const attention = segmentSlot(j, SEGMENT_SLOT.attention);
      segmentParams.u32(attention).set([count, nHeads, nKvHeads, headDim, 0, cache.valuesOffset, stride, maxKeys,
        grids.attention[0], first]);
      segmentParams.f32(attention)[4] = 1 / Math.sqrt(headDim);
    }
    const oGrid = matmulSizes(SLOT.o, n, qDim, dim, 0, 0, MATMUL_ACCUMULATE);
    const upGrid = matmulSizes(SLOT.up, n, dim, hiddenDim, 0, 0, 0);
    const swigluGrid = elementGrid(n * hiddenDim);
    params.u32(SLOT.swiglu).set([n * hiddenDim, swigluGrid[0]]);
    const downGrid = matmulSizes(SLOT.down, n, hiddenDim, dim, 0, 0, MATMUL_ACCUMULATE);
    const classifierGrid = matmulSizes(SLOT.classifier, logitRows, dim, vocabSize, batch.logits === 'last' ? (n - 1) * dim : 0, 0, 0);
    params.u32(SLOT.argmax).set([logitRows, vocabSize]);
    params.flush();
    segmentParams.flush();

    const encoder = device.createCommandEncoder({ label: 'forward' });
    const pass = encoder.beginComputePass({ label: 'forward' });
    const run = (pipeline: GPUComputePipeline, group: GPUBindGroup, grid: [number, number]): void => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(grid[0], grid[1]);
    };
    const norm = pipelines.kernel('rmsnorm');
    const rope = pipelines.kernel('rope');
    run(pipelines.kernel('embed'), groups.embed, embedGrid);
    for (let l = 0; l < nLayers; l++) {
      const w = layers[l];
      const g = groups.layers[l];
      // Attention: q, k, v projections (k and v straight into the cache slots), RoPE, attention, output projection
      // added onto the residual stream.
      run(norm, g.attnNorm, [n, 1]);
      run(matmulPipeline(w.wq), g.q, qGrid);
      run(rope, g.ropeQ, ropeQGrid);
      for (let j = 0; j < segments.length; j++) {
        const b = cacheGroups[j];
        const grids = segmentGrids[j];
        run(matmulPipeline(w.wk), b.k[l], grids.k);
        run(matmulPipeline(w.wv), b.v[l], grids.v);
        run(rope, b.ropeK[l], grids.ropeK);
        run(pipelines.kernel('attention'), b.attention[l], grids.attention);
      }
      run(matmulPipeline(w.wo), g.o, oGrid);
      // Feed-forward: SwiGLU, down projection added onto the residual stream.
      run(norm, g.ffnNorm, [n, 1]);
      run(matmulPipeline(w.w1), g.w1, upGrid);
      run(matmulPipeline(w.w3), g.w3, upGrid);
      run(pipelines.kernel('swiglu'), g.swiglu, swigluGrid);
      run(matmulPipeline(w.w2), g.w2, downGrid);
    }
    run(norm, groups.finalNorm, [n, 1]);
    if (logitRows > 0) run(matmulPipeline(classifier), groups.classifier, classifierGrid);
    if (wantIds) run(pipelines.kernel('argmax'), groups.argmax, [logitRows, 1]);
    pass.end();

    // Readback: [logits rows][argmax ids][hidden rows], each what was asked for.
    const logitBytes = wantValues ? logitRows * vocabSize * 4 : 0;
    const idBytes = wantIds ? logitRows * 4 : 0;
    const rowBytes = dim * 4;
    const hiddenBytes = hiddenRows.length * rowBytes;
    const total = logitBytes + idBytes + hiddenBytes;
    if (total > 0) {
      if (staging === undefined || stagingBytes < total) {
        staging?.destroy();
        stagingBytes = Math.max(total, 2 * stagingBytes);
        staging = device.createBuffer({ label: 'readback', size: stagingBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      }
      if (logitBytes > 0) encoder.copyBufferToBuffer(logits, 0, staging, 0, logitBytes);
      if (idBytes > 0) encoder.copyBufferToBuffer(ids, 0, staging, logitBytes, idBytes);
      if (hiddenAll) {
        if (hiddenBytes > 0) encoder.copyBufferToBuffer(hidden, 0, staging, logitBytes + idBytes, hiddenBytes);
      } else {
        for (let i = 0; i < hiddenRows.length; i++) {
          encoder.copyBufferToBuffer(hidden, hiddenRows[i] * rowBytes, staging, logitBytes + idBytes + i * rowBytes, rowBytes);
        }
      }
    }
    device.queue.submit([encoder.finish()]);
    const submitted = performance.now();
    if (hostLogits.length < logitRows * vocabSize) hostLogits = new Float32Array(Math.max(rows, logitRows) * vocabSize);
    if (hostIds.length < logitRows) hostIds = new Int32Array(rows);
    if (hostHidden.length < hiddenRows.length * dim) hostHidden = new Float32Array(rows * dim);
    if (total > 0 && staging !== undefined) {
      await staging.mapAsync(GPUMapMode.READ, 0, total);
      const mapped = staging.getMappedRange(0, total);
      if (logitBytes > 0) hostLogits.set(new Float32Array(mapped, 0, logitBytes / 4));
      if (idBytes > 0) hostIds.set(new Int32Array(mapped, logitBytes, idBytes / 4));
      if (hiddenBytes > 0) hostHidden.set(new Float32Array(mapped, logitBytes + idBytes, hiddenBytes / 4));
      staging.unmap();
    } else {
      // Nothing to read: wait for the GPU anyway, so that a resolved forward means finished work (timings, errors).
      await device.queue.onSubmittedWorkDone();
    }
    const finished = performance.now();
    return {
      logits: hostLogits.subarray(0, wantValues ? logitRows * vocabSize : 0),
      hidden: hostHidden.subarray(0, hiddenRows.length * dim),
      argmax: hostIds.subarray(0, wantIds ? logitRows : 0),
      stats: { bytesRead: total, encodeMs: submitted - started, waitMs: finished - submitted },
    };
  }

  return {
    backend: 'webgpu',
    device,
    config,
    contextLength,
    weightBytes,
    matrices,
    kernelShape,
    pipelines,
    tokenEmbedding,
    tokenEmbeddingBuffer: embedding,
    hiddenStates: () => hidden,
    createCache: (capacity) => createGpuKvCache(device, nLayers, kvDim, capacity),
    forward,
    forwardSegments,
    dispose() {
      segmentParams.buffer.destroy();
      for (const buffer of [...owned, ...scratch]) buffer.destroy();
      staging?.destroy();
      owned.length = 0;
      scratch = [];
    },
  };
}
