// Batch invariance on WebGPU (architecture.md, invariant 1), the property that makes ReDrafter's output plain
// decoding's: a packed tree verified in one forward gives every node the logits and hidden state, bit for bit, of
// feeding that node's path one token at a time; a row computed alone gives the bits it gets among other rows; and
// after keepSlots the compacted cache continues exactly like the autoregressive one. Also: the readback options.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { packBeams } from '../drafter/convenience.js';
import type { PackedTree } from '../drafter/tree.js';
import { withTempDirAsync } from '../formats/test-fixtures.js';
import { readCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { randomCheckpoint } from '../model/random-checkpoint.js';
import { writeSyntheticGguf } from '../../test/synthetic-models.js';
import { argmaxRow } from './async-model.js';
import type { GpuKvCache } from './kv-cache.js';
import { CPU_KERNEL_SHAPE, GPU_KERNEL_SHAPE, type KernelShape } from './matmul.js';
import { createWebGpuModel, type WebGpuModel } from './model.js';
import { requireDevice, testDevice } from './test-device.js';

const device = await testDevice();
after(() => device.gpu?.destroy());
const skip = device.skip;

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

interface Row { logits: Float32Array; hidden: Float32Array }

async function prefill(model: WebGpuModel, cache: GpuKvCache, tokens: readonly number[]): Promise<void> {
  await model.forward(cache, { count: tokens.length, tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, i) => i),
    writeSlot: 0, prefixLengths: Int32Array.from(tokens, (_, i) => i + 1), logits: 'none' }, { hidden: 'none' });
  cache.length = tokens.length;
}

/** One autoregressive step at slot = position = cache.length. */
async function step(model: WebGpuModel, cache: GpuKvCache, token: number): Promise<Row> {
  const at = cache.length;
  const out = await model.forward(cache, { count: 1, tokens: Int32Array.of(token), positions: Int32Array.of(at), writeSlot: at,
    prefixLengths: Int32Array.of(at + 1), logits: 'last' });
  cache.length = at + 1;
  return { logits: out.logits.slice(), hidden: out.hidden.slice() };
}

/** The forward verifying `tree` after a cache of `start` slots: node p at slot start + p, position start + depth. */
function treeBatch(tree: PackedTree, start: number, nodes: readonly number[] = Array.from({ length: tree.size }, (_, p) => p)) {
  const extraStarts = new Int32Array(nodes.length + 1);
  const extraSlots: number[] = [];
  nodes.forEach((p, i) => {
    for (let a = tree.ancestorStarts[p]; a < tree.ancestorStarts[p + 1]; a++) extraSlots.push(start + tree.ancestors[a]);
    extraStarts[i + 1] = extraSlots.length;
  });
  return {
    count: nodes.length, tokens: Int32Array.from(nodes, (p) => tree.tokens[p]),
    positions: Int32Array.from(nodes, (p) => start + tree.depths[p]), writeSlot: start + nodes[0],
    prefixLengths: new Int32Array(nodes.length).fill(start), extraStarts, extraSlots: Int32Array.from(extraSlots),
    logits: 'all' as const,
  };
}

const PREFIX = [1, 20, 30, 40, 11];
// Four beams of length 4 sharing prefixes (as a drafter's would after g0 = 7): 10 packed nodes.
const BEAMS = [[7, 3, 9, 12], [7, 3, 9, 44], [7, 3, 50, 2], [7, 60, 61, 62]];

