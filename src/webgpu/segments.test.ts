// One forward over several sequences on the GPU (WebGpuModel.forwardSegments): each sequence's rows get the bits they
// get in a forward of their own — a plain step, a tree and a prompt chunk side by side — and the KV entries written
// in the shared forward are the ones the lone forwards write (the next step agrees too).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { readCheckpoint } from '../model/checkpoint.js';
import type { ForwardBatch } from '../model/model.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { createWebGpuModel, type GpuSegment } from './model.js';
import type { GpuKvCache } from './kv-cache.js';
import { requireDevice, testDevice } from './test-device.js';

const device = await testDevice();
after(() => device.gpu?.destroy());

/** A sequence's rows: tokens at positions, each attending prefix slots then its extra slots. */
interface Rows { tokens: number[]; positions: number[]; prefix: number[]; extras: number[][]; writeSlot: number }

function batchOf(parts: Rows[]): ForwardBatch {
  const all = { tokens: [] as number[], positions: [] as number[], prefix: [] as number[], starts: [0], slots: [] as number[] };
  for (const part of parts) {
    all.tokens.push(...part.tokens);
    all.positions.push(...part.positions);
    all.prefix.push(...part.prefix);
    for (const extras of part.extras) {
      all.slots.push(...extras);
      all.starts.push(all.slots.length);
    }
  }
  return { count: all.tokens.length, tokens: Int32Array.from(all.tokens), positions: Int32Array.from(all.positions),
    writeSlot: parts[0].writeSlot, prefixLengths: Int32Array.from(all.prefix), extraStarts: Int32Array.from(all.starts),
    extraSlots: Int32Array.from(all.slots.length > 0 ? all.slots : [0]), logits: 'all' };
}

const bits = (values: Float32Array): number[] => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

test('a forward over three sequences gives each row the bits of its own forward, and writes the same KV',
  { skip: device.skip || missing('stories260K', 'stories260K.bin') }, async () => {
    const gpu = requireDevice(device).device;
    const model = createWebGpuModel(gpu, readCheckpoint(stories260K.model), { contextLength: 64 });
    const { vocabSize: V, dim } = model.config;
    const prompts = [[1, 403, 407, 261], [1, 378, 432, 383, 286, 301], [1, 290]];
    const causal = (tokens: number[], start: number): Rows => ({ tokens, positions: tokens.map((_, i) => start + i),
      prefix: tokens.map((_, i) => start + i + 1), extras: tokens.map(() => []), writeSlot: start });
    const caches: GpuKvCache[][] = [[], []];
    try {
      // Two identical sets of three caches, each prompt prefilled alone.
      for (const set of caches) {
        for (const prompt of prompts) {
          const cache = model.createCache(32);
          await model.forward(cache, batchOf([causal(prompt, 0)]), { hidden: 'none', logits: 'values' });
          set.push(cache);
        }
      }
      // The next step: a plain row for sequence 0, a tree of 3 nodes for sequence 1 (root, child, sibling child:
      // extras are the tree's slots), a chunk of 3 prompt tokens for sequence 2.
      const S1 = prompts[1].length;
      const steps: Rows[] = [
        causal([307], prompts[0].length),
        { tokens: [309, 311, 313], positions: [S1, S1 + 1, S1 + 1], prefix: [S1, S1, S1],
          extras: [[S1], [S1, S1 + 1], [S1, S1 + 2]], writeSlot: S1 },
        causal([315, 317, 319], prompts[2].length),
      ];
      const alone: { logits: Float32Array; hidden: Float32Array }[] = [];
      for (const [i, rows] of steps.entries()) {
        const out = await model.forward(caches[0][i], batchOf([rows]), { logits: 'values', hidden: 'all' });
        alone.push({ logits: out.logits.slice(), hidden: out.hidden.slice() });
      }
      let first = 0;
      const segments: GpuSegment[] = steps.map((rows, i) => {
        const segment = { cache: caches[1][i], first, count: rows.tokens.length, writeSlot: rows.writeSlot };
        first += rows.tokens.length;
        return segment;
      });
      const together = await model.forwardSegments(segments, batchOf(steps), { logits: 'values', hidden: 'all' });
      for (const [i, segment] of segments.entries()) {
        assert.deepEqual(bits(together.logits.subarray(segment.first * V, (segment.first + segment.count) * V)),
          bits(alone[i].logits), `sequence ${i}: logits`);
        assert.deepEqual(bits(together.hidden.subarray(segment.first * dim, (segment.first + segment.count) * dim)),
          bits(alone[i].hidden), `sequence ${i}: hidden states`);
      }
      // One more token each, alone, on both sets: the shared forward wrote what the lone ones wrote.
      for (const [i, rows] of steps.entries()) {
        const next = causal([321], rows.writeSlot + rows.tokens.length);
        const a = await model.forward(caches[0][i], batchOf([next]), { logits: 'values', hidden: 'none' });
        const aBits = bits(a.logits);
        const b = await model.forward(caches[1][i], batchOf([next]), { logits: 'values', hidden: 'none' });
        assert.deepEqual(bits(b.logits), aBits, `sequence ${i}: the step after`);
      }
      // Rows that do not fit their own cache are refused, naming the segment's problem.
      await assert.rejects(model.forwardSegments([{ cache: caches[1][2], first: 0, count: 1, writeSlot: 40 }],
        batchOf([causal([5], 40)])), /exceed the cache capacity/);
      await assert.rejects(model.forwardSegments([{ cache: caches[1][0], first: 0, count: 1, writeSlot: 4 }],
        batchOf([causal([5, 6], 4)])), /segments cover 1 rows, the batch has 2/);
    } finally {
      for (const set of caches) for (const cache of set) cache.free();
      model.dispose();
    }
  });
