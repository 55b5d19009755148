// Reads a checkpoint from disk (llama2.c `.bin` file or Hugging Face folder) into a normalised config and a source of
// f32 tensors under canonical names (`token_embd`, `layers.{l}.wq`, …, `norm`, `output`).

import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readLlama2cCheckpoint } from '../formats/llama2c.js';
import { readSafetensorsFolder } from '../formats/safetensors.js';
import { readHfLlamaConfig } from '../formats/hf-config.js';
import { FormatError } from '../formats/errors.js';
import { type LlamaConfig, type RopeScaling, validateConfig } from './config.js';

export interface TensorSource {
  /** File or folder the tensors come from (for messages). */
  readonly origin: string;
  /** Shape of a canonical tensor, or undefined when the checkpoint lacks it. */
  shape(name: string): readonly number[] | undefined;
  /** The tensor's values widened to f32. */
  read(name: string): Float32Array;
}

export interface Checkpoint {
  readonly path: string;
  readonly format: 'llama2c' | 'hf';
  readonly config: LlamaConfig;
  readonly tensors: TensorSource;
}

/** Opens a llama2.c checkpoint file or a Hugging Face model folder (config.json + safetensors). */
export function readCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) {
    throw new Error(`${path}: no such file or folder (expected a llama2.c .bin file or a Hugging Face folder)`);
  }
  if (statSync(path).isDirectory()) return readHfCheckpoint(path);
  return readLlama2c(path);
}

function readLlama2c(path: string): Checkpoint {
  const { config: header, tensors } = readLlama2cCheckpoint(path);
  const config: LlamaConfig = {
    dim: header.dim,
    hiddenDim: header.hiddenDim,
    nLayers: header.nLayers,
    nHeads: header.nHeads,
    nKvHeads: header.nKvHeads,
    headDim: header.dim / header.nHeads,
    vocabSize: header.vocabSize,
    maxSequenceLength: header.seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: 'pairs',
    ropeScaling: null,
    tiedClassifier: header.sharedClassifier,
    qkvBias: false,
    bosId: 1,
    eosIds: [2],
  };
  validateConfig(config, basename(path));
  return {
    path,
    format: 'llama2c',
    config,
    tensors: {
      origin: path,
      shape: (name) => tensors.get(name)?.shape,
      read: (name) => {
        const tensor = tensors.get(name);
        if (!tensor) throw new FormatError({ file: path, field: `tensor "${name}"`, expected: 'present', got: 'missing' });
        return tensor.data;
      },
    },
  };
}

/** Hugging Face names of the canonical tensors. */
function hfName(name: string): string {
  if (name === 'token_embd') return 'model.embed_tokens.weight';
  if (name === 'norm') return 'model.norm.weight';
  if (name === 'output') return 'lm_head.weight';
  const match = /^layers\.(\d+)\.(\w+)$/.exec(name);
  if (!match) return name;
  const prefix = `model.layers.${match[1]}.`;
  const suffix: Record<string, string> = {
    attn_norm: 'input_layernorm.weight',
    wq: 'self_attn.q_proj.weight', wk: 'self_attn.k_proj.weight', wv: 'self_attn.v_proj.weight',
    wo: 'self_attn.o_proj.weight',
    bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias', bv: 'self_attn.v_proj.bias',
    ffn_norm: 'post_attention_layernorm.weight',
    w1: 'mlp.gate_proj.weight', w2: 'mlp.down_proj.weight', w3: 'mlp.up_proj.weight',
  };
  return prefix + (suffix[match[2]] ?? match[2]);
}

function readHfCheckpoint(dir: string): Checkpoint {
  const configPath = join(dir, 'config.json');
  const hf = readHfLlamaConfig(configPath);
  const scaling = hfRopeScaling(hf.ropeScaling, configPath);
  const eos = hf.eosTokenId;
  const config: LlamaConfig = {
    dim: hf.hiddenSize,
    hiddenDim: hf.intermediateSize,
    nLayers: hf.numHiddenLayers,
    nHeads: hf.numAttentionHeads,
    nKvHeads: hf.numKeyValueHeads,
    headDim: hf.headDim,
    vocabSize: hf.vocabSize,
    maxSequenceLength: hf.maxPositionEmbeddings,
    normEps: hf.rmsNormEps,
    ropeTheta: hf.ropeTheta,
    ropeLayout: 'halves',
    ropeScaling: scaling,
    tiedClassifier: hf.tieWordEmbeddings,
    qkvBias: hf.attentionBias || hf.modelType === 'qwen2',
    bosId: hf.bosTokenId ?? 1,
    eosIds: eos === undefined || eos === null ? [2] : Array.isArray(eos) ? eos : [eos],
  };
  validateConfig(config, configPath);
  const weights = readSafetensorsFolder(dir);
  // Some checkpoints mark tied embeddings only by omitting lm_head.
  if (!config.tiedClassifier && !weights.tensors.has('lm_head.weight')) config.tiedClassifier = true;
  return {
    path: dir,
    format: 'hf',
    config,
    tensors: {
      origin: dir,
      shape: (name) => weights.tensors.get(hfName(name))?.shape,
      read: (name) => weights.getF32(hfName(name)),
    },
  };
}

function hfRopeScaling(raw: unknown, file: string): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  const record = raw as Record<string, unknown>;
  const kind = record['rope_type'] ?? record['type'];
  const num = (key: string): number => {
    const value = record[key];
    if (typeof value !== 'number') {
      throw new FormatError({ file, field: `rope_scaling.${key}`, expected: 'a number', got: JSON.stringify(value) });
    }
    return value;
  };
  if (kind === 'llama3') {
    return { kind: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'), originalMaxPositions: num('original_max_position_embeddings') };
  }
  if (kind === 'linear') return { kind: 'linear', factor: num('factor') };
  if (kind === 'default') return null;
  throw new FormatError({ file, field: 'rope_scaling.rope_type', expected: '"llama3", "linear" or null',
    got: JSON.stringify(kind) });
}
