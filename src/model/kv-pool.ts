// A block-paged key/value pool shared by many sequences (the batch scheduler's KV memory, issue 14): one byte budget
// for everyone instead of a full-context cache per sequence, and prefix reuse.
//
// The pool is, for every layer, a K and a V region of [blocks · blockSize, kvDim] f32 rows. A sequence's cache holds a
// list of blocks and a slot table (slot s → row), which the attention kernel reads for the query's prefix
// (kernels/types.ts QUERY_RECORD_INTS), so a sequence needs no contiguous memory and grows a block at a time.
//
// Prefix reuse, as vLLM's automatic prefix caching: a block full of committed tokens is published under the identity
// of its contents — its tokens and the block before it (which stands for every token before) — and a later sequence
// whose tokens start the same way takes those blocks instead of recomputing them. That is exact: a token's keys and
// values depend only on the tokens before it and its position, and the kernels give the same bits however a forward
// is batched or chunked (architecture.md, invariant 1). Blocks nobody holds stay cached, least recently freed first
// out, until the pool needs them. A block is never written once published: its owner writes only at slots past its
// committed length, and sharers start past it.

import type { Heap } from '../kernels/types.js';
import type { KvCache } from './kv-cache.js';

export const DEFAULT_BLOCK_SIZE = 16;

export interface KvPoolOptions {
  /** Blocks in the pool. */
  blocks: number;
  /** Slots per block (default 16). */
  blockSize?: number;
}

export interface KvPool {
  readonly blockSize: number;
  readonly blocks: number;
  /** Bytes of one block (all layers, keys and values). */
  readonly bytesPerBlock: number;
  /** Blocks held by live caches. */
  readonly usedBlocks: number;
  /** Blocks no live cache holds that keep published contents for reuse (taken back when the pool needs them). */
  readonly cachedBlocks: number;
  /** Blocks promised to admitted sequences (reserve / release). */
  readonly reservedBlocks: number;
  /** Promises n blocks to a sequence about to start; false (and nothing reserved) when the pool cannot. */
  reserve(blocks: number): boolean;
  release(blocks: number): void;
  /** A cache of at most `capacity` slots drawing its blocks from this pool. */
  createCache(capacity: number): PagedKvCache;
  /** Forgets every cached prefix (blocks held by live caches stay). */
  clearCached(): void;
  /** Returns the pool's memory to the heap; live caches must be freed first. */
  dispose(): void;
}

export interface PagedKvCache extends KvCache {
  /** Blocks this cache holds. */
  readonly blockCount: number;
  /**
   * On an empty cache: takes the pool's published blocks holding tokens[0 .. k·blockSize) for the largest k with
   * k·blockSize ≤ limit, sets length to the slots reused and returns it.
   */
  reusePrefix(tokens: ArrayLike<number>, limit: number): number;
  /** Publishes the blocks that committed tokens[0 .. length) fill completely (call as the sequence grows). */
  publish(tokens: ArrayLike<number>, length: number): void;
}

/** Blocks promised to admitted sequences, out of `blocks`: what reserve / release of a pool account. */
export interface BlockReservations {
  readonly reserved: number;
  reserve(blocks: number): boolean;
  release(blocks: number): void;
}

export function createBlockReservations(blocks: number): BlockReservations {
  let reserved = 0;
  return {
    get reserved() {
      return reserved;
    },
    reserve(n) {
      if (reserved + n > blocks) return false;
      reserved += n;
      return true;
    },
    release(n) {
      reserved = Math.max(0, reserved - n);
    },
  };
}

export class KvPoolExhaustedError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'KvPoolExhaustedError';
  }
}

/** FNV-1a over the parent block's identity and a block of tokens. */
function blockHash(parent: number, parentGeneration: number, tokens: ArrayLike<number>, from: number, count: number):
  number {
  let h = 0x811c9dc5;
  const mix = (v: number): void => {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193);
    h = Math.imul(h ^ (v >>> 16), 0x01000193);
  };
  mix(parent + 1);
  mix(parentGeneration);
  for (let i = 0; i < count; i++) mix(tokens[from + i]);
  return h >>> 0;
}