async function checkTree(checkpoint: Checkpoint, shape: KernelShape, what: string): Promise<void> {
  const model = createWebGpuModel(requireDevice(device).device, checkpoint, { contextLength: 64, kernelShape: shape });
  const { vocabSize: vocab, dim } = model.config;
  const tree = packBeams(BEAMS);
  assert.equal(tree.size, 10, `${what}: packed nodes`);
  const S = PREFIX.length;
  const cache = model.createCache(32);
  await prefill(model, cache, PREFIX);
  const verified = await model.forward(cache, treeBatch(tree, S));
  const treeLogits = verified.logits.slice();
  const treeHidden = verified.hidden.slice();
  const node = (p: number): Row => ({ logits: treeLogits.subarray(p * vocab, (p + 1) * vocab), hidden: treeHidden.subarray(p * dim, (p + 1) * dim) });

  // Every node against its path fed autoregressively.
  const checked = new Set<number>();
  for (const [b, beam] of BEAMS.entries()) {
    const ar = model.createCache(32);
    await prefill(model, ar, PREFIX);
    for (const [k, token] of beam.entries()) {
      const row = await step(model, ar, token);
      const p = tree.unpack[b * tree.length + k];
      assert.deepEqual(bits(node(p).logits), bits(row.logits), `${what}: node ${p} (beam ${b}, depth ${k}) logits`);
      assert.deepEqual(bits(node(p).hidden), bits(row.hidden), `${what}: node ${p} hidden state`);
      checked.add(p);
    }
    ar.free();
  }
  assert.equal(checked.size, tree.size, `${what}: every node checked`);

  // A node alone (its ancestors' KV already in the cache from the tree forward) and a subset of rows.
  for (const nodes of [[4], [2, 3], [7, 8, 9]]) {
    const alone = await model.forward(cache, treeBatch(tree, S, nodes));
    nodes.forEach((p, i) => assert.deepEqual(bits(alone.logits.subarray(i * vocab, (i + 1) * vocab)), bits(node(p).logits),
      `${what}: node ${p} in a batch of ${nodes.length}`));
  }

  // Accept beam 2's first three tokens (nodes at depths 0..2), compact, continue: equals plain decoding.
  const path = [0, 1, 2].map((k) => tree.unpack[2 * tree.length + k]);
  cache.keepSlots(S, path.map((p) => S + p), path.length);
  assert.equal(cache.length, S + 3);
  const after = await step(model, cache, 77);
  const plain = model.createCache(32);
  await prefill(model, plain, [...PREFIX, ...BEAMS[2].slice(0, 3)]);
  const expected = await step(model, plain, 77);
  assert.deepEqual(bits(after.logits), bits(expected.logits), `${what}: after keepSlots`);
  assert.deepEqual(bits(after.hidden), bits(expected.hidden), `${what}: hidden after keepSlots`);
  plain.free();
  cache.free();
  model.dispose();
}

test('tree verification gives every node the bits of its autoregressive path; rows alone match; keepSlots continues exactly (f32, CPU kernel shape)',
  { skip }, async () => {
    const checkpoint = randomCheckpoint({ dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 128 }, 21);
    await checkTree(checkpoint, CPU_KERNEL_SHAPE, 'f32');
  });

test('the same on the GPU kernel shape (64 threads, 32 lanes; f32, half-split RoPE, qkv bias) and on a Q4_0 GGUF model', { skip }, async () => {
  await checkTree(randomCheckpoint({ dim: 64, hiddenDim: 96, nLayers: 1, nHeads: 4, nKvHeads: 1, vocabSize: 100,
    ropeLayout: 'halves', qkvBias: true }, 4),
    GPU_KERNEL_SHAPE, 'f32, GPU shape');
  await withTempDirAsync(async (dir) => {
    const path = writeSyntheticGguf(join(dir, 'q4'), { kind: 'llama3', dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4,
      nKvHeads: 2, merges: 100, seed: 9 }, 'q4_0');
    await checkTree(readCheckpoint(path), CPU_KERNEL_SHAPE, 'q4_0');
  });
});

