// AdamW (Loshchilov & Hutter, as torch.optim.AdamW computes it), the warmup + cosine learning-rate schedule of
// Hugging Face's `get_cosine_schedule_with_warmup`, and global gradient-norm clipping (spec §6.1: Apple's recipe
// trains with adamw_torch, β = (0.9, 0.999), ε = 1e-8, cosine schedule, warmup ratio 0.1, max_grad_norm 1.0).

import type { Kernels, Ptr } from '../kernels/types.js';
import { adamW as adamWLoop } from '../kernels/reference.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };

export interface OptimizedTensor {
  readonly data: Float32Array;
  readonly grad: Float32Array;
  /** Whether weight decay applies (weight matrices yes, biases no). */
  readonly decay: boolean;
  /**
   * The kernels whose heap holds data and grad, if it does: the optimizer then keeps its moments in that heap and
   * updates with the adamW kernel, the arithmetic of adamWStep's loop element for element (~10× faster than JS).
   */
  readonly kernels?: Kernels;
}

/** First and second moments, one pair per tensor, in f32 as PyTorch keeps them. */
export interface AdamWState {
  /** Updates taken so far (bias correction uses step + 1 for the next one). */
  step: number;
  /** Fill them with .set(), never swap them: they may live in a kernel heap. */
  readonly m: readonly Float32Array[];
  readonly v: readonly Float32Array[];
  /** Set when the moments live in these kernels' heap: adamWStep then runs their adamW kernel. */
  readonly kernels?: Kernels;
  /** The adamW kernel's 9 f64 parameters, in that heap. */
  readonly params?: Ptr;
}

/**
 * Zero moments for `tensors`. When every tensor names the same kernels, the moments live in their heap (for as long
 * as the kernels do) and adamWStep runs the adamW kernel on them.
 */
export function createAdamWState(tensors: readonly OptimizedTensor[]): AdamWState {
  const kernels = sharedKernels(tensors);
  if (kernels === undefined) {
    return {
      step: 0,
      m: tensors.map((t) => new Float32Array(t.data.length)),
      v: tensors.map((t) => new Float32Array(t.data.length)),
    };
  }
  const heap = kernels.heap;
  const moment = (t: OptimizedTensor): Float32Array => heap.f32(heap.alloc(Math.max(1, t.data.length) * 4), t.data.length);
  return { step: 0, m: tensors.map(moment), v: tensors.map(moment), kernels, params: heap.alloc(9 * 8) };
}

/**
 * One AdamW update with learning rate `lr`, in place: p ← p − lr·λ·p (decoupled decay), m ← β1 m + (1−β1) g,
 * v ← β2 v + (1−β2) g², p ← p − lr · (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε).
 */
export function adamWStep(tensors: readonly OptimizedTensor[], state: AdamWState, lr: number,
  options: AdamWOptions = ADAMW_DEFAULTS): void {
  const t = state.step + 1;
  const { beta1, beta2, epsilon, weightDecay } = options;
  const correction1 = 1 - beta1 ** t;
  const correction2 = 1 - beta2 ** t;
  const { kernels, params } = state;
  if (kernels !== undefined && params !== undefined && tensors.every((tensor) => tensor.kernels === kernels)) {
    const values = new Float64Array(kernels.heap.memory.buffer, params, 9);
    values.set([beta1, 1 - beta1, beta2, 1 - beta2, correction1, correction2, epsilon, lr]);
    tensors.forEach((tensor, index) => {
      values[8] = tensor.decay ? 1 - lr * weightDecay : 1;
      kernels.adamW(tensor.data.byteOffset, tensor.grad.byteOffset, state.m[index].byteOffset,
        state.v[index].byteOffset, tensor.data.length, params);
    });
    state.step = t;
    return;
  }
  tensors.forEach((tensor, index) => {
    const { data, grad } = tensor;
    const m = state.m[index];
    const v = state.v[index];
    const decay = tensor.decay ? 1 - lr * weightDecay : 1;
    adamWLoop(data, grad, m, v, beta1, beta2, correction1, correction2, epsilon, lr, decay);
  });
  state.step = t;
}

/** The kernels holding every tensor, if one set does. */
function sharedKernels(tensors: readonly OptimizedTensor[]): Kernels | undefined {
  const kernels = tensors[0]?.kernels;
  return kernels !== undefined && tensors.every((t) => t.kernels === kernels) ? kernels : undefined;
}

/**
 * Global L2 norm of all gradients in f64: summed in tensor order then element order, or, when the tensors live in
 * one kernel heap, per tensor by the sumOfSquares kernel (4 lanes) and then in tensor order.
 */
export function gradientNorm(tensors: readonly OptimizedTensor[]): number {
  const kernels = sharedKernels(tensors);
  let sum = 0;
  if (kernels) {
    for (const { grad } of tensors) sum += kernels.sumOfSquares(grad.byteOffset, grad.length);
  } else {
    for (const { grad } of tensors) for (let j = 0; j < grad.length; j++) sum += grad[j] * grad[j];
  }
  return Math.sqrt(sum);
}

/** Scales every gradient by maxNorm / norm when the norm exceeds maxNorm (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping. */
export function clipGradients(tensors: readonly OptimizedTensor[], maxNorm: number): number {
  const norm = gradientNorm(tensors);
  if (norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    const kernels = sharedKernels(tensors);
    for (const { grad } of tensors) {
      if (kernels) kernels.scale(grad.byteOffset, grad.length, scale);
      else for (let j = 0; j < grad.length; j++) grad[j] *= scale;
    }
  }
  return norm;
}

/**
 * Learning rate of update `step` (0-based) out of `total`: linear warmup to `peak` over `warmup` updates, reaching
 * the peak on the last warmup update ((step + 1) / warmup, so no update is wasted at lr 0), then a half cosine from
 * `peak` down to 0 at the end.
 */
export function learningRate(step: number, total: number, warmup: number, peak: number): number {
  if (step < warmup) return peak * (step + 1) / warmup;
  const decaySteps = Math.max(1, total - warmup);
  const progress = Math.min(1, (step - warmup) / decaySteps);
  return peak * 0.5 * (1 + Math.cos(Math.PI * progress));
}
