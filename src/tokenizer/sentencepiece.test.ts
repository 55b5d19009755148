import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fixturePath, seededRandom, skipUnlessFixture } from '../formats/test-fixtures.js';
import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import { createSentencePieceTokenizer, loadSentencePieceTokenizer } from './sentencepiece.js';
import type { Tokenizer } from './types.js';

const TOK512 = 'stories260K/tok512.bin';
const LLAMA = 'llama2-tokenizer/tokenizer.bin';
const REFERENCE = 'llama2-tokenizer/reference-encodings.jsonl';

let llamaTokenizer: Tokenizer | undefined;
const llama = (): Tokenizer => (llamaTokenizer ??= loadSentencePieceTokenizer(fixturePath(LLAMA), 32000));
const tok512 = (): Tokenizer => loadSentencePieceTokenizer(fixturePath(TOK512), 512);

/**
 * The textbook algorithm, O(n²) like run.c: rescan all adjacent pairs, merge the best-scoring one (leftmost on ties),
 * with SentencePiece's vocabulary rules. The fast encoder must agree with it exactly.
 */
function naiveEncode(path: string): (text: string) => number[] {
  const { pieces, scores } = readTokenizerBin(path);
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const ids = new Map<string, number>();
  const byteIds = new Map<number, number>();
  pieces.forEach((p, id) => {
    const text = decoder.decode(p);
    const byte = /^<0x([0-9A-F]{2})>$/.exec(text);
    if (byte) byteIds.set(parseInt(byte[1], 16), id);
    else if (id > 2 && !ids.has(text)) ids.set(text, id);
  });
  return (text) => {
    if (text === '') return [];
    const symbols = [' ', ...Array.from(text.replaceAll('\u2581', ' '))];
    for (;;) {
      let best = -1;
      let bestScore = 0;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const id = ids.get(symbols[i] + symbols[i + 1]);
        if (id !== undefined && (best < 0 || scores[id] > bestScore)) {
          best = i;
          bestScore = scores[id];
        }
      }
      if (best < 0) break;
      symbols.splice(best, 2, symbols[best] + symbols[best + 1]);
    }
    return symbols.flatMap((s) => {
      const id = ids.get(s);
      return id !== undefined ? [id] : [...new TextEncoder().encode(s)].map((b) => byteIds.get(b) ?? 0);
    });
  };
}

/** Random text that exercises merges (vocabulary words), whitespace runs, multi-byte and astral characters. */
export function randomText(rand: () => number, words: readonly string[]): string {
  const atoms = [' ', '  ', '   ', '\t', '\n', '\r\n', '\u2581', '.', ',', '!', '?', '"', "'", '(', ')', '-', '—', '…', '0', '42', '3.14',
    'é', 'ï', 'ß', 'ñ', 'Ω', 'я', 'ж', '東京', '日本語', '한국어', 'ع', '\u0301', '🙂', '👍🏽', '👩‍👩‍👧', '𝔘', '\u00a0', '\u200b', '\ufeff', '<s>', '<0x0A>', '</s>', '\u0001', '~'];
  const parts: string[] = [];
  const n = Math.floor(rand() * 24);
  for (let i = 0; i < n; i++) {
    const r = rand();
    parts.push(r < 0.55 ? words[Math.floor(rand() * words.length)] : atoms[Math.floor(rand() * atoms.length)]);
    if (rand() < 0.4) parts.push(' ');
  }
  return parts.join('');
}

const ENGLISH = ['Once', 'upon', 'a', 'time', 'there', 'was', 'little', 'girl', 'named', 'Lily', 'she', 'loved', 'to', 'play',
  'outside', 'the', 'The', 'sun', 'and', 'happy', 'dog', 'ball', 'tree', 'big', 'said', 'Tom', 'mom', 'day', 'in', 'park', 'Hello', 'world',
  'naïve', 'café', 'transformers', 'tokenization', 'unbelievable', 'function', 'return', 'const', 'x', 'y', 'ab', 'abc', 'zzz', 'qu'];

test('SentencePiece reference encodings (32000 vocabulary)', { skip: skipUnlessFixture(LLAMA, REFERENCE) }, () => {
  const lines = readFileSync(fixturePath(REFERENCE), 'utf8').trim().split('\n');
  assert.ok(lines.length >= 5);
  for (const line of lines) {
    const { text, ids } = JSON.parse(line) as { text: string; ids: number[] };
    assert.deepEqual(llama().encode(text), ids, JSON.stringify(text));
    assert.deepEqual(llama().encode(text, { bos: true, eos: true }), [1, ...ids, 2]);
    assert.equal(llama().decode([1, ...ids]), text);
  }
});

