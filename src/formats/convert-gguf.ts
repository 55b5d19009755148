// Converters to GGUF: a llama2.c checkpoint (+ tokenizer.bin) or a Hugging Face folder (config.json, safetensors,
// tokenizer.json) becomes a GGUF file that llama.cpp and our engine both load. We write what llama.cpp's
// convert_hf_to_gguf.py writes for the same model: the `llama.*` / `qwen2.*` hyperparameters, `blk.N.*` tensor names,
// the tokenizer under `tokenizer.ggml.*`, and for HF Llama/Mistral the q/k rows permuted from the half-split RoPE
// layout to adjacent pairs (qwen2 keeps the half split: llama.cpp runs it with NEOX rope).

import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from './errors.js';
import type { GgufEntry } from './gguf.js';
import { GGUF_TOKEN_TYPE } from './gguf-model.js';
import { ggufPreTokenizerName } from './gguf-pre.js';
import { gguf, type GgufTensorInput, writeGguf } from './gguf-write.js';
import { readHfLlamaConfig } from './hf-config.js';
import { readLlama2cCheckpoint } from './llama2c.js';
import { GGML_TYPES, type GgmlTypeName, quantize } from './quant.js';
import { readSafetensorsFolder } from './safetensors.js';
import { readTokenizerBin } from './tokenizer-bin.js';
import { readTokenizerConfig, readTokenizerJson } from './tokenizer-json.js';

export const GGUF_OUTPUT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'] as const;
export type GgufOutputType = (typeof GGUF_OUTPUT_TYPES)[number];

export interface ConvertOptions {
  readonly from: 'llama2c' | 'hf';
  /** The llama2.c .bin file or the Hugging Face folder. */
  readonly input: string;
  readonly output: string;
  /** Encoding of the matrices (norms and biases stay F32, as llama.cpp keeps them). Default f32. */
  readonly type?: GgufOutputType;
  /** llama2.c: the tokenizer.bin (default: tok{vocab}.bin or tokenizer.bin beside the checkpoint). */
  readonly tokenizer?: string;
  /** general.name (default: the input's file or folder name). */
  readonly name?: string;
}

export interface ConvertResult {
  readonly architecture: 'llama' | 'qwen2';
  readonly tensors: number;
  /** Tensors written in another type than asked, because their rows are not whole blocks of it. */
  readonly fallbacks: readonly string[];
  readonly warnings: readonly string[];
}

const TYPE_NAMES: Readonly<Record<GgufOutputType, GgmlTypeName>> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k: 'Q4_K', q6_k: 'Q6_K',
};

// llama.cpp's `llama_ftype` of a file whose matrices are mostly of this type.
const FILE_TYPES: Readonly<Record<GgmlTypeName, number>> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K: 15, Q6_K: 18, BF16: 32 };

interface SourceTensor {
  readonly name: string;
  readonly shape: readonly number[];
  read(): Float32Array;
}

/** The encoding of one tensor: 1-D tensors F32; matrices the asked type, else the best that tiles their rows. */
function tensorType(requested: GgmlTypeName, shape: readonly number[]): GgmlTypeName {
  if (shape.length < 2) return 'F32';
  const row = shape[shape.length - 1];
  for (const type of [requested, 'Q8_0', 'F16'] as const) {
    if (row % GGML_TYPES[type].blockSize === 0) return type;
  }
  return 'F16';
}

/** HF q/k rows of each head from [first half | second half] to interleaved pairs (convert_hf_to_gguf `permute`). */
export function permuteHalvesToPairs(data: Float32Array, rows: number, columns: number, heads: number): Float32Array {
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const to = h * headDim + 2 * i + j;
        const from = h * headDim + j * half + i;
        out.set(data.subarray(from * columns, (from + 1) * columns), to * columns);
      }
    }
  }
  return out;
}

function tokenizerBinBeside(modelPath: string, vocabSize: number): string | undefined {
  const folder = dirname(modelPath);
  for (const name of [`tok${vocabSize}.bin`, 'tokenizer.bin']) {
    if (existsSync(join(folder, name))) return join(folder, name);
  }
  return undefined;
}

