// The rows of one forward, gathered from every sequence that takes part in the step (the batch scheduler), or from
// one sequence alone (a Decoder). Each sequence appends its rows (prompt chunk, plain token or packed tree) against
// its own cache; the forward then runs them together (model.forwardSequences) and each sequence reads back its rows.
// Arrays grow to the largest step seen and are reused, so steady-state decoding allocates nothing.

import type { KvCache } from '../model/kv-cache.js';
import type { SequenceBatch } from '../model/model.js';

export interface StepBatch extends SequenceBatch {
  caches: KvCache[];
  logits: 'rows';
  logitRows: Int32Array;
  logitRowCount: number;
  extraStarts: Int32Array;
  extraSlots: Int32Array;
  /** logitIndex[row]: the output row of that row's logits, −1 when it has none. */
  logitIndex: Int32Array;
  /** Seconds the forward took (set by whoever runs it), for the sequences' cost measurements. */
  forwardSeconds: number;
  /**
   * A sequence's reads of this step's outputs (every stepper declares them when it plans): the logits' values or
   * only their argmax, and whether the hidden states. Combined over the step's sequences (values and hidden win);
   * they become the forward's logitsAs / hiddenNeeded (model.ts), which a backend that reads back across a bus
   * uses to read less. Undeclared: values and hidden.
   */
  declareReads(logitValues: boolean, hidden: boolean): void;
  /** Empties the batch for the next step. */
  reset(): void;
  /** The index of `cache` in caches, adding it on first use in this step. */
  cacheIndex(cache: KvCache): number;
  /**
   * Appends a row: token at `position`, K/V written at `writeSlot` of caches[cacheIndex], attending that cache's slots
   * 0 .. prefixLength − 1 then the extra slots added next (addExtra). Returns the row's index.
   */
  addRow(cacheIndex: number, token: number, position: number, writeSlot: number, prefixLength: number,
    wantLogits: boolean): number;
  /** Appends an extra slot to the latest row's key list. */
  addExtra(slot: number): void;
}

export function createStepBatch(initialRows = 64): StepBatch {
  let capacity = 0;
  let extraCapacity = 0;
  const batch: StepBatch = {
    count: 0,
    tokens: new Int32Array(0),
    positions: new Int32Array(0),
    prefixLengths: new Int32Array(0),
    extraStarts: new Int32Array(1),
    extraSlots: new Int32Array(0),
    caches: [],
    cacheOf: new Int32Array(0),
    writeSlots: new Int32Array(0),
    logits: 'rows',
    logitRows: new Int32Array(0),
    logitRowCount: 0,
    logitIndex: new Int32Array(0),
    forwardSeconds: 0,
    reset() {
      batch.count = 0;
      batch.logitRowCount = 0;
      batch.extraStarts[0] = 0;
      batch.caches.length = 0;
      batch.forwardSeconds = 0;
      batch.logitsAs = undefined;
      batch.hiddenNeeded = undefined;
    },
    declareReads(logitValues, hidden) {
      batch.logitsAs = logitValues || batch.logitsAs === 'values' ? 'values' : 'argmax';
      batch.hiddenNeeded = hidden || batch.hiddenNeeded === true;
    },
    cacheIndex(cache) {
      const caches = batch.caches;
      for (let i = caches.length - 1; i >= 0; i--) if (caches[i] === cache) return i;
      caches.push(cache);
      return caches.length - 1;
    },
    addRow(cacheIndex, token, position, writeSlot, prefixLength, wantLogits) {
      const row = batch.count;
      if (row + 1 > capacity) grow(Math.max(2 * capacity, initialRows, row + 1));
      batch.tokens[row] = token;
      batch.positions[row] = position;
      batch.writeSlots[row] = writeSlot;
      batch.prefixLengths[row] = prefixLength;
      batch.cacheOf[row] = cacheIndex;
      if (wantLogits) {
        batch.logitIndex[row] = batch.logitRowCount;
        batch.logitRows[batch.logitRowCount++] = row;
      } else {
        batch.logitIndex[row] = -1;
      }
      batch.extraStarts[row + 1] = batch.extraStarts[row];
      batch.count = row + 1;
      return row;
    },
    addExtra(slot) {
      const end = batch.extraStarts[batch.count];
      if (end + 1 > extraCapacity) growExtras(Math.max(2 * extraCapacity, 4 * initialRows, end + 1));
      batch.extraSlots[end] = slot;
      batch.extraStarts[batch.count] = end + 1;
    },
  };

  function grow(rows: number): void {
    const copy = (from: Int32Array, length: number): Int32Array => {
      const to = new Int32Array(length);
      to.set(from.subarray(0, Math.min(from.length, length)));
      return to;
    };
    batch.tokens = copy(batch.tokens, rows);
    batch.positions = copy(batch.positions, rows);
    batch.prefixLengths = copy(batch.prefixLengths, rows);
    batch.writeSlots = copy(batch.writeSlots, rows);
    batch.cacheOf = copy(batch.cacheOf, rows);
    batch.logitRows = copy(batch.logitRows, rows);
    batch.logitIndex = copy(batch.logitIndex, rows);
    batch.extraStarts = copy(batch.extraStarts, rows + 1);
    capacity = rows;
  }
  function growExtras(slots: number): void {
    const to = new Int32Array(slots);
    to.set(batch.extraSlots.subarray(0, Math.min(batch.extraSlots.length, slots)));
    batch.extraSlots = to;
    extraCapacity = slots;
  }
  grow(initialRows);
  growExtras(4 * initialRows);
  return batch;
}
