// Hugging Face `tokenizer.json` (the `tokenizers` library's serialisation) for byte-level BPE models — Llama 3,
// Qwen2, SmolLM, GPT-2 — and `tokenizer_config.json` (chat template, BOS/EOS conventions), parsed into typed objects.
// Only the components those models use are accepted; anything else is a FormatError that names the component, so an
// unsupported tokenizer fails at load time instead of encoding differently.

import { describeValue, FormatError } from './errors.js';
import { readInto, withFile } from './io.js';

export interface HfAddedToken {
  readonly id: number;
  readonly content: string;
  /** Special (control) tokens are matched in text only when asked and are omitted when decoding. */
  readonly special: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly singleWord: boolean;
  readonly normalized: boolean;
}

export type HfNormalization = 'NFC' | 'NFD' | 'NFKC' | 'NFKD';

/** How a Split pre-tokenizer keeps the matches (`SplitDelimiterBehavior`). */
export type HfSplitBehavior = 'Isolated' | 'Removed' | 'MergedWithPrevious' | 'MergedWithNext';

export type HfPreTokenizerStep =
  /** `pattern` is an Oniguruma regex source (from `{"Regex": ...}`) or, when `literal`, a plain string. */
  | { readonly kind: 'split'; readonly pattern: string; readonly literal: boolean; readonly behavior: HfSplitBehavior; readonly invert: boolean }
  | { readonly kind: 'byteLevel'; readonly addPrefixSpace: boolean; readonly useRegex: boolean }
  | { readonly kind: 'digits'; readonly individual: boolean };

export interface HfTokenizerJson {
  readonly path: string;
  /** Token strings by id (byte-level alphabet), added tokens included; ids no token uses are "". */
  readonly tokens: readonly string[];
  readonly merges: ReadonlyArray<readonly [string, string]>;
  /** Words found whole in the vocabulary skip the merges (Llama 3). */
  readonly ignoreMerges: boolean;
  readonly unkToken: string | null;
  readonly addedTokens: readonly HfAddedToken[];
  readonly normalizers: readonly HfNormalization[];
  readonly preTokenizer: readonly HfPreTokenizerStep[];
  /** Token ids the post-processor puts before / after a single sequence (e.g. Llama 3's <|begin_of_text|>). */
  readonly prefixIds: readonly number[];
  readonly suffixIds: readonly number[];
}

export interface HfTokenizerConfig {
  readonly path: string;
  readonly chatTemplate: string | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly addBosToken: boolean | null;
  readonly addEosToken: boolean | null;
}

/** Real tokenizer.json files are a few MB (Llama 3: 9 MB); refuse anything absurd before allocating. */
export const MAX_TOKENIZER_JSON_BYTES = 256 * 1024 * 1024;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads a JSON file with a size cap; errors name the file. */
export function readJsonFile(path: string, limit = MAX_TOKENIZER_JSON_BYTES): unknown {
  const bytes = withFile(path, (file) => {
    if (file.size > limit) {
      throw new FormatError({ file: path, field: 'file size', expected: `at most ${limit} bytes`, got: String(file.size) });
    }
    const out = new Uint8Array(file.size);
    readInto(file, out, 0);
    return out;
  });
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new FormatError({ file: path, field: 'file', expected: 'valid UTF-8 JSON', got: reason, cause: err });
  }
}

function fields(file: string, obj: Record<string, unknown>, prefix: string) {
  const fail = (key: string, expected: string): never => {
    throw new FormatError({ file, field: `"${prefix}${key}"`, expected, got: describeValue(obj[key]) });
  };
  const present = (key: string): boolean => obj[key] !== undefined && obj[key] !== null;
  return {
    fail,
    present,
    bool: (key: string, fallback: boolean): boolean => {
      if (!present(key)) return fallback;
      const v = obj[key];
      return typeof v === 'boolean' ? v : fail(key, 'true or false');
    },
    string: (key: string): string => {
      const v = obj[key];
      return typeof v === 'string' ? v : fail(key, 'a string');
    },
    id: (key: string): number => {
      const v = obj[key];
      return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 1 << 24 ? v : fail(key, 'a token id (0..2^24)');
    },
    record: (key: string): Record<string, unknown> => {
      const v = obj[key];
      return isRecord(v) ? v : fail(key, 'an object');
    },
  };
}

