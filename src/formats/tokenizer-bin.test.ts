import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readTokenizerBin, writeTokenizerBin } from './tokenizer-bin.js';
import { expectFormatError, fixturePath, skipUnlessFixture, withTempDir } from './test-fixtures.js';

const TOK512 = 'stories260K/tok512.bin';
const LLAMA = 'llama2-tokenizer/tokenizer.bin';
const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);

test('the 512-token vocabulary parses', { skip: skipUnlessFixture(TOK512) }, () => {
  const path = fixturePath(TOK512);
  const tok = readTokenizerBin(path, 512);
  assert.equal(tok.maxTokenLength, 7);
  assert.equal(tok.pieces.length, 512);
  assert.equal(tok.scores.length, 512);
  assert.equal(text(tok.pieces[0]), '<unk>');
  assert.equal(text(tok.pieces[1]), '\n<s>\n');
  assert.equal(text(tok.pieces[13]), '<0x0A>');
  assert.equal(text(tok.pieces[259]), ' t');
  assert.equal(tok.scores[260], -1);
  assert.deepEqual(readTokenizerBin(path).pieces, tok.pieces, 'reading to EOF finds the same 512 tokens');
});

test('the 32000-token Llama 2 vocabulary parses', { skip: skipUnlessFixture(LLAMA) }, () => {
  const tok = readTokenizerBin(fixturePath(LLAMA), 32000);
  assert.equal(tok.maxTokenLength, 27);
  assert.equal(text(tok.pieces[259]), '  ');
  assert.equal(tok.scores[259], -1e9);
  assert.equal(text(tok.pieces[31999]), '给');
});

test('round trip', () => {
  withTempDir((dir) => {
    const path = join(dir, 't.bin');
    const enc = new TextEncoder();
    const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ' a', 'b', '', '東京'].map((s) => enc.encode(s));
    const scores = [0, 0, 0, -1.5, -2, -3, -1e9];
    writeTokenizerBin(path, { pieces, scores });
    const back = readTokenizerBin(path, pieces.length);
    assert.equal(back.maxTokenLength, 6);
    assert.deepEqual(back.pieces, pieces);
    assert.deepEqual([...back.scores], scores);
  });
});

test('vocabulary size mismatches and corrupt entries name the token', { skip: skipUnlessFixture(TOK512) }, () => {
  const path = fixturePath(TOK512);
  expectFormatError(() => readTokenizerBin(path, 513), { file: path, field: 'token 512 of 513', includes: ['8 bytes (score, length) at offset 6227', 'got 0', 'truncated'] });
  expectFormatError(() => readTokenizerBin(path, 511), { file: path, field: 'file size', includes: ['(511 tokens)', 'extra after the last token'] });

  withTempDir((dir) => {
    const bytes = readFileSync(path);
    const bad = join(dir, 'bad.bin');
    const variant = (edit: (b: Buffer) => void): void => {
      const copy = Buffer.from(bytes);
      edit(copy);
      writeFileSync(bad, copy);
    };
    variant((b) => b.writeInt32LE(0, 0));
    expectFormatError(() => readTokenizerBin(bad), { file: bad, field: 'max_token_length', includes: ['got 0'] });
    // Token 0 starts at offset 4: score (4 bytes), length (4 bytes), "<unk>".
    variant((b) => b.writeInt32LE(-5, 8));
    expectFormatError(() => readTokenizerBin(bad), { file: bad, field: 'token 0 length', includes: ['0..7 (max_token_length)', 'got -5'] });
    variant((b) => b.writeInt32LE(8, 8));
    expectFormatError(() => readTokenizerBin(bad), { file: bad, field: 'token 0 length', includes: ['got 8'] });
    variant((b) => b.writeFloatLE(NaN, 4));
    expectFormatError(() => readTokenizerBin(bad), { file: bad, field: 'token 0 score', includes: ['got NaN'] });

    for (let size = 0; size < bytes.length; size += 97) {
      writeFileSync(bad, bytes.subarray(0, size));
      let err: unknown;
      try {
        readTokenizerBin(bad, 512);
      } catch (e) {
        err = e;
      }
      expectFormatError(
        () => {
          throw err;
        },
        { file: bad, field: size < 4 ? 'max_token_length' : /^token \d+ of 512$/, includes: ['truncated'] },
      );
    }
  });
});
