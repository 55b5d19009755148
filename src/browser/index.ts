// The browser entry of redrafter (dist/browser/redrafter.js): the engine's public API, with loading from URLs,
// dropped files or bytes instead of paths, and the kernels on Web Workers when the page is cross-origin isolated.
//
//   const loaded = await loadModel({ model: '/models/stories260K.bin', tokenizer: '/models/tok512.bin', threads: 'auto',
//     onProgress: (p) => console.log(p.file, p.loaded, p.total) });
//   const drafter = await loadDrafter(loaded, '/models/stories260K-drafter/');
//   for await (const chunk of generate(loaded, { prompt: 'Once upon a time', maxTokens: 64, drafter })) show(chunk.text);
//
// Run it in a dedicated Web Worker (as the demo does, web/demo): a forward pass is synchronous, and the calling
// thread spins while the kernel workers finish their shares, so on a page's main thread it would block the page.
import { loadDrafter as loadDrafterFromPath, loadModel as loadModelFromPath, type LoadedDrafter, type LoadedModel,
} from '../engine/load.js';
import { relaxedUnavailable } from '../kernels/simd.js';
import { openBrowserWebGpuEngineModel } from '../webgpu/browser-engine.js';
import { workersUnavailable } from './kernel-host.js';
import { readSource, sourceName, type FetchOptions, type FileSource, type LoadProgress } from './fetch-file.js';
import { putFile, removeFiles } from './memory-fs.js';
import { web } from './web-globals.js';

export {
  generate, generateText, FormatError, createSampler, createRng, packBeams,
  type GenerateOptions, type Generation, type GenerationChunk, type GenerationResult, type GenerationStats,
  type FinishReason, type LoadedDrafter, type LoadedModel, type RedrafterStep, type Tokenizer, type LlamaConfig,
  type SamplingOptions,
} from '../index.js';
export { DEFAULT_CACHE, type BlobLike, type FileSource, type LoadProgress } from './fetch-file.js';

/**
 * Compute backends: 'wasm' (WebAssembly SIMD kernels, on Web Workers when the page is cross-origin isolated), and
 * 'webgpu' (the model's forward on navigator.gpu; the drafter, sampler and verification on WebAssembly).
 */
export type BackendName = 'wasm' | 'webgpu';

export interface BackendInfo {
  name: BackendName;
  available: boolean;
  /** Why it is not available, or what it runs on. */
  detail: string;
}

export interface BrowserCapabilities {
  crossOriginIsolated: boolean;
  /** Threads the WebAssembly backend can use here (1 when the page is not cross-origin isolated). */
  maxThreads: number;
  /** Why the kernels run on one thread only, or null. */
  singleThreadReason: string | null;
  /** The kernel build this browser gets. */
  simd: 'relaxed' | 'plain';
  backends: BackendInfo[];
}

/** What this page can run, for a backend picker. Asks navigator.gpu for an adapter (asynchronous). */
export async function browserCapabilities(): Promise<BrowserCapabilities> {
  const singleThreadReason = workersUnavailable();
  const cores = web.navigator?.hardwareConcurrency ?? 1;
  const simd = relaxedUnavailable() === null ? 'relaxed' : 'plain';
  const gpu = web.navigator?.gpu as { requestAdapter?: () => Promise<unknown> } | undefined;
  let adapter = false;
  try {
    adapter = gpu?.requestAdapter !== undefined && (await gpu.requestAdapter()) !== null;
  } catch {
    adapter = false;
  }
  return {
    crossOriginIsolated: web.crossOriginIsolated === true,
    maxThreads: singleThreadReason === null ? Math.min(cores, 16) : 1,
    singleThreadReason,
    simd,
    backends: [
      { name: 'wasm', available: true, detail: `WebAssembly SIMD128${simd === 'relaxed' ? ' + relaxed SIMD' : ''}` },
      { name: 'webgpu', available: adapter, detail: adapter
        ? 'navigator.gpu has an adapter: the forward runs on the GPU (drafter and sampler on WebAssembly; one ' +
          'sequence per forward)'
        : 'no WebGPU adapter here' },
    ],
  };
}

