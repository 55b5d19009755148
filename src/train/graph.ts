// The drafter's training forward and hand-written backward (spec §6.1) on the engine's kernels.
//
// Teacher forcing over T future tokens: for a context position p with final-norm hidden state h_p and the sequence's
// next tokens x_{p+1} … x_{p+T+1}, step i = 1..T feeds x_{p+i} and predicts x_{p+i+1}:
//   s_i = SiLU(W e(x_{p+i}) + (U s_{i−1} + b)),  s_0 = 0          (or s_i = s_{i−1} + e(x_{p+i}) without rnn)
//   z_0 = [h_p, s_i] (→ A z_0 + a when E ≠ 2H),  z_{r+1} = z_r + SiLU(M_r z_r + c_r),  ℓ_i = O z_R
//   loss = Σ_i w_i · mean_b CE(ℓ_i, x_{p+i+1})      (w_i = 1 as in Apple's recipe, or decaying with i: stepDecay)
// The forward issues exactly the kernel calls of src/drafter/drafter.ts, so its logits are bit-identical to the
// inference head's. The backward runs on the training kernels (types.ts: gradWeight = dYᵀ·X, gradInput = dY·W,
// siluGrad, columnSums, crossEntropyGrad), each output one chain in a fixed order, so a batch's gradient depends on
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
  /** Σ over steps of the weighted mean cross-entropy (the training objective). */
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
  /** The kernels whose heap holds data and grad (the optimizer runs there: optim.ts). */
  readonly kernels: Kernels;
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
  /**
   * Step i (1-based) of the summed loss is weighted by stepDecay^(i−1), the weights scaled to sum to T (1 = Apple's
   * equal weights). Why decay: a drafted token only counts when every earlier one was accepted, so the first steps
   * carry most of the tokens per decoding step.
   */
  stepDecay?: number;
}