test('stories260K vocabulary: "Once upon a time" and the greedy reference prompt', { skip: skipUnlessFixture(TOK512) }, () => {
  assert.deepEqual(tok512().encode('Once upon a time', { bos: true }), [1, 403, 407, 261, 378]);
  const ref = JSON.parse(readFileSync(fixturePath('stories260K/reference-greedy.jsonl'), 'utf8').trim().split('\n')[0]) as {
    prompt: string;
    prompt_ids: number[];
    greedy_ids: number[];
  };
  assert.deepEqual(tok512().encode(ref.prompt, { bos: true }), ref.prompt_ids);
  const story = tok512().decode([...ref.prompt_ids, ...ref.greedy_ids]);
  assert.ok(story.startsWith('Once upon a time'), story);
});

test('edge cases: empty text, leading/trailing spaces, whitespace runs, "▁", unknown characters', { skip: skipUnlessFixture(LLAMA) }, () => {
  const t = llama();
  assert.deepEqual(t.encode(''), []);
  assert.deepEqual(t.encode('', { bos: true }), [1]);
  assert.deepEqual(t.encode('', { bos: true, eos: true }), [1, 2]);
  assert.deepEqual(t.encode(' '), [259]); // dummy prefix + space = "▁▁"
  assert.deepEqual(t.encode(' lead'), [29871, 3275]); // SentencePiece: "▁" then "▁lead"
  assert.deepEqual(t.encode('a\u2581b'), t.encode('a b'), '"▁" in the input is a space for SentencePiece');
  assert.deepEqual(t.encode('\n'), [29871, 13]);
  assert.deepEqual(t.encode('🙂'), [29871, 243, 162, 156, 133]);
  assert.deepEqual(t.encode('<s>', { special: false }), [529, 29879, 29958], 'special: false encodes "<s>" as text');
  // By default the special pieces' texts are their ids (llama.cpp's parse_special), each stretch of text between them
  // with its own dummy prefix: "<s>" "▁hi" "</s>" "▁x".
  assert.deepEqual(t.encode('<s>hi</s>x'), [1, ...t.encode('hi'), 2, ...t.encode('x')]);
  assert.deepEqual(t.encode('a<unk>'), [...t.encode('a'), 0]);
  assert.deepEqual(t.encode('<s><s>'), [1, 1]);
  assert.deepEqual(t.encode('\ud800'), t.encode('\ufffd'), 'a lone surrogate encodes like U+FFFD, as TextEncoder does');
  for (const text of ['    ', 'x    ', '\t\t  \n\n', ' a  b   c    d', 'end ', '  ']) {
    assert.equal(t.decode(t.encode(text, { bos: true })), text, JSON.stringify(text));
  }
});

test('the priority-queue encoder equals the O(n²) textbook merge loop', { skip: skipUnlessFixture(LLAMA, TOK512) }, () => {
  for (const [name, tok] of [[LLAMA, llama()], [TOK512, tok512()]] as const) {
    const naive = naiveEncode(fixturePath(name));
    const rand = seededRandom(name.length);
    for (let i = 0; i < 300; i++) {
      const text = randomText(rand, ENGLISH);
      assert.deepEqual(tok.encode(text, { special: false }), naive(text), `${name}: ${JSON.stringify(text)}`);
    }
  }
});

test('decode(encode(text)) round-trips; without BOS the dummy-prefix space stays', { skip: skipUnlessFixture(LLAMA, TOK512) }, () => {
  for (const tok of [llama(), tok512()]) {
    const rand = seededRandom(11);
    for (let i = 0; i < 200; i++) {
      const text = randomText(rand, ENGLISH).replaceAll('\u2581', ' ');
      const wellFormed = new TextDecoder('utf-8', { ignoreBOM: true }).decode(new TextEncoder().encode(text));
      assert.equal(tok.decode(tok.encode(text, { bos: true, eos: true, special: false })), wellFormed,
        JSON.stringify(text));
      if (text !== '') assert.equal(tok.decode(tok.encode(text, { special: false })), ` ${wellFormed}`);
    }
  }
  // Decoding a continuation separately gives the same text as decoding everything at once.
  const t = llama();
  const prompt = t.encode('The cat', { bos: true });
  const rest = t.encode('sat on the mat').slice(1); // drop the "▁" dummy-prefix token if separate
  assert.equal(t.decode(prompt) + t.decode(rest), t.decode([...prompt, ...rest]));
});

