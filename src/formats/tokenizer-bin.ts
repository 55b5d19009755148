// llama2.c `tokenizer.bin`: int32 max_token_length, then per token a float32 score, an int32 byte length and the
// piece's bytes. Pieces are SentencePiece pieces with '▁' written as ' ' (and BOS/EOS written as "\n<s>\n",
// "\n</s>\n" by llama2.c's exporter); they stay raw bytes here, interpretation is the tokenizer's job.

import { FormatError } from './errors.js';
import { readInto, withFile, writeFileAtomic } from './io.js';

export interface TokenizerBin {
  readonly maxTokenLength: number;
  readonly pieces: Uint8Array[];
  readonly scores: Float32Array;
}

// Far above any real piece (Llama 2: 27 bytes); a larger value means this is not a tokenizer.bin.
const MAX_TOKEN_LENGTH_LIMIT = 1 << 16;
// Millions of tokens fit in a few tens of MB; refuse to load a multi-gigabyte file given by mistake.
const MAX_FILE_BYTES = 512 * 1024 * 1024;

/**
 * Reads a tokenizer.bin. With `vocabSize`, exactly that many tokens must be present and nothing may follow (a size
 * mismatch between model and tokenizer is a real bug); without it, tokens are read until the end of the file.
 */
export function readTokenizerBin(path: string, vocabSize?: number): TokenizerBin {
  const bytes = withFile(path, (file) => {
    if (file.size > MAX_FILE_BYTES) {
      throw new FormatError({ file: path, field: 'file size', expected: `at most ${MAX_FILE_BYTES} bytes`, got: String(file.size), detail: 'not a tokenizer.bin?' });
    }
    const out = new Uint8Array(file.size);
    readInto(file, out, 0);
    return out;
  });
  if (vocabSize !== undefined && (!Number.isSafeInteger(vocabSize) || vocabSize < 0)) {
    throw new FormatError({ file: path, field: 'vocabSize argument', expected: 'a non-negative integer', got: String(vocabSize) });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) {
    throw new FormatError({ file: path, field: 'max_token_length', expected: '4 bytes at offset 0', got: String(bytes.length), detail: 'file truncated' });
  }
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength < 1 || maxTokenLength > MAX_TOKEN_LENGTH_LIMIT) {
    throw new FormatError({
      file: path,
      field: 'max_token_length',
      expected: `an integer in 1..${MAX_TOKEN_LENGTH_LIMIT}`,
      got: String(maxTokenLength),
      detail: 'not a tokenizer.bin?',
    });
  }

  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (vocabSize === undefined ? offset < bytes.length : pieces.length < vocabSize) {
    const id = pieces.length;
    const expectedTotal = vocabSize === undefined ? '' : ` of ${vocabSize}`;
    if (offset + 8 > bytes.length) {
      throw new FormatError({
        file: path,
        field: `token ${id}${expectedTotal}`,
        expected: `8 bytes (score, length) at offset ${offset}`,
        got: String(bytes.length - offset),
        detail: 'file truncated',
      });
    }
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    if (Number.isNaN(score)) {
      throw new FormatError({ file: path, field: `token ${id} score`, expected: 'a number', got: 'NaN', detail: `at offset ${offset}` });
    }
    // run.c sizes its merge buffer from max_token_length, so a longer piece would overflow it.
    if (length < 0 || length > maxTokenLength) {
      throw new FormatError({
        file: path,
        field: `token ${id} length`,
        expected: `0..${maxTokenLength} (max_token_length)`,
        got: String(length),
        detail: `at offset ${offset + 4}`,
      });
    }
    offset += 8;
    if (offset + length > bytes.length) {
      throw new FormatError({
        file: path,
        field: `token ${id}${expectedTotal}`,
        expected: `${length} piece bytes at offset ${offset}`,
        got: String(bytes.length - offset),
        detail: 'file truncated',
      });
    }
    pieces.push(bytes.slice(offset, offset + length));
    scores.push(score);
    offset += length;
  }
  if (offset !== bytes.length) {
    throw new FormatError({
      file: path,
      field: 'file size',
      expected: `${offset} bytes (${vocabSize} tokens)`,
      got: `${bytes.length} bytes (${bytes.length - offset} extra after the last token)`,
      detail: 'the tokenizer has more tokens than the model vocabulary?',
    });
  }
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}

/** Writes a tokenizer.bin; max_token_length is the longest piece unless given. */
export function writeTokenizerBin(
  path: string,
  vocab: { readonly pieces: readonly Uint8Array[]; readonly scores: ArrayLike<number>; readonly maxTokenLength?: number },
): void {
  const longest = vocab.pieces.reduce((m, p) => Math.max(m, p.length), 0);
  const maxTokenLength = vocab.maxTokenLength ?? Math.max(1, longest);
  if (vocab.scores.length !== vocab.pieces.length) {
    throw new FormatError({ file: path, field: 'scores', expected: `${vocab.pieces.length} scores (one per piece)`, got: String(vocab.scores.length) });
  }
  if (maxTokenLength < longest) {
    throw new FormatError({ file: path, field: 'max_token_length', expected: `at least ${longest} (the longest piece)`, got: String(maxTokenLength) });
  }
  const size = 4 + vocab.pieces.reduce((s, p) => s + 8 + p.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setInt32(0, maxTokenLength, true);
  let offset = 4;
  vocab.pieces.forEach((piece, i) => {
    view.setFloat32(offset, vocab.scores[i], true);
    view.setInt32(offset + 4, piece.length, true);
    out.set(piece, offset + 8);
    offset += 8 + piece.length;
  });
  writeFileAtomic(path, [out]);
}
