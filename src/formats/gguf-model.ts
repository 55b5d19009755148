// The Llama-family model description and the tokenizer stored in a GGUF file's metadata (llama.cpp's key names,
// `llama-arch.cpp` / `gguf-py/gguf/constants.py`), parsed into typed objects. Pure parsing: turning them into the
// engine's LlamaConfig and tokenizers happens in model/ and tokenizer/.

import { FormatError } from './errors.js';
import { type GgufFile, ggufMetadataReader, type GgufValue } from './gguf.js';

export type GgufArchitecture = 'llama' | 'qwen2';
const ARCHITECTURES: readonly GgufArchitecture[] = ['llama', 'qwen2'];

export interface GgufRopeScaling {
  /** `{arch}.rope.scaling.type` ("linear", "yarn", ...), or "linear" from the older `rope.scale_linear` key. */
  readonly type: string;
  readonly factor: number;
  readonly originalContextLength: number | null;
}

export interface GgufLlamaConfig {
  readonly architecture: GgufArchitecture;
  readonly name: string | null;
  readonly contextLength: number;
  readonly embeddingLength: number;
  readonly blockCount: number;
  readonly feedForwardLength: number;
  readonly headCount: number;
  readonly headCountKv: number;
  /** `attention.key_length` when present, else embedding_length / head_count. */
  readonly headDim: number;
  readonly rmsEps: number;
  readonly ropeFreqBase: number;
  readonly ropeDimensionCount: number;
  readonly ropeScaling: GgufRopeScaling | null;
  /** `{arch}.vocab_size` when present (files usually give only the token list). */
  readonly vocabSize: number | null;
}

/** Reads the model hyperparameters of a llama/qwen2 GGUF file. */
export function readGgufLlamaConfig(file: GgufFile): GgufLlamaConfig {
  const m = ggufMetadataReader(file);
  const archRaw = m.string('general.architecture');
  const architecture = ARCHITECTURES.find((a) => a === archRaw);
  if (architecture === undefined) {
    throw new FormatError({
      file: file.path,
      field: 'metadata "general.architecture"',
      expected: `one of ${ARCHITECTURES.map((a) => `"${a}"`).join(', ')} (Llama-family models; Mistral files use "llama")`,
      got: JSON.stringify(archRaw),
    });
  }
  const k = (suffix: string): string => `${architecture}.${suffix}`;
  const positive = (key: string, fallback?: number): number => {
    const v = m.uint(key, fallback);
    return v > 0 ? v : m.fail(key, 'a positive integer');
  };
  const embeddingLength = positive(k('embedding_length'));
  const headCount = positive(k('attention.head_count'));
  const headCountKv = positive(k('attention.head_count_kv'), headCount);
  let headDim: number;
  if (m.has(k('attention.key_length'))) {
    headDim = positive(k('attention.key_length'));
    const valueLength = positive(k('attention.value_length'), headDim);
    if (valueLength !== headDim) m.fail(k('attention.value_length'), `${headDim} (equal to attention.key_length)`);
  } else if (embeddingLength % headCount === 0) {
    headDim = embeddingLength / headCount;
  } else {
    headDim = m.fail(k('embedding_length'), `a multiple of attention.head_count (${headCount})`);
  }
  const ropeDimensionCount = positive(k('rope.dimension_count'), headDim);
  if (ropeDimensionCount !== headDim) {
    m.fail(k('rope.dimension_count'), `${headDim} (the head size: partial rotary embeddings are not supported)`);
  }
  const eps = m.float(k('attention.layer_norm_rms_epsilon'));
  if (!(eps > 0)) m.fail(k('attention.layer_norm_rms_epsilon'), 'a positive number');
  const base = m.float(k('rope.freq_base'), 10000);
  if (!(base > 0)) m.fail(k('rope.freq_base'), 'a positive number');

  let ropeScaling: GgufRopeScaling | null = null;
  const scalingType = m.optionalString(k('rope.scaling.type'));
  if (scalingType !== undefined && scalingType !== 'none') {
    const factor = m.float(k('rope.scaling.factor'));
    const original = m.optionalUint(k('rope.scaling.original_context_length'));
    ropeScaling = { type: scalingType, factor, originalContextLength: original ?? null };
  } else if (scalingType === undefined && m.has(k('rope.scale_linear'))) {
    const factor = m.float(k('rope.scale_linear'));
    if (factor !== 1) ropeScaling = { type: 'linear', factor, originalContextLength: null };
  }

  return {
    architecture,
    name: m.optionalString('general.name') ?? null,
    contextLength: positive(k('context_length')),
    embeddingLength,
    blockCount: positive(k('block_count')),
    feedForwardLength: positive(k('feed_forward_length')),
    headCount,
    headCountKv,
    headDim,
    rmsEps: eps,
    ropeFreqBase: base,
    ropeDimensionCount,
    ropeScaling,
    vocabSize: m.optionalUint(k('vocab_size')) ?? null,
  };
}

