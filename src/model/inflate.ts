// Function-preserving inflation of a small Llama into a larger one (issue 6: stories260K-xl). The residual stream is
// zero-padded, RMSNorm keeps its value through scaled weights and epsilon, each original head sits in the first dims
// of a larger head whose RoPE frequencies are kept by raising theta to the head-size ratio's power (the attention
// scale is compensated in wq), and every extra head, FFN unit and layer has random weights whose outputs are cut by
// zero columns of wo / w2. The result computes the small model's function at the large model's cost.

import { createRng } from '../sampling/random.js';
import type { Checkpoint } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import { tensorShapes } from './random-checkpoint.js';

export interface InflatedShape {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  headDim: number;
}

/** The inflated model's tensors (canonical names) and config. */
export interface InflatedModel {
  config: LlamaConfig;
  tensors: Map<string, Float32Array>;
}

export function inflateCheckpoint(source: Checkpoint, shape: InflatedShape, seed = 1): InflatedModel {
  const small = source.config;
  const { dim, hiddenDim, nLayers, headDim } = shape;
  const nHeads = dim / headDim;
  const nKvHeads = small.nKvHeads;
  const group = small.nHeads / small.nKvHeads;
  const bigGroup = nHeads / nKvHeads;
  const checks: [boolean, string][] = [
    [Number.isInteger(nHeads), `dim ${dim} must be a multiple of headDim ${headDim}`],
    [dim >= small.dim && hiddenDim >= small.hiddenDim && nLayers >= small.nLayers && headDim >= small.headDim,
      'every inflated size must be at least the original'],
    [Number.isInteger(bigGroup) && bigGroup >= group, `heads per KV head must grow: ${group} → ${nHeads}/${nKvHeads}`],
    [small.ropeLayout === 'pairs', 'inflation expects the adjacent-pairs RoPE layout (llama2.c / GGUF)'],
    [!small.qkvBias, 'inflation of models with qkv bias is not supported'],
  ];
  for (const [ok, message] of checks) if (!ok) throw new RangeError(`inflateCheckpoint: ${message}`);

  const ratio = headDim / small.headDim;
  const config: LlamaConfig = {
    ...small,
    dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim,
    // RMSNorm over dim entries of which small.dim are non-zero: scale eps and weights so the value is unchanged.
    normEps: (small.normEps * small.dim) / dim,
    // θ'^(−2i/d') = θ^(−2i/d) for the original pairs i < d/2.
    ropeTheta: Math.pow(small.ropeTheta, ratio),
  };
  const normScale = Math.sqrt(small.dim / dim);
  // Scores use 1/sqrt(headDim) instead of 1/sqrt(small.headDim).
  const queryScale = Math.sqrt(headDim / small.headDim);
  const rng = createRng(seed);
  const random = (data: Float32Array, fanIn: number): Float32Array => {
    const bound = 1 / Math.sqrt(fanIn);
    for (let i = 0; i < data.length; i++) data[i] = (rng.nextUniform() * 2 - 1) * bound;
    return data;
  };
  const shapes = tensorShapes(config);
  const zeros = (name: string): Float32Array => new Float32Array(shapes.get(name)!.reduce((a, b) => a * b, 1));
  const read = (name: string): Float32Array => source.tensors.read(name);
  /** Copies an [rows, cols] source block into the top-left of a [*, width] target at the given row/col offsets. */
  const place = (target: Float32Array, width: number, block: Float32Array, rows: number, cols: number,
    rowAt: (r: number) => number, colAt: (c: number) => number, scale = 1): void => {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) target[rowAt(r) * width + colAt(c)] = block[r * cols + c] * scale;
    }
  };
  const identity = (i: number): number => i;
  // Original head h (served by KV head ⌊h/group⌋) becomes big head ⌊h/group⌋·bigGroup + h mod group.
  const headOf = (h: number): number => Math.floor(h / group) * bigGroup + (h % group);
  const qRow = (r: number): number => headOf(Math.floor(r / small.headDim)) * headDim + (r % small.headDim);
  const kvRow = (r: number): number => Math.floor(r / small.headDim) * headDim + (r % small.headDim);

  const tensors = new Map<string, Float32Array>();
  const embedding = zeros('token_embd');
  place(embedding, dim, read('token_embd'), small.vocabSize, small.dim, identity, identity);
  tensors.set('token_embd', embedding);
  const norm = (name: string): Float32Array => {
    const out = zeros(name);
    read(name).forEach((w, i) => (out[i] = w * normScale));
    return out;
  };

  for (let l = 0; l < nLayers; l++) {
    const p = `layers.${l}.`;
    const original = l < small.nLayers;
    const wq = random(zeros(p + 'wq'), dim);
    const wk = random(zeros(p + 'wk'), dim);
    const wv = random(zeros(p + 'wv'), dim);
    const wo = zeros(p + 'wo');
    const w1 = random(zeros(p + 'w1'), dim);
    const w3 = random(zeros(p + 'w3'), dim);
    const w2 = zeros(p + 'w2');
    if (original) {
      // Original heads: their rows see only the real residual dims; their extra head dims are zero in q (so the
      // random extra dims of k add nothing to their scores) and cut by zero columns of wo.
      for (let h = 0; h < small.nHeads; h++) {
        for (let d = 0; d < headDim; d++) wq.fill(0, (headOf(h) * headDim + d) * dim, (headOf(h) * headDim + d + 1) * dim);
      }
      for (let r = 0; r < small.nKvHeads * small.headDim; r++) {
        wk.fill(0, kvRow(r) * dim, (kvRow(r) + 1) * dim);
        wv.fill(0, kvRow(r) * dim, (kvRow(r) + 1) * dim);
      }
      place(wq, dim, read(p + 'wq'), small.nHeads * small.headDim, small.dim, qRow, identity, queryScale);
      place(wk, dim, read(p + 'wk'), small.nKvHeads * small.headDim, small.dim, kvRow, identity);
      place(wv, dim, read(p + 'wv'), small.nKvHeads * small.headDim, small.dim, kvRow, identity);
      place(wo, nHeads * headDim, read(p + 'wo'), small.dim, small.nHeads * small.headDim, identity, qRow);
      for (let r = 0; r < small.hiddenDim; r++) {
        w1.fill(0, r * dim, (r + 1) * dim);
        w3.fill(0, r * dim, (r + 1) * dim);
      }
      place(w1, dim, read(p + 'w1'), small.hiddenDim, small.dim, identity, identity);
      place(w3, dim, read(p + 'w3'), small.hiddenDim, small.dim, identity, identity);
      place(w2, hiddenDim, read(p + 'w2'), small.dim, small.hiddenDim, identity, identity);
      tensors.set(p + 'attn_norm', norm(p + 'attn_norm'));
      tensors.set(p + 'ffn_norm', norm(p + 'ffn_norm'));
    } else {
      // Extra layers compute at full cost and add nothing: wo and w2 are zero.
      tensors.set(p + 'attn_norm', zeros(p + 'attn_norm').fill(normScale, 0, small.dim));
      tensors.set(p + 'ffn_norm', zeros(p + 'ffn_norm').fill(normScale, 0, small.dim));
    }
    tensors.set(p + 'wq', wq);
    tensors.set(p + 'wk', wk);
    tensors.set(p + 'wv', wv);
    tensors.set(p + 'wo', wo);
    tensors.set(p + 'w1', w1);
    tensors.set(p + 'w2', w2);
    tensors.set(p + 'w3', w3);
  }
  const finalNorm = zeros('norm');
  source.tensors.read('norm').forEach((w, i) => (finalNorm[i] = w * normScale));
  tensors.set('norm', finalNorm);
  if (!small.tiedClassifier) {
    const output = zeros('output');
    place(output, dim, read('output'), small.vocabSize, small.dim, identity, identity);
    tensors.set('output', output);
  }
  return { config, tensors };
}

/** A Checkpoint view of an inflated model (for createModel). */
export function inflatedCheckpoint(model: InflatedModel, origin: string): Checkpoint {
  return {
    path: origin,
    format: 'llama2c',
    config: model.config,
    tensors: {
      origin,
      shape: (name) => (model.tensors.has(name) ? tensorShapes(model.config).get(name) : undefined),
      read: (name) => {
        const data = model.tensors.get(name);
        if (!data) throw new RangeError(`${origin}: no tensor "${name}"`);
        return data;
      },
    },
  };
}
