import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createKernels } from '../kernels/index.js';
import { createRng } from '../sampling/random.js';
import type { LlamaConfig } from '../model/config.js';
import { randomDrafter, type DrafterWeights } from './checkpoint.js';
import { createDrafter } from './drafter.js';

const base: LlamaConfig = {
  dim: 16, hiddenDim: 40, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: 8, vocabSize: 128, maxSequenceLength: 64,
  normEps: 1e-5, ropeTheta: 10000, ropeLayout: 'pairs', ropeScaling: null, tiedClassifier: true, qkvBias: false,
  bosId: 1, eosIds: [2],
};

const silu = (x: number): number => x / (1 + Math.exp(-x));

function linear(w: Float32Array, x: number[], out: number, bias?: Float32Array): number[] {
  const inDim = x.length;
  return Array.from({ length: out }, (_, o) => {
    let sum = bias ? bias[o] : 0;
    for (let i = 0; i < inDim; i++) sum += w[o * inDim + i] * x[i];
    return sum;
  });
}

/** Spec §1.2 in float64: state update from s, then logits of head([h, s]). */
function referenceStep(weights: DrafterWeights, embedding: Float32Array, h: number[], s: number[], token: number):
  { state: number[]; logits: number[] } {
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R, rnn } = weights.config;
  const t = (name: string): Float32Array => weights.tensors.get(name)!;
  const e = Array.from(embedding.subarray(token * H, token * H + H));
  const state = rnn
    ? linear(t('rnn_w.weight'), e, H).map((v, i) => silu(v + linear(t('rnn_u.weight'), s, H, t('rnn_u.bias'))[i]))
    : s.map((v, i) => v + e[i]);
  let z = [...h, ...state];
  if (E !== 2 * H) z = linear(t('input_proj.weight'), z, E, t('input_proj.bias'));
  for (let r = 0; r < R; r++) {
    const block = linear(t(`lm_head.${r}.linear.weight`), z, E, t(`lm_head.${r}.linear.bias`));
    z = z.map((v, i) => v + silu(block[i]));
  }
  return { state, logits: linear(t(`lm_head.${R}.weight`), z, V) };
}

test('drafter steps match the spec equations (input_proj or not, rnn or running sum), with beam reordering', async () => {
  const kernels = await createKernels({ threads: 1 });
  try {
    const rng = createRng(9);
    const embeddingPtr = kernels.heap.alloc(base.vocabSize * base.dim * 4);
    const embedding = kernels.heap.f32(embeddingPtr, base.vocabSize * base.dim);
    for (let i = 0; i < embedding.length; i++) embedding[i] = rng.nextUniform() * 2 - 1;
    for (const [exitDim, rnn, layers] of [[24, true, 1], [32, true, 2], [24, false, 1], [32, false, 0]] as const) {
      const weights = randomDrafter(base, { exitDim, rnn, numDraftLayers: layers, seed: exitDim + layers });
      const drafter = createDrafter(kernels, weights, embedding, 4);
      const h = Array.from({ length: 16 }, () => rng.nextUniform() * 2 - 1);
      drafter.setContext(Float32Array.from(h), 0);
      drafter.resetState();
      // Step 1: one row; then reorder to 3 rows (all from row 0) and step with different tokens.
      let states = [new Array<number>(16).fill(0)];
      const first = drafter.step(Int32Array.of(7), 1);
      const expected1 = referenceStep(weights, embedding, h, states[0], 7);
      expected1.logits.forEach((v, i) => assert.ok(Math.abs(first[i] - v) < 1e-4, `step 1 logit ${i}`));
      states = [expected1.state, expected1.state, expected1.state];
      drafter.reorderState(Int32Array.of(0, 0, 0), 3);
      const tokens = Int32Array.of(3, 100, 42);
      const second = drafter.step(tokens, 3);
      const nextStates: number[][] = [];
      for (let r = 0; r < 3; r++) {
        const expected = referenceStep(weights, embedding, h, states[r], tokens[r]);
        nextStates.push(expected.state);
        expected.logits.forEach((v, i) => assert.ok(Math.abs(second[r * 128 + i] - v) < 1e-4,
          `exitDim ${exitDim} rnn ${rnn}: step 2 row ${r} logit ${i}: ${second[r * 128 + i]} vs ${v}`));
      }
      // Reorder rows (2, 0, 0) and step again.
      drafter.reorderState(Int32Array.of(2, 0, 0), 3);
      const third = drafter.step(Int32Array.of(5, 6, 7), 3);
      [2, 0, 0].forEach((parent, r) => {
        const expected = referenceStep(weights, embedding, h, nextStates[parent], 5 + r);
        expected.logits.forEach((v, i) => assert.ok(Math.abs(third[r * 128 + i] - v) < 1e-4, `step 3 row ${r}`));
      });
      drafter.dispose();
    }
  } finally {
    await kernels.close();
  }
});

test('createDrafter refuses an embedding table outside the kernels\' heap (its kernels read it by address)', async () => {
  const kernels = await createKernels({ threads: 1 });
  try {
    const weights = randomDrafter(base, { exitDim: 24, seed: 1 });
    const copy = new Float32Array(base.vocabSize * base.dim);
    assert.throws(() => createDrafter(kernels, weights, copy, 4), /tokenEmbedding must be a view into the kernels' heap/);
  } finally {
    await kernels.close();
  }
});
