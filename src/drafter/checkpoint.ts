// Drafter checkpoints in Apple's format (spec §1.5): a folder with config.json and a single model.safetensors.
// Reads F32/F16/BF16 and the alternative tensor spellings the TensorRT-LLM converter accepts; writes F32 with the
// canonical names so that Apple's loaders and TensorRT-LLM's converter take our drafters.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError, describeValue } from '../formats/errors.js';
import { readSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { createRng } from '../sampling/random.js';
import type { LlamaConfig } from '../model/config.js';
import { DEFAULT_TOP_K, LOG_0, drafterConfigJson, drafterTensorShapes, type DrafterConfig } from './config.js';

export interface DrafterWeights {
  config: DrafterConfig;
  /** Canonical name → f32 values (row-major, PyTorch [out, in] layout). */
  tensors: Map<string, Float32Array>;
  /** config.json keys we do not interpret, written back unchanged. */
  extraConfig: Record<string, unknown>;
}

const CONFIG_KEYS = new Set(['vocab_size', 'hidden_size', 'exit_dim', 'num_draft_layers', 'num_lookback_tokens', 'rnn',
  'emb_norm', 'rms_norm_eps', 'architectures', 'model_type', 'torch_dtype']);

function parseConfig(path: string): { config: DrafterConfig; extra: Record<string, unknown> } {
  if (!existsSync(path)) {
    throw new FormatError({ file: path, field: 'config.json', expected: 'a drafter config', got: 'no such file' });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new FormatError({ file: path, field: 'JSON', expected: 'valid JSON', got: (error as Error).message });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FormatError({ file: path, field: 'root', expected: 'a JSON object', got: describeValue(raw) });
  }
  const json = raw as Record<string, unknown>;
  const positive = (key: string): number => {
    const value = json[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      throw new FormatError({ file: path, field: `field "${key}"`, expected: 'a positive integer', got: describeValue(value) });
    }
    return value;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const value = json[key];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      throw new FormatError({ file: path, field: `field "${key}"`, expected: 'true or false', got: describeValue(value) });
    }
    return value;
  };
  const modelType = json['model_type'];
  if (modelType !== undefined && modelType !== 'recurrent_drafting_drafter') {
    throw new FormatError({ file: path, field: 'field "model_type"', expected: '"recurrent_drafting_drafter"',
      got: describeValue(modelType) });
  }
  const lookback = json['num_lookback_tokens'];
  const eps = json['rms_norm_eps'];
  const config: DrafterConfig = {
    vocabSize: positive('vocab_size'),
    hiddenSize: positive('hidden_size'),
    exitDim: positive('exit_dim'),
    numDraftLayers: json['num_draft_layers'] === 0 ? 0 : positive('num_draft_layers'),
    rnn: bool('rnn', false),
    numLookbackTokens: typeof lookback === 'number' ? lookback : -1,
    embNorm: bool('emb_norm', false),
    rmsNormEps: typeof eps === 'number' ? eps : 1e-5,
    topK: DEFAULT_TOP_K,
    log0: LOG_0,
  };
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) if (!CONFIG_KEYS.has(key)) extra[key] = value;
  return { config, extra };
}

/** Canonical name for a source tensor name, or null for tensors to ignore (`emb_norm.weight`). */
export function canonicalDrafterName(name: string, numDraftLayers: number): string | null {
  if (name === 'emb_norm.weight' || name === 'drafter.emb_norm.weight') return null;
  let n = name;
  if (n.startsWith('drafter.')) {
    // TensorRT-LLM's converted names.
    n = n.slice('drafter.'.length);
    if (n === 'lm_head.weight') return `lm_head.${numDraftLayers}.weight`;
    n = n.replace(/^layers\./, 'lm_head.');
  }
  n = n.replace(/^input_projs\./, 'input_proj.').replace(/^lm_heads\./, 'lm_head.').replace(/^0\.(\d+)\./, 'lm_head.$1.');
  return n;
}

