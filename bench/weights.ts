// Random matrices for the kernel benches (kernels-bench.ts, quant-kernels-bench.ts), in the heap encoding the
// kernels read: f32, or GGML Q8_0 / Q4_0 blocks.
import { QUANT_BLOCK_BYTES, type Kernels, type Ptr, type QuantType } from '../src/kernels/index.js';

export type WeightType = 'f32' | QuantType;

/** Random weights of a type at p: f32 uniform ±0.05, or valid blocks (f16 scales 2^-10..2^-8, random quants). */
export function fillWeights(k: Kernels, type: WeightType, p: Ptr, inDim: number, outDim: number, seed: number): void {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  if (type === 'f32') {
    const a = k.heap.f32(p, inDim * outDim);
    for (let i = 0; i < a.length; i++) a[i] = next() / 2 ** 32 * 0.1 - 0.05;
    return;
  }
  const blockBytes = QUANT_BLOCK_BYTES[type];
  const bytes = new Uint8Array(k.heap.memory.buffer, p, (inDim / 32) * outDim * blockBytes);
  for (let i = 0; i < bytes.length; i++) bytes[i] = next() >>> 24;
  // f16 scales between 2^-10 and 2^-8 (exponent field 5..7).
  for (let b = 0; b < bytes.length; b += blockBytes) {
    bytes[b] = next() >>> 24;
    bytes[b + 1] = 0x14 + ((next() >>> 24) % 3) * 4;
  }
}

/** Bytes of an [outDim, inDim] matrix of a type. */
export function weightBytes(type: WeightType, inDim: number, outDim: number): number {
  return type === 'f32' ? inDim * outDim * 4 : (inDim / 32) * outDim * QUANT_BLOCK_BYTES[type];
}
