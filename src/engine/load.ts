// Loading a model and its tokenizer: the first call of the public API.

import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createKernels } from '../kernels/index.js';
import type { OpenedWebGpuModel } from '../webgpu/engine-model.js';
import type { Kernels } from '../kernels/types.js';
import { type Checkpoint, readCheckpoint } from '../model/checkpoint.js';
import type { LlamaConfig } from '../model/config.js';
import { createModel, type Model } from '../model/model.js';
import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import { isGgufFile, readGguf } from '../formats/gguf.js';
import { readGgufVocab } from '../formats/gguf-model.js';
import { FormatError } from '../formats/errors.js';
import { createSentencePieceTokenizer } from '../tokenizer/index.js';
import { loadHfTokenizer, tokenizerFromGgufVocab } from '../tokenizer/sources.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { checkChatTemplate, withChatTemplate } from '../tokenizer/chat-template.js';
import { checkDrafterAgainstModel, readDrafter, type DrafterWeights } from '../drafter/checkpoint.js';
import { createDrafter, type Drafter } from '../drafter/drafter.js';
import { MAX_BEAM_LENGTH, MAX_BEAM_WIDTH, type DeviceBeamSearch, type DeviceDrafting } from '../drafter/beam-search.js';

export interface LoadOptions {
  /** A llama2.c checkpoint file, a GGUF file or a Hugging Face model folder. */
  model: string;
  /**
   * A llama2.c `tokenizer.bin`, a Hugging Face `tokenizer.json` (tokenizer_config.json beside it is read too) or a
   * GGUF file whose vocabulary to use. Default: the vocabulary a GGUF model carries; `tokenizer.json` in a Hugging Face
   * folder; `tok{vocabSize}.bin` or `tokenizer.bin` beside the model; else none (then feed token ids).
   */
  tokenizer?: string;
  /**
   * A Jinja chat template (its text) to render conversations with instead of the tokenizer's own (one that has none:
   * llama2.c tokenizers, GGUF files without tokenizer.chat_template), with `chatTemplateOrigin` naming where it came
   * from in errors. Parsed at load.
   */
  chatTemplate?: string;
  chatTemplateOrigin?: string;
  /**
   * Computing threads, the calling thread included (default 1). 'auto': every core for models whose matrices are
   * big enough to pay for the split, else 1 (see autoThreads).
   */
  threads?: number | 'auto';
  /** Positions the model will be asked about (default: the checkpoint's maximum, capped at 4096). */
  contextLength?: number;
  /** Quantized GGUF matrices run as stored ('native', the default) or dequantized to f32. */
  weights?: 'native' | 'f32';
  /**
   * Where the model's forward runs (default 'wasm'): the WebAssembly kernels, or WebGPU (in Node through the optional
   * `webgpu` package, dawn.node; the sampler and verification stay on the host, the drafter drafts where it is faster:
   * LoadDrafterOptions.drafterOn).
   */
  backend?: 'wasm' | 'webgpu';
  /** How to open the WebGPU model (default: dawn.node in Node; the browser build passes navigator.gpu's). */
  openWebGpu?: (checkpoint: Checkpoint, kernels: Kernels, options: { contextLength?: number;
    weights?: 'native' | 'f32' }) => Promise<OpenedWebGpuModel>;
}

export interface LoadedModel {
  readonly path: string;
  readonly format: 'llama2c' | 'hf' | 'gguf';
  /** Where the forward runs, and on WebGPU the adapter ("google swiftshader", "nvidia …"). */
  readonly backend: 'wasm' | 'webgpu';
  readonly adapter?: string;
  readonly model: Model;
  readonly tokenizer: Tokenizer | null;
  readonly kernels: Kernels;
  /** Stops the worker threads and frees memory. */
  close(): Promise<void>;
}

