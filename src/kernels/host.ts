// The Node kernel host (host-types.ts): the module is read with node:fs, workers are worker_threads running
// worker.js. The browser bundle replaces this file with src/browser/kernel-host.ts.
import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import type { KernelHost, KernelWorker, WorkerInit } from './host-types.js';

/**
 * The process's flags, less those a worker refuses: --input-type (not for a worker's file entry), and V8 or
 * per-process flags such as --no-concurrent-recompilation or --max-old-space-size, which already apply to every
 * thread of the process (startWorker drops those as the constructor names them, and remembers what worked).
 */
let workerExecArgv: string[] | undefined;

/**
 * Starts a worker with the process's flags, less those a worker refuses. Node keeps no list of the refused ones: the
 * constructor throws ERR_WORKER_INVALID_EXEC_ARGV naming them, before any thread starts, so they are dropped and the
 * worker retried.
 */
function startWorker(workerData: WorkerInit): Worker {
  let args = workerExecArgv ??
    process.execArgv.filter((arg, i, all) => !arg.startsWith('--input-type') && all[i - 1] !== '--input-type');
  for (;;) {
    try {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData, execArgv: args });
      workerExecArgv = args;
      return worker;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ERR_WORKER_INVALID_EXEC_ARGV' || args.length === 0 || !(error instanceof Error)) throw error;
      const refused = new Set(error.message.slice(error.message.indexOf(':') + 1).split(',').map((flag) => flag.trim()));
      const kept = args.filter((arg) => !refused.has(arg) && !refused.has(arg.split('=')[0]));
      args = kept.length < args.length ? kept : [];
    }
  }
}

export const host: KernelHost = {
  name: `Node ${process.versions.node}`,

  readKernelModule: (url) => readFile(url),

  resolveModuleFile: (file) => new URL(file, `file://${process.cwd()}/`),

  startKernelWorker(init): KernelWorker {
    const worker = startWorker(init);
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', () => {
        worker.off('error', reject);
        resolve();
      });
    });
    const exited = new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
    });
    return {
      ready,
      exited,
      terminate: async () => {
        await worker.terminate();
      },
      keepAlive: (alive) => {
        if (alive) worker.ref();
        else worker.unref();
      },
    };
  },
};
