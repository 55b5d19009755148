// llama.cpp's named pre-tokenizers (`tokenizer.ggml.pre`, llama-vocab.cpp) written as the Hugging Face tokenizer.json
// components they stand for: the same regex splits, normaliser and merge rule the original tokenizer.json files
// declare. Used to read gpt2-style GGUF vocabularies and to name the pre-tokenizer when converting tokenizer.json.

import type { HfNormalization, HfPreTokenizerStep } from './tokenizer-json.js';

/** GPT-2's word regex (also the ByteLevel pre-tokenizer's with `use_regex`). */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/** Llama 3's (tiktoken cl100k-style) word regex. */
export const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's: Llama 3's with single digits. */
export const QWEN2_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export interface GgufPreTokenizer {
  /**
   * Always empty: llama.cpp normalises nothing, although Qwen2's tokenizer.json asks for NFC. We follow llama.cpp for
   * GGUF files (so text that is not in NFC, e.g. "e\u0301", encodes as llama.cpp encodes it) and Hugging Face for
   * tokenizer.json.
   */
  readonly normalizers: readonly HfNormalization[];
  readonly steps: readonly HfPreTokenizerStep[];
  /** llama.cpp sets ignore_merges for the Llama 3 family, as Llama 3's tokenizer.json does. */
  readonly ignoreMerges: boolean;
  /** llama.cpp's add_bos default when the file has no tokenizer.ggml.add_bos_token. */
  readonly addBos: boolean;
}

const split = (pattern: string): HfPreTokenizerStep => ({ kind: 'split', pattern, literal: false, behavior: 'Isolated', invert: false });
const byteLevel = (useRegex: boolean): HfPreTokenizerStep => ({ kind: 'byteLevel', addPrefixSpace: false, useRegex });

const llama3: GgufPreTokenizer = { normalizers: [], steps: [split(LLAMA3_PATTERN), byteLevel(false)], ignoreMerges: true, addBos: true };
const gpt2: GgufPreTokenizer = { normalizers: [], steps: [byteLevel(true)], ignoreMerges: false, addBos: false };

export const GGUF_PRE_TOKENIZERS: Readonly<Record<string, GgufPreTokenizer>> = {
  'llama-bpe': llama3,
  llama3,
  qwen2: { normalizers: [], steps: [split(QWEN2_PATTERN), byteLevel(false)], ignoreMerges: false, addBos: false },
  smollm: { normalizers: [], steps: [{ kind: 'digits', individual: true }, byteLevel(true)], ignoreMerges: false, addBos: false },
  'gpt-2': gpt2,
  gpt2,
};

/**
 * The GGUF pre-tokenizer name whose splits equal these, if any (for converters). Normalisers do not take part: GGUF
 * has no place for them (see GgufPreTokenizer.normalizers).
 */
export function ggufPreTokenizerName(steps: readonly HfPreTokenizerStep[]): string | undefined {
  const key = JSON.stringify(steps);
  for (const name of ['llama-bpe', 'qwen2', 'smollm', 'gpt-2']) {
    if (JSON.stringify(GGUF_PRE_TOKENIZERS[name].steps) === key) return name;
  }
  return undefined;
}