function parseNormalizer(file: string, value: unknown, prefix: string, out: HfNormalization[], depth = 0): void {
  if (value === null || value === undefined) return;
  if (!isRecord(value) || depth > 8) throw new FormatError({ file, field: `"${prefix}"`, expected: 'a normalizer object', got: describeValue(value) });
  const type = value.type;
  if (type === 'NFC' || type === 'NFD' || type === 'NFKC' || type === 'NFKD') {
    out.push(type);
  } else if (type === 'Sequence' && Array.isArray(value.normalizers)) {
    value.normalizers.forEach((n, i) => parseNormalizer(file, n, `${prefix}.normalizers[${i}]`, out, depth + 1));
  } else {
    throw new FormatError({
      file,
      field: `"${prefix}.type"`,
      expected: 'NFC, NFD, NFKC, NFKD or a Sequence of them (byte-level BPE normalizers)',
      got: describeValue(type),
      detail: type === 'Replace' || type === 'Prepend' ? 'a SentencePiece-style tokenizer.json: use its tokenizer.model / tokenizer.bin' : undefined,
    });
  }
}

const BEHAVIORS: readonly HfSplitBehavior[] = ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext'];

function parsePreTokenizer(file: string, value: unknown, prefix: string, out: HfPreTokenizerStep[], depth = 0): void {
  if (value === null || value === undefined) return;
  if (!isRecord(value) || depth > 8) throw new FormatError({ file, field: `"${prefix}"`, expected: 'a pre-tokenizer object', got: describeValue(value) });
  const f = fields(file, value, `${prefix}.`);
  const type = value.type;
  if (type === 'Sequence' && Array.isArray(value.pretokenizers)) {
    value.pretokenizers.forEach((p, i) => parsePreTokenizer(file, p, `${prefix}.pretokenizers[${i}]`, out, depth + 1));
  } else if (type === 'ByteLevel') {
    out.push({ kind: 'byteLevel', addPrefixSpace: f.bool('add_prefix_space', true), useRegex: f.bool('use_regex', true) });
  } else if (type === 'Digits') {
    out.push({ kind: 'digits', individual: f.bool('individual_digits', false) });
  } else if (type === 'Split') {
    const pattern = f.record('pattern');
    const regex = pattern.Regex;
    const literal = pattern.String;
    if (typeof regex !== 'string' && typeof literal !== 'string') f.fail('pattern', '{"Regex": string} or {"String": string}');
    const behavior = BEHAVIORS.find((b) => b === value.behavior) ?? f.fail('behavior', BEHAVIORS.join(', '));
    out.push({
      kind: 'split',
      pattern: typeof regex === 'string' ? regex : String(literal),
      literal: typeof regex !== 'string',
      behavior,
      invert: f.bool('invert', false),
    });
  } else {
    throw new FormatError({
      file,
      field: `"${prefix}.type"`,
      expected: 'Split, ByteLevel, Digits or a Sequence of them (byte-level BPE pre-tokenizers)',
      got: describeValue(type),
      detail: type === 'Metaspace' ? 'a SentencePiece-style tokenizer.json: use its tokenizer.model / tokenizer.bin' : undefined,
    });
  }
}

