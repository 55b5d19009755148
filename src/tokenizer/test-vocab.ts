// Test support: small byte-level BPE vocabularies made on the spot (we cannot download real tokenizers here). A few
// hundred merges are learned from a text by the textbook BPE trainer, over the pre-tokenizer of the kind asked for,
// and written as a Hugging Face tokenizer.json in the layout of Llama 3 / Qwen2 / SmolLM files.

import { LLAMA3_PATTERN, QWEN2_PATTERN } from '../formats/gguf-pre.js';
import { bytesToUnicode, createPreTokenizer } from './pretokenize.js';
import type { HfPreTokenizerStep } from '../formats/tokenizer-json.js';

export type SyntheticKind = 'llama3' | 'qwen2' | 'smollm';

export const TRAINING_TEXT = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Spot.',
  'One day, she saw a big red ball under the tree. "Can I play with it?" she asked her mom. Her mom said yes!',
  'The sun was shining and the birds were singing. Tom and Sam ran to the river, because they wanted to swim.',
  "They didn't know that the water was cold. It's 3 o'clock, we'll go home at 4:30 or 5:45, said the teacher.",
  'function add(a, b) { return a + b; } // 1234567 numbers 2024-01-02, café naïve Zürich München 東京 日本語 🙂',
  'The quick brown fox jumps over the lazy dog. THE END. Hello world! Hello, World? hello... WORLD!!!',
].join('\n');

const SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|im_start|>', '<|im_end|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>'];

function steps(kind: SyntheticKind): { normalizer: unknown; preTokenizer: unknown; parsed: HfPreTokenizerStep[] } {
  const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  const parsedByteLevel = (useRegex: boolean): HfPreTokenizerStep => ({ kind: 'byteLevel', addPrefixSpace: false, useRegex });
  const split = (pattern: string) => ({ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false });
  const parsedSplit = (pattern: string): HfPreTokenizerStep => ({ kind: 'split', pattern, literal: false, behavior: 'Isolated', invert: false });
  if (kind === 'smollm') {
    return {
      normalizer: null,
      preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] },
      parsed: [{ kind: 'digits', individual: true }, parsedByteLevel(true)],
    };
  }
  const pattern = kind === 'qwen2' ? QWEN2_PATTERN : LLAMA3_PATTERN;
  return {
    normalizer: kind === 'qwen2' ? { type: 'NFC' } : null,
    preTokenizer: { type: 'Sequence', pretokenizers: [split(pattern), byteLevel(false)] },
    parsed: [parsedSplit(pattern), parsedByteLevel(false)],
  };
}

/** A tokenizer.json object (and the matching tokenizer_config.json) with `merges` learned merges. */
export function syntheticTokenizer(kind: SyntheticKind, merges = 300, text = TRAINING_TEXT): { tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
  const { normalizer, preTokenizer, parsed } = steps(kind);
  const byteChar = bytesToUnicode();
  const encoder = new TextEncoder();
  const pre = createPreTokenizer(parsed, 'synthetic');
  const words = new Map<string, number>();
  for (const w of pre(kind === 'qwen2' ? text.normalize('NFC') : text)) {
    const mapped = Array.from(encoder.encode(w), (b) => byteChar[b]).join('');
    words.set(mapped, (words.get(mapped) ?? 0) + 1);
  }
  const vocab: Record<string, number> = {};
  const tokens: string[] = [];
  const addToken = (t: string): void => {
    if (vocab[t] === undefined) {
      vocab[t] = tokens.length;
      tokens.push(t);
    }
  };
  // Byte tokens in byte order, as real vocabularies start (ids 0..255 = bytes in GPT-2 order of bytes_to_unicode).
  for (const c of byteChar) addToken(c);
  let split = [...words].map(([w, n]) => ({ symbols: Array.from(w), n }));
  const mergeList: string[] = [];
  while (mergeList.length < merges) {
    const counts = new Map<string, number>();
    for (const { symbols, n } of split) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + n);
      }
    }
    let best = '';
    let bestCount = 0;
    for (const [key, n] of counts) if (n > bestCount || (n === bestCount && key < best)) [best, bestCount] = [key, n];
    if (bestCount === 0) break;
    mergeList.push(best);
    const [a, b] = best.split(' ');
    addToken(a + b);
    split = split.map(({ symbols, n }) => {
      const out: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i + 1 < symbols.length && symbols[i] === a && symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(symbols[i]);
      }
      return { symbols: out, n };
    });
  }
  const firstSpecial = tokens.length;
  const addedTokens = SPECIALS.map((content, i) => ({ id: firstSpecial + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const bos = kind === 'llama3' ? '<|begin_of_text|>' : '<|end_of_text|>';
  const postProcessor = kind === 'llama3'
    ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [],
      special_tokens: { [bos]: { id: bos, ids: [firstSpecial], tokens: [bos] } } }
    : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer,
    pre_tokenizer: preTokenizer,
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: kind === 'llama3', vocab, merges: mergeList },
  };
  const config = {
    bos_token: bos,
    eos_token: kind === 'llama3' ? '<|eot_id|>' : '<|im_end|>',
    chat_template: CHAT_TEMPLATES[kind],
    ...(kind === 'llama3' ? {} : { add_bos_token: false }),
  };
  return { tokenizer, config };
}

/** The chat templates of Llama 3 (Instruct), Qwen2 (Instruct) and SmolLM (Instruct), as published. */
export const CHAT_TEMPLATES: Readonly<Record<SyntheticKind, string>> = {
  llama3: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
  qwen2: "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  smollm: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
};