export interface BrowserLoadOptions extends FetchOptions {
  /** A llama2.c .bin, a .gguf file (URL, File or bytes). */
  model: FileSource;
  /** llama2.c tokenizer.bin / tokenizer.json; default: the GGUF's own vocabulary (llama2.c models need one). */
  tokenizer?: FileSource;
  /**
   * Computing threads, this one included (default 1); 'auto' as in Node (every core for models big enough). On a page
   * that is not cross-origin isolated the kernels run on one thread whatever is asked (`threadNote` says so).
   */
  threads?: number | 'auto';
  contextLength?: number;
  weights?: 'native' | 'f32';
  /** 'auto' (the default) and 'wasm' load the WebAssembly backend; 'webgpu' runs the forward on navigator.gpu. */
  backend?: BackendName | 'auto';
}

export interface BrowserLoadedModel extends LoadedModel {
  readonly backend: BackendName;
  /** Threads in use. */
  readonly threads: number;
  /** Why fewer threads run than were asked for, or null. */
  readonly threadNote: string | null;
}

let loads = 0;

/**
 * Loads a model in the browser. The files are read into an in-memory tree that the engine's format readers read by
 * path (memory-fs.ts), so every format and every error message is the Node engine's, naming the file; the tree is
 * emptied once the weights are in the kernels' memory.
 */
export async function loadModel(options: BrowserLoadOptions): Promise<BrowserLoadedModel> {
  const backend = options.backend ?? 'auto';
  if (backend !== 'auto' && backend !== 'wasm' && backend !== 'webgpu') {
    throw new RangeError(`loadModel: backend must be "auto", "wasm" or "webgpu", got ${JSON.stringify(backend)}`);
  }
  const requested = options.threads ?? 1;
  const whySingle = workersUnavailable();
  const threads = whySingle === null ? requested : 1;
  const threadNote = whySingle !== null && requested !== 1 ? `running on 1 thread: ${whySingle}` : null;

  const folder = `/models/${++loads}`;
  try {
    const modelPath = putFile(`${folder}/${sourceName(options.model)}`, await readSource(options.model, options));
    const tokenizerPath = options.tokenizer === undefined ? undefined
      : putFile(`${folder}/tokenizer/${sourceName(options.tokenizer)}`, await readSource(options.tokenizer, options));
    const loaded = await loadModelFromPath({ model: modelPath, tokenizer: tokenizerPath, threads,
      contextLength: options.contextLength, weights: options.weights,
      ...(backend === 'webgpu' ? { backend: 'webgpu' as const, openWebGpu: openBrowserWebGpuEngineModel } : {}) });
    return { ...loaded, close: () => loaded.close(), backend: loaded.backend, threads: loaded.kernels.threads,
      threadNote };
  } finally {
    removeFiles(folder);
  }
}

/** A drafter folder: its base URL (config.json and model.safetensors under it), or the two files. */
export type DrafterSource = string | URL | { config: FileSource; weights: FileSource };

/** Loads a ReDrafter drafter (Apple's format: config.json + model.safetensors) for a loaded model. */
export async function loadDrafter(loaded: LoadedModel, source: DrafterSource, options: FetchOptions = {}):
  Promise<LoadedDrafter> {
  const files = typeof source === 'string' || source instanceof URL
    ? { config: new URL('config.json', withSlash(source)), weights: new URL('model.safetensors', withSlash(source)) }
    : source;
  const folder = `/drafters/${++loads}`;
  try {
    putFile(`${folder}/config.json`, await readSource(files.config, options));
    putFile(`${folder}/model.safetensors`, await readSource(files.weights, options));
    return loadDrafterFromPath(loaded, folder);
  } finally {
    removeFiles(folder);
  }
}

function withSlash(folder: string | URL): URL {
  const url = new URL(String(folder), web.location?.href);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** Reads a file's bytes (URL with progress and caching, File, or bytes), for callers that want them themselves. */
export async function fetchModelFile(source: FileSource, options: FetchOptions = {}): Promise<Uint8Array> {
  return readSource(source, options);
}

/** Removes the files this library cached (Cache Storage `name`). */
export async function clearModelCache(name = 'redrafter-models'): Promise<boolean> {
  return web.caches === undefined ? false : web.caches.delete(name);
}

export type { LoadProgress as Progress };