/** A llama2.c tokenizer.bin as a GGUF "llama" (SentencePiece-style) vocabulary: the `tokenizer.ggml.*` entries. */
export function ggufVocabFromTokenizerBin(path: string, vocabSize: number): Map<string, GgufEntry> {
  const { pieces, scores } = readTokenizerBin(path, vocabSize);
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const tokens: string[] = [];
  const types: number[] = [];
  pieces.forEach((bytes, id) => {
    const text = decoder.decode(bytes);
    if (id === 0) {
      tokens.push('<unk>');
      types.push(GGUF_TOKEN_TYPE.unknown);
    } else if (id === 1 || id === 2) {
      tokens.push(id === 1 ? '<s>' : '</s>'); // llama2.c writes them as "\n<s>\n", "\n</s>\n"
      types.push(GGUF_TOKEN_TYPE.control);
    } else {
      tokens.push(text.replaceAll(' ', '\u2581'));
      types.push(/^<0x[0-9A-F]{2}>$/.test(text) ? GGUF_TOKEN_TYPE.byte : GGUF_TOKEN_TYPE.normal);
    }
  });
  return new Map<string, GgufEntry>([
    ['tokenizer.ggml.model', gguf.string('llama')],
    ['tokenizer.ggml.tokens', gguf.array('string', tokens)],
    ['tokenizer.ggml.scores', gguf.array('float32', Array.from(scores))],
    ['tokenizer.ggml.token_type', gguf.array('int32', types)],
    ['tokenizer.ggml.bos_token_id', gguf.uint32(1)],
    ['tokenizer.ggml.eos_token_id', gguf.uint32(2)],
    ['tokenizer.ggml.unknown_token_id', gguf.uint32(0)],
    ['tokenizer.ggml.add_bos_token', gguf.bool(true)],
    ['tokenizer.ggml.add_eos_token', gguf.bool(false)],
  ]);
}

/**
 * A Hugging Face byte-level BPE tokenizer.json (+ tokenizer_config.json) in folder `dir` as a GGUF "gpt2" vocabulary
 * of `vocabSize` tokens: the `tokenizer.ggml.*` entries.
 */
export function ggufVocabFromTokenizerJson(dir: string, vocabSize: number): Map<string, GgufEntry> {
  const json = readTokenizerJson(join(dir, 'tokenizer.json'));
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readTokenizerConfig(configPath) : null;
  const pre = ggufPreTokenizerName(json.preTokenizer);
  if (pre === undefined) {
    throw new FormatError({ file: json.path, field: '"pre_tokenizer"', expected: 'the pre-tokenizer of Llama 3, Qwen2, SmolLM or GPT-2 (one llama.cpp names)',
      got: JSON.stringify(json.preTokenizer).slice(0, 120) });
  }
  if (json.tokens.length > vocabSize) {
    throw new FormatError({ file: json.path, field: '"model.vocab"', expected: `at most ${vocabSize} tokens (config.json vocab_size)`, got: String(json.tokens.length) });
  }
  const added = new Map(json.addedTokens.map((t) => [t.id, t]));
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const a = added.get(id);
    const token = json.tokens[id] ?? '';
    // Unused ids (embedding padding) get convert_hf_to_gguf's "[PAD{id}]" placeholders.
    tokens.push(token === '' ? `[PAD${id}]` : token);
    types.push(token === '' ? GGUF_TOKEN_TYPE.unused : a === undefined ? GGUF_TOKEN_TYPE.normal : a.special ? GGUF_TOKEN_TYPE.control : GGUF_TOKEN_TYPE.userDefined);
  }
  const idOf = (content: string | null): number | undefined => {
    if (content === null) return undefined;
    const id = tokens.indexOf(content);
    return id >= 0 ? id : undefined;
  };
  const bos = idOf(config?.bosToken ?? null) ?? json.prefixIds[0];
  const eos = idOf(config?.eosToken ?? null) ?? json.suffixIds[0];
  const addBos = config?.addBosToken ?? json.prefixIds.length > 0;
  const entries = new Map<string, GgufEntry>([
    ['tokenizer.ggml.model', gguf.string('gpt2')],
    ['tokenizer.ggml.pre', gguf.string(pre)],
    ['tokenizer.ggml.tokens', gguf.array('string', tokens)],
    ['tokenizer.ggml.token_type', gguf.array('int32', types)],
    ['tokenizer.ggml.merges', gguf.array('string', json.merges.map(([a, b]) => `${a} ${b}`))],
  ]);
  if (bos !== undefined) entries.set('tokenizer.ggml.bos_token_id', gguf.uint32(bos));
  if (eos !== undefined) entries.set('tokenizer.ggml.eos_token_id', gguf.uint32(eos));
  entries.set('tokenizer.ggml.add_bos_token', gguf.bool(addBos));
  entries.set('tokenizer.ggml.add_eos_token', gguf.bool(config?.addEosToken ?? json.suffixIds.length > 0));
  if (config?.chatTemplate) entries.set('tokenizer.chat_template', gguf.string(config.chatTemplate));
  return entries;
}

