/// <reference types="@webgpu/types" />
// The ReDrafter head and its beam search on the GPU: drafter.ts's step and beam-search.ts's search, kernel for
// kernel, recorded into one compute pass per draft. The context vector is copied on the GPU from the forward's
// hidden states, and one readback brings the beams and their scores: (W·L + W)·4 bytes instead of the hidden row
// up and L − 1 round trips of W·V logits. Every step computes all W rows (at step 1 they are W identical copies of
// beam 0, as the search's dead copies are), so each kernel has one size per draft.

import type { BeamSearchResult, DeviceBeamSearch, DeviceContext } from '../drafter/beam-search.js';
import { validateBeamShape } from '../drafter/beam-search.js';
import type { DrafterWeights } from '../drafter/checkpoint.js';
import { drafterTensorShapes } from '../drafter/config.js';
import { ELEMENTWISE, MAX_BEAM_CELLS } from './draft-kernels.js';
import { MATMUL_BIAS, matmulColumns, matmulVectorized } from './matmul.js';
import { bytesOf, createParamSlots, uploadBuffer, workgroupGrid, type Pipelines } from './pipelines.js';

/** What the drafter takes from the model on the GPU. */
export interface GpuDrafterInputs {
  readonly device: GPUDevice;
  readonly pipelines: Pipelines;
  /** The LLM's token embedding table, [vocab, hidden] f32. */
  readonly tokenEmbedding: GPUBuffer;
  /** The latest forward's final-norm hidden states, [rows, hidden] f32 (asked at each search: it may be regrown). */
  hiddenStates(): GPUBuffer;
}

export interface GpuBeamSearchOptions {
  maxWidth: number;
  maxLength: number;
}

// Uniform slots: the step's kernels (the same sizes at every position), then per position the candidates and select
// kernels (they know the position).
const SLOT = { embed: 0, rnnW: 1, rnnU: 2, stateUpdate: 3, concat: 4, projection: 5, block: 6, residual: 7, vocab: 8,
  logprobs: 9, gather: 10, residualInPlace: 11, candidates: 12 } as const;

