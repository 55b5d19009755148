// node:os for the browser bundle: what the engine asks of the machine (core count for threads: 'auto', a CPU
// description for the speculation controller's records).
import { web } from '../web-globals.js';

export function availableParallelism(): number {
  return web.navigator?.hardwareConcurrency ?? 1;
}

export function cpus(): { model: string }[] {
  const model = `browser (${web.navigator?.userAgent ?? 'unknown'})`;
  return Array.from({ length: availableParallelism() }, () => ({ model }));
}

/** Unknown in a browser; 0 keeps the controller's machine description well formed. */
export function totalmem(): number {
  return 0;
}

export function homedir(): string {
  return '/';
}

export function tmpdir(): string {
  return '/tmp';
}
