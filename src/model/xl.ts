// stories260K-xl (issue 6): stories260K inflated to the compute of a 75M-parameter Llama, written as GGUF so that
// llama.cpp runs the same file, plus the default drafter inflated alongside. `npm run make-xl -- --out DIR`.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ggufVocabFromTokenizerBin, writeCanonicalGguf, type GgufOutputType } from '../formats/convert-gguf.js';
import { readDrafter, writeDrafter } from '../drafter/checkpoint.js';
import { inflateDrafter } from '../drafter/inflate.js';
import { readCheckpoint } from './checkpoint.js';
import { inflateCheckpoint, type InflatedShape } from './inflate.js';

/** dim 768, 12 layers, FFN 2048, head size 64 (12 heads, 4 KV heads): ~75M parameters, ~300 MB in F32. */
export const XL_SHAPE: InflatedShape = { dim: 768, hiddenDim: 2048, nLayers: 12, headDim: 64 };

export interface MakeXlOptions {
  /** stories260K.bin and its tok512.bin. */
  model: string;
  tokenizer: string;
  out: string;
  /** Encodings to write (default F32 and Q8_0). */
  types?: GgufOutputType[];
  /** A drafter of the small model to inflate into `out`/stories260K-xl-drafter. */
  drafter?: string;
  shape?: InflatedShape;
  name?: string;
  seed?: number;
}

export interface MakeXlResult {
  files: string[];
  drafter?: string;
  parameters: number;
}

export function makeXl(options: MakeXlOptions): MakeXlResult {
  const shape = options.shape ?? XL_SHAPE;
  const name = options.name ?? 'stories260K-xl';
  const small = readCheckpoint(options.model);
  const inflated = inflateCheckpoint(small, shape, options.seed ?? 1);
  const c = inflated.config;
  mkdirSync(options.out, { recursive: true });
  const vocabulary = ggufVocabFromTokenizerBin(options.tokenizer, c.vocabSize);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const shapes = new Map<string, number[]>();
  for (const [tensorName, data] of inflated.tensors) {
    const dims = tensorName === 'token_embd' || tensorName === 'output' ? [c.vocabSize, c.dim]
      : tensorName === 'norm' || tensorName.endsWith('_norm') ? [c.dim]
        : tensorName.endsWith('.wq') ? [c.nHeads * c.headDim, c.dim]
          : tensorName.endsWith('.wk') || tensorName.endsWith('.wv') ? [c.nKvHeads * c.headDim, c.dim]
            : tensorName.endsWith('.wo') ? [c.dim, c.nHeads * c.headDim]
              : tensorName.endsWith('.w2') ? [c.dim, c.hiddenDim] : [c.hiddenDim, c.dim];
    shapes.set(tensorName, dims);
    tensors.set(tensorName, { shape: dims, data });
  }
  const files: string[] = [];
  for (const type of options.types ?? ['f32', 'q8_0']) {
    const file = join(options.out, type === 'f32' ? `${name}.gguf` : `${name}-${type}.gguf`);
    writeCanonicalGguf(file, {
      arch: 'llama', contextLength: c.maxSequenceLength, dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers,
      nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, vocabSize: c.vocabSize, eps: c.normEps,
      ropeTheta: c.ropeTheta,
    }, vocabulary, tensors, type, name);
    files.push(file);
  }
  let drafter: string | undefined;
  if (options.drafter) {
    drafter = join(options.out, `${name}-drafter`);
    writeDrafter(drafter, inflateDrafter(readDrafter(options.drafter, small.config), c.dim));
  }
  const parameters = [...inflated.tensors.values()].reduce((sum, t) => sum + t.length, 0);
  return { files, drafter, parameters };
}
