// Our tokenizers against llama.cpp's (node-llama-cpp 3.21.1, `model.tokenize`) on the same GGUF vocabularies: the
// 32000-token Llama 2 vocabulary converted from tokenizer.bin ("llama", SentencePiece-style), and synthetic byte-level
// BPE vocabularies in the Llama 3, Qwen2 and SmolLM styles converted from tokenizer.json ("gpt2"). The files hold only
// hyperparameters and the vocabulary; llama.cpp loads them with `vocabOnly`.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Token } from 'node-llama-cpp';
import { ggufVocabFromTokenizerBin, ggufVocabFromTokenizerJson } from '../formats/convert-gguf.js';
import type { GgufEntry } from '../formats/gguf.js';
import { readGguf } from '../formats/gguf.js';
import { readGgufVocab } from '../formats/gguf-model.js';
import { gguf, writeGguf } from '../formats/gguf-write.js';
import { fixturePath, seededRandom, skipUnlessFixture, withTempDirAsync } from '../formats/test-fixtures.js';
import { tokenizerFromGgufVocab } from './sources.js';
import { syntheticTokenizer, type SyntheticKind } from './test-vocab.js';
import type { Tokenizer } from './types.js';
import { loadLlamaCpp } from '../../test/llama-cpp.js';

const STRINGS = Number(process.env.REDRAFTER_CROSSCHECK_STRINGS ?? '') || 400;

const WORDS = ['Once', 'upon', 'a', 'time', 'there', 'was', 'little', 'girl', 'named', 'Lily', 'she', 'loved', 'the', 'The', 'Hello',
  'world', 'naïve', 'café', 'tokenization', "didn't", "It's", "WE'LL", 'ice-cream', 'München', 'Ελλάδα', 'Москва', 'function', 'return'];
const ATOMS = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '.', ',', '!', '?', '"', "'", '(', ')', '-', '—', '…', '0', '7', '42', '1999',
  '3.14', '12345', 'é', 'ß', 'Ω', '東京', '日本語', '한국어', 'e\u0301', '🙂', '👍🏽', '\u00a0', '~', '{}', '$', '#', '<s>', '<|im_start|>', '<|eot_id|>'];

function randomText(rand: () => number): string {
  const parts: string[] = [];
  const n = 1 + Math.floor(rand() * 16);
  for (let i = 0; i < n; i++) {
    parts.push(rand() < 0.5 ? WORDS[Math.floor(rand() * WORDS.length)] : ATOMS[Math.floor(rand() * ATOMS.length)]);
    if (rand() < 0.4) parts.push(' ');
  }
  return parts.join('');
}

/** A GGUF file with a tiny llama hyperparameter set and the given vocabulary. */
function vocabularyFile(path: string, vocab: Map<string, GgufEntry>): void {
  const meta = new Map<string, GgufEntry>([
    ['general.architecture', gguf.string('llama')], ['llama.context_length', gguf.uint32(64)],
    ['llama.embedding_length', gguf.uint32(64)], ['llama.block_count', gguf.uint32(1)], ['llama.feed_forward_length', gguf.uint32(64)],
    ['llama.attention.head_count', gguf.uint32(4)], ['llama.attention.layer_norm_rms_epsilon', gguf.float32(1e-5)],
    ...vocab,
  ]);
  writeGguf(path, meta, []);
}

async function crossCheck(t: { diagnostic(message: string): void; skip(message: string): void }, path: string, name: string,
  cases: ReadonlyArray<{ special: boolean }>): Promise<void> {
  const llama = await loadLlamaCpp();
  if (typeof llama === 'string') {
    t.skip(llama);
    return;
  }
  const vocab = readGgufVocab(readGguf(path));
  assert.ok(vocab);
  const ours: Tokenizer = tokenizerFromGgufVocab(vocab, path);
  const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
  try {
    for (const { special } of cases) {
      const rand = seededRandom(name.length * 31 + (special ? 1 : 0));
      let checked = 0;
      for (let i = 0; i < STRINGS; i++) {
        const text = randomText(rand);
        const theirs = model.tokenize(text, special).map((id: Token) => Number(id));
        assert.deepEqual(ours.encode(text, { special }), theirs, `${name} (special ${special}): ${JSON.stringify(text)}`);
        checked++;
      }
      t.diagnostic(`${name}: ${checked} strings encode identically (special tokens ${special ? 'parsed' : 'as text'})`);
    }
    // Decoding agrees too (llama.cpp's detokenize of the same ids, special tokens not rendered).
    const text = 'Hello world, café 東京 🙂 12345.';
    const ids = ours.encode(text, { special: false });
    assert.equal(model.detokenize(ids.map((id) => id as Token)), ours.decode(ids).replace(/^ /, ''));
  } finally {
    await model.dispose();
  }
}

test('Llama 2 vocabulary (tokenizer.bin → GGUF "llama"): our encodings equal llama.cpp\'s', { skip: skipUnlessFixture('llama2-tokenizer/tokenizer.bin') }, async (t) => {
  await withTempDirAsync(async (dir) => {
    const path = join(dir, 'llama2-vocab.gguf');
    vocabularyFile(path, ggufVocabFromTokenizerBin(fixturePath('llama2-tokenizer/tokenizer.bin'), 32000));
    await crossCheck(t, path, 'llama2', [{ special: false }, { special: true }]);
  });
});

for (const kind of ['llama3', 'qwen2', 'smollm'] as SyntheticKind[]) {
  test(`synthetic ${kind} byte-level BPE (tokenizer.json → GGUF "gpt2"): our encodings equal llama.cpp's`, async (t) => {
    await withTempDirAsync(async (dir) => {
      const { tokenizer, config } = syntheticTokenizer(kind, 400);
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
      const size = Object.keys((tokenizer.model as { vocab: object }).vocab).length + (tokenizer.added_tokens as unknown[]).length;
      const path = join(dir, `${kind}-vocab.gguf`);
      vocabularyFile(path, ggufVocabFromTokenizerJson(dir, size));
      await crossCheck(t, path, kind, [{ special: false }, { special: true }]);
    });
  });
}
