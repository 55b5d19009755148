// The few browser globals the engine side of the browser build uses, typed here: the project compiles with lib
// ES2022 and @types/node (lib "DOM" would clash with src/kernels/webassembly.d.ts and Node's globals). The page
// scripts under web/ are compiled against the real DOM types instead.

export interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'error', listener: (event: { message?: string }) => void): void;
  addEventListener(type: 'messageerror', listener: () => void): void;
}

export type WebWorkerConstructor = new (url: URL | string, options: { type: 'module'; name?: string }) => WebWorker;

/** The scope of a dedicated worker (self inside it). */
export interface WorkerScope {
  postMessage(message: unknown, transfer?: unknown[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  close(): void;
}

export interface WebCache {
  match(request: string): Promise<Response | undefined>;
  put(request: string, response: Response): Promise<void>;
  delete(request: string): Promise<boolean>;
}

export interface WebGlobals {
  Worker?: WebWorkerConstructor;
  crossOriginIsolated?: boolean;
  caches?: { open(name: string): Promise<WebCache>; delete(name: string): Promise<boolean> };
  navigator?: { hardwareConcurrency?: number; userAgent?: string; gpu?: unknown };
  location?: { href: string };
}

export const web = globalThis as unknown as WebGlobals;

/** The global scope of the dedicated worker this code runs in. */
export function workerScope(): WorkerScope {
  return globalThis as unknown as WorkerScope;
}
