// SentencePiece-style BPE over a llama2.c tokenizer.bin vocabulary (pieces + scores).
//
// Encoding reproduces SentencePiece's BPE model (bpe_model.cc), not llama2.c's run.c where the two differ:
//  - normalisation (Llama's "identity" rule): prepend one dummy-prefix space to non-empty text; '▁' in the input is
//    the same symbol as ' ' (SentencePiece escapes ' ' to '▁' and tokenizer.bin writes '▁' back as ' ');
//  - start from one symbol per Unicode character, repeatedly merge the adjacent pair whose concatenation is a vocabulary
//    piece with the best score, leftmost on ties, using a priority queue over a linked list (O(n log n));
//  - only normal pieces take part: control pieces (<unk>, <s>, </s>) and byte pieces (<0xXX>) are never merge
//    results, as in SentencePiece, whereas run.c would match them as text;
//  - a final symbol that is not a piece falls back to the byte pieces of its UTF-8 bytes (or <unk> without them);
//  - with `special` (the default), the texts of the special pieces (<unk>, <s>, </s>, or a GGUF file's control and
//    user-defined tokens) are split out first and become their ids, as llama.cpp's parse_special and Hugging Face's
//    encode do, so a rendered chat template's "<s>" / "</s>" are BOS / EOS; the SentencePiece library itself reads
//    them as text (special: false).
//
// Decoding follows run.c: a piece's leading space is dropped right after BOS, <0xXX> pieces are raw bytes, and the
// bytes are decoded as UTF-8 as a whole, so characters split over byte tokens come out intact.

import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import type { EncodeOptions, StreamingDecoder, Tokenizer } from './types.js';
import { mergeSymbols } from './merge.js';

export interface SentencePieceVocab {
  readonly pieces: readonly Uint8Array[];
  readonly scores: ArrayLike<number>;
}

export interface SentencePieceOptions {
  readonly unkId?: number;
  readonly bosId?: number;
  readonly eosId?: number;
  /**
   * More control (and unused) pieces besides unk/bos/eos, e.g. from GGUF `tokenizer.ggml.token_type`: like them they
   * are never produced from text and decode to nothing.
   */
  readonly controlIds?: Iterable<number>;
  /**
   * Pieces whose text is recognised in the input when encoding with `special` (the default): llama.cpp's
   * parse_special set, its control, user-defined and unknown tokens (GGUF `tokenizer.ggml.token_type`). Default
   * <unk>, <s> and </s>.
   */
  readonly specialIds?: Iterable<number>;
}

/** What SentencePiece prints for <unk> (its default unk_surface, " ⁇ "). */
const UNK_SURFACE = new TextEncoder().encode(' \u2047 ');
const BYTE_PIECE = /^<0x([0-9A-F]{2})>$/;
const SPACE = 0x20;

function checkId(id: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new RangeError(`token id ${id} is out of range: the vocabulary has ids 0..${vocabSize - 1}`);
  }
}

