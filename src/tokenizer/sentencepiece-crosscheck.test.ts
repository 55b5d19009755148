// Cross-check against Google's SentencePiece itself (the WebAssembly build in the dev dependency
// @agnai/sentencepiece-js) on many generated strings, for both fixture vocabularies. The 512-token vocabulary has no
// .model file, so one is assembled: its pieces, scores and types, plus the trainer/normalizer settings of the Llama 2
// tokenizer.model (BPE, byte fallback, identity normalisation, dummy prefix; the same recipe llama2.c trains with).

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturePath, seededRandom, skipUnlessFixture, withTempDirAsync } from '../formats/test-fixtures.js';
import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import { loadSentencePieceTokenizer } from './sentencepiece.js';

const LLAMA_MODEL = 'llama2-tokenizer/tokenizer.model';
const LLAMA_BIN = 'llama2-tokenizer/tokenizer.bin';
const TOK512 = 'stories260K/tok512.bin';

interface Processor {
  load(path: string): Promise<void>;
  encodeIds(text: string): number[];
}

async function loadSentencePiece(): Promise<(() => Processor) | undefined> {
  try {
    const mod = await import('@agnai/sentencepiece-js');
    return () => new mod.default.SentencePieceProcessor();
  } catch {
    return undefined;
  }
}

// --- minimal protobuf reading/writing for SentencePiece's ModelProto (pieces = field 1) ---

function readVarint(bytes: Uint8Array, offset: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const b = bytes[offset++];
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) return [value, offset];
  }
}

/** Top-level fields of a protobuf message as [field number, raw bytes of the whole field]. */
function topLevelFields(bytes: Uint8Array): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  let offset = 0;
  while (offset < bytes.length) {
    const start = offset;
    let key: number;
    [key, offset] = readVarint(bytes, offset);
    const wireType = key & 7;
    if (wireType === 0) [, offset] = readVarint(bytes, offset);
    else if (wireType === 1) offset += 8;
    else if (wireType === 5) offset += 4;
    else if (wireType === 2) {
      let length: number;
      [length, offset] = readVarint(bytes, offset);
      offset += length;
    } else throw new Error(`unsupported wire type ${wireType}`);
    out.push([Math.floor(key / 8), bytes.subarray(start, offset)]);
  }
  return out;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function lengthDelimited(field: number, body: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint(field * 8 + 2), ...varint(body.length), ...body]);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A ModelProto with the pieces of a tokenizer.bin and every other field taken from `template`. */
function modelFromTokenizerBin(binPath: string, template: Uint8Array): Uint8Array {
  const { pieces, scores } = readTokenizerBin(binPath);
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const encoder = new TextEncoder();
  const encoded = pieces.map((bytes, id) => {
    let text = decoder.decode(bytes);
    let type = 1; // NORMAL
    if (id === 0) type = 2; // UNKNOWN
    else if (id === 1 || id === 2) [text, type] = [id === 1 ? '<s>' : '</s>', 3]; // CONTROL
    else if (/^<0x[0-9A-F]{2}>$/.test(text)) type = 6; // BYTE
    const score = new Uint8Array(4);
    new DataView(score.buffer).setFloat32(0, scores[id], true);
    const body = concat([lengthDelimited(1, encoder.encode(text.replaceAll(' ', '\u2581'))), Uint8Array.of(0x15), score, Uint8Array.of(0x18, type)]);
    return lengthDelimited(1, body);
  });
  const rest = topLevelFields(template).filter(([field]) => field !== 1).map(([, raw]) => raw);
  return concat([...encoded, ...rest]);
}

const WORDS = ['Once', 'upon', 'a', 'time', 'there', 'was', 'little', 'girl', 'named', 'Lily', 'she', 'loved', 'play', 'the',
  'The', 'sun', 'and', 'happy', 'dog', 'said', 'Hello', 'world', 'naïve', 'café', 'tokenization', 'unbelievable', 'return', 'x',
  'ab', 'qu', 'Spot', 'jumped', 'because', "didn't", 'ice-cream', 'München', 'Zürich', 'ÆØÅ', 'Ελλάδα', 'Москва'];
const ATOMS = [' ', '  ', '   ', '    ', '\t', '\n', '\n\n', '\r\n', '\u2581', '\u2581\u2581', '.', ',', '!', '?', '"', "'", '(', ')',
  '-', '—', '…', '0', '7', '42', '1999', '3.14', 'é', 'ß', 'Ω', 'я', '東京', '日本語', '한국어', 'ع', 'e\u0301', '🙂', '👍🏽',
  '👩‍👩‍👧', '𝔘', '\u00a0', '\u200b', '\ufeff', '<s>', '</s>', '<unk>', '<0x0A>', '\u0001', '\u007f', '~', '{}', '$', '#', '@'];

/** Any scalar value (no surrogates), weighted towards the Basic Multilingual Plane. */
function randomCodePoint(rand: () => number): string {
  const max = rand() < 0.8 ? 0x10000 : 0x110000;
  for (;;) {
    const cp = Math.floor(rand() * max);
    if (cp < 0xd800 || cp > 0xdfff) return String.fromCodePoint(cp);
  }
}

function randomText(rand: () => number): string {
  const parts: string[] = [];
  const n = Math.floor(rand() * 20);
  for (let i = 0; i < n; i++) {
    const r = rand();
    parts.push(r < 0.45 ? WORDS[Math.floor(rand() * WORDS.length)] : r < 0.9 ? ATOMS[Math.floor(rand() * ATOMS.length)] : randomCodePoint(rand));
    if (rand() < 0.4) parts.push(' ');
  }
  return parts.join('');
}

// REDRAFTER_CROSSCHECK_STRINGS raises the count for a longer local run.
const STRINGS = Number(process.env.REDRAFTER_CROSSCHECK_STRINGS ?? '') || 600;

test('encodings equal SentencePiece on generated strings (32000 and 512 vocabularies)', { skip: skipUnlessFixture(LLAMA_MODEL, LLAMA_BIN, TOK512) }, async (t) => {
  const create = await loadSentencePiece();
  if (create === undefined) {
    t.skip('@agnai/sentencepiece-js is not installed (dev dependency)');
    return;
  }
  const template = readFileSync(fixturePath(LLAMA_MODEL));
  await withTempDirAsync(async (dir) => {
    const model512 = join(dir, 'tok512.model');
    writeFileSync(model512, modelFromTokenizerBin(fixturePath(TOK512), template));
    const cases = [
      { name: 'llama2', model: fixturePath(LLAMA_MODEL), ours: loadSentencePieceTokenizer(fixturePath(LLAMA_BIN), 32000) },
      { name: 'tok512', model: model512, ours: loadSentencePieceTokenizer(fixturePath(TOK512), 512) },
    ];
    for (const { name, model, ours } of cases) {
      const sp = create();
      await sp.load(model);
      // Sanity: the real thing agrees with the documented reference.
      if (name === 'tok512') assert.deepEqual(sp.encodeIds('Once upon a time'), [403, 407, 261, 378]);
      else assert.deepEqual(sp.encodeIds('Hello world!'), [15043, 3186, 29991]);
      const rand = seededRandom(name.length * 7919);
      for (let i = 0; i < STRINGS; i++) {
        const text = randomText(rand);
        // The SentencePiece library never reads control pieces from text: special false.
        assert.deepEqual(ours.encode(text, { special: false }), sp.encodeIds(text), `${name}: ${JSON.stringify(text)}`);
      }
    }
  });
});