/** Reads a drafter folder; with `base`, checks hidden size and vocabulary against the LLM. */
export function readDrafter(dir: string, base?: LlamaConfig): DrafterWeights {
  const { config, extra } = parseConfig(join(dir, 'config.json'));
  if (base) checkDrafterAgainstModel(config, base, join(dir, 'config.json'));
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) {
    throw new FormatError({ file, field: 'model.safetensors', expected: 'the drafter weights (a single safetensors file)',
      got: 'no such file' });
  }
  const safetensors = readSafetensors(file);
  const expected = drafterTensorShapes(config);
  const tensors = new Map<string, Float32Array>();
  for (const name of safetensors.names) {
    const canonical = canonicalDrafterName(name, config.numDraftLayers);
    if (canonical === null) continue;
    const shape = expected.get(canonical);
    if (!shape) {
      throw new FormatError({ file, field: `tensor "${name}"`, expected: `one of ${[...expected.keys()].join(', ')}`,
        got: 'an unknown tensor for this config' });
    }
    const info = safetensors.tensors.get(name)!;
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError({ file, field: `tensor "${name}"`, expected: `shape [${shape.join(', ')}]`,
        got: `[${info.shape.join(', ')}]` });
    }
    if (tensors.has(canonical)) {
      throw new FormatError({ file, field: `tensor "${name}"`, expected: 'one spelling per tensor',
        got: `a second copy of "${canonical}"` });
    }
    tensors.set(canonical, safetensors.getF32(name));
  }
  for (const [name, shape] of expected) {
    if (!tensors.has(name)) {
      throw new FormatError({ file, field: `tensor "${name}"`, expected: `shape [${shape.join(', ')}]`, got: 'missing' });
    }
  }
  return { config, tensors, extraConfig: extra };
}

export function checkDrafterAgainstModel(config: DrafterConfig, base: LlamaConfig, file: string): void {
  if (config.hiddenSize !== base.dim) {
    throw new FormatError({ file, field: 'field "hidden_size"', expected: `${base.dim} (the model's hidden size)`,
      got: String(config.hiddenSize) });
  }
  if (config.vocabSize !== base.vocabSize) {
    throw new FormatError({ file, field: 'field "vocab_size"', expected: `${base.vocabSize} (the model's vocabulary)`,
      got: String(config.vocabSize) });
  }
}

/** Writes config.json and model.safetensors (F32, canonical names), each atomically. */
export function writeDrafter(dir: string, weights: DrafterWeights): void {
  mkdirSync(dir, { recursive: true });
  const shapes = drafterTensorShapes(weights.config);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of shapes) {
    const data = weights.tensors.get(name);
    if (!data || data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new RangeError(`writeDrafter: tensor "${name}" is missing or not of shape [${shape.join(', ')}]`);
    }
    tensors.set(name, { shape, data });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const configPath = join(dir, 'config.json');
  const temporary = `${configPath}.tmp-${process.pid}`;
  writeFileSync(temporary, JSON.stringify(drafterConfigJson(weights.config, weights.extraConfig), null, 2) + '\n');
  renameSync(temporary, configPath);
}

export interface RandomDrafterOptions {
  exitDim?: number;
  numDraftLayers?: number;
  rnn?: boolean;
  seed?: number;
}

/** A drafter with PyTorch's nn.Linear default initialisation, U(±1/sqrt(fan_in)) (spec §1.6). */
export function randomDrafter(base: LlamaConfig, options: RandomDrafterOptions = {}): DrafterWeights {
  const config: DrafterConfig = {
    vocabSize: base.vocabSize,
    hiddenSize: base.dim,
    exitDim: options.exitDim ?? 2 * base.dim,
    numDraftLayers: options.numDraftLayers ?? 2,
    rnn: options.rnn ?? true,
    numLookbackTokens: -1,
    embNorm: false,
    rmsNormEps: 1e-5,
    topK: DEFAULT_TOP_K,
    log0: LOG_0,
  };
  if (!Number.isInteger(config.exitDim) || config.exitDim <= 0) {
    throw new RangeError(`exitDim: expected a positive integer, got ${config.exitDim}`);
  }
  if (!Number.isInteger(config.numDraftLayers) || config.numDraftLayers < 0) {
    throw new RangeError(`numDraftLayers: expected a non-negative integer, got ${config.numDraftLayers}`);
  }
  const rng = createRng(options.seed ?? 0);
  const tensors = new Map<string, Float32Array>();
  for (const [name, shape] of drafterTensorShapes(config)) {
    // A bias has the fan-in of its weight.
    const weightShape = name.endsWith('.bias') ? drafterTensorShapes(config).get(name.replace(/bias$/, 'weight'))! : shape;
    const bound = 1 / Math.sqrt(weightShape[weightShape.length - 1]);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (rng.nextUniform() * 2 - 1) * bound;
    tensors.set(name, data);
  }
  return { config, tensors, extraConfig: {} };
}
