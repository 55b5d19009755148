// Reads a checkpoint from disk (llama2.c `.bin` file, GGUF file or Hugging Face folder) into a normalised config and a
// source of f32 tensors under canonical names (`token_embd`, `layers.{l}.wq`, …, `norm`, `output`).
//
// RoPE layout per format: llama2.c rotates adjacent pairs (x0,x1),(x2,x3)…; Hugging Face rotates the two halves of
// each head (`rotate_half`). llama.cpp's convert_hf_to_gguf.py permutes the q/k rows of HF Llama/Mistral checkpoints
// back to adjacent pairs (`LlamaModel.permute`), so GGUF llama files are 'pairs'; it does not permute qwen2, which
// llama.cpp runs with NEOX (half-split) rope, so GGUF qwen2 files are 'halves'.

import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readLlama2cCheckpoint } from '../formats/llama2c.js';
import { readSafetensorsFolder } from '../formats/safetensors.js';
import { readHfLlamaConfig } from '../formats/hf-config.js';
import { FormatError } from '../formats/errors.js';
import { type GgufFile, isGgufFile, readGguf } from '../formats/gguf.js';
import { type GgufLlamaConfig, type GgufVocab, readGgufLlamaConfig, readGgufVocab } from '../formats/gguf-model.js';
import type { GgmlTypeName } from '../formats/quant.js';
import { type LlamaConfig, type RopeScaling, validateConfig } from './config.js';
import { ropeInverseFrequencies } from './rope.js';

export interface TensorSource {
  /** File or folder the tensors come from (for messages). */
  readonly origin: string;
  /** Shape of a canonical tensor, or undefined when the checkpoint lacks it. */
  shape(name: string): readonly number[] | undefined;
  /** The tensor's values widened (or dequantized) to f32. */
  read(name: string): Float32Array;
  /**
   * The tensor as stored, for a quantized matmul path that takes the blocks themselves; absent for formats that only
   * hold floats. Undefined when the checkpoint lacks the tensor.
   */
  raw?(name: string): RawTensor | undefined;
}

/** A tensor in its stored encoding (GGUF): ggml type, row-major shape and the little-endian blocks. */
export interface RawTensor {
  readonly type: GgmlTypeName;
  /** Row-major shape, as `TensorSource.shape` gives it ([out, in] for a matrix). */
  readonly shape: readonly number[];
  /** Reads the bytes (whole blocks, rows contiguous: row r is bytes [r·rowBytes, (r+1)·rowBytes)). */
  bytes(): Uint8Array;
}

export interface Checkpoint {
  readonly path: string;
  readonly format: 'llama2c' | 'hf' | 'gguf';
  readonly config: LlamaConfig;
  readonly tensors: TensorSource;
  /** The tokenizer a GGUF file carries (`tokenizer.ggml.*`), if any. */
  readonly embeddedTokenizer?: GgufVocab;
}

/** Opens a llama2.c checkpoint file, a GGUF file or a Hugging Face model folder (config.json + safetensors). */
export function readCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) {
    throw new Error(`${path}: no such file or folder (expected a llama2.c .bin file, a .gguf file or a Hugging Face folder)`);
  }
  if (statSync(path).isDirectory()) return readHfCheckpoint(path);
  if (isGgufFile(path)) return readGgufCheckpoint(path);
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
  const scaling = hfRopeScaling(hf.ropeScaling?.raw, configPath);
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

/** GGUF names of the canonical tensors (llama.cpp's LLM_TENSOR_NAMES for llama / qwen2). */
export function ggufTensorName(name: string): string {
  if (name === 'token_embd') return 'token_embd.weight';
  if (name === 'norm') return 'output_norm.weight';
  if (name === 'output') return 'output.weight';
  const match = /^layers\.(\d+)\.(\w+)$/.exec(name);
  if (!match) return name;
  const suffix: Record<string, string> = {
    attn_norm: 'attn_norm.weight', ffn_norm: 'ffn_norm.weight',
    wq: 'attn_q.weight', wk: 'attn_k.weight', wv: 'attn_v.weight', wo: 'attn_output.weight',
    bq: 'attn_q.bias', bk: 'attn_k.bias', bv: 'attn_v.bias',
    w1: 'ffn_gate.weight', w2: 'ffn_down.weight', w3: 'ffn_up.weight',
  };
  return `blk.${match[1]}.${suffix[match[2]] ?? match[2]}`;
}

