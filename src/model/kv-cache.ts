// Per-sequence key/value cache (spec §5). Keys are stored after RoPE, so an entry can move to another slot without
// recomputation as long as it was computed at its true position — which is what `keepSlots` relies on after tree
// verification. Two implementations: this file's contiguous cache (one heap block per sequence: for every layer a K
// and a V region of [capacity, kvDim] f32, slot s at row s), and the block-paged caches of kv-pool.ts (rows of a pool
// shared by many sequences, found through a slot table), which the batch scheduler uses.

import type { Heap, Ptr } from '../kernels/types.js';

export interface KvCache {
  /** Slots per layer. */
  readonly capacity: number;
  /** Slots 0 .. length-1 hold committed tokens. */
  length: number;
  /** Row 0 of layer l's K region (slot s is at row physical(s)). */
  keys(layer: number): Ptr;
  /** Row 0 of layer l's V region. */
  values(layer: number): Ptr;
  /**
   * 0 when slot s is row s (contiguous); else the heap address of an i32 table, table[s] = physical(s), valid for the
   * slots below `backed` (what the attention kernel reads for a query's prefix, kernels/types.ts QUERY_RECORD_INTS).
   */
  readonly slotTable: Ptr;
  /** The region row of slot s. */
  physical(slot: number): number;
  /** Slots 0 .. backed − 1 have rows (always `capacity` for a contiguous cache). */
  readonly backed: number;
  /** Gives rows to slots 0 .. slots − 1 (a paged cache takes blocks from its pool); throws if it cannot. */
  ensure(slots: number): void;
  /**
   * Compacts after verification: for j < count, moves slot `slots[j]` to slot `start + j`, then sets
   * length = start + count. Requires slots[j] ≥ start + j and strictly increasing slots (true for an accepted tree
   * path, spec §5.4), which makes the in-place forward copy safe.
   */
  keepSlots(start: number, slots: ArrayLike<number>, count: number): void;
  /** Returns the memory to the heap. */
  free(): void;
}

export function createKvCache(heap: Heap, nLayers: number, kvDim: number, capacity: number): KvCache {
  const regionFloats = capacity * kvDim;
  const base = heap.alloc(nLayers * 2 * regionFloats * 4);
  const floats = heap.f32(base, nLayers * 2 * regionFloats);
  let freed = false;

  const cache: KvCache = {
    capacity,
    length: 0,
    keys: (layer) => base + layer * 2 * regionFloats * 4,
    values: (layer) => base + (layer * 2 + 1) * regionFloats * 4,
    slotTable: 0,
    physical: (slot) => slot,
    backed: capacity,
    ensure(slots) {
      if (slots > capacity) throw new RangeError(`KvCache: ${slots} slots exceed the capacity ${capacity}`);
    },
    keepSlots(start, slots, count) {
      if (start + count > capacity) {
        throw new RangeError(`KvCache.keepSlots: ${start + count} slots exceed the capacity ${capacity}`);
      }
      for (let j = 0; j < count; j++) {
        const from = slots[j];
        const to = start + j;
        if (from < to || (j > 0 && from <= slots[j - 1]) || from >= capacity) {
          throw new RangeError(`KvCache.keepSlots: slot list must be strictly increasing with slots[j] >= start + j ` +
            `and below the capacity; got slots[${j}] = ${from} for target slot ${to}`);
        }
        if (from === to) continue;
        for (let region = 0; region < nLayers * 2; region++) {
          const offset = region * regionFloats;
          floats.copyWithin(offset + to * kvDim, offset + from * kvDim, offset + (from + 1) * kvDim);
        }
      }
      cache.length = start + count;
    },
    free() {
      if (!freed) heap.free(base);
      freed = true;
    },
  };
  return cache;
}