/** Hyperparameters written as `llama.*` / `qwen2.*` keys. */
export interface ModelDescription {
  readonly arch: 'llama' | 'qwen2';
  readonly contextLength: number;
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly eps: number;
  readonly ropeTheta: number;
}

function hyperparameters(m: ModelDescription, name: string): Map<string, GgufEntry> {
  const k = (key: string): string => `${m.arch}.${key}`;
  const entries = new Map<string, GgufEntry>([
    ['general.architecture', gguf.string(m.arch)],
    ['general.name', gguf.string(name)],
    [k('vocab_size'), gguf.uint32(m.vocabSize)],
    [k('context_length'), gguf.uint32(m.contextLength)],
    [k('embedding_length'), gguf.uint32(m.dim)],
    [k('block_count'), gguf.uint32(m.nLayers)],
    [k('feed_forward_length'), gguf.uint32(m.hiddenDim)],
    [k('attention.head_count'), gguf.uint32(m.nHeads)],
    [k('attention.head_count_kv'), gguf.uint32(m.nKvHeads)],
    [k('attention.layer_norm_rms_epsilon'), gguf.float32(m.eps)],
    [k('rope.freq_base'), gguf.float32(m.ropeTheta)],
    [k('rope.dimension_count'), gguf.uint32(m.headDim)],
  ]);
  if (m.headDim * m.nHeads !== m.dim) {
    entries.set(k('attention.key_length'), gguf.uint32(m.headDim));
    entries.set(k('attention.value_length'), gguf.uint32(m.headDim));
  }
  return entries;
}

const GGUF_LAYER_NAMES: Readonly<Record<string, string>> = {
  attn_norm: 'attn_norm.weight', ffn_norm: 'ffn_norm.weight', wq: 'attn_q.weight', wk: 'attn_k.weight', wv: 'attn_v.weight',
  wo: 'attn_output.weight', w1: 'ffn_gate.weight', w2: 'ffn_down.weight', w3: 'ffn_up.weight',
  bq: 'attn_q.bias', bk: 'attn_k.bias', bv: 'attn_v.bias',
};

function fromLlama2c(options: ConvertOptions, warnings: string[]): { model: ModelDescription; meta: Map<string, GgufEntry>; tensors: SourceTensor[] } {
  const { config: c, tensors } = readLlama2cCheckpoint(options.input);
  const model: ModelDescription = {
    arch: 'llama', contextLength: c.seqLen, dim: c.dim, hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads,
    nKvHeads: c.nKvHeads, headDim: c.dim / c.nHeads, vocabSize: c.vocabSize, eps: 1e-5, ropeTheta: 10000,
  };
  const meta = new Map<string, GgufEntry>();
  const tokenizer = options.tokenizer ?? tokenizerBinBeside(options.input, c.vocabSize);
  if (tokenizer === undefined) warnings.push('no tokenizer.bin found: the GGUF file has no vocabulary (llama.cpp cannot load it)');
  else for (const [k, v] of ggufVocabFromTokenizerBin(tokenizer, c.vocabSize)) meta.set(k, v);
  const out: SourceTensor[] = [];
  const add = (canonical: string, ggufName: string): void => {
    const t = tensors.get(canonical);
    if (t !== undefined) out.push({ name: ggufName, shape: t.shape, read: () => t.data });
  };
  for (const [canonical, ggufName] of ggufTensorNames(c.nLayers)) add(canonical, ggufName);
  return { model, meta, tensors: out };
}

