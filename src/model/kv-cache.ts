// Per-sequence key/value cache (spec §5). One heap block per sequence: for every layer a K and a V region of
// [capacity, kvDim] f32. Keys are stored after RoPE, so an entry can move to another slot without recomputation as long
// as it was computed at its true position — which is what `keepSlots` relies on after tree verification.

import type { Heap, Ptr } from '../kernels/types.js';

export interface KvCache {
  /** Slots per layer. */
  readonly capacity: number;
  /** Slots 0 .. length-1 hold committed tokens. */
  length: number;
  /** Slot 0 of layer l's K region. */
  keys(layer: number): Ptr;
  /** Slot 0 of layer l's V region. */
  values(layer: number): Ptr;
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
