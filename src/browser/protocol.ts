// Messages between a page and the engine worker (engine-worker.ts). This file imports nothing, so the page scripts
// under web/ (compiled against the DOM types) can share it with the engine side (compiled against Node's).

/** A file for the worker: a URL (fetched there, cached in Cache Storage) or a File / Blob the user dropped. */
export type FileSpec = { url: string } | { file: { readonly name?: string; readonly size: number; arrayBuffer(): Promise<ArrayBuffer> } };

export type DrafterSpec = { url: string } | { config: FileSpec; weights: FileSpec };

export interface LoadRequest {
  type: 'load';
  model: FileSpec;
  tokenizer?: FileSpec;
  drafter?: DrafterSpec;
  threads: number | 'auto';
  /** Where the forward runs (default wasm). */
  backend?: 'wasm' | 'webgpu';
  /** Read and fill the Cache Storage (default true). */
  cache?: boolean;
}

export type TreeShape = 'auto' | { beams: number; beamLength: number };

export interface GenerateRequest {
  type: 'generate';
  /** Chosen by the page; every reply about this generation carries it. */
  run: number;
  decoding: 'plain' | 'redrafter';
  prompt: string;
  maxTokens: number;
  temperature: number;
  seed: number;
  topP?: number;
  topK?: number;
  /** ReDrafter's tree: the speculation controller's choice each step ('auto') or a fixed W × L. */
  shape: TreeShape;
  /** Start paused: nothing runs until 'step' or 'resume'. */
  paused?: boolean;
}

export type PageMessage =
  | LoadRequest
  | GenerateRequest
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'step' }
  | { type: 'stop' };

export interface BackendDescription {
  name: 'wasm' | 'webgpu';
  available: boolean;
  detail: string;
}

export interface Capabilities {
  crossOriginIsolated: boolean;
  maxThreads: number;
  singleThreadReason: string | null;
  simd: 'relaxed' | 'plain';
  backends: BackendDescription[];
}

export interface ModelInfo {
  name: string;
  format: string;
  parameters: string;
  contextLength: number;
  threads: number;
  threadNote: string | null;
  simd: string;
  backend: 'wasm' | 'webgpu';
  /** The WebGPU adapter, when the backend is webgpu. */
  adapter?: string;
  drafter: string | null;
  loadSeconds: number;
}

export interface ProgressInfo {
  file: string;
  loaded: number;
  total: number | null;
  source: 'download' | 'cache' | 'file' | 'memory';
  done: boolean;
}

/** One ReDrafter step for drawing: the engine's RedrafterStep plus each node's text. */
export interface TreeStep {
  position: number;
  g0: number;
  beams: number[][];
  scores: number[];
  nodes: { token: number; depth: number; parent: number }[];
  acceptedPath: number[];
  committed: number[];
  /** Readable text of each node's token (tokenPiece), by node index. */
  pieces: string[];
  /** The model's own next token after the accepted path (the bonus), and its text. */
  bonus: number;
  bonusPiece: string;
  /** "WxL" of this step's tree. */
  shape: string;
  /** 1-based step number within the generation. */
  index: number;
}

export interface RunProgress {
  run: number;
  decoding: 'plain' | 'redrafter';
  ids: number[];
  text: string;
  /** Generated tokens so far. */
  tokens: number;
  /** Decoding steps so far (forwards after the prompt). */
  steps: number;
  /** Generated tokens per second of compute, prompt and calibration excluded, pauses excluded. */
  tokensPerSecond: number;
  /** Tokens each step committed, on average. */
  tokensPerStep: number;
  /** Steps by shape ("WxL", "plain"), ReDrafter only. */
  shapes: Record<string, number>;
}

export type WorkerMessage =
  | { type: 'capabilities'; capabilities: Capabilities }
  | { type: 'progress'; progress: ProgressInfo }
  | { type: 'loaded'; model: ModelInfo }
  | { type: 'load-error'; message: string }
  | ({ type: 'chunk' } & RunProgress)
  | { type: 'tree'; run: number; step: TreeStep }
  | ({ type: 'done'; finishReason: string } & RunProgress)
  | { type: 'run-error'; run: number; message: string }
  | { type: 'paused'; run: number; paused: boolean };