export function createGpuBeamSearch(inputs: GpuDrafterInputs, weights: DrafterWeights,
  options: GpuBeamSearchOptions): DeviceBeamSearch {
  const { device, pipelines } = inputs;
  const { maxWidth, maxLength } = options;
  validateBeamShape(maxWidth, maxLength);
  if (maxWidth * maxLength > MAX_BEAM_CELLS) throw new RangeError(`GPU beam search: ${maxWidth} × ${maxLength} beams exceed ${MAX_BEAM_CELLS} tokens`);
  const { config } = weights;
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R, topK, log0 } = config;
  const shape = pipelines.shape;
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  const selectSlot = SLOT.candidates + (maxLength - 1);
  const params = createParamSlots(device, selectSlot + (maxLength - 1), 'drafter sizes');
  const owned: GPUBuffer[] = [params.buffer];
  const own = (buffer: GPUBuffer): GPUBuffer => (owned.push(buffer), buffer);

  const shapes = drafterTensorShapes(config);
  const upload = (name: string): GPUBuffer => {
    const data = weights.tensors.get(name);
    const expected = shapes.get(name)!.reduce((a, b) => a * b, 1);
    if (!data) throw new RangeError(`drafter: tensor "${name}" missing`);
    if (data.length !== expected) throw new RangeError(`drafter: tensor "${name}": expected ${expected} values, got ${data.length}`);
    return own(uploadBuffer(device, bytesOf(data), `drafter ${name}`));
  };
  const hasInputProjection = E !== 2 * H;
  const projection = hasInputProjection ? { weight: upload('input_proj.weight'), bias: upload('input_proj.bias') } : null;
  const blocks = Array.from({ length: R }, (_, r) => ({ weight: upload(`lm_head.${r}.linear.weight`),
    bias: upload(`lm_head.${r}.linear.bias`) }));
  const vocabProjection = upload(`lm_head.${R}.weight`);
  const recurrence = config.rnn
    ? { w: upload('rnn_w.weight'), u: upload('rnn_u.weight'), bias: upload('rnn_u.bias') } : null;
  const noBias = own(uploadBuffer(device, new Uint8Array(16), 'drafter no bias'));

  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const make = (label: string, words: number): GPUBuffer =>
    own(device.createBuffer({ label: `drafter ${label}`, size: Math.max(16, words * 4), usage: STORAGE }));
  const W = maxWidth;
  const embedded = make('embedded', W * H);
  const previous = make('previous state', W * H);
  const recurrent = make('recurrent', W * H);
  const update = make('update', W * H);
  const state = make('state', W * H);
  const context = make('context', H);
  const headInput = make('head input', W * 2 * H);
  const z = make('z', W * E);
  const blockOut = make('block out', W * E);
  const logits = make('logits', W * V);
  const candidates = make('candidates', W * W * 2);
  const beamsBuffer = make('beams', W * maxLength);
  const scoresBuffer = make('scores', W);
  const lastTokens = make('last tokens', W);
  const parents = make('parents', W);
  const readbackBytes = (W * maxLength + W) * 4;
  const staging = own(device.createBuffer({ label: 'drafter readback', size: readbackBytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));

  const bind = (pipeline: GPUComputePipeline, label: string, resources: (GPUBuffer | GPUBufferBinding)[]): GPUBindGroup =>
    device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((resource, binding) => ({ binding, resource: 'buffer' in resource ? resource : { buffer: resource } })) });
  const matmul = (inDim: number): GPUComputePipeline => pipelines.matmul('f32', matmulVectorized('f32', inDim));
  const kernel = pipelines.kernel;

  // The MLP's input: the head input [h, s] (E = 2H) or its projection z.
  const mlpInput = hasInputProjection ? z : headInput;
  const groups = {
    embed: bind(kernel('embed'), 'drafter embed', [params.binding(SLOT.embed), lastTokens, inputs.tokenEmbedding, embedded]),
    rnnW: recurrence && bind(matmul(H), 'drafter rnn_w', [params.binding(SLOT.rnnW), embedded, recurrence.w, noBias, recurrent]),
    rnnU: recurrence && bind(matmul(H), 'drafter rnn_u', [params.binding(SLOT.rnnU), previous, recurrence.u, recurrence.bias, update]),
    stateUpdate: bind(kernel('draft-elementwise'), 'drafter state update', recurrence
      ? [params.binding(SLOT.stateUpdate), recurrent, update, state]
      : [params.binding(SLOT.stateUpdate), previous, embedded, state]),
    concat: bind(kernel('draft-concat'), 'drafter head input', [params.binding(SLOT.concat), context, state, headInput]),
    projection: projection && bind(matmul(2 * H), 'drafter input_proj',
      [params.binding(SLOT.projection), headInput, projection.weight, projection.bias, z]),
    blocks: blocks.map((block, r) => bind(matmul(E), `drafter block ${r}`,
      [params.binding(SLOT.block), r === 0 ? mlpInput : z, block.weight, block.bias, blockOut])),
    // Block 0 without a projection reads the head input and writes z; every later block adds onto z in place.
    residualFirst: bind(kernel('draft-elementwise'), 'drafter residual', [params.binding(SLOT.residual), mlpInput, blockOut, z]),
    residualInPlace: bind(kernel('draft-elementwise'), 'drafter residual in place',
      [params.binding(SLOT.residualInPlace), blockOut, blockOut, z]),
    vocab: bind(matmul(E), 'drafter vocabulary', [params.binding(SLOT.vocab), R > 0 ? z : mlpInput, vocabProjection, noBias, logits]),
    logprobs: bind(kernel('draft-logprobs'), 'drafter log q', [params.binding(SLOT.logprobs), logits]),
    gather: bind(kernel('draft-gather'), 'drafter reorder', [params.binding(SLOT.gather), parents, state, previous]),
    candidates: Array.from({ length: maxLength - 1 }, (_, i) => bind(kernel('draft-candidates'), `drafter candidates ${i + 1}`,
      [params.binding(SLOT.candidates + i), logits, scoresBuffer, candidates])),
    select: Array.from({ length: maxLength - 1 }, (_, i) => bind(kernel('draft-select'), `drafter select ${i + 1}`,
      [params.binding(selectSlot + i), candidates, beamsBuffer, scoresBuffer, lastTokens, parents])),
  };

  const initialBeams = new Uint32Array(W * maxLength);
  const initialTokens = new Uint32Array(W);
  const beams = new Int32Array(W * maxLength);
  const scores = new Float32Array(W);
  const result: BeamSearchResult = { width: 0, length: 0, beams, scores, logQ: null };
  let busy = false;
  let disposed = false;

  const elementGrid = (elements: number): [number, number] => workgroupGrid(Math.ceil(elements / shape.workgroup), maxGroups);
  const matmulSizes = (slot: number, rows: number, inDim: number, outDim: number, flags: number): [number, number] => {
    const grid = workgroupGrid(Math.ceil(outDim / matmulColumns(shape)), maxGroups);
    params.u32(slot).set([rows, inDim, outDim, 0, 0, flags, grid[0]], 0);
    return grid;
  };

  /** Row `row` of the latest forward's hidden states, checked. */
  const hiddenRow = (row: number): GPUBuffer => {
    const hidden = inputs.hiddenStates();
    if (!(Number.isInteger(row) && row >= 0 && (row + 1) * H * 4 <= hidden.size)) {
      throw new RangeError(`GPU beam search: hidden row ${row} is outside the forward's ${Math.floor(hidden.size / (H * 4))} rows`);
    }
    return hidden;
  };
  const contexts = new WeakSet<DeviceContext>();
  const contextBuffers = new WeakMap<DeviceContext, GPUBuffer>();

  function searchFromRow(row: number, g0: number, width: number, length: number): Promise<BeamSearchResult> {
    return draft(hiddenRow(row), row * H * 4, g0, width, length);
  }

  function search(context: DeviceContext, g0: number, width: number, length: number): Promise<BeamSearchResult> {
    const buffer = contextBuffers.get(context);
    if (!contexts.has(context) || buffer === undefined) throw new Error('GPU beam search: the context was freed or is not this search\'s');
    return draft(buffer, 0, g0, width, length);
  }

  /** Drafts from the context vector at byte `offset` of `source`. */
  async function draft(source: GPUBuffer, offset: number, g0: number, width: number, length: number): Promise<BeamSearchResult> {
    validateBeamShape(width, length);
    if (disposed) throw new Error('GPU beam search: disposed');
    if (width > maxWidth || length > maxLength) {
      throw new RangeError(`GPU beam search: ${width} × ${length} exceeds the prepared ${maxWidth} × ${maxLength}`);
    }
    if (!(Number.isInteger(g0) && g0 >= 0 && g0 < V)) throw new RangeError(`GPU beam search: g0 ${g0} is not a token of the ${V}-token vocabulary`);
    if (busy) throw new Error('GPU beam search: one search at a time (await the previous one)');
    busy = true;
    try {
      const L = length;
      for (let w = 0; w < width; w++) {
        initialBeams[w * L] = g0;
        initialTokens[w] = g0;
      }
      device.queue.writeBuffer(beamsBuffer, 0, initialBeams.buffer, 0, width * L * 4);
      device.queue.writeBuffer(lastTokens, 0, initialTokens.buffer, 0, width * 4);

      const embedGrid = elementGrid(width * H);
      params.u32(SLOT.embed).set([width, H, embedGrid[0]]);
      const rnnGrid = matmulSizes(SLOT.rnnW, width, H, H, 0);
      matmulSizes(SLOT.rnnU, width, H, H, MATMUL_BIAS);
      const stateGrid = elementGrid(width * H);
      params.u32(SLOT.stateUpdate).set([width * H, recurrence ? ELEMENTWISE.siluOfSum : ELEMENTWISE.add, stateGrid[0]]);
      const concatGrid = elementGrid(width * 2 * H);
      params.u32(SLOT.concat).set([width, H, concatGrid[0]]);
      const projectionGrid = matmulSizes(SLOT.projection, width, 2 * H, E, MATMUL_BIAS);
      const blockGrid = matmulSizes(SLOT.block, width, E, E, MATMUL_BIAS);
      const residualGrid = elementGrid(width * E);
      params.u32(SLOT.residual).set([width * E, ELEMENTWISE.residualSilu, residualGrid[0]]);
      params.u32(SLOT.residualInPlace).set([width * E, ELEMENTWISE.accumulateSilu, residualGrid[0]]);
      const vocabGrid = matmulSizes(SLOT.vocab, width, E, V, 0);
      params.u32(SLOT.logprobs).set([V, topK]);
      params.f32(SLOT.logprobs)[2] = log0;
      const gatherGrid = elementGrid(width * H);
      params.u32(SLOT.gather).set([width, H, gatherGrid[0]]);
      for (let t = 1; t < L; t++) {
        params.u32(SLOT.candidates + t - 1).set([V, width, t === 1 ? 1 : 0]);
        params.f32(SLOT.candidates + t - 1)[3] = log0;
        params.u32(selectSlot + t - 1).set([width, width, L, t, V]);
      }
      params.flush();

      const encoder = device.createCommandEncoder({ label: 'draft' });
      encoder.copyBufferToBuffer(source, offset, context, 0, H * 4);
      encoder.clearBuffer(previous, 0, width * H * 4);
      const pass = encoder.beginComputePass({ label: 'draft' });
      const run = (pipeline: GPUComputePipeline, group: GPUBindGroup, grid: [number, number]): void => {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(grid[0], grid[1]);
      };
      for (let t = 1; t < L; t++) {
        // s ← SiLU(rnn_w e(x) + rnn_u s + b), or s + e(x); then [h, s] through the MLP to the logits.
        run(kernel('embed'), groups.embed, embedGrid);
        if (recurrence) {
          run(matmul(H), groups.rnnW!, rnnGrid);
          run(matmul(H), groups.rnnU!, rnnGrid);
        }
        run(kernel('draft-elementwise'), groups.stateUpdate, stateGrid);
        run(kernel('draft-concat'), groups.concat, concatGrid);
        if (groups.projection) run(matmul(2 * H), groups.projection, projectionGrid);
        for (let r = 0; r < R; r++) {
          run(matmul(E), groups.blocks[r], blockGrid);
          const inPlace = r > 0 || hasInputProjection;
          run(kernel('draft-elementwise'), inPlace ? groups.residualInPlace : groups.residualFirst, residualGrid);
        }
        run(matmul(E), groups.vocab, vocabGrid);
        // log q, each row's best W candidates, the step's best W: the new beams, scores, tokens and parents.
        run(kernel('draft-logprobs'), groups.logprobs, [width, 1]);
        run(kernel('draft-candidates'), groups.candidates[t - 1], [width, 1]);
        run(kernel('draft-select'), groups.select[t - 1], [1, 1]);
        if (t < L - 1) run(kernel('draft-gather'), groups.gather, gatherGrid);
      }
      pass.end();
      const beamBytes = width * L * 4;
      encoder.copyBufferToBuffer(beamsBuffer, 0, staging, 0, beamBytes);
      encoder.copyBufferToBuffer(scoresBuffer, 0, staging, beamBytes, width * 4);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, beamBytes + width * 4);
      const mapped = staging.getMappedRange(0, beamBytes + width * 4);
      beams.set(new Int32Array(mapped, 0, width * L));
      scores.set(new Float32Array(mapped, beamBytes, width));
      staging.unmap();
      result.width = width;
      result.length = L;
      return result;
    } finally {
      busy = false;
    }
  }

  return {
    maxWidth,
    maxLength,
    searchFromRow,
    search,
    createContext() {
      if (disposed) throw new Error('GPU beam search: disposed');
      const buffer = device.createBuffer({ label: 'drafter sequence context', size: Math.max(16, H * 4),
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      const handle: DeviceContext = {
        capture(row) {
          if (!contexts.has(handle)) throw new Error('GPU beam search: the context was freed');
          const encoder = device.createCommandEncoder({ label: 'capture context' });
          encoder.copyBufferToBuffer(hiddenRow(row), row * H * 4, buffer, 0, H * 4);
          device.queue.submit([encoder.finish()]);
        },
        free() {
          if (!contexts.delete(handle)) return;
          contextBuffers.delete(handle);
          buffer.destroy();
        },
      };
      contexts.add(handle);
      contextBuffers.set(handle, buffer);
      return handle;
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const buffer of owned) buffer.destroy();
      owned.length = 0;
    },
  };
}