export async function loadModel(options: LoadOptions): Promise<LoadedModel> {
  const checkpoint = readCheckpoint(options.model);
  const opened = openTokenizer(checkpoint, options.tokenizer);
  if (options.chatTemplate !== undefined && !opened) {
    throw new RangeError(`chatTemplate: ${options.model} has no tokenizer to render a conversation with; pass one`);
  }
  let tokenizer = opened;
  if (opened && options.chatTemplate !== undefined) {
    const origin = options.chatTemplateOrigin ?? 'chatTemplate';
    checkChatTemplate(options.chatTemplate, origin); // a bad template fails here, not at the first chat
    tokenizer = withChatTemplate(opened, options.chatTemplate, origin);
  }
  const threads = options.threads === 'auto' ? autoThreads(checkpoint.config) : options.threads ?? 1;
  const backend = options.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'webgpu') {
    throw new RangeError(`backend: expected "wasm" or "webgpu", got "${String(backend)}"`);
  }
  const kernels = await createKernels({ threads });
  try {
    if (backend === 'webgpu') {
      // A variable specifier: bundlers for the browser do not follow it into dawn.node.
      const specifier = '../webgpu/node-engine.js';
      const open = options.openWebGpu
        ?? (await import(specifier) as typeof import('../webgpu/node-engine.js')).openWebGpuEngineModel;
      const opened = await open(checkpoint, kernels, { contextLength: options.contextLength, weights: options.weights });
      return {
        path: options.model, format: checkpoint.format, backend, adapter: opened.adapterName, model: opened.model,
        tokenizer, kernels,
        async close() {
          opened.close();
          await kernels.close();
        },
      };
    }
    const model = createModel(kernels, checkpoint, { contextLength: options.contextLength, weights: options.weights });
    return {
      path: options.model,
      format: checkpoint.format,
      backend,
      model,
      tokenizer,
      kernels,
      async close() {
        model.dispose();
        await kernels.close();
      },
    };
  } catch (error) {
    await kernels.close();
    throw error;
  }
}

/**
 * Multiply-adds of one token's forward below which one thread is faster than several: measured here, stories260K
 * (0.25 M) decodes 13k tokens/s on 1 thread and 9k on 2, where publishing every small matrix to a worker and moving
 * its cache lines between cores costs more than the split saves; a 110M model (85 M) decodes 1.7× faster on 2.
 */
const AUTO_THREADS_MIN_MACS = 4_000_000;

/** The thread count 'auto' picks for a model: all available cores, or 1 for models too small to gain from them. */
export function autoThreads(config: LlamaConfig): number {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
  const perLayer = dim * (2 * nHeads * headDim + 2 * nKvHeads * headDim) + 3 * dim * hiddenDim;
  const macs = nLayers * perLayer + dim * vocabSize;
  return macs < AUTO_THREADS_MIN_MACS ? 1 : Math.min(availableParallelism(), 16);
}

/**
 * The tokenizer for a checkpoint: `explicit` when given (tokenizer.bin, tokenizer.json, a folder holding
 * tokenizer.json, or a GGUF file), else the one the checkpoint carries or that sits beside it (see LoadOptions).
 */
export function openTokenizer(checkpoint: Checkpoint, explicit?: string): Tokenizer | null {
  const vocabSize = checkpoint.config.vocabSize;
  if (explicit !== undefined) return readTokenizerFile(explicit, vocabSize);
  if (checkpoint.embeddedTokenizer !== undefined) {
    return tokenizerFromGgufVocab(checkpoint.embeddedTokenizer, checkpoint.path, { vocabSize });
  }
  if (checkpoint.format === 'hf' && existsSync(join(checkpoint.path, 'tokenizer.json'))) {
    return loadHfTokenizer(join(checkpoint.path, 'tokenizer.json'), { vocabSize });
  }
  const bin = findTokenizer(checkpoint.path, vocabSize);
  return bin === undefined ? null : readTokenizerFile(bin, vocabSize);
}

