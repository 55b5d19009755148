// Where a drafter drafts on a model that has a device of its own (WebGPU): on the device (webgpu/drafter.ts: one
// submission per draft, the context vector never leaves the GPU) or on the host (the WebAssembly kernels, from the
// hidden row the forward reads back). Which is faster depends on the device: on a GPU the device wins by far for a
// large model's drafter; on a CPU driver such as SwiftShader every dispatch is slow and the host's SIMD kernels win
// (measured in bench:gpu --quick: 136 ms against 3 ms per draft). So 'auto' times both, once per loaded drafter.

import type { DeviceBeamSearch } from '../drafter/beam-search.js';
import { createBeamSearch } from '../drafter/beam-search.js';
import type { SequenceBatch } from '../model/model.js';
import type { LoadedDrafter, LoadedModel } from './load.js';

/** The shape timed: the default fixed tree (generate's 4 × 5). */
const TIMED_WIDTH = 4;
const TIMED_LENGTH = 5;
const TIMED_REPEATS = 3;

export interface DrafterPlacement {
  /** The device search to draft with, or undefined: draft on the host. */
  readonly deviceSearch: DeviceBeamSearch | undefined;
  /** Median ms of one timed draft on each side ('auto' only; NaN where not timed). */
  readonly hostMs: number;
  readonly deviceMs: number;
}

const placements = new WeakMap<LoadedDrafter, DrafterPlacement>();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Where `drafter` drafts on `loaded` (decided on first call, then kept). Runs forwards on the model when it times:
 * call it while no sequence is using the model (generate() does, in the model's turn).
 */
export async function drafterPlacement(loaded: LoadedModel, drafter: LoadedDrafter): Promise<DrafterPlacement> {
  const known = placements.get(drafter);
  if (known) return known;
  const device = drafter.deviceSearch;
  let placement: DrafterPlacement;
  if (!device || drafter.drafterOn !== 'auto') {
    placement = { deviceSearch: drafter.drafterOn === 'host' ? undefined : device, hostMs: NaN, deviceMs: NaN };
  } else {
    const { hostMs, deviceMs } = await timeBoth(loaded, drafter, device);
    placement = { deviceSearch: deviceMs < hostMs ? device : undefined, hostMs, deviceMs };
  }
  placements.set(drafter, placement);
  return placement;
}

/** One forward over a short prompt, then drafts from its last row's hidden state on both sides. */
async function timeBoth(loaded: LoadedModel, drafter: LoadedDrafter, device: DeviceBeamSearch):
  Promise<{ hostMs: number; deviceMs: number }> {
  const model = loaded.model;
  const forwardAsync = model.forwardSequencesAsync!;
  const count = 4;
  const cache = model.createCache(count);
  const vocab = model.config.vocabSize;
  try {
    const batch: SequenceBatch = { count, tokens: Int32Array.from({ length: count }, (_, i) => (i * 7 + 3) % vocab),
      positions: Int32Array.from({ length: count }, (_, i) => i), prefixLengths: Int32Array.from({ length: count }, (_, i) => i + 1),
      caches: [cache], cacheOf: new Int32Array(count), writeSlots: Int32Array.from({ length: count }, (_, i) => i),
      logits: 'none', hiddenNeeded: true };
    const output = await forwardAsync.call(model, batch);
    const dim = model.config.dim;
    const h = Float32Array.from(output.hidden.subarray((count - 1) * dim, count * dim));
    const g0 = batch.tokens[count - 1];
    const host = createBeamSearch(drafter.drafter, { maxWidth: TIMED_WIDTH, maxLength: TIMED_LENGTH });
    const hostTimes: number[] = [];
    const deviceTimes: number[] = [];
    // One untimed draft each first (kernel compilation, JIT), then alternating.
    host.search(h, 0, g0, TIMED_WIDTH, TIMED_LENGTH);
    await device.searchFromRow(count - 1, g0, TIMED_WIDTH, TIMED_LENGTH);
    for (let r = 0; r < TIMED_REPEATS; r++) {
      let started = performance.now();
      host.search(h, 0, g0, TIMED_WIDTH, TIMED_LENGTH);
      hostTimes.push(performance.now() - started);
      started = performance.now();
      await device.searchFromRow(count - 1, g0, TIMED_WIDTH, TIMED_LENGTH);
      deviceTimes.push(performance.now() - started);
    }
    return { hostMs: median(hostTimes), deviceMs: median(deviceTimes) };
  } finally {
    cache.free();
  }
}
