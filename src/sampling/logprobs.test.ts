import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenLogprobs } from './logprobs.js';

test('tokenLogprobs: log-softmax of the raw logits, the top entries most likely first, ties by id', () => {
  const logits = Float32Array.of(1, 3, 2, 3, -1);
  const result = tokenLogprobs(logits, 2, 3);
  const normalizer = Math.log([1, 3, 2, 3, -1].reduce((s, v) => s + Math.exp(v), 0));
  assert.ok(Math.abs(result.logprob - (2 - normalizer)) < 1e-12);
  assert.deepEqual(result.top.map((t) => t.token), [1, 3, 2]);
  assert.ok(Math.abs(result.top[0].logprob - (3 - normalizer)) < 1e-12);
  const probabilities = [0, 1, 2, 3, 4].map((t) => Math.exp(tokenLogprobs(logits, t, 0).logprob));
  assert.ok(Math.abs(probabilities.reduce((a, b) => a + b) - 1) < 1e-12);
  assert.deepEqual(tokenLogprobs(logits, 0, 0).top, []);
  assert.throws(() => tokenLogprobs(logits, 5, 1), /token 5 outside the vocabulary 0\.\.4/);
});
