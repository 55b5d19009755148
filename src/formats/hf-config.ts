// Hugging Face `config.json` for Llama-architecture models (llama, mistral, qwen2), parsed into a typed object.
// Defaults follow transformers' LlamaConfig / MistralConfig / Qwen2Config, so a config that omits a field means what
// it means to transformers.

import { describeValue, FormatError } from './errors.js';
import { readInto, withFile } from './io.js';

export type HfModelType = 'llama' | 'mistral' | 'qwen2';

export interface HfRopeScaling {
  /** `rope_type`, or the older `type` key: "linear", "dynamic", "llama3", "yarn", ... */
  readonly ropeType: string;
  readonly factor: number | null;
  readonly lowFreqFactor: number | null;
  readonly highFreqFactor: number | null;
  readonly originalMaxPositionEmbeddings: number | null;
  /** The object as written, for scaling types that need other keys. */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface HfLlamaConfig {
  readonly architectures: readonly string[];
  readonly modelType: HfModelType;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: HfRopeScaling | null;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | number[] | null;
  /**
   * Biases on the attention projections. Llama/Mistral: `attention_bias` (q, k, v and o). Qwen2 always has q/k/v
   * biases and no o bias; the model layer should go by the tensors present.
   */
  readonly attentionBias: boolean;
  readonly hiddenAct: 'silu';
  /** Sliding-window attention span, or null for full attention. */
  readonly slidingWindow: number | null;
  readonly torchDtype: string | null;
}

const MODEL_TYPES: readonly HfModelType[] = ['llama', 'mistral', 'qwen2'];

// Defaults of the transformers config classes for the fields real config files sometimes omit.
const DEFAULTS: Readonly<Record<HfModelType, { maxPositionEmbeddings: number; bos: number | null; eos: number | null }>> = {
  llama: { maxPositionEmbeddings: 2048, bos: 1, eos: 2 },
  mistral: { maxPositionEmbeddings: 4096 * 32, bos: 1, eos: 2 },
  qwen2: { maxPositionEmbeddings: 32768, bos: null, eos: null },
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Typed field access with errors that name the field, the expectation and the value found. */
function fieldReader(file: string, obj: Record<string, unknown>, prefix = '') {
  const fail = (key: string, expected: string): never => {
    throw new FormatError({ file, field: `field "${prefix}${key}"`, expected, got: describeValue(obj[key]) });
  };
  const present = (key: string): boolean => obj[key] !== undefined && obj[key] !== null;
  return {
    present,
    fail,
    positiveInt(key: string, fallback?: number): number {
      if (!present(key) && fallback !== undefined) return fallback;
      const v = obj[key];
      return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : fail(key, 'a positive integer');
    },
    positiveNumber(key: string, fallback?: number): number {
      if (!present(key) && fallback !== undefined) return fallback;
      const v = obj[key];
      return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fail(key, 'a positive number');
    },
    optionalNumber(key: string): number | null {
      if (!present(key)) return null;
      const v = obj[key];
      return typeof v === 'number' && Number.isFinite(v) ? v : fail(key, 'a number');
    },
    bool(key: string, fallback: boolean): boolean {
      if (!present(key)) return fallback;
      const v = obj[key];
      return typeof v === 'boolean' ? v : fail(key, 'true or false');
    },
    string(key: string, fallback?: string): string {
      if (!present(key) && fallback !== undefined) return fallback;
      const v = obj[key];
      return typeof v === 'string' ? v : fail(key, 'a string');
    },
    tokenIds(key: string, fallback: number | null): number | number[] | null {
      if (!present(key)) return fallback;
      const v = obj[key];
      const isId = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
      if (isId(v)) return v;
      if (Array.isArray(v) && v.length > 0 && v.every(isId)) return [...v];
      return fail(key, 'a token id or a non-empty array of token ids');
    },
  };
}

function parseRopeScaling(file: string, value: unknown): HfRopeScaling | null {
  if (value === undefined || value === null) return null;
  if (!isRecord(value)) {
    throw new FormatError({ file, field: 'field "rope_scaling"', expected: 'null or an object', got: describeValue(value) });
  }
  const f = fieldReader(file, value, 'rope_scaling.');
  const ropeType = f.present('rope_type') ? f.string('rope_type') : f.present('type') ? f.string('type') : f.fail('rope_type', 'a string (or "type")');
  return {
    ropeType,
    factor: f.optionalNumber('factor'),
    lowFreqFactor: f.optionalNumber('low_freq_factor'),
    highFreqFactor: f.optionalNumber('high_freq_factor'),
    originalMaxPositionEmbeddings: f.optionalNumber('original_max_position_embeddings'),
    raw: { ...value },
  };
}

/** Validates an already-parsed `config.json` object; `file` names it in errors. */
export function parseHfLlamaConfig(json: unknown, file: string): HfLlamaConfig {
  if (!isRecord(json)) {
    throw new FormatError({ file, field: 'config', expected: 'a JSON object', got: describeValue(json) });
  }
  const f = fieldReader(file, json);

  const modelTypeRaw = f.string('model_type');
  const modelType = MODEL_TYPES.find((t) => t === modelTypeRaw);
  if (modelType === undefined) {
    throw new FormatError({
      file,
      field: 'field "model_type"',
      expected: `one of ${MODEL_TYPES.map((t) => `"${t}"`).join(', ')} (Llama-architecture models)`,
      got: describeValue(modelTypeRaw),
    });
  }
  const defaults = DEFAULTS[modelType];

  const architecturesRaw = json.architectures;
  let architectures: string[] = [];
  if (architecturesRaw !== undefined && architecturesRaw !== null) {
    if (!Array.isArray(architecturesRaw) || !architecturesRaw.every((a): a is string => typeof a === 'string')) {
      f.fail('architectures', 'an array of strings');
    } else {
      architectures = [...architecturesRaw];
    }
  }

  const hiddenAct = f.string('hidden_act', 'silu');
  if (hiddenAct !== 'silu') f.fail('hidden_act', '"silu" (the only activation of Llama-architecture MLPs)');

  const hiddenSize = f.positiveInt('hidden_size');
  const numAttentionHeads = f.positiveInt('num_attention_heads');
  const numKeyValueHeads = f.positiveInt('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    f.fail('num_key_value_heads', `a divisor of num_attention_heads (${numAttentionHeads})`);
  }
  let headDim: number;
  if (f.present('head_dim')) {
    headDim = f.positiveInt('head_dim');
  } else if (hiddenSize % numAttentionHeads === 0) {
    headDim = hiddenSize / numAttentionHeads;
  } else {
    headDim = f.fail('hidden_size', `a multiple of num_attention_heads (${numAttentionHeads}) when head_dim is absent`);
  }
  if (headDim % 2 !== 0) f.fail(f.present('head_dim') ? 'head_dim' : 'hidden_size', 'an even head dimension (RoPE rotates pairs)');

  const useSlidingWindow = modelType === 'qwen2' ? f.bool('use_sliding_window', false) : true;
  const slidingWindow = useSlidingWindow && f.present('sliding_window') ? f.positiveInt('sliding_window') : null;

  return {
    architectures,
    modelType,
    hiddenSize,
    intermediateSize: f.positiveInt('intermediate_size'),
    numHiddenLayers: f.positiveInt('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: f.positiveInt('vocab_size'),
    rmsNormEps: f.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta: f.positiveNumber('rope_theta', 10000),
    ropeScaling: parseRopeScaling(file, json.rope_scaling),
    maxPositionEmbeddings: f.positiveInt('max_position_embeddings', defaults.maxPositionEmbeddings),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: (() => {
      const v = f.tokenIds('bos_token_id', defaults.bos);
      return Array.isArray(v) ? f.fail('bos_token_id', 'a single token id') : v;
    })(),
    eosTokenId: f.tokenIds('eos_token_id', defaults.eos),
    attentionBias: f.bool('attention_bias', modelType === 'qwen2'),
    hiddenAct: 'silu',
    slidingWindow,
    torchDtype: f.present('torch_dtype') ? f.string('torch_dtype') : null,
  };
}

/** Reads and validates a Hugging Face `config.json`. */
export function readHfLlamaConfig(path: string): HfLlamaConfig {
  const bytes = withFile(path, (file) => {
    // A config.json is a few KB; refuse anything absurd before allocating.
    const limit = 16 * 1024 * 1024;
    if (file.size > limit) {
      throw new FormatError({ file: path, field: 'file size', expected: `at most ${limit} bytes`, got: String(file.size) });
    }
    const out = new Uint8Array(file.size);
    readInto(file, out, 0);
    return out;
  });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new FormatError({ file: path, field: 'config', expected: 'valid UTF-8 JSON', got: reason, cause: err });
  }
  return parseHfLlamaConfig(json, path);
}
