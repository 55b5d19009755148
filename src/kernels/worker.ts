// Worker thread entry under Node (pool.ts via host.ts): serves pool calls on the shared memory until shutdown
// (worker-loop.ts).
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerInit } from './host-types.js';
import { serveKernelCalls } from './worker-loop.js';

const port = parentPort;
if (port === null) throw new Error('worker.js must run as a worker thread');
serveKernelCalls(workerData as WorkerInit, () => port.postMessage('ready'));