test('streaming decoder holds split UTF-8 characters until complete', { skip: skipUnlessFixture(LLAMA) }, () => {
  const t = llama();
  const d = t.createDecoder();
  // "🙂" is four byte tokens after the "▁" piece.
  assert.deepEqual([1, 29871, 243, 162, 156, 133].map((id) => d.push(id)), ['', '', '', '', '', '🙂']);
  assert.equal(d.flush(), '');
  // Incomplete at the end: flush emits one U+FFFD.
  assert.deepEqual([243, 162].map((id) => d.push(id)), ['', '']);
  assert.equal(d.flush(), '\ufffd');
  // Interrupted by a normal piece: the broken bytes come out as U+FFFD at once, then the text.
  const hello = t.encode('Hello')[0];
  assert.equal(d.push(243), '');
  assert.equal(d.push(hello), '\ufffd Hello');
  // A byte that can never start a character is replaced immediately.
  assert.equal(d.push(3 + 0xff), '\ufffd');
  assert.equal(d.flush(), '');
});

test('streaming output equals decode() for random id sequences', { skip: skipUnlessFixture(LLAMA) }, () => {
  const t = llama();
  const rand = seededRandom(5);
  for (let i = 0; i < 300; i++) {
    const ids = Array.from({ length: Math.floor(rand() * 20) }, () => {
      const r = rand();
      // bias towards byte tokens (ids 3..258) and BOS so that splits and the after-BOS rule are exercised
      return r < 0.5 ? 3 + Math.floor(rand() * 256) : r < 0.6 ? 1 : Math.floor(rand() * 32000);
    });
    const d = t.createDecoder();
    const streamed = ids.map((id) => d.push(id)).join('') + d.flush();
    assert.equal(streamed, t.decode(ids), JSON.stringify(ids));
  }
});

test('tokenPiece, special tokens and out-of-range ids', { skip: skipUnlessFixture(LLAMA) }, () => {
  const t = llama();
  assert.equal(t.vocabSize, 32000);
  assert.equal(t.bosId, 1);
  assert.equal(t.eosId, 2);
  assert.equal(t.tokenPiece(13), '<0x0A>');
  assert.equal(t.tokenPiece(1), '<s>');
  assert.equal(t.tokenPiece(2), '</s>');
  assert.equal(t.tokenPiece(0), '<unk>');
  assert.equal(t.tokenPiece(278), ' the');
  assert.equal(t.decode([1, 278, 2]), 'the');
  assert.equal(t.decode([0]), ' \u2047 ');
  assert.throws(() => t.decode([32000]), RangeError);
  assert.throws(() => t.tokenPiece(-1), /out of range/);
  assert.throws(() => t.createDecoder().push(1.5), RangeError);
});

test('encoding 20 KB of text is fast', { skip: skipUnlessFixture(LLAMA) }, () => {
  const t = llama();
  const rand = seededRandom(3);
  let text = '';
  while (text.length < 20000) text += `${randomText(rand, ENGLISH)} `;
  const start = performance.now();
  const ids = t.encode(text);
  const ms = performance.now() - start;
  assert.ok(ids.length > 3000);
  assert.ok(ms < 500, `took ${ms.toFixed(1)} ms`);
});

test('a hand-made vocabulary: score order, leftmost ties, no byte pieces → <unk>', () => {
  const enc = new TextEncoder();
  const pieces = ['<unk>', '<s>', '</s>', ' ', 'a', 'b', 'ab', 'ba', ' a', 'aba'].map((s) => enc.encode(s));
  const scores = [0, 0, 0, -9, -9, -9, -1, -1, -5, -2];
  const t = createSentencePieceTokenizer({ pieces, scores });
  // " abab": " a"(-5), ab(-1), ba(-1), ab(-1): the leftmost "ab" wins the tie; "ba" is then stale, the second "ab"
  // (-1) beats "aba" (-2), and "abab" is not a piece.
  assert.deepEqual(t.encode('abab').map((id) => t.tokenPiece(id)), [' ', 'ab', 'ab']);
  assert.deepEqual(t.encode('aba').map((id) => t.tokenPiece(id)), [' ', 'aba']);
  assert.deepEqual(t.encode('ac'), [8, 0], 'unknown character without byte pieces → <unk>');
});