/** Ids the TemplateProcessing post-processor adds around a single sequence ($A); ByteLevel adds none. */
function parsePostProcessor(file: string, value: unknown, prefix: string, depth = 0): { prefixIds: number[]; suffixIds: number[] } {
  const none = { prefixIds: [], suffixIds: [] };
  if (value === null || value === undefined || depth > 8) return none;
  if (!isRecord(value)) throw new FormatError({ file, field: `"${prefix}"`, expected: 'a post-processor object', got: describeValue(value) });
  if (value.type === 'Sequence' && Array.isArray(value.processors)) {
    const parts = value.processors.map((p, i) => parsePostProcessor(file, p, `${prefix}.processors[${i}]`, depth + 1));
    return { prefixIds: parts.flatMap((p) => p.prefixIds), suffixIds: parts.flatMap((p) => p.suffixIds) };
  }
  if (value.type !== 'TemplateProcessing') return none;
  const single = value.single;
  const specials = isRecord(value.special_tokens) ? value.special_tokens : {};
  if (!Array.isArray(single)) throw new FormatError({ file, field: `"${prefix}.single"`, expected: 'an array', got: describeValue(single) });
  const out = { prefixIds: [] as number[], suffixIds: [] as number[] };
  let seenSequence = false;
  single.forEach((piece, i) => {
    if (isRecord(piece) && isRecord(piece.Sequence)) {
      seenSequence = true;
    } else if (isRecord(piece) && isRecord(piece.SpecialToken) && typeof piece.SpecialToken.id === 'string') {
      const name = piece.SpecialToken.id;
      const entry = specials[name];
      const ids = isRecord(entry) ? entry.ids : undefined;
      if (!Array.isArray(ids) || !ids.every((x): x is number => Number.isSafeInteger(x) && x >= 0)) {
        throw new FormatError({ file, field: `"${prefix}.special_tokens"."${name}".ids`, expected: 'an array of token ids', got: describeValue(ids) });
      }
      (seenSequence ? out.suffixIds : out.prefixIds).push(...ids);
    } else {
      throw new FormatError({ file, field: `"${prefix}.single"[${i}]`, expected: '{"Sequence": ...} or {"SpecialToken": {"id": ...}}', got: describeValue(piece) });
    }
  });
  return out;
}

/** Validates an already-parsed tokenizer.json; `path` names it in errors. */
export function parseTokenizerJson(json: unknown, path: string): HfTokenizerJson {
  if (!isRecord(json)) throw new FormatError({ file: path, field: 'tokenizer', expected: 'a JSON object', got: describeValue(json) });
  const top = fields(path, json, '');
  const model = top.record('model');
  const mf = fields(path, model, 'model.');
  if (model.type !== undefined && model.type !== 'BPE') mf.fail('type', '"BPE" (byte-level BPE models)');
  const vocab = mf.record('vocab');

  const tokens: string[] = [];
  const assign = (id: number, content: string, field: string): void => {
    if (tokens[id] !== undefined && tokens[id] !== content) {
      throw new FormatError({ file: path, field, expected: `a free id or the same token (id ${id} is ${JSON.stringify(tokens[id])})`, got: JSON.stringify(content) });
    }
    tokens[id] = content;
  };
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= 1 << 24) {
      throw new FormatError({ file: path, field: `"model.vocab"."${token}"`, expected: 'a token id (0..2^24)', got: describeValue(id) });
    }
    assign(id, token, `"model.vocab"."${token}"`);
  }

  const rawMerges = model.merges;
  if (!Array.isArray(rawMerges)) mf.fail('merges', 'an array of "left right" strings or [left, right] pairs');
  const merges = (rawMerges as unknown[]).map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const space = m.indexOf(' ', 1);
      if (space > 0 && m.indexOf(' ', space + 1) < 0) return [m.slice(0, space), m.slice(space + 1)];
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      return [m[0], m[1]];
    }
    throw new FormatError({ file: path, field: `"model.merges"[${i}]`, expected: '"left right" or [left, right]', got: describeValue(m) });
  });
  if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) mf.fail('dropout', 'null (BPE dropout is for training)');
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[key] !== undefined && model[key] !== null && model[key] !== '') mf.fail(key, 'null (not used by byte-level BPE)');
  }

  const addedTokens: HfAddedToken[] = [];
  const rawAdded = json.added_tokens ?? [];
  if (!Array.isArray(rawAdded)) top.fail('added_tokens', 'an array');
  (rawAdded as unknown[]).forEach((t, i) => {
    if (!isRecord(t)) throw new FormatError({ file: path, field: `"added_tokens"[${i}]`, expected: 'an object', got: describeValue(t) });
    const f = fields(path, t, `added_tokens[${i}].`);
    const content = f.string('content');
    if (content === '') f.fail('content', 'a non-empty string');
    const token: HfAddedToken = {
      id: f.id('id'), content, special: f.bool('special', false), lstrip: f.bool('lstrip', false), rstrip: f.bool('rstrip', false),
      singleWord: f.bool('single_word', false), normalized: f.bool('normalized', false),
    };
    assign(token.id, content, `"added_tokens"[${i}].id`);
    addedTokens.push(token);
  });
  for (let id = 0; id < tokens.length; id++) tokens[id] ??= '';

  const normalizers: HfNormalization[] = [];
  parseNormalizer(path, json.normalizer, 'normalizer', normalizers);
  const preTokenizer: HfPreTokenizerStep[] = [];
  parsePreTokenizer(path, json.pre_tokenizer, 'pre_tokenizer', preTokenizer);
  const decoder = json.decoder;
  const byteLevelDecoder = isRecord(decoder) && (decoder.type === 'ByteLevel' ||
    (decoder.type === 'Sequence' && Array.isArray(decoder.decoders) && decoder.decoders.some((d) => isRecord(d) && d.type === 'ByteLevel')));
  if (!preTokenizer.some((s) => s.kind === 'byteLevel') || !byteLevelDecoder) {
    throw new FormatError({
      file: path,
      field: '"pre_tokenizer" / "decoder"',
      expected: 'a ByteLevel pre-tokenizer and decoder (byte-level BPE: Llama 3, Qwen2, SmolLM, GPT-2)',
      got: `pre_tokenizer ${describeValue(isRecord(json.pre_tokenizer) ? json.pre_tokenizer.type : json.pre_tokenizer)}, decoder ${describeValue(isRecord(decoder) ? decoder.type : decoder)}`,
      detail: mf.bool('byte_fallback', false) ? 'a SentencePiece-style tokenizer.json: use its tokenizer.model / tokenizer.bin' : undefined,
    });
  }
  const { prefixIds, suffixIds } = parsePostProcessor(path, json.post_processor, 'post_processor');
  for (const id of [...prefixIds, ...suffixIds]) {
    if (id >= tokens.length) throw new FormatError({ file: path, field: '"post_processor"', expected: `token ids below ${tokens.length}`, got: String(id) });
  }
  const unk = model.unk_token;
  return {
    path,
    tokens,
    merges,
    ignoreMerges: mf.bool('ignore_merges', false),
    unkToken: typeof unk === 'string' ? unk : null,
    addedTokens,
    normalizers,
    preTokenizer,
    prefixIds,
    suffixIds,
  };
}

