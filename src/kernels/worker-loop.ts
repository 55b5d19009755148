// The loop every kernel worker runs, whatever starts it (worker.ts under Node, src/browser/kernel-worker.ts in a
// Web Worker): instantiate the kernels module on the shared memory, then serve calls published in the control block
// until shutdown. The loop blocks the worker's event loop on purpose: the worker does nothing else, and returning
// from the loop lets the thread exit.
import { claimShare, CONTROL, CONTROL_OFFSET, runShare, wasmImports, writeShareError, type KernelExports } from './dispatch.js';
import type { WorkerInit } from './host-types.js';

/** Serves pool calls until the pool shuts down; `ready` is called once the worker waits for its first call. */
export function serveKernelCalls(init: WorkerInit, ready: () => void): void {
  const instance = new WebAssembly.Instance(init.module, wasmImports(init.memory));
  const exports = instance.exports as unknown as KernelExports;
  const ctrl = new Int32Array(init.memory.buffer, CONTROL_OFFSET, CONTROL.ints);
  const ctrlF = new Float32Array(init.memory.buffer, CONTROL_OFFSET, CONTROL.ints);

  /** Returns the next generation: spins for spinMs, then sleeps until the caller publishes a call. */
  function awaitGeneration(seen: number): number {
    const deadline = performance.now() + init.spinMs;
    let spins = 0;
    for (;;) {
      const generation = Atomics.load(ctrl, CONTROL.generation);
      if (generation !== seen) return generation;
      if ((++spins & 63) === 0 && performance.now() > deadline) break;
    }
    Atomics.add(ctrl, CONTROL.sleeping, 1);
    let generation = Atomics.load(ctrl, CONTROL.generation);
    while (generation === seen) {
      Atomics.wait(ctrl, CONTROL.generation, seen);
      generation = Atomics.load(ctrl, CONTROL.generation);
    }
    Atomics.sub(ctrl, CONTROL.sleeping, 1);
    return generation;
  }

  let seen = Atomics.load(ctrl, CONTROL.generation);
  ready();
  for (;;) {
    seen = awaitGeneration(seen);
    if (Atomics.load(ctrl, CONTROL.shutdown) !== 0) break;
    // The caller computes our share itself if it gets there first (pool.ts); then there is nothing to do.
    if (!claimShare(ctrl, init.threadIndex, seen)) continue;
    try {
      runShare(exports, ctrl[CONTROL.kernel], ctrl, ctrlF, init.threadIndex, init.threadCount);
    } catch (error) {
      writeShareError(init.memory, init.threadIndex, seen, error instanceof Error ? error.message : String(error));
      Atomics.add(ctrl, CONTROL.failed, 1);
    }
    Atomics.add(ctrl, CONTROL.workerShares, 1);
    Atomics.add(ctrl, CONTROL.done, 1);
  }
}
