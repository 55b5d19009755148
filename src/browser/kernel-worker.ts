// Kernel worker entry in browsers (kernel-host.ts starts it as a module Web Worker): receives the module and the
// shared memory, then serves pool calls until shutdown (src/kernels/worker-loop.ts). Atomics.wait, which the loop
// sleeps in once it has spun, is allowed in a worker (never on a page's main thread).
import type { WorkerInit } from '../kernels/host-types.js';
import { serveKernelCalls } from '../kernels/worker-loop.js';
import { workerScope } from './web-globals.js';

const scope = workerScope();
scope.addEventListener('message', (event) => {
  const init = event.data as WorkerInit;
  try {
    serveKernelCalls(init, () => scope.postMessage('ready'));
    scope.postMessage('exited');
  } catch (error) {
    scope.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
  scope.close();
});