/** llama.cpp's `llama_token_type` values (SentencePiece's piece types). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface GgufVocab {
  /** "llama": SentencePiece-style pieces with scores; "gpt2": byte-level BPE with merges. */
  readonly model: 'llama' | 'gpt2';
  /** `tokenizer.ggml.pre`: the pre-tokenizer of a gpt2-style vocabulary ("llama-bpe", "qwen2", "smollm", ...). */
  readonly pre: string | null;
  readonly tokens: readonly string[];
  readonly scores: readonly number[] | null;
  /** GGUF_TOKEN_TYPE per token, when present. */
  readonly tokenTypes: readonly number[] | null;
  /** "left right" pairs in rank order (gpt2 only). */
  readonly merges: readonly string[] | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  /** End-of-turn / end-of-message tokens (Llama 3 <|eot_id|>, <|eom_id|>) that also end generation. */
  readonly eotId: number | null;
  readonly eomId: number | null;
  readonly addBos: boolean | null;
  readonly addEos: boolean | null;
  readonly addSpacePrefix: boolean | null;
  readonly chatTemplate: string | null;
}

const isString = (v: GgufValue): v is string => typeof v === 'string';
const isNumber = (v: GgufValue): v is number => typeof v === 'number' && Number.isFinite(v);
const isInteger = (v: GgufValue): v is number => typeof v === 'number' && Number.isInteger(v);

/** Reads `tokenizer.ggml.*`; undefined when the file has no tokenizer. */
export function readGgufVocab(file: GgufFile): GgufVocab | undefined {
  const m = ggufMetadataReader(file);
  if (!m.has('tokenizer.ggml.model')) return undefined;
  const modelRaw = m.string('tokenizer.ggml.model');
  if (modelRaw !== 'llama' && modelRaw !== 'gpt2') {
    m.fail('tokenizer.ggml.model', '"llama" (SentencePiece-style) or "gpt2" (byte-level BPE)');
  }
  const model = modelRaw === 'llama' ? 'llama' : 'gpt2';
  const tokens = m.array('tokenizer.ggml.tokens', 'strings', isString);
  if (tokens.length === 0) m.fail('tokenizer.ggml.tokens', 'a non-empty array of strings');
  const sameLength = <T>(key: string, values: readonly T[]): readonly T[] => {
    if (values.length !== tokens.length) m.fail(key, `${tokens.length} items (one per token)`);
    return values;
  };
  const scores = m.has('tokenizer.ggml.scores') ? sameLength('tokenizer.ggml.scores', m.array('tokenizer.ggml.scores', 'numbers', isNumber)) : null;
  const tokenTypes = m.has('tokenizer.ggml.token_type')
    ? sameLength('tokenizer.ggml.token_type', m.array('tokenizer.ggml.token_type', 'integer token types', isInteger))
    : null;
  const merges = m.has('tokenizer.ggml.merges') ? m.array('tokenizer.ggml.merges', 'strings "left right"', isString) : null;
  if (model === 'gpt2' && merges === null) m.fail('tokenizer.ggml.merges', 'the merges of a gpt2-style (byte-level BPE) vocabulary');
  if (model === 'llama' && scores === null) m.fail('tokenizer.ggml.scores', 'the scores of a llama-style (SentencePiece) vocabulary');
  const id = (key: string): number | null => {
    const v = m.optionalUint(key);
    if (v === undefined) return null;
    // Some converters write -1 as uint32 for "none"; anything outside the vocabulary is "none" as for llama.cpp.
    return v < tokens.length ? v : null;
  };
  const optionalBool = (key: string): boolean | null => (m.has(key) ? m.bool(key, false) : null);
  return {
    model,
    pre: m.optionalString('tokenizer.ggml.pre') ?? null,
    tokens,
    scores,
    tokenTypes,
    merges,
    bosId: id('tokenizer.ggml.bos_token_id'),
    eosId: id('tokenizer.ggml.eos_token_id'),
    unkId: id('tokenizer.ggml.unknown_token_id'),
    padId: id('tokenizer.ggml.padding_token_id'),
    eotId: id('tokenizer.ggml.eot_token_id'),
    eomId: id('tokenizer.ggml.eom_token_id'),
    addBos: optionalBool('tokenizer.ggml.add_bos_token'),
    addEos: optionalBool('tokenizer.ggml.add_eos_token'),
    addSpacePrefix: optionalBool('tokenizer.ggml.add_space_prefix'),
    chatTemplate: m.optionalString('tokenizer.chat_template') ?? null,
  };
}
