// Plain TypeScript versions of every kernel, on typed arrays: straightforward loops (double accumulation), the
// ground truth the tests compare the WebAssembly kernels against with a tolerance. matmulQuant and the training
// kernels are the exception: they follow the kernels' f32 (or f64) chains, so they agree to the bit.
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

// --- quantized matmul (GGML Q8_0 / Q4_0 weights, activations quantized per 32-block) ---

/** f16 bits → float, from the definition (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Round to nearest, ties to even (what f32x4.nearest and x86's _MM_ROUND_NEAREST do). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x ≥ 0 rounded to the nearest float16 value (ties to even), from the definition; 65520 and above give inf. */
export function roundToHalf(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x >= 65520) return Infinity;
  if (x === 0) return 0;
  let exponent = Math.floor(Math.log2(x));
  if (2 ** exponent > x) exponent--; // log2 may round up just below a power of two
  else if (2 ** (exponent + 1) <= x) exponent++;
  exponent = Math.max(exponent, -14);
  const spacing = 2 ** (exponent - 10);
  return roundHalfEven(x / spacing) * spacing;
}

/**
 * x [rows, inDim] quantized per 32-block as the kernels do (llama.cpp's quantize_row_q8_0, x86 path), in float32
 * steps: d = amax/127 rounded to float16, q = nearest-even(x · (127/amax)), all 0 when amax is 0.
 */
export function quantizeActivations(x: Float32Array, rows: number, inDim: number): { q: Int8Array; d: Float32Array } {
  const blocks = (rows * inDim) / 32;
  const q = new Int8Array(rows * inDim);
  const d = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]));
    d[b] = roundToHalf(Math.fround(amax / 127));
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    for (let j = 0; j < 32; j++) q[32 * b + j] = roundHalfEven(Math.fround(x[32 * b + j] * id));
  }
  return { q, d };
}

/** Weight j (0..31) of the block at byte `at`, as an integer, and the block's bytes. */
function blockWeight(type: 'q8_0' | 'q4_0', w: Uint8Array, at: number, j: number): number {
  if (type === 'q8_0') return (w[at + 2 + j] << 24) >> 24;
  const byte = w[at + 2 + (j & 15)];
  return (j < 16 ? byte & 15 : byte >> 4) - 8;
}

const BLOCK_BYTES = { q8_0: 34, q4_0: 18 } as const;

/** A Q8_0 / Q4_0 matrix [outDim, inDim] widened to f32 (value = d · q). */
export function dequantizeWeights(type: 'q8_0' | 'q4_0', w: Uint8Array, outDim: number, inDim: number): Float32Array {
  const out = new Float32Array(outDim * inDim);
  for (let b = 0; b < (outDim * inDim) / 32; b++) {
    const at = b * BLOCK_BYTES[type];
    const d = halfToFloat(w[at] | (w[at + 1] << 8));
    for (let j = 0; j < 32; j++) out[32 * b + j] = d * blockWeight(type, w, at, j);
  }
  return out;
}

/**
 * out[t][o] = (bias[o] +) Σ_b d_w · d_x · Σ_j q_w·q_x over the 32-blocks b of row t and weight row o, with x
 * quantized by quantizeActivations, in the kernels' order and rounding: one f32 chain per element,
 * acc = f32(acc + f32(isum · f32(d_w · d_x))) per block (assembly/quant.ts; llama.cpp rounds once, with an FMA).
 */
export function matmulQuant(type: 'q8_0' | 'q4_0', out: Float32Array, x: Float32Array, w: Uint8Array, rows: number,
  inDim: number, outDim: number, bias?: Float32Array): void {
  const { q, d } = quantizeActivations(x, rows, inDim);
  const nb = inDim / 32;
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < outDim; o++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const at = (o * nb + b) * BLOCK_BYTES[type];
        let isum = 0;
        for (let j = 0; j < 32; j++) isum += blockWeight(type, w, at, j) * q[t * inDim + 32 * b + j];
        acc = Math.fround(acc + Math.fround(isum * Math.fround(halfToFloat(w[at] | (w[at + 1] << 8)) * d[t * nb + b])));
      }
      out[t * outDim + o] = bias ? Math.fround(acc + bias[o]) : acc;
    }
  }
}

