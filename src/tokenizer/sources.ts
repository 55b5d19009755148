// Tokenizers built from what model files carry: a GGUF file's `tokenizer.ggml.*` vocabulary (SentencePiece-style
// "llama" or byte-level "gpt2") and a Hugging Face folder's tokenizer.json + tokenizer_config.json.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from '../formats/errors.js';
import { GGUF_TOKEN_TYPE, type GgufVocab } from '../formats/gguf-model.js';
import { GGUF_PRE_TOKENIZERS } from '../formats/gguf-pre.js';
import { type HfTokenizerConfig, type HfTokenizerJson, readTokenizerConfig, readTokenizerJson } from '../formats/tokenizer-json.js';
import { createByteLevelBpeTokenizer, type ByteBpeAddedToken } from './byte-bpe.js';
import { withChatTemplate } from './chat-template.js';
import { createSentencePieceTokenizer } from './sentencepiece.js';
import type { Tokenizer } from './types.js';

export interface TokenizerSourceOptions {
  /** The model's vocabulary size: ids beyond the tokenizer's (padding rows) decode to nothing. */
  readonly vocabSize?: number;
}

/** The tokenizer stored in a GGUF file (see formats/gguf-model.ts `readGgufVocab`). */
export function tokenizerFromGgufVocab(vocab: GgufVocab, origin: string, options: TokenizerSourceOptions = {}): Tokenizer {
  const types = vocab.tokenTypes;
  const typeOf = (id: number): number => types?.[id] ?? GGUF_TOKEN_TYPE.normal;
  if (vocab.model === 'llama') {
    // llama.cpp stores SentencePiece pieces with '▁'; our SentencePiece code reads tokenizer.bin pieces, where '▁' is ' '.
    const encoder = new TextEncoder();
    const pieces = vocab.tokens.map((t) => encoder.encode(t.replaceAll('\u2581', ' ')));
    const controlIds: number[] = [];
    // llama.cpp's parse_special set: control, user-defined and unknown tokens (by type; without types, <unk> <s> </s>).
    const specialIds: number[] = [];
    vocab.tokens.forEach((_, id) => {
      const type = typeOf(id);
      if (type === GGUF_TOKEN_TYPE.control || type === GGUF_TOKEN_TYPE.unused) controlIds.push(id);
      if (type === GGUF_TOKEN_TYPE.control || type === GGUF_TOKEN_TYPE.userDefined || type === GGUF_TOKEN_TYPE.unknown) {
        specialIds.push(id);
      }
    });
    const base = createSentencePieceTokenizer(
      { pieces, scores: vocab.scores ?? new Float32Array(pieces.length) },
      { unkId: vocab.unkId ?? 0, bosId: vocab.bosId ?? 1, eosId: vocab.eosId ?? 2, controlIds,
        ...(types ? { specialIds } : {}) },
    );
    return vocab.chatTemplate === null ? base : withChatTemplate(base, vocab.chatTemplate, origin);
  }

  const pre = vocab.pre ?? 'gpt-2';
  const preTokenizer = GGUF_PRE_TOKENIZERS[pre];
  if (preTokenizer === undefined) {
    throw new FormatError({
      file: origin,
      field: 'metadata "tokenizer.ggml.pre"',
      expected: `one of ${Object.keys(GGUF_PRE_TOKENIZERS).map((n) => `"${n}"`).join(', ')}`,
      got: JSON.stringify(pre),
    });
  }
  const merges = (vocab.merges ?? []).map((m, i): [string, string] => {
    // llama.cpp splits at the first space after the first character (a merge side is never empty).
    const space = m.indexOf(' ', 1);
    if (space < 0) throw new FormatError({ file: origin, field: `metadata "tokenizer.ggml.merges"[${i}]`, expected: '"left right"', got: JSON.stringify(m) });
    return [m.slice(0, space), m.slice(space + 1)];
  });
  const addedTokens: ByteBpeAddedToken[] = [];
  vocab.tokens.forEach((content, id) => {
    const type = typeOf(id);
    if (type === GGUF_TOKEN_TYPE.control || type === GGUF_TOKEN_TYPE.userDefined) {
      if (content !== '') addedTokens.push({ id, content, special: type === GGUF_TOKEN_TYPE.control });
    }
  });
  // Without tokenizer.ggml.add_bos_token, llama.cpp's default for the pre-tokenizer applies.
  const addBos = vocab.addBos ?? preTokenizer.addBos;
  return createByteLevelBpeTokenizer({
    origin,
    tokens: vocab.tokens,
    merges,
    ignoreMerges: preTokenizer.ignoreMerges,
    addedTokens,
    normalizers: preTokenizer.normalizers,
    preTokenizer: preTokenizer.steps,
    prefixIds: addBos && vocab.bosId !== null ? [vocab.bosId] : [],
    suffixIds: vocab.addEos === true && vocab.eosId !== null ? [vocab.eosId] : [],
    bosId: vocab.bosId,
    eosId: vocab.eosId,
    unkId: vocab.unkId,
    chatTemplate: vocab.chatTemplate,
    vocabSize: options.vocabSize,
  });
}

/** Id of a token by its text: added tokens first, then the vocabulary. */
function idOf(json: HfTokenizerJson, content: string | null): number | null {
  if (content === null) return null;
  const added = json.addedTokens.find((t) => t.content === content);
  if (added !== undefined) return added.id;
  const id = json.tokens.indexOf(content);
  return id >= 0 ? id : null;
}

/** A byte-level BPE tokenizer from parsed tokenizer.json (+ tokenizer_config.json when there is one). */
export function tokenizerFromHf(json: HfTokenizerJson, config: HfTokenizerConfig | null, options: TokenizerSourceOptions = {}): Tokenizer {
  const bosId = idOf(json, config?.bosToken ?? null) ?? json.prefixIds[0] ?? null;
  const eosId = idOf(json, config?.eosToken ?? null) ?? json.suffixIds[0] ?? null;
  // tokenizer_config's add_bos_token/add_eos_token override the post-processor, as transformers' fast tokenizers do.
  let prefixIds = json.prefixIds;
  if (config?.addBosToken === true && prefixIds.length === 0 && bosId !== null) prefixIds = [bosId];
  if (config?.addBosToken === false) prefixIds = [];
  let suffixIds = json.suffixIds;
  if (config?.addEosToken === true && suffixIds.length === 0 && eosId !== null) suffixIds = [eosId];
  if (config?.addEosToken === false) suffixIds = [];
  return createByteLevelBpeTokenizer({
    origin: json.path,
    tokens: json.tokens,
    merges: json.merges,
    ignoreMerges: json.ignoreMerges,
    addedTokens: json.addedTokens,
    normalizers: json.normalizers,
    preTokenizer: json.preTokenizer,
    prefixIds,
    suffixIds,
    bosId,
    eosId,
    unkId: idOf(json, json.unkToken),
    chatTemplate: config?.chatTemplate ?? null,
    vocabSize: options.vocabSize,
  });
}

/** Reads tokenizer.json and, beside it, tokenizer_config.json if present. */
export function loadHfTokenizer(tokenizerJsonPath: string, options: TokenizerSourceOptions = {}): Tokenizer {
  const json = readTokenizerJson(tokenizerJsonPath);
  const configPath = join(dirname(tokenizerJsonPath), 'tokenizer_config.json');
  const config = existsSync(configPath) ? readTokenizerConfig(configPath) : null;
  return tokenizerFromHf(json, config, options);
}