export function readTokenizerJson(path: string): HfTokenizerJson {
  return parseTokenizerJson(readJsonFile(path), path);
}

/** `bos_token` / `eos_token` are a string or an AddedToken object {content, ...}. */
function tokenName(file: string, obj: Record<string, unknown>, key: string): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (isRecord(v) && typeof v.content === 'string') return v.content;
  throw new FormatError({ file, field: `"${key}"`, expected: 'a string or {"content": string}', got: describeValue(v) });
}

/** Validates an already-parsed tokenizer_config.json. */
export function parseTokenizerConfig(json: unknown, path: string): HfTokenizerConfig {
  if (!isRecord(json)) throw new FormatError({ file: path, field: 'config', expected: 'a JSON object', got: describeValue(json) });
  const f = fields(path, json, '');
  let chatTemplate: string | null = null;
  const t = json.chat_template;
  if (typeof t === 'string') {
    chatTemplate = t;
  } else if (Array.isArray(t)) {
    // Several named templates: the one called "default" is what transformers applies.
    const named = t.find((x) => isRecord(x) && x.name === 'default');
    if (!isRecord(named) || typeof named.template !== 'string') f.fail('chat_template', 'a string, or a list with a {"name": "default", "template": ...} entry');
    else chatTemplate = named.template;
  } else if (t !== undefined && t !== null) {
    f.fail('chat_template', 'a string or a list of {name, template}');
  }
  return {
    path,
    chatTemplate,
    bosToken: tokenName(path, json, 'bos_token'),
    eosToken: tokenName(path, json, 'eos_token'),
    addBosToken: f.present('add_bos_token') ? f.bool('add_bos_token', false) : null,
    addEosToken: f.present('add_eos_token') ? f.bool('add_eos_token', false) : null,
  };
}

export function readTokenizerConfig(path: string): HfTokenizerConfig {
  return parseTokenizerConfig(readJsonFile(path, 64 * 1024 * 1024), path);
}
