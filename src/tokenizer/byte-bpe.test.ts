import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTokenizerConfig, parseTokenizerJson } from '../formats/tokenizer-json.js';
import { seededRandom } from '../formats/test-fixtures.js';
import { expectFormatError } from '../formats/test-fixtures.js';
import { compileOnigPattern, createPreTokenizer, bytesToUnicode } from './pretokenize.js';
import { tokenizerFromHf } from './sources.js';
import { CHAT_TEMPLATES, syntheticTokenizer, type SyntheticKind } from './test-vocab.js';
import type { Tokenizer } from './types.js';
import { LLAMA3_PATTERN } from '../formats/gguf-pre.js';

/** A hand-made Llama-3-style tokenizer.json: bytes, five merges, two special tokens. */
function handMade(): Tokenizer {
  const byteChar = bytesToUnicode();
  const vocab: Record<string, number> = {};
  byteChar.forEach((c, b) => (vocab[c] = b));
  // merges in rank order: "a b" → ab (256), "Ġ a" → Ġa (257), "ab c" → abc (258), "Ġa b" → Ġab (259), "c c" → cc (260)
  const merges = ['a b', '\u0120 a', 'ab c', '\u0120a b', 'c c'];
  ['ab', '\u0120a', 'abc', '\u0120ab', 'cc'].forEach((t, i) => (vocab[t] = 256 + i));
  const json = {
    added_tokens: [
      { id: 261, content: '<|begin_of_text|>', special: true },
      { id: 262, content: '<|eot_id|>', special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, use_regex: false }] },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>' } }, { Sequence: { id: 'A' } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [261] } } },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges, ignore_merges: false },
  };
  return tokenizerFromHf(parseTokenizerJson(json, 'hand.json'), parseTokenizerConfig({ bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' }, 'hand_config.json'));
}

test('hand-verified byte-level BPE encodings', () => {
  const t = handMade();
  const a = 97;
  const space = 32; // ' ' is byte 0x20, mapped to 'Ġ' — its token id is the byte value
  // "abc": a b → ab (rank 0), ab c → abc (rank 2)
  assert.deepEqual(t.encode('abc'), [258]);
  // " abc" is one word Ġ a b c: "a b" (rank 0) merges before "Ġ a" (rank 1), then "ab c" (rank 2); "Ġ abc" is no merge.
  assert.deepEqual(t.encode(' abc'), [space, 258]);
  // " ab": a b (rank 0) first → [Ġ, ab]; "Ġ ab" is not a merge (only "Ġa b" is) → two tokens
  assert.deepEqual(t.encode(' ab'), [space, 256]);
  // " a": Ġ a → Ġa
  assert.deepEqual(t.encode(' a'), [257]);
  // "ccc": c c (rank 4) leftmost first → cc, c
  assert.deepEqual(t.encode('ccc'), [260, 99]);
  // The regex splits "abc abc!!" into "abc", " abc", "!!"
  assert.deepEqual(t.encode('abc abc!!'), [258, space, 258, 33, 33]);
  // BOS from the post-processor; special tokens in text are parsed by default and can be turned off.
  assert.deepEqual(t.encode('a', { bos: true }), [261, a]);
  assert.deepEqual(t.encode('a<|eot_id|>b'), [a, 262, 98]);
  assert.deepEqual(t.encode('a<|eot_id|>', { special: false }).length, 1 + '<|eot_id|>'.length);
  // Multi-byte characters become their UTF-8 bytes' tokens; decoding restores the text, specials decode to nothing.
  assert.deepEqual(t.encode('é'), [0xc3, 0xa9]);
  assert.equal(t.decode([261, 258, space, 0xc3, 0xa9, 262]), 'abc é');
  assert.equal(t.tokenPiece(257), ' a');
  assert.equal(t.tokenPiece(0xc3), '<0xC3>');
  assert.equal(t.tokenPiece(262), '<|eot_id|>');
  assert.equal(t.bosId, 261);
  assert.equal(t.eosId, 262);
  const d = t.createDecoder();
  assert.deepEqual([0xc3, 0xa9, 262, 258].map((id) => d.push(id)), ['', 'é', '', 'abc']);
  assert.throws(() => t.decode([263]), RangeError);
});

test('pre-tokenizer: the Llama 3 regex splits like tiktoken, case-insensitive contractions included', () => {
  const split = createPreTokenizer([{ kind: 'split', pattern: LLAMA3_PATTERN, literal: false, behavior: 'Isolated', invert: false }], 'x');
  assert.deepEqual(split("I'M here, you'RE 12345 café!!\n\n  x"), ['I', "'M", ' here', ',', ' you', "'RE", ' ', '123', '45', ' café', '!!\n\n', ' ', ' x']);
  assert.throws(() => compileOnigPattern('a++'), /possessive/);
  assert.throws(() => compileOnigPattern('(?x:a)'), /inline flags/);
  assert.equal(compileOnigPattern('(?i:ab)[c]').source, '(?:[aA][bB])[c]');
});

async function loadReference(): Promise<((tokenizer: object, config: object) => { encode(text: string): { ids: number[] } }) | undefined> {
  try {
    const mod = await import('@huggingface/tokenizers');
    return (tokenizer, config) => new mod.Tokenizer(tokenizer, config);
  } catch {
    return undefined;
  }
}

const WORDS = ['Once', 'upon', 'a', 'time', 'Lily', 'loved', 'the', 'The', 'Hello', 'world', "didn't", "IT'S", "we'll", 'café', 'naïve', 'München',
  'function', 'return', '東京', '日本語', 'Ελλάδα'];
const ATOMS = [' ', '  ', '\t', '\n', '\n\n', '\r\n', '.', ',', '!', '?', '"', "'", '(', ')', '-', '—', '0', '42', '12345', '3.14', 'é', 'e\u0301', '🙂',
  '👍🏽', '\u00a0', '$', '<|im_start|>', '<|im_end|>', '<|eot_id|>'];

test('our encodings equal Hugging Face tokenizers.js on synthetic Llama 3 / Qwen2 / SmolLM vocabularies', async (t) => {
  const reference = await loadReference();
  if (reference === undefined) {
    t.skip('@huggingface/tokenizers is not installed (dev dependency)');
    return;
  }
  for (const kind of ['llama3', 'qwen2', 'smollm'] as SyntheticKind[]) {
    const { tokenizer, config } = syntheticTokenizer(kind, 400);
    const theirs = reference(tokenizer, config);
    const ours = tokenizerFromHf(parseTokenizerJson(tokenizer, `${kind}.json`), parseTokenizerConfig(config, `${kind}_config.json`));
    const rand = seededRandom(kind.length);
    for (let i = 0; i < 400; i++) {
      const parts: string[] = [];
      for (let n = Math.floor(rand() * 16); n > 0; n--) parts.push(rand() < 0.5 ? WORDS[Math.floor(rand() * WORDS.length)] : ATOMS[Math.floor(rand() * ATOMS.length)]);
      const text = parts.join(rand() < 0.5 ? ' ' : '');
      assert.deepEqual(ours.encode(text, { bos: true }), theirs.encode(text).ids, `${kind}: ${JSON.stringify(text)}`);
      assert.equal(ours.decode(ours.encode(text, { special: false })), kind === 'qwen2' ? text.normalize('NFC') : text);
    }
  }
});

test('chat templates render Llama 3 / Qwen2 / SmolLM conversations with bos_token and add_generation_prompt', () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }];
  const render = (kind: SyntheticKind, addGenerationPrompt: boolean): string => {
    const { tokenizer, config } = syntheticTokenizer(kind, 50);
    const t = tokenizerFromHf(parseTokenizerJson(tokenizer, 't.json'), parseTokenizerConfig(config, 'c.json'));
    assert.ok(t.applyChatTemplate);
    return t.applyChatTemplate(messages, { addGenerationPrompt });
  };
  assert.equal(render('llama3', true),
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  assert.equal(render('qwen2', true), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(render('smollm', false), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n');
  // A rendered template encodes its special tokens as single ids.
  const { tokenizer, config } = syntheticTokenizer('qwen2', 50);
  const t = tokenizerFromHf(parseTokenizerJson(tokenizer, 't.json'), parseTokenizerConfig(config, 'c.json'));
  const ids = t.encode(t.applyChatTemplate?.([{ role: 'user', content: 'x' }]) ?? '');
  assert.equal(t.tokenPiece(ids[0]), '<|im_start|>');
  assert.ok(CHAT_TEMPLATES.qwen2.includes('add_generation_prompt'));
  assert.equal(typeof t.chatTemplate, 'string');
  // Without a template there is no applyChatTemplate (the Tokenizer contract), so callers use their default: it was
  // present and threw, and the server's chat endpoint answered such a model with a 500.
  const noTemplate = tokenizerFromHf(parseTokenizerJson(tokenizer, 't.json'), null);
  assert.equal(noTemplate.applyChatTemplate, undefined);
  assert.equal(noTemplate.chatTemplate, undefined);
});

test('tokenizer.json errors name the component', () => {
  const { tokenizer } = syntheticTokenizer('llama3', 10);
  const edit = (patch: Record<string, unknown>): unknown => ({ ...tokenizer, ...patch });
  expectFormatError(() => parseTokenizerJson(edit({ pre_tokenizer: { type: 'Metaspace' } }), 'tokenizer.json'),
    { file: 'tokenizer.json', field: 'pre_tokenizer.type', includes: ['SentencePiece-style'] });
  expectFormatError(() => parseTokenizerJson(edit({ normalizer: { type: 'Lowercase' } }), 'tokenizer.json'), { file: 'tokenizer.json', field: 'normalizer.type' });
  expectFormatError(() => parseTokenizerJson(edit({ model: { type: 'WordPiece', vocab: {} } }), 'tokenizer.json'), { file: 'tokenizer.json', field: 'model.type' });
  expectFormatError(() => parseTokenizerJson(edit({ model: { ...(tokenizer.model as object), merges: ['nospace'] } }), 'tokenizer.json'),
    { file: 'tokenizer.json', field: 'model.merges"[0]' });
  expectFormatError(() => parseTokenizerJson(edit({ added_tokens: [{ id: 0, content: 'clash', special: true }] }), 'tokenizer.json'),
    { file: 'tokenizer.json', field: 'added_tokens"[0].id' });
  expectFormatError(() => parseTokenizerConfig({ chat_template: 5 }, 'tokenizer_config.json'), { file: 'tokenizer_config.json', field: 'chat_template' });
});
