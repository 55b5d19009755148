import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHeap } from './heap.js';

const MIB = 1024 * 1024;

function memory(pages = 32): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
}

describe('heap', () => {
  it('hands out 64-byte aligned blocks above the base and counts them', () => {
    const heap = createHeap(memory(), MIB);
    const a = heap.alloc(1);
    const b = heap.alloc(100);
    const c = heap.alloc(0);
    for (const p of [a, b, c]) {
      assert.equal(p % 64, 0);
      assert.ok(p >= MIB);
    }
    assert.equal(b - a, 64);
    assert.equal(c - b, 128);
    assert.equal(heap.allocatedBytes, 64 + 128 + 64);
    heap.free(b);
    assert.equal(heap.allocatedBytes, 128);
  });

  it('zero-fills reused blocks', () => {
    const heap = createHeap(memory(), MIB);
    const a = heap.alloc(256);
    heap.alloc(64);
    heap.f32(a, 64).fill(7);
    heap.free(a);
    const b = heap.alloc(200);
    assert.equal(b, a);
    assert.ok(heap.f32(b, 64).every((v) => v === 0));
  });

  it('merges neighbouring free blocks and lowers the top', () => {
    const heap = createHeap(memory(), MIB);
    const a = heap.alloc(64);
    const b = heap.alloc(64);
    const c = heap.alloc(64);
    const d = heap.alloc(64);
    heap.free(a);
    heap.free(c);
    heap.free(b);
    assert.equal(heap.alloc(192), a, 'a, b and c merged into one block');
    heap.free(d);
    assert.equal(heap.alloc(64), d, 'the top came down after freeing d');
  });

  it('grows the memory and keeps earlier views valid', () => {
    const mem = memory(17);
    const heap = createHeap(mem, MIB);
    const a = heap.alloc(1000);
    const view = heap.f32(a, 250);
    view[3] = 42;
    const big = heap.alloc(8 * MIB);
    assert.ok(mem.buffer.byteLength >= big + 8 * MIB);
    heap.f32(big, 2 * MIB)[2 * MIB - 1] = 1;
    assert.equal(view[3], 42);
    assert.equal(heap.f32(a, 250)[3], 42);
  });

  it('rejects unknown pointers and bad sizes', () => {
    const heap = createHeap(memory(), MIB);
    const a = heap.alloc(64);
    assert.throws(() => heap.free(a + 64), /not the start of an allocated block/);
    heap.free(a);
    assert.throws(() => heap.free(a), /not the start of an allocated block/);
    assert.throws(() => heap.alloc(-1), /invalid size/);
    assert.throws(() => heap.alloc(8 * 1024 * MIB), /cannot grow/);
  });
});