// Training kernels (types.ts): one f32 chain per output element, acc = f32(acc + f32(a·b)) from acc = 0.

export function gradWeight(out: Float32Array, dY: Float32Array, x: Float32Array, rows: number, inDim: number,
  outDim: number): void {
  for (let o = 0; o < outDim; o++) {
    for (let i = 0; i < inDim; i++) {
      let acc = 0;
      for (let r = 0; r < rows; r++) acc = Math.fround(acc + Math.fround(dY[r * outDim + o] * x[r * inDim + i]));
      out[o * inDim + i] = acc;
    }
  }
}

export function gradInput(out: Float32Array, dY: Float32Array, w: Float32Array, rows: number, inDim: number,
  outDim: number, add: Float32Array | null = null, first = 0, count = inDim - first): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < count; c++) {
      let acc = 0;
      for (let o = 0; o < outDim; o++) acc = Math.fround(acc + Math.fround(dY[r * outDim + o] * w[o * inDim + first + c]));
      out[r * count + c] = add ? Math.fround(add[r * count + c] + acc) : acc;
    }
  }
}

/** dOut · silu'(x) in double: σ(x)(1 + x(1 − σ(x))). */
export function siluGrad(out: Float32Array, dOut: Float32Array, x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-x[i]));
    out[i] = dOut[i] * s * (1 + x[i] * (1 - s));
  }
}

export function columnSums(out: Float32Array, x: Float32Array, rows: number, cols: number): void {
  for (let c = 0; c < cols; c++) {
    let acc = 0;
    for (let r = 0; r < rows; r++) acc = Math.fround(acc + x[r * cols + c]);
    out[c] = acc;
  }
}

/** The f64 loop the kernel follows (types.ts); returns (ce, best) per row. */
export function crossEntropyGrad(probs: Float32Array, logits: Float32Array, teacher: Float32Array | null,
  targets: Int32Array, soft: number, scales: Float64Array, rows: number, n: number): Float64Array {
  const results = new Float64Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    const p = r * n;
    const target = targets[r];
    if (target < 0) {
      probs.fill(0, p, p + n);
      results[2 * r + 1] = -1;
      continue;
    }
    let best = 0;
    for (let v = 1; v < n; v++) if (logits[p + v] > logits[p + best]) best = v;
    const lse = logits[p + best] - Math.log(probs[p + best]);
    let ce = (1 - soft) * (lse - logits[p + target]);
    if (soft > 0 && teacher) {
      // Σ_v in the kernel's order: lanes v ≡ 0, 1, 2, 3 (mod 4) over v < n4, reduced ((0 + 1) + (2 + 3)), then the tail.
      const lanes = [0, 0, 0, 0];
      const n4 = n & ~3;
      for (let v = 0; v < n; v++) {
        const weight = soft * teacher[p + v];
        const term = weight * (lse - logits[p + v]);
        if (v < n4) lanes[v & 3] += term;
        else {
          if (v === n4) ce += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
          ce += term;
        }
        probs[p + v] = (probs[p + v] - weight) * scales[r];
      }
      if (n4 === n) ce += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    } else {
      for (let v = 0; v < n; v++) probs[p + v] *= scales[r];
    }
    probs[p + target] -= (1 - soft) * scales[r];
    results[2 * r] = ce;
    results[2 * r + 1] = best;
  }
  return results;
}

/** One AdamW update as optim.ts's loop computes it (f64, m and v rounded to f32 when stored). */
export function adamW(data: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, beta1: number,
  beta2: number, correction1: number, correction2: number, epsilon: number, lr: number, decay: number): void {
  for (let j = 0; j < data.length; j++) {
    const g = grad[j];
    m[j] = beta1 * m[j] + (1 - beta1) * g;
    v[j] = beta2 * v[j] + (1 - beta2) * g * g;
    const update = (m[j] / correction1) / (Math.sqrt(v[j] / correction2) + epsilon);
    data[j] = data[j] * decay - lr * update;
  }
}