export function createKvPool(heap: Heap, nLayers: number, kvDim: number, options: KvPoolOptions): KvPool {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const blocks = options.blocks;
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new RangeError(`KV pool: blockSize must be a positive integer, got ${blockSize}`);
  }
  if (!Number.isInteger(blocks) || blocks < 1) throw new RangeError(`KV pool: blocks must be a positive integer, got ${blocks}`);
  const rows = blocks * blockSize;
  const regionFloats = rows * kvDim;
  const bytesPerBlock = nLayers * 2 * blockSize * kvDim * 4;
  const totalBytes = nLayers * 2 * regionFloats * 4;
  if (totalBytes > 3.5 * 2 ** 30) {
    throw new RangeError(`KV pool: ${blocks} blocks of ${bytesPerBlock} bytes (${totalBytes} bytes) do not fit the ` +
      `WebAssembly memory (4 GiB, shared with the weights)`);
  }
  const base = heap.alloc(totalBytes);
  const floats = heap.f32(base, nLayers * 2 * regionFloats);

  const refs = new Int32Array(blocks);
  // Published identity of each block: hash, parent block and its generation, tokens. `generation` changes when a
  // block is taken for new contents, so a child published under the old contents never matches the new ones.
  const published = new Uint8Array(blocks);
  const hashes = new Uint32Array(blocks);
  const parents = new Int32Array(blocks);
  const parentGenerations = new Int32Array(blocks);
  const generations = new Int32Array(blocks);
  const blockTokens = new Int32Array(blocks * blockSize);
  const byHash = new Map<number, number>();
  // Free blocks (never published or evicted): a stack. Cached blocks (published, unheld): a doubly linked list,
  // least recently freed at the head.
  const freeStack = new Int32Array(blocks);
  let freeCount = blocks;
  for (let b = 0; b < blocks; b++) freeStack[b] = blocks - 1 - b;
  const prev = new Int32Array(blocks).fill(-1);
  const next = new Int32Array(blocks).fill(-1);
  const inList = new Uint8Array(blocks);
  let head = -1;
  let tail = -1;
  let cached = 0;
  let used = 0;
  const reservations = createBlockReservations(blocks);
  let disposed = false;

  const unlink = (b: number): void => {
    if (prev[b] >= 0) next[prev[b]] = next[b];
    else head = next[b];
    if (next[b] >= 0) prev[next[b]] = prev[b];
    else tail = prev[b];
    prev[b] = next[b] = -1;
    inList[b] = 0;
    cached--;
  };
  const append = (b: number): void => {
    prev[b] = tail;
    next[b] = -1;
    if (tail >= 0) next[tail] = b;
    else head = b;
    tail = b;
    inList[b] = 1;
    cached++;
  };
  const unpublish = (b: number): void => {
    if (!published[b]) return;
    if (byHash.get(hashes[b]) === b) byHash.delete(hashes[b]);
    published[b] = 0;
  };

  /** A block for new contents: a free one, else the least recently freed cached one. */
  const take = (): number => {
    let b: number;
    if (freeCount > 0) {
      b = freeStack[--freeCount];
    } else if (head >= 0) {
      b = head;
      unlink(b);
      unpublish(b);
    } else {
      throw new KvPoolExhaustedError(`KV pool: all ${blocks} blocks of ${blockSize} slots are in use`);
    }
    generations[b]++;
    refs[b] = 1;
    used++;
    return b;
  };
  const hold = (b: number): void => {
    if (refs[b] === 0) {
      if (inList[b]) unlink(b);
      used++;
    }
    refs[b]++;
  };
  const drop = (b: number): void => {
    if (--refs[b] > 0) return;
    used--;
    if (published[b]) append(b);
    else freeStack[freeCount++] = b;
  };
  const find = (parent: number, tokens: ArrayLike<number>, from: number): number => {
    const parentGeneration = parent >= 0 ? generations[parent] : 0;
    const b = byHash.get(blockHash(parent, parentGeneration, tokens, from, blockSize));
    if (b === undefined || parents[b] !== parent || parentGenerations[b] !== parentGeneration) return -1;
    for (let i = 0; i < blockSize; i++) if (blockTokens[b * blockSize + i] !== tokens[from + i]) return -1;
    return b;
  };

  function createCache(capacity: number): PagedKvCache {
    if (disposed) throw new Error('KV pool: disposed');
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`KV pool: cache capacity must be a positive integer, got ${capacity}`);
    }
    const maxBlocks = Math.ceil(capacity / blockSize);
    const table = heap.alloc(maxBlocks * blockSize * 4);
    const tableView = heap.i32(table, maxBlocks * blockSize);
    const held = new Int32Array(maxBlocks);
    let count = 0;
    // Blocks 0 .. publishedCount − 1 of this cache are published (or were reused from the pool).
    let publishedCount = 0;
    let freed = false;

    const add = (b: number): void => {
      held[count] = b;
      for (let i = 0; i < blockSize; i++) tableView[count * blockSize + i] = b * blockSize + i;
      count++;
    };

    const cache: PagedKvCache = {
      capacity,
      length: 0,
      keys: (layer) => base + layer * 2 * regionFloats * 4,
      values: (layer) => base + (layer * 2 + 1) * regionFloats * 4,
      slotTable: table,
      physical: (slot) => tableView[slot],
      get backed() {
        return count * blockSize;
      },
      get blockCount() {
        return count;
      },
      ensure(slots) {
        if (slots > capacity) throw new RangeError(`KvCache: ${slots} slots exceed the capacity ${capacity}`);
        const needed = Math.ceil(slots / blockSize);
        while (count < needed) add(take());
      },
      keepSlots(start, slots, keep) {
        if (start + keep > count * blockSize) {
          throw new RangeError(`KvCache.keepSlots: ${start + keep} slots exceed the ${count * blockSize} backed`);
        }
        for (let j = 0; j < keep; j++) {
          const from = slots[j];
          const to = start + j;
          if (from < to || (j > 0 && from <= slots[j - 1]) || from >= count * blockSize) {
            throw new RangeError(`KvCache.keepSlots: slot list must be strictly increasing with slots[j] >= start + j ` +
              `and below the backed slots; got slots[${j}] = ${from} for target slot ${to}`);
          }
          if (from === to) continue;
          const source = tableView[from] * kvDim;
          const target = tableView[to] * kvDim;
          for (let region = 0; region < nLayers * 2; region++) {
            const offset = region * regionFloats;
            floats.copyWithin(offset + target, offset + source, offset + source + kvDim);
          }
        }
        cache.length = start + keep;
      },
      reusePrefix(tokens, limit) {
        if (count !== 0) throw new Error('KvCache.reusePrefix: the cache is not empty');
        let parent = -1;
        while ((count + 1) * blockSize <= Math.min(limit, capacity)) {
          const b = find(parent, tokens, count * blockSize);
          if (b < 0) break;
          hold(b);
          add(b);
          parent = b;
        }
        publishedCount = count;
        cache.length = count * blockSize;
        return cache.length;
      },
      publish(tokens, length) {
        while ((publishedCount + 1) * blockSize <= Math.min(length, count * blockSize)) {
          const b = held[publishedCount];
          const parent = publishedCount > 0 ? held[publishedCount - 1] : -1;
          const from = publishedCount * blockSize;
          publishedCount++;
          if (published[b]) continue;
          const parentGeneration = parent >= 0 ? generations[parent] : 0;
          const h = blockHash(parent, parentGeneration, tokens, from, blockSize);
          // The same contents published by another sequence first: keep that one, this block stays private.
          if (byHash.has(h)) continue;
          byHash.set(h, b);
          published[b] = 1;
          hashes[b] = h;
          parents[b] = parent;
          parentGenerations[b] = parentGeneration;
          for (let i = 0; i < blockSize; i++) blockTokens[b * blockSize + i] = tokens[from + i];
        }
      },
      free() {
        if (freed) return;
        freed = true;
        for (let i = count - 1; i >= 0; i--) drop(held[i]);
        count = 0;
        heap.free(table);
      },
    };
    return cache;
  }

  return {
    blockSize,
    blocks,
    bytesPerBlock,
    get usedBlocks() {
      return used;
    },
    get cachedBlocks() {
      return cached;
    },
    get reservedBlocks() {
      return reservations.reserved;
    },
    reserve: reservations.reserve,
    release: reservations.release,
    createCache,
    clearCached() {
      while (head >= 0) {
        const b = head;
        unlink(b);
        unpublish(b);
        freeStack[freeCount++] = b;
      }
    },
    dispose() {
      if (disposed) return;
      if (used > 0) throw new Error(`KV pool: ${used} blocks are still held by live caches`);
      disposed = true;
      heap.free(base);
    },
  };
}