/** Reads a tokenizer file of any supported kind; `vocabSize` is the model's (checked for tokenizer.bin). */
export function readTokenizerFile(path: string, vocabSize?: number): Tokenizer {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const json = join(path, 'tokenizer.json');
    if (!existsSync(json)) throw new FormatError({ file: path, field: 'folder', expected: 'a tokenizer.json', got: 'none' });
    return loadHfTokenizer(json, { vocabSize });
  }
  if (path.endsWith('.json')) return loadHfTokenizer(path, { vocabSize });
  if (isGgufFile(path)) {
    const vocab = readGgufVocab(readGguf(path));
    if (vocab === undefined) throw new FormatError({ file: path, field: 'metadata "tokenizer.ggml.model"', expected: 'a tokenizer', got: 'none' });
    return tokenizerFromGgufVocab(vocab, path, { vocabSize });
  }
  return createSentencePieceTokenizer(readTokenizerBin(path, vocabSize));
}

export function findTokenizer(modelPath: string, vocabSize: number): string | undefined {
  const folder = statSync(modelPath).isDirectory() ? modelPath : dirname(modelPath);
  for (const name of [`tok${vocabSize}.bin`, 'tokenizer.bin']) {
    const candidate = join(folder, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export interface LoadedDrafter {
  readonly path: string;
  readonly weights: DrafterWeights;
  /** The drafter on the model's kernels; decoders use it one step at a time. */
  readonly drafter: Drafter;
  /**
   * The same drafter on the model's device where it has one (WebGPU) and `drafterOn` allows it: the exact rule can
   * draft there, from the hidden states the forward left on the GPU, one submission per draft.
   */
  readonly deviceSearch?: DeviceBeamSearch;
  /** Where it was asked to draft on a model with a device (LoadDrafterOptions.drafterOn). */
  readonly drafterOn: DrafterOn;
  dispose(): void;
}

/**
 * Where a drafter drafts on a model with a device of its own (WebGPU): 'auto' (the default) times a draft on each
 * side on first use and keeps the faster (engine/drafter-placement.ts), 'device' and 'host' decide.
 */
export type DrafterOn = 'auto' | 'device' | 'host';

export interface LoadDrafterOptions {
  drafterOn?: DrafterOn;
}

/**
 * Loads a drafter folder (Apple's format: config.json + model.safetensors) for a loaded model, checking its hidden
 * size and vocabulary against the model's. Pass `weights` instead of a path for a drafter built in memory.
 */
export function loadDrafter(loaded: LoadedModel, source: string | DrafterWeights, options: LoadDrafterOptions = {}):
  LoadedDrafter {
  const drafterOn = options.drafterOn ?? 'auto';
  if (drafterOn !== 'auto' && drafterOn !== 'device' && drafterOn !== 'host') {
    throw new RangeError(`drafterOn: expected "auto", "device" or "host", got "${String(drafterOn)}"`);
  }
  const weights = typeof source === 'string' ? readDrafter(source, loaded.model.config) : source;
  if (typeof source !== 'string') checkDrafterAgainstModel(weights.config, loaded.model.config, 'drafter (in memory)');
  const drafter = createDrafter(loaded.kernels, weights, loaded.model.tokenEmbedding, MAX_BEAM_WIDTH);
  const onDevice = (loaded.model as Model & Partial<DeviceDrafting>).createDeviceBeamSearch;
  let deviceSearch: DeviceBeamSearch | undefined;
  try {
    if (drafterOn !== 'host') {
      deviceSearch = onDevice?.call(loaded.model, weights, { maxWidth: MAX_BEAM_WIDTH, maxLength: MAX_BEAM_LENGTH });
    }
  } catch (error) {
    drafter.dispose();
    throw error;
  }
  return {
    path: typeof source === 'string' ? source : '(in memory)',
    weights,
    drafter,
    ...(deviceSearch ? { deviceSearch } : {}),
    drafterOn,
    dispose: () => {
      drafter.dispose();
      deviceSearch?.dispose();
    },
  };
}
