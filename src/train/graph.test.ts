// The hand-written backward against finite differences of an independent float64 forward (spec §6.1), for every
// drafter tensor, with and without the input projection and the recurrent state; and the training forward against
// the inference head.
//
// Bound: per tensor, ‖g − g_fd‖₂ ≤ 1e-5 · ‖g_fd‖₂ (g from the f32 kernels, g_fd central differences of the f64
// loss with step 1e-4, whose truncation error is ~1e-8: the bound measures f32 rounding in the backward; measured
// worst case 2.3e-7).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/types.js';
import { createRng } from '../sampling/random.js';
import type { LlamaConfig } from '../model/config.js';
import { randomDrafter, type DrafterWeights } from '../drafter/checkpoint.js';
import { createDrafter } from '../drafter/drafter.js';
import { createTrainingGraph, type TrainingBatch } from './graph.js';

function base(dim: number, vocabSize: number): LlamaConfig {
  return {
    dim, hiddenDim: 2 * dim, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: dim / 2, vocabSize, maxSequenceLength: 64,
    normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
    bosId: 1, eosIds: [2],
  };
}

const silu = (x: number): number => x / (1 + Math.exp(-x));

function linear(w: ArrayLike<number>, x: number[], out: number, bias?: ArrayLike<number>): number[] {
  const inDim = x.length;
  const y = new Array<number>(out);
  for (let o = 0; o < out; o++) {
    let sum = bias ? bias[o] : 0;
    for (let i = 0; i < inDim; i++) sum += w[o * inDim + i] * x[i];
    y[o] = sum;
  }
  return y;
}

function logSumExp(values: number[]): number {
  const max = Math.max(...values);
  return Math.log(values.reduce((acc, l) => acc + Math.exp(l - max), 0)) + max;
}

/**
 * Spec §6.1 in float64, straight from the equations (soft > 0: the mixed target of GraphOptions.teacher; decay < 1:
 * step i weighted by decay^(i−1), the weights scaled to sum to T).
 */
function referenceLoss(weights: Map<string, Float64Array>, config: DrafterWeights['config'], embedding: Float32Array,
  batch: TrainingBatch, T: number, soft = 0, decay = 1): number {
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R, rnn } = config;
  const t = (name: string): Float64Array => weights.get(name)!;
  const sums = new Array<number>(T).fill(0);
  const counts = new Array<number>(T).fill(0);
  for (let b = 0; b < batch.count; b++) {
    const h = Array.from(batch.hidden.subarray(b * H, b * H + H));
    let s = new Array<number>(H).fill(0);
    for (let i = 0; i < T; i++) {
      const input = batch.tokens[b * (T + 1) + i];
      const target = batch.tokens[b * (T + 1) + i + 1];
      if (target < 0) break;
      const e = Array.from(embedding.subarray(input * H, input * H + H));
      if (rnn) {
        const we = linear(t('rnn_w.weight'), e, H);
        const us = linear(t('rnn_u.weight'), s, H, t('rnn_u.bias'));
        s = we.map((v, j) => silu(v + us[j]));
      } else {
        s = s.map((v, j) => v + e[j]);
      }
      let z = [...h, ...s];
      if (E !== 2 * H) z = linear(t('input_proj.weight'), z, E, t('input_proj.bias'));
      for (let r = 0; r < R; r++) {
        const u = linear(t(`lm_head.${r}.linear.weight`), z, E, t(`lm_head.${r}.linear.bias`));
        z = z.map((v, j) => v + silu(u[j]));
      }
      const logits = linear(t(`lm_head.${R}.weight`), z, V);
      const logSum = logSumExp(logits);
      sums[i] += (1 - soft) * (logSum - logits[target]);
      if (soft > 0) {
        // The LLM's distribution at the target's position, from its hidden state and the (tied) classifier.
        const hidden = Array.from(batch.targetHidden!.subarray((b * T + i) * H, (b * T + i + 1) * H));
        const teacher = linear(embedding, hidden, V);
        const teacherSum = logSumExp(teacher);
        for (let v = 0; v < V; v++) sums[i] += soft * Math.exp(teacher[v] - teacherSum) * (logSum - logits[v]);
      }
      counts[i]++;
    }
  }
  let weightSum = 0;
  for (let i = 0; i < T; i++) weightSum += decay ** i;
  return sums.reduce((acc, sum, i) => acc + (counts[i] > 0 ? ((decay ** i * T) / weightSum) * (sum / counts[i]) : 0), 0);
}

