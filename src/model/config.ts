// The one model description every checkpoint format is normalised into. The forward pass reads only this.

import type { RopeLayout } from '../kernels/types.js';

/** Llama-3-style RoPE frequency scaling (`rope_scaling.rope_type == "llama3"`). */
export interface Llama3RopeScaling {
  kind: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** Linear position interpolation (`rope_scaling.type == "linear"`). */
export interface LinearRopeScaling {
  kind: 'linear';
  factor: number;
}

export type RopeScaling = Llama3RopeScaling | LinearRopeScaling;

export interface LlamaConfig {
  /** Residual stream width. */
  dim: number;
  /** FFN inner width. */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest sequence the checkpoint was trained for (positions beyond it are refused). */
  maxSequenceLength: number;
  normEps: number;
  ropeTheta: number;
  ropeLayout: RopeLayout;
  ropeScaling: RopeScaling | null;
  /** The classifier reuses the token embedding matrix. */
  tiedClassifier: boolean;
  /** Query/key/value projections carry biases (Qwen2). */
  qkvBias: boolean;
  bosId: number;
  eosIds: number[];
}

/** Throws a RangeError naming the first field that cannot describe a working model. */
export function validateConfig(config: LlamaConfig, source: string): void {
  const positive: (keyof LlamaConfig)[] = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'vocabSize',
    'maxSequenceLength'];
  for (const key of positive) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new RangeError(`${source}: model field "${key}": expected a positive integer, got ${String(value)}`);
    }
  }
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new RangeError(`${source}: model field "nKvHeads": expected a divisor of nHeads (${config.nHeads}), ` +
      `got ${config.nKvHeads}`);
  }
  if (config.headDim % 2 !== 0) {
    throw new RangeError(`${source}: model field "headDim": expected an even number (RoPE rotates pairs), got ${config.headDim}`);
  }
  if (!(config.normEps > 0)) {
    throw new RangeError(`${source}: model field "normEps": expected a positive number, got ${config.normEps}`);
  }
  if (!(config.ropeTheta > 0)) {
    throw new RangeError(`${source}: model field "ropeTheta": expected a positive number, got ${config.ropeTheta}`);
  }
}

/**
 * The context a model is opened with: `requested`, or the model's own length capped at 4096 (a full-length cache of a
 * 128k-context model would not fit); refuses what is not an integer in 1..maxSequenceLength. Every backend opens
 * models through this, so they agree on the default and the error.
 */
export function resolveContextLength(config: LlamaConfig, requested: number | undefined): number {
  const contextLength = requested ?? Math.min(config.maxSequenceLength, 4096);
  if (!Number.isInteger(contextLength) || contextLength <= 0 || contextLength > config.maxSequenceLength) {
    throw new RangeError(`contextLength: expected an integer in 1..${config.maxSequenceLength}, got ${contextLength}`);
  }
  return contextLength;
}
