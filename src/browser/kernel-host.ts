// The browser kernel host (src/kernels/host-types.ts), swapped in for src/kernels/host.ts by the browser bundle: the
// kernels module is fetched, workers are module Web Workers running kernel-worker.js. Workers can share the
// kernels' WebAssembly.Memory only on a cross-origin isolated page (COOP/COEP headers); elsewhere the engine runs on
// one thread (threads: 1), and asking for more is an error that says why.
import type { KernelHost, KernelWorker, WorkerInit } from '../kernels/host-types.js';
import { web } from './web-globals.js';

/** Why this page cannot run kernel workers, or null when it can. */
export function workersUnavailable(): string | null {
  if (web.Worker === undefined) return 'this JavaScript environment has no Web Workers';
  if (web.crossOriginIsolated !== true) {
    return 'the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and ' +
      'Cross-Origin-Embedder-Policy: require-corp), so workers cannot share the kernels\' memory';
  }
  return null;
}

export const host: KernelHost = {
  name: 'browser',

  async readKernelModule(url) {
    const response = await fetch(url.href);
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  },

  resolveModuleFile: (file) => new URL(file, web.location?.href ?? import.meta.url),

  startKernelWorker(init: WorkerInit): KernelWorker {
    const why = workersUnavailable();
    const Worker = web.Worker;
    if (why !== null || Worker === undefined) throw new Error(`createKernels: ${init.threadCount} threads asked for, but ${why}`);
    const worker = new Worker(new URL('./kernel-worker.js', import.meta.url), { type: 'module', name: `kernels ${init.threadIndex}` });
    let exitedNow: () => void = () => {};
    const exited = new Promise<void>((resolve) => {
      exitedNow = resolve;
    });
    const ready = new Promise<void>((resolve, reject) => {
      worker.addEventListener('message', (event) => {
        if (event.data === 'ready') resolve();
        else if (event.data === 'exited') exitedNow();
        else if (typeof event.data === 'object' && event.data !== null && 'error' in event.data) {
          reject(new Error(String((event.data as { error: unknown }).error)));
        }
      });
      worker.addEventListener('error', (event) => reject(new Error(event.message ?? 'the kernel worker failed to load')));
      worker.addEventListener('messageerror', () => reject(new Error('the kernel worker could not receive the shared memory')));
    });
    worker.postMessage(init);
    return {
      ready,
      exited,
      terminate: async () => {
        worker.terminate();
        exitedNow();
      },
      keepAlive: () => {},
    };
  },
};
