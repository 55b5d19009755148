// Small synthetic checkpoints for format tests: Hugging Face folders (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json) with random weights and a tokenizer learned on the spot, in the shapes of Llama 3, Mistral,
// Qwen2 and SmolLM; and GGUF files converted from them. Real models cannot be downloaded here.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertToGguf, type GgufOutputType } from '../src/formats/convert-gguf.js';
import { writeSafetensors, type F32TensorInput } from '../src/formats/safetensors.js';
import { randomCheckpoint } from '../src/model/random-checkpoint.js';
import { syntheticTokenizer, type SyntheticKind } from '../src/tokenizer/test-vocab.js';

export interface SyntheticShape {
  /** Tokenizer style; 'mistral' uses the Llama 3 tokenizer with model_type "mistral". */
  kind: SyntheticKind | 'mistral';
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Model vocabulary (embedding rows); at least the tokenizer's size. Default: the tokenizer's size. */
  vocabSize?: number;
  merges?: number;
  tied?: boolean;
  ropeTheta?: number;
  ropeScaling?: Record<string, unknown>;
  seed?: number;
}

const HF_NAMES: Readonly<Record<string, string>> = {
  attn_norm: 'input_layernorm.weight', wq: 'self_attn.q_proj.weight', wk: 'self_attn.k_proj.weight', wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight', bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias', bv: 'self_attn.v_proj.bias',
  ffn_norm: 'post_attention_layernorm.weight', w1: 'mlp.gate_proj.weight', w2: 'mlp.down_proj.weight', w3: 'mlp.up_proj.weight',
};

function hfName(canonical: string): string {
  if (canonical === 'token_embd') return 'model.embed_tokens.weight';
  if (canonical === 'norm') return 'model.norm.weight';
  if (canonical === 'output') return 'lm_head.weight';
  const [, layer, kind] = /^layers\.(\d+)\.(\w+)$/.exec(canonical) ?? [];
  return `model.layers.${layer}.${HF_NAMES[kind]}`;
}

/** Writes a synthetic Hugging Face folder; returns its model vocabulary size. */
export function writeSyntheticHfFolder(dir: string, s: SyntheticShape): number {
  mkdirSync(dir, { recursive: true });
  const tokenizerKind: SyntheticKind = s.kind === 'mistral' ? 'llama3' : s.kind;
  const { tokenizer, config } = syntheticTokenizer(tokenizerKind, s.merges ?? 300);
  const tokens = Object.keys((tokenizer.model as { vocab: object }).vocab).length + (tokenizer.added_tokens as unknown[]).length;
  const vocabSize = s.vocabSize ?? tokens;
  if (vocabSize < tokens) throw new RangeError(`vocabSize ${vocabSize} < ${tokens} tokens`);
  const qwen = s.kind === 'qwen2';
  const random = randomCheckpoint({ dim: s.dim, hiddenDim: s.hiddenDim, nLayers: s.nLayers, nHeads: s.nHeads, nKvHeads: s.nKvHeads,
    vocabSize, ropeLayout: 'halves', tiedClassifier: s.tied ?? false, qkvBias: qwen, maxSequenceLength: 512 }, s.seed ?? 1);
  const tensors = new Map<string, F32TensorInput>();
  for (const name of ['token_embd', 'norm', ...(s.tied ? [] : ['output'])]) {
    tensors.set(hfName(name), { shape: random.tensors.shape(name) ?? [], data: random.tensors.read(name) });
  }
  for (let l = 0; l < s.nLayers; l++) {
    for (const kind of Object.keys(HF_NAMES)) {
      const name = `layers.${l}.${kind}`;
      const shape = random.tensors.shape(name);
      if (shape !== undefined) tensors.set(hfName(name), { shape, data: random.tensors.read(name) });
    }
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const bosId = (tokenizer.added_tokens as Array<{ id: number; content: string }>).find((t) => t.content === config.bos_token)?.id;
  const eosId = (tokenizer.added_tokens as Array<{ id: number; content: string }>).find((t) => t.content === config.eos_token)?.id;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: [qwen ? 'Qwen2ForCausalLM' : s.kind === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen ? 'qwen2' : s.kind === 'mistral' ? 'mistral' : 'llama',
    hidden_size: s.dim, intermediate_size: s.hiddenDim, num_hidden_layers: s.nLayers, num_attention_heads: s.nHeads,
    num_key_value_heads: s.nKvHeads, vocab_size: vocabSize, max_position_embeddings: 512, rms_norm_eps: 1e-5,
    rope_theta: s.ropeTheta ?? 10000, rope_scaling: s.ropeScaling ?? null, tie_word_embeddings: s.tied ?? false,
    bos_token_id: bosId, eos_token_id: eosId, hidden_act: 'silu', torch_dtype: 'float32',
    ...(s.kind === 'mistral' ? { sliding_window: 256 } : {}),
  }));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  return vocabSize;
}

/** A synthetic HF folder under `dir`/hf converted to `dir`/model-TYPE.gguf; returns the GGUF path. */
export function writeSyntheticGguf(dir: string, s: SyntheticShape, type: GgufOutputType): string {
  const hf = join(dir, 'hf');
  writeSyntheticHfFolder(hf, s);
  const out = join(dir, `model-${type}.gguf`);
  convertToGguf({ from: 'hf', input: hf, output: out, type, name: `synthetic ${s.kind}` });
  return out;
}
