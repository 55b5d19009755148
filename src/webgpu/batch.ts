// Validation of a ForwardBatch against a cache and a model, with model.ts's rules and messages: every token id in the
// vocabulary, every position in the context, every written and attended slot inside the cache.

import { checkTokenAndPosition, type ForwardBatch } from '../model/model.js';

export function checkBatch(capacity: number, vocabSize: number, contextLength: number, batch: ForwardBatch): void {
  const n = batch.count;
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`forward: count must be a positive integer, got ${n}`);
  for (const [field, array] of [['tokens', batch.tokens], ['positions', batch.positions], ['prefixLengths', batch.prefixLengths]] as const) {
    if (array.length < n) throw new RangeError(`forward: ${field} has ${array.length} entries, expected at least count = ${n}`);
  }
  if (!Number.isInteger(batch.writeSlot) || batch.writeSlot < 0 || batch.writeSlot + n > capacity) {
    throw new RangeError(`forward: slots ${batch.writeSlot}..${batch.writeSlot + n - 1} exceed the cache capacity ${capacity}`);
  }
  for (let i = 0; i < n; i++) {
    checkTokenAndPosition(batch, i, vocabSize, contextLength);
    if (!(batch.prefixLengths[i] >= 0 && batch.prefixLengths[i] <= capacity)) {
      throw new RangeError(`forward: prefix length ${batch.prefixLengths[i]} of token ${i} exceeds the cache capacity`);
    }
  }
  if ((batch.extraStarts === undefined) !== (batch.extraSlots === undefined)) {
    throw new RangeError('forward: extraStarts and extraSlots must be given together');
  }
  if (batch.extraStarts && batch.extraSlots) {
    if (batch.extraStarts.length < n + 1) {
      throw new RangeError(`forward: extraStarts has ${batch.extraStarts.length} entries, expected count + 1 = ${n + 1}`);
    }
    const total = batch.extraStarts[n];
    if (batch.extraStarts[0] !== 0 || total > batch.extraSlots.length) {
      throw new RangeError(`forward: extraStarts must run from 0 to at most extraSlots.length (${batch.extraSlots.length}), ` +
        `got ${batch.extraStarts[0]}..${total}`);
    }
    for (let i = 0; i < n; i++) {
      if (batch.extraStarts[i + 1] < batch.extraStarts[i]) {
        throw new RangeError(`forward: extraStarts must not decrease, got ${batch.extraStarts[i]} then ${batch.extraStarts[i + 1]} at row ${i}`);
      }
      if (batch.prefixLengths[i] + batch.extraStarts[i + 1] - batch.extraStarts[i] === 0) {
        throw new RangeError(`forward: token ${i} attends no key (prefix length 0 and no extra slots)`);
      }
    }
    for (let j = 0; j < total; j++) {
      const slot = batch.extraSlots[j];
      if (!(slot >= 0 && slot < capacity)) {
        throw new RangeError(`forward: extra slot ${slot} (entry ${j}) is outside the cache (0..${capacity - 1})`);
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      if (batch.prefixLengths[i] === 0) throw new RangeError(`forward: token ${i} attends no key (prefix length 0)`);
    }
  }
}
