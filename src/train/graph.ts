// The drafter's training forward and hand-written backward (spec §6.1) on the engine's kernels.
//
// Teacher forcing over T future tokens: for a context position p with final-norm hidden state h_p and the sequence's
// next tokens x_{p+1} … x_{p+T+1}, step i = 1..T feeds x_{p+i} and predicts x_{p+i+1}:
//   s_i = SiLU(W e(x_{p+i}) + (U s_{i−1} + b)),  s_0 = 0          (or s_i = s_{i−1} + e(x_{p+i}) without rnn)
//   z_0 = [h_p, s_i] (→ A z_0 + a when E ≠ 2H),  z_{r+1} = z_r + SiLU(M_r z_r + c_r),  ℓ_i = O z_R
//   loss = Σ_i mean_b CE(ℓ_i, x_{p+i+1})
// The forward issues exactly the kernel calls of src/drafter/drafter.ts, so its logits are bit-identical to the
// inference head's. Gradients use the same matmul kernel on transposed copies (out = x·wᵀ, so dW = dYᵀ·X is
// matmul(dYᵀ, Xᵀ)); elementwise work and reductions are plain loops in a fixed order, so a batch's gradient depends on
// neither the thread count nor anything but the batch. The LLM and its embedding table are read, never written.

import type { Kernels, Ptr } from '../kernels/types.js';
import type { DrafterConfig } from '../drafter/config.js';
import { drafterTensorShapes } from '../drafter/config.js';
import type { DrafterWeights } from '../drafter/checkpoint.js';

export interface TrainingBatch {
  /** Context positions in the batch (B ≤ maxBatch). */
  count: number;
  /** h of every position, [B, H]. */
  hidden: Float32Array;
  /**
   * tokens[b·(T+1) + j] = x_{p+1+j} for j = 0..T: inputs x_{p+1..p+T}, targets x_{p+2..p+T+1}. −1 marks a token past
   * the end of the sequence; once a token is −1 every later one must be too.
   */
  tokens: Int32Array;
  /**
   * With soft targets: targetHidden[(b·T + i)·H ..] = h_{p+1+i}, the LLM's final-norm hidden state at the token whose
   * next-token distribution step i+1 learns (zeros where the step has no target).
   */
  targetHidden?: Float32Array;
}

export interface BatchResult {
  /** Σ over steps of the mean cross-entropy (the training objective). */
  loss: number;
  /** Mean cross-entropy per step (0 where a step had no target). */
  stepLoss: Float64Array;
  /** Top-1 hits per step. */
  stepCorrect: Int32Array;
  /** Targets per step. */
  stepCount: Int32Array;
}

export interface TrainableTensor {
  /** Canonical checkpoint name (spec §1.5). */
  readonly name: string;
  readonly shape: readonly number[];
  /** Values in the kernels' heap (written by the optimizer). */
  readonly data: Float32Array;
  /** Gradient of the latest forwardBackward. */
  readonly grad: Float32Array;
  /** Weight decay applies to weight matrices, not to biases (as Hugging Face's Trainer does). */
  readonly decay: boolean;
}

export interface TrainingGraph {
  readonly config: DrafterConfig;
  /** T: future tokens per position. */
  readonly predict: number;
  readonly maxBatch: number;
  /** In checkpoint order (drafterTensorShapes). */
  readonly tensors: readonly TrainableTensor[];
  /** Loss and metrics only. */
  forward(batch: TrainingBatch): BatchResult;
  /** Loss, metrics and the gradient of every tensor. */
  forwardBackward(batch: TrainingBatch): BatchResult;
  /** Logits of the latest forward: row i·B + b is step i+1 of position b, [T·B, V]. */
  logits(): Float32Array;
  setWeights(weights: DrafterWeights): void;
  /** A copy of the current weights in checkpoint form. */
  weights(): DrafterWeights;
  dispose(): void;
}

