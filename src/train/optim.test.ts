// AdamW, clipping and the schedule against values worked out by hand (and torch.optim.AdamW's definition).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adamWStep, clipGradients, createAdamWState, learningRate, type OptimizedTensor } from './optim.js';

const close = (actual: number, expected: number, tolerance = 1e-6): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('AdamW: the first update moves every parameter by lr·sign(g) (bias correction), decay only on weights', () => {
  const weight: OptimizedTensor = { data: Float32Array.of(1, -2), grad: Float32Array.of(0.5, -3), decay: true };
  const bias: OptimizedTensor = { data: Float32Array.of(1), grad: Float32Array.of(0.25), decay: false };
  const state = createAdamWState([weight, bias]);
  adamWStep([weight, bias], state, 0.1, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.5 });
  // m̂ = g, v̂ = g², so the step is lr · g / (|g| + ε) ≈ lr · sign(g); decay multiplies a weight by 1 − lr·λ = 0.95.
  close(weight.data[0], 1 * 0.95 - 0.1);
  close(weight.data[1], -2 * 0.95 + 0.1);
  close(bias.data[0], 1 - 0.1);
  assert.equal(state.step, 1);
  close(state.m[0][0], 0.05);
  close(state.v[0][1], 0.009, 1e-9);
});

test('AdamW: the second update by hand', () => {
  const p: OptimizedTensor = { data: Float32Array.of(0), grad: Float32Array.of(1), decay: true };
  const state = createAdamWState([p]);
  adamWStep([p], state, 0.01);
  p.grad[0] = -1;
  adamWStep([p], state, 0.01);
  // m = 0.9·0.1 − 0.1 = −0.01, v = 0.999·0.001 + 0.001 = 0.001999; m̂ = −0.01/0.19, v̂ = 0.001999/0.001999 = 1.
  const mHat = -0.01 / (1 - 0.81);
  const vHat = 0.001999 / (1 - 0.999 ** 2);
  close(p.data[0], -0.01 - 0.01 * mHat / (Math.sqrt(vHat) + 1e-8));
});

test('gradient clipping scales to the maximum norm and reports the norm before', () => {
  const a: OptimizedTensor = { data: new Float32Array(2), grad: Float32Array.of(3, 0), decay: true };
  const b: OptimizedTensor = { data: new Float32Array(1), grad: Float32Array.of(4), decay: false };
  close(clipGradients([a, b], 1), 5);
  close(a.grad[0], 0.6, 1e-6);
  close(b.grad[0], 0.8, 1e-6);
  const small: OptimizedTensor = { data: new Float32Array(1), grad: Float32Array.of(0.5), decay: true };
  close(clipGradients([small], 1), 0.5);
  assert.equal(small.grad[0], 0.5);
});

test('warmup then cosine: hand-checked points', () => {
  // 100 updates, 10 of warmup, peak 1.
  close(learningRate(0, 100, 10, 1), 0.1);
  close(learningRate(4, 100, 10, 1), 0.5);
  close(learningRate(9, 100, 10, 1), 1);
  close(learningRate(10, 100, 10, 1), 1);
  close(learningRate(55, 100, 10, 1), 0.5);  // half way through the decay: cos(π/2) = 0
  close(learningRate(40, 100, 10, 1), 0.5 * (1 + Math.cos(Math.PI / 3)));  // a third: 0.75
  close(learningRate(100, 100, 10, 1), 0);
});
