/// <reference types="@webgpu/types" />
// A sequence's key/value cache on the GPU, with the contract of model/kv-cache.ts: keys are stored after RoPE, so a
// slot can move without recomputation, which is what `keepSlots` does after tree verification (spec §5.4). One buffer
// per layer, K [capacity, kvDim] then V [capacity, kvDim] (f32), so each layer binds one buffer.

export interface GpuKvCache {
  readonly capacity: number;
  /** Slots 0 .. length-1 hold committed tokens. */
  length: number;
  readonly nLayers: number;
  readonly kvDim: number;
  /** Layer l's buffer: K slots, then V slots from float `valuesOffset`. */
  readonly layers: readonly GPUBuffer[];
  readonly valuesOffset: number;
  /**
   * Compacts after verification: for j < count, moves slot `slots[j]` to slot `start + j`, then sets
   * length = start + count. Requires strictly increasing slots with slots[j] ≥ start + j (an accepted tree path).
   * The copies are queued on the device, ahead of any later forward.
   */
  keepSlots(start: number, slots: ArrayLike<number>, count: number): void;
  readonly freed: boolean;
  free(): void;
}

export function createGpuKvCache(device: GPUDevice, nLayers: number, kvDim: number, capacity: number): GpuKvCache {
  if (!Number.isInteger(capacity) || capacity <= 0) {
    throw new RangeError(`createCache: capacity must be a positive integer, got ${capacity}`);
  }
  const slotBytes = kvDim * 4;
  const regionBytes = capacity * slotBytes;
  const layers = Array.from({ length: nLayers }, (_, l) => device.createBuffer({ label: `kv layer ${l}`,
    size: 2 * regionBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST }));
  // WebGPU refuses copies within one buffer, so moved slots go through a scratch buffer: gathered there, then written
  // back as one contiguous run per region.
  let scratch: GPUBuffer | undefined;
  let scratchSlots = 0;
  let freed = false;

  const cache: GpuKvCache = {
    capacity,
    length: 0,
    nLayers,
    kvDim,
    layers,
    valuesOffset: capacity * kvDim,
    get freed() { return freed; },
    keepSlots(start, slots, count) {
      if (freed) throw new Error('GpuKvCache.keepSlots: the cache has been freed');
      if (start < 0 || start + count > capacity) {
        throw new RangeError(`GpuKvCache.keepSlots: ${start + count} slots exceed the capacity ${capacity}`);
      }
      let firstMoved = count;
      for (let j = 0; j < count; j++) {
        const from = slots[j];
        const to = start + j;
        if (!Number.isInteger(from) || from < to || (j > 0 && from <= slots[j - 1]) || from >= capacity) {
          throw new RangeError(`GpuKvCache.keepSlots: slot list must be strictly increasing with slots[j] >= start + j ` +
            `and below the capacity; got slots[${j}] = ${from} for target slot ${to}`);
        }
        if (from !== to && firstMoved === count) firstMoved = j;
      }
      // Slots before the first moved one stay where they are (the list is increasing, so they form a prefix).
      const moved = count - firstMoved;
      if (moved > 0) {
        if (scratch === undefined || scratchSlots < moved) {
          scratch?.destroy();
          scratchSlots = Math.max(moved, 16);
          scratch = device.createBuffer({ label: 'kv keepSlots scratch', size: scratchSlots * slotBytes * 2 * nLayers,
            usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
        }
        const encoder = device.createCommandEncoder({ label: 'kv keepSlots' });
        for (let l = 0; l < nLayers; l++) {
          for (let region = 0; region < 2; region++) {
            const base = region * regionBytes;
            const scratchBase = (l * 2 + region) * scratchSlots * slotBytes;
            // Runs of consecutive source slots go in one copy.
            for (let j = firstMoved; j < count;) {
              let end = j + 1;
              while (end < count && slots[end] === slots[end - 1] + 1) end++;
              encoder.copyBufferToBuffer(layers[l], base + slots[j] * slotBytes, scratch,
                scratchBase + (j - firstMoved) * slotBytes, (end - j) * slotBytes);
              j = end;
            }
            encoder.copyBufferToBuffer(scratch, scratchBase, layers[l], base + (start + firstMoved) * slotBytes,
              moved * slotBytes);
          }
        }
        device.queue.submit([encoder.finish()]);
      }
      cache.length = start + count;
    },
    free() {
      if (freed) return;
      freed = true;
      for (const buffer of layers) buffer.destroy();
      scratch?.destroy();
    },
  };
  return cache;
}