export interface GraphOptions {
  maxBatch: number;
  predict: number;
  /**
   * Distillation with the LLM's distribution (spec §6.2's KL objective): each step's target is
   * softWeight · softmax(C h_{p+i}) + (1 − softWeight) · onehot(x_{p+i+1}), C being the LLM's classifier ([V, H], a
   * view into the heap). Soft targets carry the whole distribution of the next token instead of one sample of it.
   */
  teacher?: { classifier: Float32Array; softWeight: number };
}

export function createTrainingGraph(kernels: Kernels, config: DrafterConfig, tokenEmbedding: Float32Array,
  options: GraphOptions): TrainingGraph {
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R, rnn } = config;
  const T = options.predict;
  const maxB = options.maxBatch;
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`predict: expected an integer ≥ 1, got ${T}`);
  if (!Number.isInteger(maxB) || maxB < 1) throw new RangeError(`maxBatch: expected an integer ≥ 1, got ${maxB}`);
  if (tokenEmbedding.length !== V * H) {
    throw new RangeError(`tokenEmbedding: expected ${V}×${H} floats, got ${tokenEmbedding.length}`);
  }
  const D = 2 * H;
  const hasProjection = E !== D;
  const N = T * maxB;
  const heap = kernels.heap;
  const owned: Ptr[] = [];
  const alloc = (floats: number): Ptr => {
    const ptr = heap.alloc(Math.max(1, floats) * 4);
    owned.push(ptr);
    return ptr;
  };

  // Parameters and gradients.
  interface Slot extends TrainableTensor { ptr: Ptr; gradPtr: Ptr }
  const slots = new Map<string, Slot>();
  for (const [name, shape] of drafterTensorShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const ptr = alloc(size);
    const gradPtr = alloc(size);
    slots.set(name, { name, shape, ptr, gradPtr, data: heap.f32(ptr, size), grad: heap.f32(gradPtr, size),
      decay: shape.length === 2 });
  }
  const slot = (name: string): Slot => slots.get(name)!;

  // Activations, rows step-major (row i·B + b). zs[r] is the input of block r, zs[R] the vocabulary projection's input.
  const context = alloc(maxB * H);
  const embedded = alloc(N * H);
  const preState = alloc(N * H);
  const state = alloc(N * H);
  const zeroState = alloc(maxB * H);
  const rnnA = alloc(maxB * H);
  const rnnB = alloc(maxB * H);
  const headInput = alloc(N * D);
  const zs: Ptr[] = [hasProjection ? alloc(N * E) : headInput];
  const preBlock: Ptr[] = [];
  for (let r = 0; r < R; r++) {
    preBlock.push(alloc(N * E));
    zs.push(alloc(N * E));
  }
  const blockOut = alloc(N * E);
  const logitsPtr = alloc(N * V);
  const probs = alloc(N * V);
  // Backward scratch.
  const wide = Math.max(E, D);
  const transposedA = alloc(N * Math.max(V, wide));
  const transposedB = alloc(N * wide);
  const dz = alloc(N * wide);
  const dPre = alloc(N * wide);
  const dTmp = alloc(N * wide);
  const weightT = alloc(Math.max(V * E, E * E, D * E, H * H));
  const dState = alloc(N * H);
  const carry = alloc(maxB * H);
  const teacher = options.teacher && options.teacher.softWeight > 0 ? options.teacher : null;
  if (teacher && teacher.classifier.length !== V * H) {
    throw new RangeError(`teacher classifier: expected ${V}×${H} floats, got ${teacher.classifier.length}`);
  }
  const teacherHidden = teacher ? alloc(N * H) : 0;
  const teacherProbs = teacher ? alloc(N * V) : 0;

  // One view of the whole memory: buffers are addressed by float offset (ptr / 4).
  const memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
  const embeddingBase = tokenEmbedding.byteOffset / 4;
  const at = (ptr: Ptr): number => ptr / 4;

  let B = 0;
  const stepLoss = new Float64Array(T);
  const stepCorrect = new Int32Array(T);
  const stepCount = new Int32Array(T);

  function load(batch: TrainingBatch): void {
    B = batch.count;
    if (!Number.isInteger(B) || B < 1 || B > maxB) throw new RangeError(`batch: count must be in 1..${maxB}, got ${B}`);
    if (batch.hidden.length < B * H || batch.tokens.length < B * (T + 1)) {
      throw new RangeError(`batch: expected ${B}×${H} hidden floats and ${B}×${T + 1} tokens`);
    }
    memory.set(batch.hidden.subarray(0, B * H), at(context));
    for (let i = 0; i < T; i++) {
      for (let b = 0; b < B; b++) {
        const token = batch.tokens[b * (T + 1) + i];
        if (token >= V) throw new RangeError(`batch: token ${token} outside the vocabulary (${V})`);
        const to = at(embedded) + (i * B + b) * H;
        // An absent input (past the sequence end) only feeds masked steps; any row will do.
        const from = embeddingBase + Math.max(token, 0) * H;
        memory.copyWithin(to, from, from + H);
      }
    }
  }

  function forwardPass(): void {
    const k = kernels;
    const rows = T * B;
    for (let i = 0; i < T; i++) {
      const e = embedded + i * B * H * 4;
      const pre = preState + i * B * H * 4;
      const s = state + i * B * H * 4;
      const previous = i === 0 ? zeroState : state + (i - 1) * B * H * 4;
      if (rnn) {
        // The inference head's order: rnn_w(e), then rnn_u(s) with its bias, summed, SiLU.
        k.matmul(rnnA, e, slot('rnn_w.weight').ptr, B, H, H);
        k.matmulBias(rnnB, previous, slot('rnn_u.weight').ptr, slot('rnn_u.bias').ptr, B, H, H);
        k.add(pre, rnnA, rnnB, B * H);
        k.silu(s, pre, B * H);
      } else {
        k.add(s, previous, e, B * H);
      }
    }
    // Head input [h, s]: context first (spec §1.2).
    for (let i = 0; i < T; i++) {
      for (let b = 0; b < B; b++) {
        const row = at(headInput) + (i * B + b) * D;
        memory.copyWithin(row, at(context) + b * H, at(context) + b * H + H);
        const s = at(state) + (i * B + b) * H;
        memory.copyWithin(row + H, s, s + H);
      }
    }
    if (hasProjection) {
      k.matmulBias(zs[0], headInput, slot('input_proj.weight').ptr, slot('input_proj.bias').ptr, rows, D, E);
    }
    for (let r = 0; r < R; r++) {
      k.matmulBias(preBlock[r], zs[r], slot(`lm_head.${r}.linear.weight`).ptr, slot(`lm_head.${r}.linear.bias`).ptr,
        rows, E, E);
      k.silu(blockOut, preBlock[r], rows * E);
      k.add(zs[r + 1], zs[r], blockOut, rows * E);
    }
    k.matmul(logitsPtr, zs[R], slot(`lm_head.${R}.weight`).ptr, rows, E, V);
  }

  /** Softmax, loss and metrics; leaves dLoss/dlogits in `probs` (zero rows for absent targets). */
  function lossAndLogitGrad(batch: TrainingBatch): BatchResult {
    const rows = T * B;
    memory.copyWithin(at(probs), at(logitsPtr), at(logitsPtr) + rows * V);
    kernels.softmax(probs, rows, V);
    if (teacher) {
      if (!batch.targetHidden || batch.targetHidden.length < B * T * H) {
        throw new RangeError(`batch: soft targets need targetHidden (${B}×${T}×${H} floats)`);
      }
      for (let i = 0; i < T; i++) {
        for (let b = 0; b < B; b++) {
          const from = (b * T + i) * H;
          memory.set(batch.targetHidden.subarray(from, from + H), at(teacherHidden) + (i * B + b) * H);
        }
      }
      kernels.matmul(teacherProbs, teacherHidden, teacher.classifier.byteOffset, rows, H, V);
      kernels.softmax(teacherProbs, rows, V);
    }
    const soft = teacher ? teacher.softWeight : 0;
    stepLoss.fill(0);
    stepCorrect.fill(0);
    stepCount.fill(0);
    for (let i = 0; i < T; i++) for (let b = 0; b < B; b++) if (batch.tokens[b * (T + 1) + i + 1] >= 0) stepCount[i]++;
    let loss = 0;
    for (let i = 0; i < T; i++) {
      const scale = stepCount[i] > 0 ? 1 / stepCount[i] : 0;
      let sum = 0;
      for (let b = 0; b < B; b++) {
        const row = (i * B + b) * V;
        const p = at(probs) + row;
        const target = batch.tokens[b * (T + 1) + i + 1];
        if (target < 0) {
          memory.fill(0, p, p + V);
          continue;
        }
        const l = at(logitsPtr) + row;
        let best = 0;
        for (let v = 1; v < V; v++) if (memory[l + v] > memory[l + best]) best = v;
        if (best === target) stepCorrect[i]++;
        // log q_v = ℓ_v − logsumexp(ℓ), the logsumexp read off the most likely token (q_best ≥ 1/V: no underflow).
        const logSumExp = memory[l + best] - Math.log(memory[p + best]);
        let ce = (1 - soft) * (logSumExp - memory[l + target]);
        if (soft > 0) {
          const t = at(teacherProbs) + row;
          for (let v = 0; v < V; v++) {
            const weight = soft * memory[t + v];
            ce += weight * (logSumExp - memory[l + v]);
            memory[p + v] = (memory[p + v] - weight) * scale;
          }
        } else {
          for (let v = 0; v < V; v++) memory[p + v] *= scale;
        }
        memory[p + target] -= (1 - soft) * scale;
        sum += ce;
      }
      stepLoss[i] = stepCount[i] > 0 ? sum / stepCount[i] : 0;
      loss += stepLoss[i];
    }
    return { loss, stepLoss: stepLoss.slice(), stepCorrect: stepCorrect.slice(), stepCount: stepCount.slice() };
  }

  /** dst[c][r] = src[r][c] for a rows × cols block; blocked so both sides stay in cache. */
  function transpose(dst: Ptr, src: Ptr, rows: number, cols: number): void {
    const s = at(src);
    const d = at(dst);
    const TILE = 32;
    for (let r0 = 0; r0 < rows; r0 += TILE) {
      const r1 = Math.min(r0 + TILE, rows);
      for (let c0 = 0; c0 < cols; c0 += TILE) {
        const c1 = Math.min(c0 + TILE, cols);
        for (let r = r0; r < r1; r++) {
          for (let c = c0; c < c1; c++) memory[d + c * rows + r] = memory[s + r * cols + c];
        }
      }
    }
  }

  /** grad = dYᵀ·X for dY [rows, outDim] and X [rows, inDim]: the matmul kernel on transposed copies. */
  function weightGradient(grad: Ptr, dY: Ptr, x: Ptr, rows: number, inDim: number, outDim: number): void {
    transpose(transposedA, dY, rows, outDim);
    transpose(transposedB, x, rows, inDim);
    kernels.matmul(grad, transposedA, transposedB, outDim, rows, inDim);
  }

  /** grad[c] = Σ_r dY[r][c], summed in row order. */
  function biasGradient(grad: Ptr, dY: Ptr, rows: number, cols: number): void {
    const g = at(grad);
    const d = at(dY);
    memory.fill(0, g, g + cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) memory[g + c] += memory[d + r * cols + c];
  }

  /** dX = dY·W for W [outDim, inDim] (matmul against Wᵀ). */
  function inputGradient(dX: Ptr, dY: Ptr, w: Ptr, rows: number, inDim: number, outDim: number): void {
    transpose(weightT, w, outDim, inDim);
    kernels.matmul(dX, dY, weightT, rows, outDim, inDim);
  }

  /** out[j] = dOut[j] · SiLU'(pre[j]) = dOut · σ(u)(1 + u(1 − σ(u))). */
  function siluBackward(out: Ptr, dOut: Ptr, pre: Ptr, n: number): void {
    const o = at(out);
    const d = at(dOut);
    const u = at(pre);
    for (let j = 0; j < n; j++) {
      const x = memory[u + j];
      const sigmoid = 1 / (1 + Math.exp(-x));
      memory[o + j] = memory[d + j] * sigmoid * (1 + x * (1 - sigmoid));
    }
  }

  function backwardPass(): void {
    const rows = T * B;
    const vocab = slot(`lm_head.${R}.weight`);
    weightGradient(vocab.gradPtr, probs, zs[R], rows, E, V);
    inputGradient(dz, probs, vocab.ptr, rows, E, V);
    for (let r = R - 1; r >= 0; r--) {
      const weight = slot(`lm_head.${r}.linear.weight`);
      siluBackward(dPre, dz, preBlock[r], rows * E);
      weightGradient(weight.gradPtr, dPre, zs[r], rows, E, E);
      biasGradient(slot(`lm_head.${r}.linear.bias`).gradPtr, dPre, rows, E);
      // Residual: dz_r = dz_{r+1} + dPre·M_r.
      inputGradient(dTmp, dPre, weight.ptr, rows, E, E);
      kernels.add(dz, dz, dTmp, rows * E);
    }
    let dHead = dz;
    if (hasProjection) {
      const projection = slot('input_proj.weight');
      weightGradient(projection.gradPtr, dz, headInput, rows, D, E);
      biasGradient(slot('input_proj.bias').gradPtr, dz, rows, E);
      inputGradient(dTmp, dz, projection.ptr, rows, D, E);
      dHead = dTmp;
    }
    // The state half of each head-input row; the context half belongs to the frozen LLM.
    const dh = at(dHead);
    const ds = at(dState);
    for (let row = 0; row < rows; row++) memory.copyWithin(ds + row * H, dh + row * D + H, dh + row * D + D);
    if (!rnn) return;

    // Back through time: ds_i = dhead_i + dA_{i+1}·U, dA_i = ds_i ⊙ SiLU'(a_i); dState ends up holding dA.
    const u = slot('rnn_u.weight');
    transpose(weightT, u.ptr, H, H);
    const c = at(carry);
    for (let i = T - 1; i >= 0; i--) {
      const block = dState + i * B * H * 4;
      if (i < T - 1) kernels.add(block, block, carry, B * H);
      siluBackward(block, block, preState + i * B * H * 4, B * H);
      if (i > 0) kernels.matmul(carry, block, weightT, B, H, H);
      else memory.fill(0, c, c + B * H);
    }
    weightGradient(slot('rnn_w.weight').gradPtr, dState, embedded, rows, H, H);
    const du = slot('rnn_u.weight');
    if (T > 1) {
      // s_0 = 0 contributes nothing: pair dA of steps 2..T with the states of steps 1..T−1.
      weightGradient(du.gradPtr, dState + B * H * 4, state, (T - 1) * B, H, H);
    } else {
      du.grad.fill(0);
    }
    biasGradient(slot('rnn_u.bias').gradPtr, dState, rows, H);
  }

  const tensors = [...slots.values()];
  return {
    config,
    predict: T,
    maxBatch: maxB,
    tensors,
    forward(batch) {
      load(batch);
      forwardPass();
      return lossAndLogitGrad(batch);
    },
    forwardBackward(batch) {
      load(batch);
      forwardPass();
      const result = lossAndLogitGrad(batch);
      backwardPass();
      return result;
    },
    logits: () => heap.f32(logitsPtr, T * B * V),
    setWeights(weights) {
      for (const tensor of tensors) {
        const data = weights.tensors.get(tensor.name);
        if (!data || data.length !== tensor.data.length) {
          throw new RangeError(`setWeights: tensor "${tensor.name}" missing or of the wrong size`);
        }
        tensor.data.set(data);
      }
    },
    weights() {
      const out = new Map<string, Float32Array>();
      for (const tensor of tensors) out.set(tensor.name, tensor.data.slice());
      return { config, tensors: out, extraConfig: {} };
    },
    dispose() {
      for (const ptr of owned) heap.free(ptr);
      owned.length = 0;
    },
  };
}