interface Case {
  H: number;
  V: number;
  E: number;
  R: number;
  rnn: boolean;
  T: number;
  B: number;
  soft?: number;
  stepDecay?: number;
}

function setup(kernels: Kernels, c: Case, seed: number) {
  const weights = randomDrafter(base(c.H, c.V), { exitDim: c.E, numDraftLayers: c.R, rnn: c.rnn, seed });
  const rng = createRng(seed + 1);
  const uniform = (scale: number): number => (rng.nextUniform() * 2 - 1) * scale;
  const embeddingPtr = kernels.heap.alloc(c.V * c.H * 4);
  const embedding = kernels.heap.f32(embeddingPtr, c.V * c.H);
  for (let j = 0; j < embedding.length; j++) embedding[j] = uniform(1);
  const hidden = new Float32Array(c.B * c.H).map(() => uniform(2));
  const tokens = new Int32Array(c.B * (c.T + 1));
  for (let b = 0; b < c.B; b++) {
    // Position b has T + 1 − b known tokens at most: the last positions run past their sequence's end.
    const known = Math.max(2, c.T + 1 - b);
    for (let j = 0; j <= c.T; j++) tokens[b * (c.T + 1) + j] = j < known ? Math.floor(rng.nextUniform() * c.V) : -1;
  }
  const targetHidden = new Float32Array(c.B * c.T * c.H).map(() => uniform(2));
  return { weights, embedding, batch: { count: c.B, hidden, tokens, targetHidden } };
}

async function checkGradients(c: Case): Promise<void> {
  const kernels = await createKernels({ threads: 2, minParallelWork: 0 });
  try {
    const { weights, embedding, batch } = setup(kernels, c, 7);
    const soft = c.soft ?? 0;
    const decay = c.stepDecay ?? 1;
    const graph = createTrainingGraph(kernels, weights.config, embedding, { maxBatch: c.B + 3, predict: c.T,
      teacher: { classifier: embedding, softWeight: soft }, stepDecay: decay });
    graph.setWeights(weights);
    const result = graph.forwardBackward(batch);
    const reference = new Map<string, Float64Array>();
    for (const [name, data] of weights.tensors) reference.set(name, Float64Array.from(data));
    const loss = referenceLoss(reference, weights.config, embedding, batch, c.T, soft, decay);
    assert.ok(Math.abs(result.loss - loss) <= 1e-5 * Math.abs(loss), `loss ${result.loss} vs reference ${loss}`);
    const step = 1e-4;
    for (const tensor of graph.tensors) {
      const values = reference.get(tensor.name)!;
      let diff = 0;
      let norm = 0;
      for (let j = 0; j < values.length; j++) {
        const saved = values[j];
        values[j] = saved + step;
        const plus = referenceLoss(reference, weights.config, embedding, batch, c.T, soft, decay);
        values[j] = saved - step;
        const minus = referenceLoss(reference, weights.config, embedding, batch, c.T, soft, decay);
        values[j] = saved;
        const numeric = (plus - minus) / (2 * step);
        diff += (tensor.grad[j] - numeric) ** 2;
        norm += numeric ** 2;
      }
      if (norm === 0) {
        // rnn_u only acts from step 2 on: with T = 1 its gradient is exactly zero.
        assert.ok(c.T === 1 && tensor.name === 'rnn_u.weight', `${tensor.name}: zero finite-difference gradient`);
        assert.ok(tensor.grad.every((g) => g === 0), `${tensor.name}: expected a zero gradient`);
        continue;
      }
      const relative = Math.sqrt(diff) / Math.sqrt(norm);
      assert.ok(relative <= 1e-5, `${tensor.name}: relative error ${relative.toExponential(2)} > 1e-5`);
    }
    graph.dispose();
  } finally {
    await kernels.close();
  }
}

