// The worker pool: threads - 1 workers (worker_threads under Node, Web Workers in browsers: host-types.ts), each
// with its own instance of the kernels module on the shared memory. A call is published through the control block (dispatch.ts): the caller writes the kernel id and
// arguments, bumps the generation, computes share 0, then computes every share no worker has claimed yet, and spins
// until the shares workers claimed are done. Workers spin on the generation for `spinMs` before sleeping in
// Atomics.wait, because a forward pass makes hundreds of calls back to back and a wait/notify round trip costs
// ~50 us against ~0.2 us for a spin check (architecture.md, invariant 6). The caller notifies only when the shared
// sleeping count says a worker may be asleep.
import { claimShare, CONTROL, CONTROL_OFFSET, KERNEL_NAMES, readShareError, runShare, type KernelExports } from './dispatch.js';
import { host } from './host.js';
import type { KernelWorker, WorkerInit } from './host-types.js';

export type { WorkerInit } from './host-types.js';

export interface Pool {
  /** Computing threads, the caller included. */
  readonly threads: number;
  /** Argument slots of the control block (14): write a call's i32 arguments here before `run`. */
  readonly args: Int32Array;
  /** The same slots seen as f32, for float arguments. */
  readonly fargs: Float32Array;
  /** Runs kernel `kernel` on every thread with the arguments in `args`; returns when all shares are done. */
  run(kernel: number): void;
  close(): Promise<void>;
}

export async function createPool(module: WebAssembly.Module, memory: WebAssembly.Memory, exports: KernelExports,
  threads: number, spinMs: number): Promise<Pool> {
  const ctrl = new Int32Array(memory.buffer, CONTROL_OFFSET, CONTROL.ints);
  const ctrlF = new Float32Array(memory.buffer, CONTROL_OFFSET, CONTROL.ints);
  ctrl.fill(0);
  const workerCount = threads - 1;
  const workers: KernelWorker[] = [];
  let closed = false;

  try {
    for (let t = 1; t < threads; t++) {
      const init: WorkerInit = { module, memory, threadIndex: t, threadCount: threads, spinMs };
      workers.push(host.startKernelWorker(init));
    }
    await Promise.all(workers.map((w) => w.ready));
  } catch (cause) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw new Error(`createKernels: a worker thread failed to start (${host.name})`, { cause });
  }
  const exited = workers.map((w) => w.exited);
  // A pool the owner forgot to close must not keep the process alive (close() holds the workers while it waits).
  for (const w of workers) w.keepAlive(false);

  // What the counters of the completion line will read once the current call is done.
  let doneTarget = 0;
  let failedSeen = 0;

  function run(kernel: number): void {
    if (closed) throw new Error(`kernels: ${KERNEL_NAMES[kernel]} called after close()`);
    // The arguments are already in the call line; the generation bump publishes them (a worker reads them after it
    // has seen the new generation and won its claim).
    ctrl[CONTROL.kernel] = kernel;
    const generation = (Atomics.add(ctrl, CONTROL.generation, 1) + 1) | 0;
    // This sequentially consistent add / load pair and the worker's add(sleeping) / load(generation) guarantee that
    // either the worker sees the new generation or we see it counted as sleeping.
    if (Atomics.load(ctrl, CONTROL.sleeping) !== 0) Atomics.notify(ctrl, CONTROL.generation);
    doneTarget = (doneTarget + workerCount) | 0;

    let failure: unknown;
    try {
      runShare(exports, kernel, ctrl, ctrlF, 0, threads);
    } catch (error) {
      failure = error;
    }
    for (let t = 1; t < threads; t++) {
      if (!claimShare(ctrl, t, generation)) continue;
      if (failure === undefined) {
        try {
          runShare(exports, kernel, ctrl, ctrlF, t, threads);
        } catch (error) {
          failure = error;
        }
      }
      Atomics.add(ctrl, CONTROL.done, 1);
    }
    // Workers may still be writing our outputs: never return (or throw) before they are done.
    while (Atomics.load(ctrl, CONTROL.done) !== doneTarget) { /* spin: a claimed share is being computed */ }
    // Workers' failures of this call are taken into account before anything is thrown, so that the next call does
    // not report them as its own.
    const failed = Atomics.load(ctrl, CONTROL.failed);
    const workersFailed = failed !== failedSeen;
    failedSeen = failed;
    if (failure !== undefined) throw failure;
    if (workersFailed) {
      const texts: string[] = [];
      for (let t = 1; t < threads; t++) {
        const text = readShareError(memory, t, generation);
        if (text !== undefined) texts.push(`thread ${t}: ${text}`);
      }
      const detail = texts.length > 0 ? `: ${texts.join('; ')}` : '';
      throw new Error(`kernels: ${KERNEL_NAMES[kernel]} failed on a worker thread${detail}`);
    }
  }

  async function close(): Promise<void> {
    if (closed) return;
    closed = true;
    Atomics.store(ctrl, CONTROL.shutdown, 1);
    Atomics.add(ctrl, CONTROL.generation, 1);
    Atomics.notify(ctrl, CONTROL.generation);
    for (const w of workers) w.keepAlive(true);
    await Promise.all(exited);
  }

  return { threads, args: ctrl.subarray(CONTROL.args), fargs: ctrlF.subarray(CONTROL.args), run, close };
}