/** Builds a tokenizer from tokenizer.bin pieces and scores (ids: <unk> 0, <s> 1, </s> 2 unless told otherwise). */
export function createSentencePieceTokenizer(vocab: SentencePieceVocab, options: SentencePieceOptions = {}): Tokenizer {
  const { unkId = 0, bosId = 1, eosId = 2 } = options;
  const vocabSize = vocab.pieces.length;
  if (vocab.scores.length !== vocabSize) {
    throw new RangeError(`vocabulary has ${vocabSize} pieces but ${vocab.scores.length} scores`);
  }
  for (const [name, id] of [['unkId', unkId], ['bosId', bosId], ['eosId', eosId]] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`${name} ${id} is outside the vocabulary (0..${vocabSize - 1})`);
    }
  }

  // ignoreBOM: a U+FEFF in the text is content, not a byte-order mark to drop (TextDecoder drops it by default).
  const lossy = new TextDecoder('utf-8', { ignoreBOM: true });
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const pieceText: string[] = [];
  const pieceIds = new Map<string, number>();
  const byteIds = new Int32Array(256).fill(-1);
  // The bytes each token contributes to the output (before the after-BOS space rule).
  const outputBytes: Uint8Array[] = [];
  const control = new Set([unkId, bosId, eosId, ...(options.controlIds ?? [])]);
  // Only normal pieces lose their leading space after BOS (run.c tests the piece text, and "<0x20>" has none).
  const isNormal = new Uint8Array(vocabSize);

  vocab.pieces.forEach((bytes, id) => {
    const text = lossy.decode(bytes);
    pieceText.push(text);
    const byteMatch = BYTE_PIECE.exec(text);
    if (control.has(id)) {
      outputBytes.push(id === unkId ? UNK_SURFACE : new Uint8Array(0));
    } else if (byteMatch !== null) {
      const value = parseInt(byteMatch[1], 16);
      if (byteIds[value] < 0) byteIds[value] = id;
      outputBytes.push(Uint8Array.of(value));
    } else {
      outputBytes.push(bytes);
      isNormal[id] = 1;
      let valid = true;
      try {
        strict.decode(bytes);
      } catch {
        valid = false; // not text: no sequence of characters can merge into it
      }
      // llama2.c writes '▁' as ' '; accept a vocabulary exported without that replacement too.
      const key = text.replaceAll('\u2581', ' ');
      if (valid && bytes.length > 0 && !pieceIds.has(key)) pieceIds.set(key, id);
    }
  });
  // The special pieces' texts, longest first (llama.cpp splits on them in that order), e.g. "<s>" → BOS.
  const specials = [...new Set(options.specialIds ?? [unkId, bosId, eosId])]
    // Control pieces by the names tokenPiece shows (llama2.c writes BOS / EOS as "\n<s>\n" / "\n</s>\n").
    .map((id) => ({ id, text: (control.has(id) ? pieceText[id]?.trim() : pieceText[id]?.replaceAll('\u2581', ' ')) ?? '' }))
    .filter((special) => special.text.length > 0 && !BYTE_PIECE.test(special.text))
    .sort((a, b) => b.text.length - a.text.length || a.id - b.id);
  // SentencePiece enables byte fallback only with all 256 byte pieces; otherwise unknown characters become <unk>.
  const byteFallback = byteIds.every((id) => id >= 0);
  const scores = Float64Array.from(vocab.scores);
  const encoder = new TextEncoder();

  function encodeInto(text: string, out: number[]): void {
    // Symbols: one per code point of the normalised text. Lone surrogates become U+FFFD, as TextEncoder would.
    const symbols: string[] = [' '];
    for (const ch of text) {
      const cp = ch.codePointAt(0) ?? 0;
      symbols.push(cp === 0x2581 ? ' ' : cp >= 0xd800 && cp <= 0xdfff ? '\ufffd' : ch);
    }
    // Best score first (SentencePiece's agenda order): the cost is the negated score of the merged piece.
    const pieces = mergeSymbols(symbols, (left, right) => {
      const id = pieceIds.get(left + right);
      return id === undefined ? undefined : -scores[id];
    });

    for (const piece of pieces) {
      const id = pieceIds.get(piece);
      if (id !== undefined) {
        out.push(id);
      } else if (byteFallback) {
        for (const byte of encoder.encode(piece)) out.push(byteIds[byte]);
      } else {
        out.push(unkId);
      }
    }
  }

  /** `text` as non-empty stretches of text and the ids of the special pieces' texts between them, in order. */
  function splitSpecials(text: string): (string | number)[] {
    let fragments: (string | number)[] = [text];
    for (const { id, text: special } of specials) {
      if (!text.includes(special)) continue;
      const next: (string | number)[] = [];
      for (const fragment of fragments) {
        if (typeof fragment === 'number') {
          next.push(fragment);
          continue;
        }
        let from = 0;
        for (let at = fragment.indexOf(special); at >= 0; at = fragment.indexOf(special, from)) {
          if (at > from) next.push(fragment.slice(from, at));
          next.push(id);
          from = at + special.length;
        }
        if (from < fragment.length) next.push(fragment.slice(from));
      }
      fragments = next;
    }
    return fragments.filter((fragment) => fragment !== '');
  }

  function bytesOf(id: number, previous: number): Uint8Array {
    checkId(id, vocabSize);
    const bytes = outputBytes[id];
    // After BOS SentencePiece drops the dummy-prefix space (run.c does the same; llama2.c PR #89).
    return previous === bosId && isNormal[id] === 1 && bytes[0] === SPACE ? bytes.subarray(1) : bytes;
  }

  return {
    vocabSize,
    bosId,
    eosId,
    encode(text: string, options: EncodeOptions = {}): number[] {
      const out: number[] = [];
      if (options.bos === true) out.push(bosId);
      // Empty input stays empty: SentencePiece adds the dummy prefix only to non-empty text.
      if (options.special === false || specials.length === 0) {
        if (text.length > 0) encodeInto(text, out);
      } else {
        // As llama.cpp with parse_special: special pieces' texts become their ids, and every stretch of text between
        // them is encoded on its own, with its own dummy-prefix space (so "<s>[INST] hi" is BOS, "▁[", "INST", ...).
        for (const fragment of splitSpecials(text)) {
          if (typeof fragment === 'number') out.push(fragment);
          else encodeInto(fragment, out);
        }
      }
      if (options.eos === true) out.push(eosId);
      return out;
    },
    decode(ids: readonly number[]): string {
      const parts: Uint8Array[] = [];
      let total = 0;
      let previous = -1;
      for (const id of ids) {
        const bytes = bytesOf(id, previous);
        parts.push(bytes);
        total += bytes.length;
        previous = id;
      }
      const all = new Uint8Array(total);
      let offset = 0;
      for (const p of parts) {
        all.set(p, offset);
        offset += p.length;
      }
      return lossy.decode(all);
    },
    tokenBytes(id: number): Uint8Array {
      return bytesOf(id, -1);
    },
    createDecoder(): StreamingDecoder {
      // A streaming TextDecoder holds back an incomplete UTF-8 sequence and replaces invalid bytes as soon as they
      // are known to be invalid, so the concatenated output equals decode() of the same ids.
      const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
      let previous = -1;
      return {
        push(id: number): string {
          const bytes = bytesOf(id, previous);
          previous = id;
          return utf8.decode(bytes, { stream: true });
        },
        flush(): string {
          return utf8.decode();
        },
      };
    },
    tokenPiece(id: number): string {
      checkId(id, vocabSize);
      // llama2.c writes BOS/EOS as "\n<s>\n" and "\n</s>\n"; show them as SentencePiece names them.
      return control.has(id) ? pieceText[id].trim() : pieceText[id];
    },
  };
}

/** Reads a llama2.c tokenizer.bin and builds its tokenizer. */
export function loadSentencePieceTokenizer(path: string, vocabSize?: number, options?: SentencePieceOptions): Tokenizer {
  return createSentencePieceTokenizer(readTokenizerBin(path, vocabSize), options);
}