test('gradients match finite differences: rnn, input projection (E ≠ 2H), two residual blocks', async () => {
  await checkGradients({ H: 8, V: 24, E: 12, R: 2, rnn: true, T: 3, B: 5 });
});

test('gradients match finite differences: soft targets (the LLM\'s distribution mixed with the sampled token)', async () => {
  await checkGradients({ H: 8, V: 24, E: 12, R: 2, rnn: true, T: 3, B: 5, soft: 0.7 });
  await checkGradients({ H: 6, V: 20, E: 12, R: 1, rnn: true, T: 2, B: 4, soft: 1 });
});

test('gradients match finite differences: steps weighted by a decay (stepDecay)', async () => {
  await checkGradients({ H: 8, V: 24, E: 12, R: 2, rnn: true, T: 4, B: 5, soft: 0.5, stepDecay: 0.6 });
});

test('gradients match finite differences: rnn, E = 2H (no input projection), one block', async () => {
  await checkGradients({ H: 6, V: 20, E: 12, R: 1, rnn: true, T: 4, B: 4 });
});

test('gradients match finite differences: running-sum state (rnn = false), T = 1 and T = 2', async () => {
  await checkGradients({ H: 4, V: 16, E: 10, R: 2, rnn: false, T: 2, B: 3 });
  await checkGradients({ H: 4, V: 16, E: 8, R: 1, rnn: true, T: 1, B: 3 });
});

test('the training forward reproduces the inference head bit for bit', async () => {
  const c: Case = { H: 16, V: 128, E: 24, R: 2, rnn: true, T: 4, B: 6 };
  const kernels = await createKernels({ threads: 1 });
  try {
    const { weights, embedding, batch } = setup(kernels, { ...c }, 3);
    for (let j = 0; j < batch.tokens.length; j++) if (batch.tokens[j] < 0) batch.tokens[j] = 5;
    const graph = createTrainingGraph(kernels, weights.config, embedding, { maxBatch: c.B, predict: c.T });
    graph.setWeights(weights);
    graph.forward(batch);
    const logits = graph.logits();
    const drafter = createDrafter(kernels, weights, embedding, c.B);
    drafter.resetState();
    for (let b = 0; b < c.B; b++) {
      drafter.setContext(batch.hidden, b * c.H);
      drafter.resetState();
      for (let i = 0; i < c.T; i++) {
        const out = drafter.step(Int32Array.of(batch.tokens[b * (c.T + 1) + i]), 1);
        const row = (i * c.B + b) * c.V;
        for (let v = 0; v < c.V; v++) {
          assert.equal(logits[row + v], out[v], `position ${b}, step ${i + 1}, logit ${v}`);
        }
      }
    }
    drafter.dispose();
    graph.dispose();
  } finally {
    await kernels.close();
  }
});

test('the gradient has the same bits on 1 thread and on 2 threads splitting every call', async () => {
  const c: Case = { H: 16, V: 40, E: 24, R: 2, rnn: true, T: 3, B: 37 };
  const grads: Float32Array[][] = [];
  const losses: number[] = [];
  for (const threads of [1, 2]) {
    const kernels = await createKernels({ threads, minParallelWork: 0 });
    try {
      const { weights, embedding, batch } = setup(kernels, c, 11);
      const graph = createTrainingGraph(kernels, weights.config, embedding, { maxBatch: c.B, predict: c.T,
        teacher: { classifier: embedding, softWeight: 0.5 }, stepDecay: 0.7 });
      graph.setWeights(weights);
      losses.push(graph.forwardBackward(batch).loss);
      grads.push(graph.tensors.map((t) => t.grad.slice()));
      graph.dispose();
    } finally {
      await kernels.close();
    }
  }
  assert.equal(losses[1], losses[0]);
  grads[0].forEach((g, i) => assert.deepEqual(grads[1][i], g, `tensor ${i}`));
});
