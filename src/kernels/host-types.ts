// What the kernel layer needs from its runtime, so that one kernel and pool implementation serves Node and browsers:
// reading the compiled module's bytes and starting a worker thread that serves pool calls. src/kernels/host.ts is
// Node's (node:fs, worker_threads); the browser bundle swaps it for src/browser/kernel-host.ts (fetch, Web Workers)
// at build time (scripts/build-browser.mjs), so Node pays nothing for the indirection.

/** What a worker receives to start serving calls (pool.ts publishes calls through the control block in `memory`). */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  threadIndex: number;
  threadCount: number;
  spinMs: number;
}

/** A started kernel worker. */
export interface KernelWorker {
  /** Resolves once the worker has instantiated the module and waits for calls; rejects if it fails to start. */
  readonly ready: Promise<void>;
  /** Resolves when the worker has left its loop (after the pool's shutdown flag) and stopped. */
  readonly exited: Promise<void>;
  /** Stops the worker now (failed starts). */
  terminate(): Promise<void>;
  /** Whether this worker keeps the host alive (Node: ref/unref; a no-op where the host has no such notion). */
  keepAlive(alive: boolean): void;
}

export interface KernelHost {
  /** Names the runtime in messages ("Node 20.20.2", "browser"). */
  readonly name: string;
  /** The bytes of a kernels module; `url` is resolved against the kernel layer's own location. */
  readKernelModule(url: URL): Promise<Uint8Array>;
  /** Resolves a user-given module file name (KernelOptions.wasmFile): Node against the working directory. */
  resolveModuleFile(file: string): URL;
  /** Starts one kernel worker. Throws when this runtime cannot run one (a browser page that is not isolated). */
  startKernelWorker(init: WorkerInit): KernelWorker;
}
