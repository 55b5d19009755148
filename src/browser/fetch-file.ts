// Getting a model file's bytes in a browser: from a URL (streamed, with progress, kept in Cache Storage so that a
// reload does not download it again), from a File the user dropped, or from bytes already in hand.
import { web } from './web-globals.js';

/** A Blob or File as the browser gives it (only what is read here). */
export interface BlobLike {
  readonly size: number;
  readonly name?: string;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** Where a file comes from: a URL (absolute, or relative to the page), a dropped File / Blob, or named bytes. */
export type FileSource = string | URL | BlobLike | { name: string; bytes: Uint8Array };

export interface LoadProgress {
  /** The file's name (the URL's last segment, the File's name). */
  file: string;
  /** Bytes read so far and the total when known (a response without Content-Length: null until done). */
  loaded: number;
  total: number | null;
  /** 'download' while bytes arrive over the network, 'cache' when read from Cache Storage, 'file' from a File. */
  source: 'download' | 'cache' | 'file' | 'memory';
  done: boolean;
}

export interface FetchOptions {
  onProgress?: (progress: LoadProgress) => void;
  /** Cache Storage name; false: neither read nor write the cache (default 'redrafter-models'). */
  cache?: string | false;
  signal?: AbortSignal;
}

export const DEFAULT_CACHE = 'redrafter-models';

/** Named bytes, not a Blob (whose `bytes` is a method in recent browsers). */
function isNamedBytes(source: FileSource): source is { name: string; bytes: Uint8Array } {
  return typeof source === 'object' && !(source instanceof URL) && 'bytes' in source && source.bytes instanceof Uint8Array;
}

/** The file name a source will be known by (messages, the in-memory tree). */
export function sourceName(source: FileSource): string {
  if (typeof source === 'string' || source instanceof URL) {
    const url = resolveUrl(source);
    const segments = url.pathname.split('/').filter((s) => s !== '');
    return decodeURIComponent(segments[segments.length - 1] ?? url.hostname) || 'file';
  }
  if (isNamedBytes(source)) return source.name;
  return source.name ?? 'file';
}

export function resolveUrl(source: string | URL): URL {
  return new URL(String(source), web.location?.href);
}

/** The bytes of `source`; errors name the URL or file and what went wrong. */
export async function readSource(source: FileSource, options: FetchOptions = {}): Promise<Uint8Array> {
  const name = sourceName(source);
  if (typeof source === 'string' || source instanceof URL) return fetchCached(resolveUrl(source), name, options);
  if (isNamedBytes(source)) {
    options.onProgress?.({ file: name, loaded: source.bytes.length, total: source.bytes.length, source: 'memory', done: true });
    return source.bytes;
  }
  let buffer: ArrayBuffer;
  try {
    buffer = await source.arrayBuffer();
  } catch (cause) {
    throw new Error(`${name}: cannot read the file (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
  }
  options.onProgress?.({ file: name, loaded: buffer.byteLength, total: buffer.byteLength, source: 'file', done: true });
  return new Uint8Array(buffer);
}

async function openCache(name: string | false | undefined): Promise<Awaited<ReturnType<NonNullable<typeof web.caches>['open']>> | null> {
  if (name === false || web.caches === undefined) return null;
  try {
    return await web.caches.open(name ?? DEFAULT_CACHE);
  } catch {
    return null; // Cache Storage refused (private mode, an insecure origin): download every time
  }
}

async function fetchCached(url: URL, name: string, options: FetchOptions): Promise<Uint8Array> {
  const cache = await openCache(options.cache);
  const key = url.href;
  const cached = await cache?.match(key);
  if (cached !== undefined) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    options.onProgress?.({ file: name, loaded: bytes.length, total: bytes.length, source: 'cache', done: true });
    return bytes;
  }
  let response: Response;
  try {
    response = await fetch(key, { signal: options.signal });
  } catch (cause) {
    throw new Error(`${key}: the download failed (${cause instanceof Error ? cause.message : String(cause)})`, { cause });
  }
  if (!response.ok) throw new Error(`${key}: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
  const header = response.headers.get('content-length');
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : null;
  const bytes = await readBody(response, name, total, options);
  if (cache !== null) {
    try {
      await cache.put(key, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
    } catch {
      // a full quota only costs the next reload a download
    }
  }
  return bytes;
}

/** Reads a response body chunk by chunk into one buffer, reporting progress at most every 1 % (and at the end). */
async function readBody(response: Response, name: string, total: number | null, options: FetchOptions): Promise<Uint8Array> {
  const report = (loaded: number, done: boolean): void =>
    options.onProgress?.({ file: name, loaded, total: done ? loaded : total, source: 'download', done });
  const body = response.body;
  if (body === null) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.length, true);
    return bytes;
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  let reported = 0;
  const step = total !== null ? Math.max(1, Math.floor(total / 100)) : 1 << 20;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (loaded - reported >= step) {
      reported = loaded;
      report(loaded, false);
    }
  }
  if (total !== null && loaded !== total) {
    throw new Error(`${response.url || name}: the download stopped at ${loaded} of ${total} bytes`);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  report(loaded, true);
  return bytes;
}
