// The ReDrafter head (spec §1.2) on the engine's kernels: a recurrent state over the LLM's own token embeddings,
// concatenated after the LLM's context vector h, through residual SiLU blocks to its own vocabulary projection.

import type { Kernels, Ptr } from '../kernels/types.js';
import type { DrafterConfig } from './config.js';
import type { DrafterWeights } from './checkpoint.js';

export interface Drafter {
  readonly config: DrafterConfig;
  /** Most rows (beams) one step computes. */
  readonly maxRows: number;
  /** Sets the context vector h (the LLM's final-norm hidden state, length H) for the coming steps. */
  setContext(h: Float32Array, offset: number): void;
  /** Zeroes the recurrent state of every row (each decoding step starts from s = 0). */
  resetState(): void;
  /**
   * One drafting step for `rows` beams: s ← SiLU(W e(x) + (U s + b)) (or s + e(x)), then logits = head([h, s]).
   * `tokens[r]` is the last token of beam r. Returns the logits view ([maxRows, V], row r at r·V).
   */
  step(tokens: Int32Array, rows: number): Float32Array;
  /** Replaces the state rows by those of their parents: row r ← row parents[r] (beam reordering). */
  reorderState(parents: Int32Array, rows: number): void;
  dispose(): void;
}

/** `tokenEmbedding` is the LLM's table as a view into the kernels' heap (`model.tokenEmbedding`). */
export function createDrafter(kernels: Kernels, weights: DrafterWeights, tokenEmbedding: Float32Array,
  maxRows: number): Drafter {
  const { config } = weights;
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R } = config;
  const heap = kernels.heap;
  // The kernels read the table at its heap address: a table elsewhere (a copy, another backend's) would be garbage.
  // (The heap is a shared memory; the SharedArrayBuffer global itself is absent on pages that are not isolated.)
  if (Object.prototype.toString.call(tokenEmbedding.buffer) !== '[object SharedArrayBuffer]' ||
    tokenEmbedding.byteOffset + tokenEmbedding.byteLength > heap.memory.buffer.byteLength) {
    throw new RangeError('createDrafter: tokenEmbedding must be a view into the kernels\' heap (model.tokenEmbedding)');
  }
  const owned: Ptr[] = [];
  const alloc = (floats: number): Ptr => {
    const ptr = heap.alloc(floats * 4);
    owned.push(ptr);
    return ptr;
  };
  const upload = (name: string): Ptr => {
    const data = weights.tensors.get(name);
    if (!data) throw new RangeError(`drafter: tensor "${name}" missing`);
    const ptr = alloc(data.length);
    heap.f32(ptr, data.length).set(data);
    return ptr;
  };

  const hasInputProjection = E !== 2 * H;
  const inputWeight = hasInputProjection ? upload('input_proj.weight') : 0;
  const inputBias = hasInputProjection ? upload('input_proj.bias') : 0;
  const blockWeights: Ptr[] = [];
  const blockBiases: Ptr[] = [];
  for (let r = 0; r < R; r++) {
    blockWeights.push(upload(`lm_head.${r}.linear.weight`));
    blockBiases.push(upload(`lm_head.${r}.linear.bias`));
  }
  const vocabProjection = upload(`lm_head.${R}.weight`);
  const rnnW = config.rnn ? upload('rnn_w.weight') : 0;
  const rnnU = config.rnn ? upload('rnn_u.weight') : 0;
  const rnnBias = config.rnn ? upload('rnn_u.bias') : 0;

  // Per-row buffers: embeddings, state (and its next value), head input [h, s], MLP activations, logits.
  const embedded = alloc(maxRows * H);
  const state = alloc(maxRows * H);
  const recurrent = alloc(maxRows * H);
  const headInput = alloc(maxRows * 2 * H);
  const z = alloc(maxRows * E);
  const blockOut = alloc(maxRows * E);
  const logits = alloc(maxRows * V);
  const context = alloc(H);
  const stateView = heap.f32(state, maxRows * H);
  const logitsView = heap.f32(logits, maxRows * V);
  // Whole-memory view: row copies by offset, without creating subarrays in the loop. The embedding table is a view
  // on the same memory (the model keeps it in the heap).
  const memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
  const embeddingBase = tokenEmbedding.byteOffset / 4;

  function step(tokens: Int32Array, rows: number): Float32Array {
    if (rows < 1 || rows > maxRows) throw new RangeError(`drafter.step: rows must be in 1..${maxRows}, got ${rows}`);
    const k = kernels;
    for (let r = 0; r < rows; r++) {
      const from = embeddingBase + tokens[r] * H;
      memory.copyWithin(embedded / 4 + r * H, from, from + H);
    }
    if (config.rnn) {
      // SiLU(rnn_w(e) + rnn_u(s)) — the two linear layers summed in that order, as Apple's PyTorch code does.
      k.matmul(recurrent, embedded, rnnW, rows, H, H);
      k.matmulBias(embedded, state, rnnU, rnnBias, rows, H, H);
      k.add(state, recurrent, embedded, rows * H);
      k.silu(state, state, rows * H);
    } else {
      k.add(state, state, embedded, rows * H);
    }
    // Head input [h, s]: context first (spec §1.2).
    for (let r = 0; r < rows; r++) {
      const row = headInput / 4 + r * 2 * H;
      memory.copyWithin(row, context / 4, context / 4 + H);
      memory.copyWithin(row + H, state / 4 + r * H, state / 4 + r * H + H);
    }
    let x = headInput;
    if (hasInputProjection) {
      k.matmulBias(z, headInput, inputWeight, inputBias, rows, 2 * H, E);
      x = z;
    }
    for (let r = 0; r < R; r++) {
      // z ← z + SiLU(M z + c)
      k.matmulBias(blockOut, x, blockWeights[r], blockBiases[r], rows, E, E);
      k.silu(blockOut, blockOut, rows * E);
      k.add(z, x, blockOut, rows * E);
      x = z;
    }
    k.matmul(logits, x, vocabProjection, rows, E, V);
    return logitsView;
  }

  return {
    config,
    maxRows,
    setContext(h, offset) {
      for (let i = 0; i < H; i++) memory[context / 4 + i] = h[offset + i];
    },
    resetState() {
      stateView.fill(0);
    },
    step,
    reorderState(parents, rows) {
      // Rows are rewritten in place; copy the parents' rows out first so a row read later is still the original.
      memory.copyWithin(embedded / 4, state / 4, state / 4 + rows * H);
      for (let r = 0; r < rows; r++) {
        memory.copyWithin(state / 4 + r * H, embedded / 4 + parents[r] * H, embedded / 4 + parents[r] * H + H);
      }
    },
    dispose() {
      for (const ptr of owned) heap.free(ptr);
      owned.length = 0;
    },
  };
}