function readGgufCheckpoint(path: string): Checkpoint {
  const file = readGguf(path);
  const g = readGgufLlamaConfig(file);
  const vocab = readGgufVocab(file);
  const embedding = file.tensors.get('token_embd.weight');
  if (embedding === undefined || embedding.shape.length !== 2) {
    throw new FormatError({ file: path, field: 'tensor "token_embd.weight"', expected: 'a [vocab, dim] matrix',
      got: embedding === undefined ? 'missing' : `shape [${embedding.shape.join(', ')}]` });
  }
  const vocabSize = embedding.shape[0];
  if (g.vocabSize !== null && g.vocabSize !== vocabSize) {
    throw new FormatError({ file: path, field: `metadata "${g.architecture}.vocab_size"`,
      expected: `${vocabSize} (the rows of token_embd.weight)`, got: String(g.vocabSize) });
  }
  if (vocab !== undefined && vocab.tokens.length > vocabSize) {
    throw new FormatError({ file: path, field: 'metadata "tokenizer.ggml.tokens"',
      expected: `at most ${vocabSize} tokens (the rows of token_embd.weight)`, got: `${vocab.tokens.length} tokens` });
  }
  const eosIds = [vocab?.eosId, vocab?.eotId, vocab?.eomId].filter((id): id is number => typeof id === 'number');
  const config: LlamaConfig = {
    dim: g.embeddingLength,
    hiddenDim: g.feedForwardLength,
    nLayers: g.blockCount,
    nHeads: g.headCount,
    nKvHeads: g.headCountKv,
    headDim: g.headDim,
    vocabSize,
    maxSequenceLength: g.contextLength,
    normEps: g.rmsEps,
    ropeTheta: g.ropeFreqBase,
    // See the note at the top of this file.
    ropeLayout: g.architecture === 'qwen2' ? 'halves' : 'pairs',
    ropeScaling: ggufRopeScaling(file, g),
    tiedClassifier: !file.tensors.has('output.weight'),
    qkvBias: file.tensors.has('blk.0.attn_q.bias'),
    bosId: vocab?.bosId ?? 1,
    eosIds: eosIds.length > 0 ? [...new Set(eosIds)] : [2],
  };
  validateConfig(config, path);
  return {
    path,
    format: 'gguf',
    config,
    embeddedTokenizer: vocab,
    tensors: {
      origin: path,
      shape: (name) => file.tensors.get(ggufTensorName(name))?.shape,
      read: (name) => file.getF32(ggufTensorName(name)),
      raw: (name) => {
        const info = file.tensors.get(ggufTensorName(name));
        const type = info?.type;
        if (info === undefined || type === undefined) return undefined;
        return { type, shape: info.shape, bytes: () => file.getBytes(info.name) };
      },
    },
  };
}

/**
 * RoPE scaling of a GGUF file: the `rope.scaling.*` keys (linear), or a `rope_freqs.weight` tensor of per-frequency
 * divisors, which llama.cpp's converter writes for Llama 3.1+ instead of the llama3 parameters. We recognise those
 * divisors as llama3 scaling by recomputing them from candidate parameters (Meta's published ones).
 */
function ggufRopeScaling(file: GgufFile, g: GgufLlamaConfig): RopeScaling | null {
  if (g.ropeScaling !== null) {
    if (g.ropeScaling.type === 'linear') return { kind: 'linear', factor: g.ropeScaling.factor };
    throw new FormatError({ file: file.path, field: `metadata "${g.architecture}.rope.scaling.type"`,
      expected: '"linear" or "none" (yarn / longrope are not supported)', got: JSON.stringify(g.ropeScaling.type) });
  }
  if (!file.tensors.has('rope_freqs.weight')) return null;
  const factors = file.getF32('rope_freqs.weight');
  if (factors.length !== g.headDim / 2) {
    throw new FormatError({ file: file.path, field: 'tensor "rope_freqs.weight"', expected: `${g.headDim / 2} values (head size / 2)`,
      got: String(factors.length) });
  }
  const plain = ropeInverseFrequencies(g.headDim, g.ropeFreqBase, null);
  const factor = Math.max(...factors);
  // A divisor strictly between 1 and `factor` pins original_max_position_embeddings (with low 1, high 4):
  // smooth = (1/f − 1/factor) / (1 − 1/factor) and original = wavelength · (1 + 3·smooth).
  const candidates = [8192, 4096, 2048, 16384, 32768, 131072];
  factors.forEach((f, i) => {
    if (f > 1 && f < factor) {
      const smooth = (1 / f - 1 / factor) / (1 - 1 / factor);
      candidates.unshift(Math.round(((2 * Math.PI) / plain[i]) * (1 + 3 * smooth)));
    }
  });
  for (const originalMaxPositions of candidates) {
    const scaling: RopeScaling = { kind: 'llama3', factor, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions };
    const scaled = ropeInverseFrequencies(g.headDim, g.ropeFreqBase, scaling);
    if (factors.every((f, i) => Math.abs(plain[i] / scaled[i] - f) <= 1e-3 * f)) return scaling;
  }
  throw new FormatError({ file: file.path, field: 'tensor "rope_freqs.weight"',
    expected: 'Llama 3 rope scaling factors (low_freq_factor 1, high_freq_factor 4)', got: `factors ${Array.from(factors.slice(0, 4)).join(', ')}, ...` });
}
