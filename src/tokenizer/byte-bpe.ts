// Byte-level BPE (GPT-2, Llama 3, Qwen2, SmolLM), as Hugging Face `tokenizers` and llama.cpp's `llm_tokenizer_bpe`
// run it:
//  1. added tokens are cut out of the text first (longest match at the leftmost position); special (control) tokens
//     only when `special` is on, user-defined ones always, with their lstrip/rstrip whitespace;
//  2. each remaining segment is normalised (NFC for Qwen2), split into words by the pre-tokenizer regexes, and each
//     word's UTF-8 bytes are mapped to printable characters with GPT-2's bytes_to_unicode;
//  3. inside a word, the adjacent pair with the lowest merge rank is merged (leftmost on ties) until no pair has a
//     rank; with `ignoreMerges` (Llama 3) a word that is a whole vocabulary token is emitted as it is.
// Decoding maps the characters back to bytes; special tokens decode to nothing, user-defined ones to their text.

import type { HfNormalization, HfPreTokenizerStep } from '../formats/tokenizer-json.js';
import { bytesToUnicode, createPreTokenizer } from './pretokenize.js';
import type { ChatMessage, ChatTemplateOptions, EncodeOptions, StreamingDecoder, Tokenizer } from './types.js';
import { renderChatTemplate } from './chat-template.js';
import { mergeSymbols } from './merge.js';

export interface ByteBpeAddedToken {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  readonly lstrip?: boolean;
  readonly rstrip?: boolean;
}

export interface ByteBpeVocab {
  /** Where the vocabulary came from (for messages). */
  readonly origin: string;
  /** Token strings by id in the byte-level alphabet ("" for unused ids). */
  readonly tokens: readonly string[];
  readonly merges: ReadonlyArray<readonly [string, string]>;
  readonly ignoreMerges: boolean;
  readonly addedTokens: readonly ByteBpeAddedToken[];
  readonly normalizers: readonly HfNormalization[];
  readonly preTokenizer: readonly HfPreTokenizerStep[];
  /** Ids put before / after the text when `bos` / `eos` are asked for (the model's convention; may be empty). */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly chatTemplate: string | null;
  /** The model's vocabulary size when its embedding has padding rows beyond the tokens (they decode to nothing). */
  readonly vocabSize?: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const WORD_CACHE_LIMIT = 50_000;

export function createByteLevelBpeTokenizer(vocab: ByteBpeVocab): Tokenizer {
  const vocabSize = Math.max(vocab.tokens.length, vocab.vocabSize ?? 0);
  const ids = new Map<string, number>();
  vocab.tokens.forEach((t, id) => {
    if (t !== '' && !ids.has(t)) ids.set(t, id);
  });
  // A merge's key joins the two sides with a character no byte-level token contains.
  const ranks = new Map<string, number>();
  vocab.merges.forEach(([a, b], rank) => {
    const key = `${a}\u0000${b}`;
    if (!ranks.has(key)) ranks.set(key, rank);
  });
  const byteChar = bytesToUnicode();
  const charByte = new Map<string, number>(byteChar.map((c, b) => [c, b]));
  const preTokenize = createPreTokenizer(vocab.preTokenizer, vocab.origin);
  const encoder = new TextEncoder();
  const lossy = new TextDecoder('utf-8', { ignoreBOM: true });

  const added = new Map<number, ByteBpeAddedToken>(vocab.addedTokens.map((t) => [t.id, t]));
  const byLength = (a: ByteBpeAddedToken, b: ByteBpeAddedToken): number => b.content.length - a.content.length;
  const matcher = (tokens: ByteBpeAddedToken[]): RegExp | undefined =>
    tokens.length === 0 ? undefined : new RegExp(tokens.sort(byLength).map((t) => escapeRegExp(t.content)).join('|'), 'gu');
  const addedByContent = new Map<string, ByteBpeAddedToken>(vocab.addedTokens.map((t) => [t.content, t]));
  const allAdded = matcher([...vocab.addedTokens]);
  const userAdded = matcher(vocab.addedTokens.filter((t) => !t.special));

  // Bytes each id contributes when decoded.
  const outputBytes: Uint8Array[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const a = added.get(id);
    if (a !== undefined) {
      outputBytes.push(a.special ? new Uint8Array(0) : encoder.encode(a.content));
      continue;
    }
    const token = vocab.tokens[id] ?? '';
    const bytes: number[] = [];
    let byteLevel = true;
    for (const ch of token) {
      const b = charByte.get(ch);
      if (b === undefined) byteLevel = false;
      else bytes.push(b);
    }
    // A token outside the byte alphabet (hand-made vocabularies) decodes as its own text.
    outputBytes.push(byteLevel ? Uint8Array.from(bytes) : encoder.encode(token));
  }

  const cache = new Map<string, number[]>();

  function bpeWord(word: string, out: number[]): void {
    const cached = cache.get(word);
    if (cached !== undefined) {
      for (const id of cached) out.push(id);
      return;
    }
    const result: number[] = [];
    const whole = vocab.ignoreMerges ? ids.get(word) : undefined;
    if (whole !== undefined) {
      result.push(whole);
    } else {
      const symbols = Array.from(word);
      const pieces = mergeSymbols(symbols, (left, right) => ranks.get(`${left}\u0000${right}`));
      for (const piece of pieces) {
        const id = ids.get(piece);
        if (id !== undefined) {
          result.push(id);
        } else if (vocab.unkId !== null) {
          result.push(vocab.unkId);
        } else {
          // No unknown token: fall back to the single-byte tokens (every byte-level vocabulary has all 256).
          for (const ch of piece) {
            const single = ids.get(ch);
            if (single !== undefined) result.push(single);
          }
        }
      }
    }
    if (cache.size >= WORD_CACHE_LIMIT) cache.clear();
    cache.set(word, result);
    for (const id of result) out.push(id);
  }

  function encodeText(text: string, out: number[]): void {
    let normalized = text;
    for (const form of vocab.normalizers) normalized = normalized.normalize(form);
    for (const word of preTokenize(normalized)) {
      let mapped = '';
      for (const b of encoder.encode(word)) mapped += byteChar[b];
      bpeWord(mapped, out);
    }
  }

  function encodeWithAdded(text: string, special: boolean, out: number[]): void {
    const regex = special ? allAdded : userAdded;
    if (regex === undefined) {
      encodeText(text, out);
      return;
    }
    let last = 0;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
      const token = addedByContent.get(m[0]);
      if (token === undefined) continue;
      let end = m.index;
      // lstrip / rstrip: the token swallows the whitespace beside it.
      if (token.lstrip === true) while (end > last && /\s/u.test(text[end - 1])) end--;
      encodeText(text.slice(last, end), out);
      out.push(token.id);
      last = m.index + m[0].length;
      if (token.rstrip === true) while (last < text.length && /\s/u.test(text[last])) last++;
      regex.lastIndex = last;
    }
    encodeText(text.slice(last), out);
  }