export function createTrainingGraph(kernels: Kernels, config: DrafterConfig, tokenEmbedding: Float32Array,
  options: GraphOptions): TrainingGraph {
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R, rnn } = config;
  const T = options.predict;
  const maxB = options.maxBatch;
  const decay = options.stepDecay ?? 1;
  if (!(decay > 0 && decay <= 1)) throw new RangeError(`stepDecay: expected a number in (0, 1], got ${decay}`);
  const rawWeights = Array.from({ length: T }, (_, i) => decay ** i);
  const weightSum = rawWeights.reduce((a, b) => a + b, 0);
  const stepWeights = rawWeights.map((w) => (w * T) / weightSum);
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
      decay: shape.length === 2, kernels });
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
  const dz = alloc(N * E);
  const dPre = alloc(N * E);
  const dState = alloc(N * H);
  // crossEntropyGrad's rows: targets (i32), soft and the row scales (f64), results (ce, best) (f64 pairs).
  const targetsPtr = alloc(N);
  const paramsPtr = alloc(2 * (N + 1));
  const resultsPtr = alloc(4 * N);
  const teacher = options.teacher && options.teacher.softWeight > 0 ? options.teacher : null;
  if (teacher && teacher.classifier.length !== V * H) {
    throw new RangeError(`teacher classifier: expected ${V}×${H} floats, got ${teacher.classifier.length}`);
  }
  const teacherHidden = teacher ? alloc(N * H) : 0;
  const teacherLogits = teacher ? alloc(N * V) : 0;
  // Cᵀ [H, V], so that the teacher's logits h·Cᵀ are gradInput's dY·W (its rank-1 loop runs ~1.5× the matmul's
  // speed at inDim = H); the classifier is frozen, so one copy serves the whole training.
  const classifierT = teacher ? alloc(H * V) : 0;

  // One view of the whole memory: buffers are addressed by float offset (ptr / 4).
  const memory = heap.f32(0, heap.memory.buffer.byteLength / 4);
  const embeddingBase = tokenEmbedding.byteOffset / 4;
  const at = (ptr: Ptr): number => ptr / 4;
  if (teacher) {
    for (let v = 0; v < V; v++) for (let h = 0; h < H; h++) memory[at(classifierT) + h * V + v] = teacher.classifier[v * H + h];
  }
  const targets = heap.i32(targetsPtr, N);
  const params = new Float64Array(heap.memory.buffer, paramsPtr, N + 1);
  const results = new Float64Array(heap.memory.buffer, resultsPtr, 2 * N);

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
      kernels.gradInput(teacherLogits, teacherHidden, classifierT, rows, V, H);
    }
    const soft = teacher ? teacher.softWeight : 0;
    stepLoss.fill(0);
    stepCorrect.fill(0);
    stepCount.fill(0);
    for (let i = 0; i < T; i++) for (let b = 0; b < B; b++) if (batch.tokens[b * (T + 1) + i + 1] >= 0) stepCount[i]++;
    params[0] = soft;
    for (let i = 0; i < T; i++) {
      const scale = stepCount[i] > 0 ? stepWeights[i] / stepCount[i] : 0;
      for (let b = 0; b < B; b++) {
        targets[i * B + b] = batch.tokens[b * (T + 1) + i + 1];
        params[1 + i * B + b] = scale;
      }
    }
    // Per row: both softmaxes, then probs becomes dLoss/dlogits and results gets (cross-entropy, argmax); see
    // Kernels.crossEntropyGrad.
    kernels.crossEntropyGrad(probs, logitsPtr, teacher ? teacherLogits : 0, targetsPtr, paramsPtr, resultsPtr, rows, V);
    let loss = 0;
    for (let i = 0; i < T; i++) {
      let sum = 0;
      for (let b = 0; b < B; b++) {
        const row = i * B + b;
        if (targets[row] < 0) continue;
        if (results[2 * row + 1] === targets[row]) stepCorrect[i]++;
        sum += results[2 * row];
      }
      stepLoss[i] = stepCount[i] > 0 ? sum / stepCount[i] : 0;
      loss += stepWeights[i] * stepLoss[i];
    }
    return { loss, stepLoss: stepLoss.slice(), stepCorrect: stepCorrect.slice(), stepCount: stepCount.slice() };
  }

  // Backward (spec §6.1) for out = x·wᵀ (+ bias): dW = dYᵀ·X (gradWeight), db = Σ_rows dY (columnSums), dX = dY·W
  // (gradInput).
  function backwardPass(): void {
    const k = kernels;
    const rows = T * B;
    const vocab = slot(`lm_head.${R}.weight`);
    k.gradWeight(vocab.gradPtr, probs, zs[R], rows, E, V);
    k.gradInput(dz, probs, vocab.ptr, rows, E, V);
    for (let r = R - 1; r >= 0; r--) {
      const weight = slot(`lm_head.${r}.linear.weight`);
      k.siluGrad(dPre, dz, preBlock[r], rows * E);
      k.gradWeight(weight.gradPtr, dPre, zs[r], rows, E, E);
      k.columnSums(slot(`lm_head.${r}.linear.bias`).gradPtr, dPre, rows, E);
      // Residual: dz_r = dz_{r+1} + dPre·M_r.
      k.gradInput(dz, dPre, weight.ptr, rows, E, E, dz);
    }
    if (hasProjection) {
      const projection = slot('input_proj.weight');
      k.gradWeight(projection.gradPtr, dz, headInput, rows, D, E);
      k.columnSums(slot('input_proj.bias').gradPtr, dz, rows, E);
    }
    if (!rnn) return;
    // The state half of each head-input row's gradient; the context half belongs to the frozen LLM.
    if (hasProjection) {
      k.gradInput(dState, dz, slot('input_proj.weight').ptr, rows, D, E, 0, H, H);
    } else {
      const dh = at(dz);
      const ds = at(dState);
      for (let row = 0; row < rows; row++) memory.copyWithin(ds + row * H, dh + row * D + H, dh + row * D + D);
    }

    // Back through time: ds_i = dhead_i + dA_{i+1}·U, dA_i = ds_i ⊙ SiLU'(a_i); dState ends up holding dA.
    const u = slot('rnn_u.weight');
    for (let i = T - 1; i >= 0; i--) {
      const block = dState + i * B * H * 4;
      k.siluGrad(block, block, preState + i * B * H * 4, B * H);
      if (i > 0) {
        const before = block - B * H * 4;
        k.gradInput(before, block, u.ptr, B, H, H, before);
      }
    }
    k.gradWeight(slot('rnn_w.weight').gradPtr, dState, embedded, rows, H, H);
    // s_0 = 0 contributes nothing: pair dA of steps 2..T with the states of steps 1..T−1 (none when T = 1: zeros).
    k.gradWeight(u.gradPtr, dState + B * H * 4, state, (T - 1) * B, H, H);
    k.columnSums(slot('rnn_u.bias').gradPtr, dState, rows, H);
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