/** Canonical tensor names (`token_embd`, `layers.{l}.wq`, …) and their GGUF names, in file order. */
export function ggufTensorNames(nLayers: number): [string, string][] {
  const names: [string, string][] = [['token_embd', 'token_embd.weight']];
  for (let l = 0; l < nLayers; l++) {
    for (const kind of ['attn_norm', 'wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'ffn_norm', 'w1', 'w2', 'w3']) {
      names.push([`layers.${l}.${kind}`, `blk.${l}.${GGUF_LAYER_NAMES[kind]}`]);
    }
  }
  names.push(['norm', 'output_norm.weight'], ['output', 'output.weight']);
  return names;
}

/** convert_hf_to_gguf's llama3 `rope_freqs`: per-frequency divisors of Hugging Face's `_compute_llama3_parameters`. */
function llama3RopeFactors(headDim: number, theta: number, s: Readonly<Record<string, unknown>>, file: string): Float32Array {
  const num = (key: string): number => {
    const v = s[key];
    if (typeof v !== 'number') throw new FormatError({ file, field: `rope_scaling.${key}`, expected: 'a number', got: JSON.stringify(v) });
    return v;
  };
  const factor = num('factor');
  const low = num('low_freq_factor');
  const high = num('high_freq_factor');
  const original = num('original_max_position_embeddings');
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) {
    const wavelength = (2 * Math.PI) * Math.pow(theta, (2 * i) / headDim);
    if (wavelength < original / high) out[i] = 1;
    else if (wavelength > original / low) out[i] = factor;
    else {
      const smooth = (original / wavelength - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

function fromHf(options: ConvertOptions, warnings: string[]): { model: ModelDescription; meta: Map<string, GgufEntry>; tensors: SourceTensor[] } {
  const dir = options.input;
  const configPath = join(dir, 'config.json');
  const hf = readHfLlamaConfig(configPath);
  const arch = hf.modelType === 'qwen2' ? 'qwen2' : 'llama'; // Mistral is a llama-architecture GGUF
  const model: ModelDescription = {
    arch, contextLength: hf.maxPositionEmbeddings, dim: hf.hiddenSize, hiddenDim: hf.intermediateSize, nLayers: hf.numHiddenLayers,
    nHeads: hf.numAttentionHeads, nKvHeads: hf.numKeyValueHeads, headDim: hf.headDim, vocabSize: hf.vocabSize, eps: hf.rmsNormEps,
    ropeTheta: hf.ropeTheta,
  };
  const meta = new Map<string, GgufEntry>();
  const extra: SourceTensor[] = [];
  const scaling = hf.ropeScaling;
  if (scaling !== null && scaling.ropeType !== 'default') {
    if (scaling.ropeType === 'llama3') {
      const factors = llama3RopeFactors(hf.headDim, hf.ropeTheta, scaling.raw, configPath);
      extra.push({ name: 'rope_freqs.weight', shape: [factors.length], read: () => factors });
    } else if (scaling.ropeType === 'linear' && scaling.factor !== null) {
      meta.set(`${arch}.rope.scaling.type`, gguf.string('linear'));
      meta.set(`${arch}.rope.scaling.factor`, gguf.float32(scaling.factor));
    } else {
      throw new FormatError({ file: configPath, field: 'rope_scaling.rope_type', expected: '"llama3", "linear" or none', got: JSON.stringify(scaling.ropeType) });
    }
  }
  if (hf.slidingWindow !== null && hf.slidingWindow < hf.maxPositionEmbeddings) {
    warnings.push(`sliding_window ${hf.slidingWindow} is not written: like llama.cpp for Mistral, attention is full (exact for contexts up to ${hf.slidingWindow})`);
  }
  if (existsSync(join(dir, 'tokenizer.json'))) for (const [k, v] of ggufVocabFromTokenizerJson(dir, hf.vocabSize)) meta.set(k, v);
  else warnings.push('no tokenizer.json in the folder: the GGUF file has no vocabulary (llama.cpp cannot load it)');
  if (hf.bosTokenId !== null && !meta.has('tokenizer.ggml.bos_token_id') && meta.has('tokenizer.ggml.model')) meta.set('tokenizer.ggml.bos_token_id', gguf.uint32(hf.bosTokenId));

  const weights = readSafetensorsFolder(dir);
  const out: SourceTensor[] = [];
  const add = (hfName: string, ggufName: string, permuteHeads?: number): void => {
    const info = weights.tensors.get(hfName);
    if (info === undefined) return;
    const shape = info.shape;
    out.push({
      name: ggufName,
      shape,
      read: () => {
        const data = weights.getF32(hfName);
        if (permuteHeads === undefined) return data;
        return permuteHalvesToPairs(data, shape[0], shape.length > 1 ? shape[1] : 1, permuteHeads);
      },
    });
  };
  add('model.embed_tokens.weight', 'token_embd.weight');
  const permute = arch === 'llama';
  for (let l = 0; l < hf.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    const b = `blk.${l}.`;
    add(`${p}input_layernorm.weight`, `${b}attn_norm.weight`);
    add(`${p}self_attn.q_proj.weight`, `${b}attn_q.weight`, permute ? hf.numAttentionHeads : undefined);
    add(`${p}self_attn.k_proj.weight`, `${b}attn_k.weight`, permute ? hf.numKeyValueHeads : undefined);
    add(`${p}self_attn.v_proj.weight`, `${b}attn_v.weight`);
    add(`${p}self_attn.o_proj.weight`, `${b}attn_output.weight`);
    add(`${p}self_attn.q_proj.bias`, `${b}attn_q.bias`, permute ? hf.numAttentionHeads : undefined);
    add(`${p}self_attn.k_proj.bias`, `${b}attn_k.bias`, permute ? hf.numKeyValueHeads : undefined);
    add(`${p}self_attn.v_proj.bias`, `${b}attn_v.bias`);
    add(`${p}post_attention_layernorm.weight`, `${b}ffn_norm.weight`);
    add(`${p}mlp.gate_proj.weight`, `${b}ffn_gate.weight`);
    add(`${p}mlp.down_proj.weight`, `${b}ffn_down.weight`);
    add(`${p}mlp.up_proj.weight`, `${b}ffn_up.weight`);
  }
  add('model.norm.weight', 'output_norm.weight');
  if (!hf.tieWordEmbeddings) add('lm_head.weight', 'output.weight');
  return { model, meta, tensors: [...extra, ...out] };
}

/** Converts a llama2.c checkpoint or a Hugging Face folder to a GGUF file. */
export function convertToGguf(options: ConvertOptions): ConvertResult {
  if (options.from === 'hf' && !(existsSync(options.input) && statSync(options.input).isDirectory())) {
    throw new FormatError({ file: options.input, field: 'input', expected: 'a Hugging Face model folder', got: 'not a folder' });
  }
  const warnings: string[] = [];
  const { model, meta, tensors } = options.from === 'llama2c' ? fromLlama2c(options, warnings) : fromHf(options, warnings);
  const name = options.name ?? (options.input.split(/[\\/]/).filter((s) => s !== '').pop() ?? 'model').replace(/\.bin$/, '');
  return writeModelGguf(options.output, model, meta, tensors, options.type ?? 'f32', name, warnings);
}

/**
 * Writes a model held in memory as GGUF: canonical tensors (adjacent-pairs RoPE layout for llama), hyperparameters,
 * and extra metadata (the vocabulary, e.g. from ggufVocabFromTokenizerBin).
 */
export function writeCanonicalGguf(output: string, model: ModelDescription, vocabulary: ReadonlyMap<string, GgufEntry>,
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>, type: GgufOutputType, name: string):
  ConvertResult {
  const sources: SourceTensor[] = [];
  for (const [canonical, ggufName] of ggufTensorNames(model.nLayers)) {
    const tensor = tensors.get(canonical);
    if (tensor) sources.push({ name: ggufName, shape: tensor.shape, read: () => tensor.data });
  }
  return writeModelGguf(output, model, vocabulary, sources, type, name, []);
}

function writeModelGguf(output: string, model: ModelDescription, meta: ReadonlyMap<string, GgufEntry>,
  tensors: readonly SourceTensor[], type: GgufOutputType, name: string, warnings: string[]): ConvertResult {
  const options = { output };
  const requested = TYPE_NAMES[type];
  const metadata = hyperparameters(model, name);
  metadata.set('general.file_type', gguf.uint32(FILE_TYPES[requested]));
  if (requested.startsWith('Q')) metadata.set('general.quantization_version', gguf.uint32(2));
  for (const [k, v] of meta) metadata.set(k, v);

  const fallbacks: string[] = [];
  const inputs: GgufTensorInput[] = tensors.map((t) => {
    const type = tensorType(requested, t.shape);
    if (t.shape.length >= 2 && type !== requested) fallbacks.push(`${t.name} (${type})`);
    return { name: t.name, shape: t.shape, type, bytes: () => quantize(type, t.read()) };
  });
  writeGguf(options.output, metadata, inputs);
  return { architecture: model.arch, tensors: inputs.length, fallbacks, warnings };
}
