// The kernels exported to the host (src/kernels/dispatch.ts declares the same signatures). Every kernel takes
// (..., threadIndex, threadCount) and computes only that thread's share, so one function serves every thread.
// Pointers are byte offsets into the shared memory; f32 data is expected 16-byte aligned (loads tolerate less).
import { matmulShare } from './matmul';
import { attentionShare } from './attention';
import { matmulQ8_0Share, matmulQ8_0WideShare, matmulQ4_0Share } from './quant';
import { GRAD_INPUT_PACK, gradWeightShare, gradInputShare, siluGradShare, columnSumsShare, crossEntropyGradShare, adamWShare } from './train';
export { sumOfSquares, scale } from './train';
import { rmsnormShare, softmaxShare, ropeShare, siluMulShare, siluShare, addShare } from './elementwise';
import { streamReadShare, simdPeakShare } from './probes';

/** End of the module's static data: the host keeps its control block and heap above it. */
export function staticEnd(): usize {
  return __heap_base;
}

export function matmul(out: usize, x: usize, w: usize, rows: i32, inDim: i32, outDim: i32, tid: i32, nt: i32): void {
  matmulShare(out, x, w, 0, rows, inDim, outDim, tid, nt);
}

export function matmulBias(out: usize, x: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  matmulShare(out, x, w, bias, rows, inDim, outDim, tid, nt);
}

export { quantizeActivations, initHalfTable, halfTable, quantSink } from './quant';

/** Quantized matmuls: xq / xd are the activations quantized by quantizeActivations; bias 0 means none. */
export function matmulQ8_0(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  matmulQ8_0Share(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

/** matmulQ8_0 with the int16 dot product in either build (quant.ts, type markers); activations of kind 2. */
export function matmulQ8_0Wide(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32,
  outDim: i32, tid: i32, nt: i32): void {
  matmulQ8_0WideShare(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

export function matmulQ4_0(out: usize, xq: usize, xd: usize, w: usize, bias: usize, rows: i32, inDim: i32, outDim: i32,
  tid: i32, nt: i32): void {
  matmulQ4_0Share(out, xq, xd, w, bias, rows, inDim, outDim, tid, nt);
}

export function rmsnorm(out: usize, x: usize, weight: usize, rows: i32, dim: i32, eps: f32, tid: i32, nt: i32): void {
  rmsnormShare(out, x, weight, rows, dim, eps, tid, nt);
}

export function rope(x: usize, rows: i32, nHeads: i32, headDim: i32, positions: usize, table: usize, layout: i32,
  tid: i32, nt: i32): void {
  ropeShare(x, rows, nHeads, headDim, positions, table, layout, tid, nt);
}

export function softmax(x: usize, rows: i32, n: i32, tid: i32, nt: i32): void {
  softmaxShare(x, rows, n, tid, nt);
}

export function siluMul(out: usize, gate: usize, up: usize, n: i32, tid: i32, nt: i32): void {
  siluMulShare(out, gate, up, n, tid, nt);
}

export function silu(out: usize, x: usize, n: i32, tid: i32, nt: i32): void {
  siluShare(out, x, n, tid, nt);
}

export function add(out: usize, a: usize, b: usize, n: i32, tid: i32, nt: i32): void {
  addShare(out, a, b, n, tid, nt);
}

export function attention(out: usize, q: usize, queries: usize, rows: i32, nHeads: i32, nKvHeads: i32, headDim: i32,
  scale: f32, scratch: usize, scratchStride: i32, tid: i32, nt: i32): void {
  attentionShare(out, q, queries, rows, nHeads, nKvHeads, headDim, scale, scratch, scratchStride, tid, nt);
}

// Training (src/train/graph.ts's backward).

export function gradWeight(out: usize, dY: usize, x: usize, rows: i32, inDim: i32, outDim: i32, tid: i32, nt: i32): void {
  gradWeightShare(out, dY, x, rows, inDim, outDim, tid, nt);
}

/** Bytes of scratch per thread that gradInput packs its strips into. */
export function gradInputScratchBytes(): usize {
  return GRAD_INPUT_PACK;
}

export function gradInput(out: usize, dY: usize, w: usize, add: usize, rows: i32, inDim: i32, outDim: i32, first: i32,
  count: i32, scratch: usize, tid: i32, nt: i32): void {
  gradInputShare(out, dY, w, add, rows, inDim, outDim, first, count, scratch, tid, nt);
}

export function siluGrad(out: usize, dOut: usize, x: usize, n: i32, tid: i32, nt: i32): void {
  siluGradShare(out, dOut, x, n, tid, nt);
}

export function columnSums(out: usize, x: usize, rows: i32, cols: i32, tid: i32, nt: i32): void {
  columnSumsShare(out, x, rows, cols, tid, nt);
}

export function crossEntropyGrad(out: usize, logits: usize, teacher: usize, targets: usize, params: usize,
  results: usize, rows: i32, n: i32, tid: i32, nt: i32): void {
  crossEntropyGradShare(out, logits, teacher, targets, params, results, rows, n, tid, nt);
}

export function adamW(data: usize, grad: usize, m: usize, v: usize, n: i32, params: usize, tid: i32, nt: i32): void {
  adamWShare(data, grad, m, v, n, params, tid, nt);
}

// Machine ceilings for the benches (probes.ts).

export function streamRead(out: usize, p: usize, n: i32, tid: i32, nt: i32): void {
  streamReadShare(out, p, n, tid, nt);
}

export function simdPeak(out: usize, seed: usize, iterations: i32, tid: i32, nt: i32): void {
  simdPeakShare(out, seed, iterations, tid, nt);
}
