// A first-fit allocator over the shared WebAssembly memory. Blocks are 64-byte aligned (a cache line, and more than
// the 16 bytes SIMD loads like) and zero-filled. Freed blocks go to an address-ordered free list and merge with their
// neighbours; a block freed at the top lowers the top instead. The memory grows when the top passes its end.
import type { Heap, Ptr } from './types.js';

const ALIGN = 64;
const PAGE = 65536;

interface FreeBlock {
  ptr: number;
  size: number;
}

/** A heap over `memory` that hands out addresses from `base` (64-byte aligned) upwards. */
export function createHeap(memory: WebAssembly.Memory, base: number): Heap {
  if (base % ALIGN !== 0) throw new RangeError(`createHeap: base ${base} is not a multiple of ${ALIGN}`);
  const live = new Map<number, number>();
  const free: FreeBlock[] = [];
  let top = base;
  // Everything at or above highWater has never been handed out, so it is still zero from the memory's creation
  // or growth and needs no fill.
  let highWater = base;
  let allocated = 0;

  function zero(ptr: number, size: number): void {
    const end = Math.min(ptr + size, highWater);
    if (end > ptr) new Uint8Array(memory.buffer, ptr, end - ptr).fill(0);
  }

  function ensureCapacity(end: number): void {
    const have = memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    try {
      memory.grow(pages);
    } catch (cause) {
      throw new RangeError(`heap.alloc: cannot grow the memory from ${have} to ${have + pages * PAGE} bytes ` +
        `(${allocated} bytes allocated)`, { cause });
    }
  }

  /** Index of the first free block whose address is above ptr. */
  function freeIndexAfter(ptr: number): number {
    let lo = 0;
    let hi = free.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (free[mid].ptr < ptr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function alloc(bytes: number): Ptr {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`heap.alloc: invalid size ${bytes}`);
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let ptr = -1;
    for (let k = 0; k < free.length; k++) {
      const block = free[k];
      if (block.size < size) continue;
      ptr = block.ptr;
      if (block.size === size) free.splice(k, 1);
      else {
        block.ptr += size;
        block.size -= size;
      }
      break;
    }
    if (ptr < 0) {
      ensureCapacity(top + size);
      ptr = top;
      top += size;
    }
    zero(ptr, size);
    highWater = Math.max(highWater, ptr + size);
    live.set(ptr, size);
    allocated += size;
    return ptr;
  }

  function release(ptr: Ptr): void {
    const size = live.get(ptr);
    if (size === undefined) throw new Error(`heap.free: ${ptr} is not the start of an allocated block`);
    live.delete(ptr);
    allocated -= size;
    if (ptr + size === top) {
      top = ptr;
      const last = free[free.length - 1];
      if (last !== undefined && last.ptr + last.size === top) {
        top = last.ptr;
        free.pop();
      }
      return;
    }
    const k = freeIndexAfter(ptr);
    const prev = k > 0 ? free[k - 1] : undefined;
    const next = k < free.length ? free[k] : undefined;
    if (prev !== undefined && prev.ptr + prev.size === ptr) {
      prev.size += size;
      if (next !== undefined && prev.ptr + prev.size === next.ptr) {
        prev.size += next.size;
        free.splice(k, 1);
      }
    } else if (next !== undefined && ptr + size === next.ptr) {
      next.ptr = ptr;
      next.size += size;
    } else {
      free.splice(k, 0, { ptr, size });
    }
  }

  return {
    memory,
    alloc,
    free: release,
    f32: (ptr: Ptr, length: number) => new Float32Array(memory.buffer, ptr, length),
    i32: (ptr: Ptr, length: number) => new Int32Array(memory.buffer, ptr, length),
    get allocatedBytes(): number {
      return allocated;
    },
  };
}
