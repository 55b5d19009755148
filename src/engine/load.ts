// Loading a model and its tokenizer: the first call of the public API.

import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createKernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/types.js';
import { readCheckpoint } from '../model/checkpoint.js';
import { createModel, type Model } from '../model/model.js';
import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import { createSentencePieceTokenizer } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { checkDrafterAgainstModel, readDrafter, type DrafterWeights } from '../drafter/checkpoint.js';
import { createDrafter, type Drafter } from '../drafter/drafter.js';
import { MAX_BEAM_WIDTH } from '../drafter/beam-search.js';

export interface LoadOptions {
  /** A llama2.c checkpoint file or a Hugging Face model folder. */
  model: string;
  /**
   * A llama2.c `tokenizer.bin`. Default: `tok{vocabSize}.bin` or `tokenizer.bin` beside a llama2.c checkpoint;
   * none for Hugging Face folders without a supported tokenizer (then feed token ids).
   */
  tokenizer?: string;
  /** Computing threads, the calling thread included (default 1). */
  threads?: number;
  /** Positions the model will be asked about (default: the checkpoint's maximum, capped at 4096). */
  contextLength?: number;
}

export interface LoadedModel {
  readonly path: string;
  readonly format: 'llama2c' | 'hf';
  readonly model: Model;
  readonly tokenizer: Tokenizer | null;
  readonly kernels: Kernels;
  /** Stops the worker threads and frees memory. */
  close(): Promise<void>;
}

export async function loadModel(options: LoadOptions): Promise<LoadedModel> {
  const checkpoint = readCheckpoint(options.model);
  const tokenizerPath = options.tokenizer ?? findTokenizer(options.model, checkpoint.config.vocabSize);
  let tokenizer: Tokenizer | null = null;
  if (tokenizerPath) {
    const vocabulary = readTokenizerBin(tokenizerPath, checkpoint.config.vocabSize);
    tokenizer = createSentencePieceTokenizer(vocabulary);
  }
  const kernels = await createKernels({ threads: options.threads ?? 1 });
  try {
    const model = createModel(kernels, checkpoint, { contextLength: options.contextLength });
    return {
      path: options.model,
      format: checkpoint.format,
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
  dispose(): void;
}

/**
 * Loads a drafter folder (Apple's format: config.json + model.safetensors) for a loaded model, checking its hidden
 * size and vocabulary against the model's. Pass `weights` instead of a path for a drafter built in memory.
 */
export function loadDrafter(loaded: LoadedModel, source: string | DrafterWeights): LoadedDrafter {
  const weights = typeof source === 'string' ? readDrafter(source, loaded.model.config) : source;
  if (typeof source !== 'string') checkDrafterAgainstModel(weights.config, loaded.model.config, 'drafter (in memory)');
  const drafter = createDrafter(loaded.kernels, weights, loaded.model.tokenEmbedding, MAX_BEAM_WIDTH);
  return {
    path: typeof source === 'string' ? source : '(in memory)',
    weights,
    drafter,
    dispose: () => drafter.dispose(),
  };
}
