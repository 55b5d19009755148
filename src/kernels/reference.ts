// Plain TypeScript versions of every kernel, on typed arrays: straightforward loops (double accumulation), the
// ground truth the tests compare the WebAssembly kernels against with a tolerance.
import type { RopeLayout } from './types.js';

export function matmul(out: Float32Array, x: Float32Array, w: Float32Array, rows: number, inDim: number, outDim: number): void {
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i] * w[o * inDim + i];
      out[t * outDim + o] = s;
    }
  }
}

export function matmulBias(out: Float32Array, x: Float32Array, w: Float32Array, bias: Float32Array, rows: number,
  inDim: number, outDim: number): void {
  matmul(out, x, w, rows, inDim, outDim);
  for (let t = 0; t < rows; t++) for (let o = 0; o < outDim; o++) out[t * outDim + o] += bias[o];
}

export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void {
  for (let t = 0; t < rows; t++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[t * dim + i] * x[t * dim + i];
    const scale = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = x[t * dim + i] * scale * weight[i];
  }
}

export function rope(x: Float32Array, rows: number, nHeads: number, headDim: number, positions: Int32Array,
  table: Float32Array, layout: RopeLayout): void {
  const half = headDim / 2;
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = table[(positions[t] * half + i) * 2];
        const s = table[(positions[t] * half + i) * 2 + 1];
        const a = layout === 'pairs' ? base + 2 * i : base + i;
        const b = layout === 'pairs' ? a + 1 : a + half;
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
      }
    }
  }
}

export function softmax(x: Float32Array, rows: number, n: number): void {
  for (let t = 0; t < rows; t++) {
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, x[t * n + i]);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      x[t * n + i] = Math.exp(x[t * n + i] - max);
      sum += x[t * n + i];
    }
    for (let i = 0; i < n; i++) x[t * n + i] /= sum;
  }
}

export function silu(out: Float32Array, x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = x[i] / (1 + Math.exp(-x[i]));
}

export function siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
}

export function add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** One attention query: its layer's K / V blocks ([slots, nKvHeads * headDim]) and its ordered key list. */
export interface ReferenceQuery {
  k: Float32Array;
  v: Float32Array;
  prefixLength: number;
  extraSlots: Int32Array;
}

export function attention(out: Float32Array, q: Float32Array, queries: readonly ReferenceQuery[], nHeads: number,
  nKvHeads: number, headDim: number, scale: number): void {
  const group = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  queries.forEach((query, t) => {
    const slots = [...Array.from({ length: query.prefixLength }, (_, j) => j), ...query.extraSlots];
    for (let h = 0; h < nHeads; h++) {
      const qOff = (t * nHeads + h) * headDim;
      const kvOff = Math.floor(h / group) * headDim;
      const scores = slots.map((slot) => {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qOff + d] * query.k[slot * kvDim + kvOff + d];
        return s * scale;
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        slots.forEach((slot, j) => {
          acc += (e[j] / sum) * query.v[slot * kvDim + kvOff + d];
        });
        out[qOff + d] = acc;
      }
    }
  });
}