test('keepSlots keeps an unmoved prefix, moves runs, and rejects lists that are not an accepted path', { skip }, async () => {
  const checkpoint = randomCheckpoint({ dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 50 }, 2);
  const model = createWebGpuModel(requireDevice(device).device, checkpoint, { contextLength: 32 });
  const sequence = [1, 5, 9, 13, 17, 21, 25, 29];
  // Slots 0..2 committed; 3..9 hold candidates; keep 3 (in place), 5, 6 (a run) and 9 as positions 3..6.
  const cache = model.createCache(16);
  await prefill(model, cache, sequence.slice(0, 3));
  const slots = [3, 5, 6, 9];
  const candidates = [sequence[3], 40, sequence[4], sequence[5], 41, 42, sequence[6]];
  await model.forward(cache, { count: 7, tokens: Int32Array.from(candidates), writeSlot: 3,
    positions: Int32Array.of(3, 4, 4, 5, 5, 5, 6), prefixLengths: new Int32Array(7).fill(3),
    extraStarts: Int32Array.of(0, 1, 2, 4, 7, 8, 9, 13),
    extraSlots: Int32Array.of(3, 4, 3, 5, 3, 5, 6, 7, 8, 3, 5, 6, 9), logits: 'none' }, { hidden: 'none' });
  cache.keepSlots(3, slots, 4);
  const next = await step(model, cache, sequence[7]);
  const plain = model.createCache(16);
  await prefill(model, plain, sequence.slice(0, 7));
  assert.deepEqual(bits(next.logits), bits((await step(model, plain, sequence[7])).logits));
  assert.throws(() => cache.keepSlots(3, [2, 4], 2), /slots\[0\] = 2 for target slot 3/);
  assert.throws(() => cache.keepSlots(3, [5, 5], 2), /strictly increasing/);
  assert.throws(() => cache.keepSlots(10, [12, 13, 16, 17, 18, 19, 20], 7), /exceed the capacity 16/);
  cache.free();
  plain.free();
  assert.throws(() => cache.keepSlots(0, [0], 1), /freed/);
  await assert.rejects(model.forward(cache, { count: 1, tokens: Int32Array.of(1), positions: Int32Array.of(0), writeSlot: 0,
    prefixLengths: Int32Array.of(1), logits: 'last' }), /freed/);
  model.dispose();
});

test('readback: argmax ids, selected hidden rows and bytes read are what was asked for; bad batches are refused', { skip }, async () => {
  const checkpoint = randomCheckpoint({ dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 300,
    maxSequenceLength: 16 }, 8);
  const model = createWebGpuModel(requireDevice(device).device, checkpoint);
  const { vocabSize: vocab, dim } = model.config;
  const tokens = [3, 1, 4, 1, 5, 9];
  const batch = { count: 6, tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, i) => i), writeSlot: 0,
    prefixLengths: Int32Array.from(tokens, (_, i) => i + 1), logits: 'all' as const };
  const cache = model.createCache(8);
  const full = await model.forward(cache, batch);
  assert.equal(full.stats.bytesRead, 6 * vocab * 4 + 6 * dim * 4);
  const logits = full.logits.slice();
  const hidden = full.hidden.slice();
  const both = await model.forward(cache, batch, { logits: 'both', hidden: [4, 1] });
  assert.deepEqual(bits(both.logits), bits(logits));
  assert.deepEqual(Array.from(both.argmax), tokens.map((_, r) => argmaxRow(logits, r * vocab, vocab)));
  assert.deepEqual(bits(both.hidden), bits(Float32Array.of(...hidden.subarray(4 * dim, 5 * dim), ...hidden.subarray(dim, 2 * dim))));
  assert.equal(both.stats.bytesRead, 6 * vocab * 4 + 6 * 4 + 2 * dim * 4);
  const last = await model.forward(cache, { ...batch, logits: 'last' }, { logits: 'argmax', hidden: [5] });
  assert.deepEqual(Array.from(last.argmax), [argmaxRow(logits, 5 * vocab, vocab)]);
  assert.equal(last.stats.bytesRead, 4 + dim * 4);
  assert.ok(last.stats.waitMs >= 0 && last.stats.encodeMs >= 0);
  const none = await model.forward(cache, { ...batch, logits: 'none' }, { hidden: 'none' });
  assert.equal(none.stats.bytesRead, 0);

  const one = (token: number, position: number, slot: number) => ({ count: 1, tokens: Int32Array.of(token),
    positions: Int32Array.of(position), writeSlot: slot, prefixLengths: Int32Array.of(slot + 1), logits: 'last' as const });
  await assert.rejects(model.forward(cache, one(300, 0, 0)), /token 0 is 300, expected an id in 0\.\.299/);
  await assert.rejects(model.forward(cache, one(1, 16, 0)), /position 16 .* outside the context \(0\.\.15\)/);
  await assert.rejects(model.forward(cache, one(1, 0, 8)), /exceed the cache capacity 8/);
  await assert.rejects(model.forward(cache, batch, { hidden: [6] }), /read\.hidden\[0\] is 6, expected a row in 0\.\.5/);
  cache.free();
  model.dispose();
});
