// A deliberately plain Llama forward in float64, written from the equations (not from our kernels): the ground truth
// that tests compare the WebAssembly engine against, for both RoPE layouts.

import type { Checkpoint } from '../src/model/checkpoint.js';
import { ropeInverseFrequencies } from '../src/model/rope.js';

function matvec(w: Float32Array, x: Float64Array, outDim: number, inDim: number): Float64Array {
  const y = new Float64Array(outDim);
  for (let o = 0; o < outDim; o++) {
    let sum = 0;
    for (let i = 0; i < inDim; i++) sum += w[o * inDim + i] * x[i];
    y[o] = sum;
  }
  return y;
}

function rmsnorm(x: Float64Array, weight: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * weight[i]);
}

function rotate(vec: Float64Array, heads: number, headDim: number, position: number, inv: Float32Array,
  layout: 'pairs' | 'halves'): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      const angle = position * inv[i];
      const [a, b] = layout === 'pairs' ? [h * headDim + 2 * i, h * headDim + 2 * i + 1]
        : [h * headDim + i, h * headDim + i + headDim / 2];
      const x0 = vec[a];
      const x1 = vec[b];
      vec[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      vec[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

/** Logits (float64) after each token of `tokens`, computed causally from position 0. */
export function referenceLogits(checkpoint: Checkpoint, tokens: readonly number[]): Float64Array[] {
  const c = checkpoint.config;
  const t = (name: string): Float32Array => checkpoint.tensors.read(name);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const group = c.nHeads / c.nKvHeads;
  const inv = ropeInverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
  const embedding = t('token_embd');
  const classifier = c.tiedClassifier ? embedding : t('output');
  const layers = Array.from({ length: c.nLayers }, (_, l) => {
    const p = `layers.${l}.`;
    return {
      attnNorm: t(p + 'attn_norm'), wq: t(p + 'wq'), wk: t(p + 'wk'), wv: t(p + 'wv'), wo: t(p + 'wo'),
      bq: c.qkvBias ? t(p + 'bq') : null, bk: c.qkvBias ? t(p + 'bk') : null, bv: c.qkvBias ? t(p + 'bv') : null,
      ffnNorm: t(p + 'ffn_norm'), w1: t(p + 'w1'), w2: t(p + 'w2'), w3: t(p + 'w3'),
    };
  });
  const norm = t('norm');
  const keys: Float64Array[][] = layers.map(() => []);
  const values: Float64Array[][] = layers.map(() => []);
  const out: Float64Array[] = [];
  tokens.forEach((token, position) => {
    let x = Float64Array.from(embedding.subarray(token * c.dim, (token + 1) * c.dim));
    layers.forEach((w, l) => {
      const xb = rmsnorm(x, w.attnNorm, c.normEps);
      const q = matvec(w.wq, xb, qDim, c.dim);
      const k = matvec(w.wk, xb, kvDim, c.dim);
      const v = matvec(w.wv, xb, kvDim, c.dim);
      if (w.bq && w.bk && w.bv) {
        q.forEach((_, i) => (q[i] += w.bq![i]));
        k.forEach((_, i) => (k[i] += w.bk![i]));
        v.forEach((_, i) => (v[i] += w.bv![i]));
      }
      rotate(q, c.nHeads, c.headDim, position, inv, c.ropeLayout);
      rotate(k, c.nKvHeads, c.headDim, position, inv, c.ropeLayout);
      keys[l].push(k);
      values[l].push(v);
      const att = new Float64Array(qDim);
      for (let h = 0; h < c.nHeads; h++) {
        const kvh = Math.floor(h / group);
        const scores = keys[l].map((key) => {
          let s = 0;
          for (let i = 0; i < c.headDim; i++) s += q[h * c.headDim + i] * key[kvh * c.headDim + i];
          return s / Math.sqrt(c.headDim);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, j) => {
          for (let i = 0; i < c.headDim; i++) att[h * c.headDim + i] += (e / total) * values[l][j][kvh * c.headDim + i];
        });
      }
      const o = matvec(w.wo, att, c.dim, qDim);
      x = x.map((value, i) => value + o[i]);
      const xf = rmsnorm(x, w.ffnNorm, c.normEps);
      const gate = matvec(w.w1, xf, c.hiddenDim, c.dim);
      const up = matvec(w.w3, xf, c.hiddenDim, c.dim);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
      const down = matvec(w.w2, act, c.dim, c.hiddenDim);
      x = x.map((value, i) => value + down[i]);
    });
    out.push(matvec(classifier, rmsnorm(x, norm, c.normEps), c.vocabSize, c.dim));
  });
  return out;
}