  const checkId = (id: number): void => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`token id ${id} is out of range: the vocabulary has ids 0..${vocabSize - 1}`);
    }
  };

  const template = vocab.chatTemplate;
  return {
    vocabSize,
    bosId: vocab.bosId ?? -1,
    eosId: vocab.eosId ?? -1,
    encode(text: string, options: EncodeOptions = {}): number[] {
      const out: number[] = [];
      if (options.bos === true) out.push(...vocab.prefixIds);
      encodeWithAdded(text, options.special ?? true, out);
      if (options.eos === true) out.push(...vocab.suffixIds);
      return out;
    },
    decode(ids: readonly number[]): string {
      const parts = ids.map((id) => {
        checkId(id);
        return outputBytes[id];
      });
      const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let offset = 0;
      for (const p of parts) {
        all.set(p, offset);
        offset += p.length;
      }
      return lossy.decode(all);
    },
    tokenBytes(id: number): Uint8Array {
      checkId(id);
      return outputBytes[id];
    },
    createDecoder(): StreamingDecoder {
      const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
      return {
        push(id: number): string {
          checkId(id);
          return utf8.decode(outputBytes[id], { stream: true });
        },
        flush: () => utf8.decode(),
      };
    },
    tokenPiece(id: number): string {
      checkId(id);
      const a = added.get(id);
      if (a !== undefined) return a.content;
      const bytes = outputBytes[id];
      try {
        return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
      } catch {
        // Part of a multi-byte character: show the bytes.
        return Array.from(bytes, (b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).join('');
      }
    },
    // Only with a template (Tokenizer.applyChatTemplate: absent otherwise, so callers fall back to their default).
    ...(template === null ? {} : {
      chatTemplate: template,
      applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
        return renderChatTemplate(template, messages, {
          ...options,
          bosToken: vocab.bosId !== null ? (added.get(vocab.bosId)?.content ?? vocab.tokens[vocab.bosId]) : '',
          eosToken: vocab.eosId !== null ? (added.get(vocab.eosId)?.content ?? vocab.tokens[vocab.eosId]) : '',
          origin: vocab.origin,
        });
      },
    }),
  };
}
