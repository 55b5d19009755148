// AdamW, clipping and the schedule against values worked out by hand (and torch.optim.AdamW's definition).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKernels } from '../kernels/index.js';
import { adamWStep, clipGradients, createAdamWState, gradientNorm, learningRate, type OptimizedTensor } from './optim.js';

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

test('tensors in a kernel heap: the adamW kernel updates exactly as the JS loop, on 1 and 2 threads', async () => {
  for (const threads of [1, 2]) {
    const kernels = await createKernels({ threads, minParallelWork: 0 });
    try {
      let seed = 5;
      const random = (): number => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return seed / 2 ** 32 - 0.5;
      };
      const sizes = [37, 1, 64, 5];
      const inHeap: OptimizedTensor[] = sizes.map((n, i) => {
        const data = kernels.heap.f32(kernels.heap.alloc(n * 4), n);
        data.set(data.map(random));
        const grad = kernels.heap.f32(kernels.heap.alloc(n * 4), n);
        return { data, grad, decay: i % 2 === 0, kernels };
      });
      const plain: OptimizedTensor[] = inHeap.map((t) => ({ data: t.data.slice(), grad: new Float32Array(t.grad.length),
        decay: t.decay }));
      const heapState = createAdamWState(inHeap);
      const plainState = createAdamWState(plain);
      for (let step = 0; step < 4; step++) {
        inHeap.forEach((t, i) => {
          t.grad.set(t.grad.map(() => 3 * random()));
          plain[i].grad.set(t.grad);
        });
        // The kernel path sums the squares in another order: the norms agree to rounding, and clipping is skipped
        // (norm ≤ 100) so that the gradients stay identical.
        const norm = gradientNorm(plain);
        assert.ok(Math.abs(clipGradients(inHeap, 100) - norm) <= 1e-12 * norm);
        assert.equal(clipGradients(plain, 100), norm);
        adamWStep(inHeap, heapState, 0.01, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1 });
        adamWStep(plain, plainState, 0.01, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.1 });
      }
      inHeap.forEach((t, i) => {
        assert.deepEqual(t.data, plain[i].data, `data of tensor ${i}, threads ${threads}`);
        assert.deepEqual(heapState.m[i], plainState.m[i], `m of tensor ${i}`);
        assert.deepEqual(heapState.v[i], plainState.v[i], `v of tensor ${i}`);
      });
      assert.equal(heapState.step, 4);
      // Clipping in the heap scales like the JS loop.
      const g = inHeap[0].grad;
      const expected = g.map((value) => value * (1 / (gradientNorm(inHeap) + 1e-6)));
      clipGradients(inHeap, 1);
      assert.deepEqual(g, expected);
    } finally {
      await kernels.close();
    }
  }
});
