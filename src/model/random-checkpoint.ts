// Random-weight checkpoints of any Llama shape, generated on demand from a seed: the large models of tests and
// benchmarks (architecture.md: larger benchmark models are generated, never downloaded).

import { createRng } from '../sampling/random.js';
import type { Checkpoint } from './checkpoint.js';
import { type LlamaConfig, validateConfig } from './config.js';

export interface RandomModelShape {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  maxSequenceLength?: number;
  ropeLayout?: LlamaConfig['ropeLayout'];
  tiedClassifier?: boolean;
  qkvBias?: boolean;
}

/** Canonical tensor names and shapes of a config, in checkpoint order. */
export function tensorShapes(config: LlamaConfig): Map<string, number[]> {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
  const shapes = new Map<string, number[]>([['token_embd', [vocabSize, dim]]]);
  for (let l = 0; l < nLayers; l++) {
    const p = `layers.${l}.`;
    shapes.set(p + 'attn_norm', [dim]);
    shapes.set(p + 'wq', [nHeads * headDim, dim]);
    shapes.set(p + 'wk', [nKvHeads * headDim, dim]);
    shapes.set(p + 'wv', [nKvHeads * headDim, dim]);
    shapes.set(p + 'wo', [dim, nHeads * headDim]);
    if (config.qkvBias) {
      shapes.set(p + 'bq', [nHeads * headDim]);
      shapes.set(p + 'bk', [nKvHeads * headDim]);
      shapes.set(p + 'bv', [nKvHeads * headDim]);
    }
    shapes.set(p + 'ffn_norm', [dim]);
    shapes.set(p + 'w1', [hiddenDim, dim]);
    shapes.set(p + 'w2', [dim, hiddenDim]);
    shapes.set(p + 'w3', [hiddenDim, dim]);
  }
  shapes.set('norm', [dim]);
  if (!config.tiedClassifier) shapes.set('output', [vocabSize, dim]);
  return shapes;
}

/**
 * A checkpoint whose tensors are drawn when read: matrices uniform in ±1/sqrt(fan_in) (PyTorch's nn.Linear default),
 * embeddings uniform in ±1, norm weights near 1. Each tensor has its own stream derived from (seed, name), so reading
 * order does not matter.
 */
export function randomCheckpoint(shape: RandomModelShape, seed = 1): Checkpoint {
  const config: LlamaConfig = {
    dim: shape.dim,
    hiddenDim: shape.hiddenDim,
    nLayers: shape.nLayers,
    nHeads: shape.nHeads,
    nKvHeads: shape.nKvHeads,
    headDim: shape.dim / shape.nHeads,
    vocabSize: shape.vocabSize,
    maxSequenceLength: shape.maxSequenceLength ?? 2048,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: shape.ropeLayout ?? 'pairs',
    ropeScaling: null,
    tiedClassifier: shape.tiedClassifier ?? false,
    qkvBias: shape.qkvBias ?? false,
    bosId: 1,
    eosIds: [2],
  };
  const origin = `random model (seed ${seed})`;
  validateConfig(config, origin);
  const shapes = tensorShapes(config);
  return {
    path: origin,
    format: 'llama2c',
    config,
    tensors: {
      origin,
      shape: (name) => shapes.get(name),
      read(name) {
        const dims = shapes.get(name);
        if (!dims) throw new RangeError(`${origin}: no tensor "${name}"`);
        const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
        const rng = createRng((seed * 2654435761 + hashName(name)) >>> 0);
        const isNorm = name.endsWith('norm');
        const bound = name === 'token_embd' ? 1 : 1 / Math.sqrt(dims[dims.length - 1]);
        for (let i = 0; i < data.length; i++) {
          const u = rng.nextUniform() * 2 - 1;
          data[i] = isNorm ? 1 + 0.1 * u : bound * u;
        }
        return data;
      },
    },
  };
}

function hashName(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}
