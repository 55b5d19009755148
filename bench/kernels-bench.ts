// Matmul throughput of the kernels: GFLOP/s for several batch sizes and GB/s of weights streamed for one row, at 1
// and 2 threads. Weights rotate through enough copies to exceed the last-level cache, so every call reads them from
// memory as a forward pass over a real model does. Run: node dist/bench/kernels-bench.js [--quick]
import { availableParallelism } from 'node:os';
import { createKernels, type Kernels, type Ptr } from '../src/kernels/index.js';

const quick = process.argv.includes('--quick');
const ROWS = [1, 4, 8, 16, 32];
const SHAPES: ReadonlyArray<readonly [number, number]> = [[768, 2048], [768, 32000]];
/** Bytes of weights cycled through per shape: above any L3 this machine type has. */
const COLD_BYTES = 96 * 1024 * 1024;
const BUDGET_MS = quick ? 60 : 400;

function fillRandom(a: Float32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

interface Row {
  shape: string;
  threads: number;
  rows: number;
  ms: number;
  gflops: number;
  gbps: number;
}

function benchShape(k: Kernels, inDim: number, outDim: number, results: Row[]): void {
  const wBytes = inDim * outDim * 4;
  const copies = Math.max(1, Math.ceil(COLD_BYTES / wBytes));
  const weights: Ptr[] = [];
  for (let c = 0; c < copies; c++) {
    const w = k.heap.alloc(wBytes);
    fillRandom(k.heap.f32(w, inDim * outDim), c + 1);
    weights.push(w);
  }
  const maxRows = ROWS[ROWS.length - 1];
  const x = k.heap.alloc(maxRows * inDim * 4);
  fillRandom(k.heap.f32(x, maxRows * inDim), 99);
  const out = k.heap.alloc(maxRows * outDim * 4);
  for (const rows of ROWS) {
    let c = 0;
    for (let i = 0; i < Math.min(copies, 4); i++) k.matmul(out, x, weights[c++ % copies], rows, inDim, outDim);
    const times: number[] = [];
    const start = performance.now();
    while (times.length < 5 || (performance.now() - start < BUDGET_MS && times.length < 2000)) {
      const t0 = performance.now();
      k.matmul(out, x, weights[c++ % copies], rows, inDim, outDim);
      times.push(performance.now() - t0);
    }
    const ms = median(times);
    results.push({
      shape: `${inDim}x${outDim}`, threads: k.threads, rows, ms,
      gflops: (2 * rows * inDim * outDim) / (ms * 1e6),
      gbps: wBytes / (ms * 1e6),
    });
  }
  for (const w of weights) k.heap.free(w);
  k.heap.free(x);
  k.heap.free(out);
}

async function main(): Promise<void> {
  const results: Row[] = [];
  const maxThreads = Math.min(2, availableParallelism());
  for (let threads = 1; threads <= maxThreads; threads++) {
    const k = await createKernels({ threads });
    for (const [inDim, outDim] of SHAPES) benchShape(k, inDim, outDim, results);
    await k.close();
  }
  console.log('matmul, f32 weights read cold (median per call)');
  console.log('shape        threads  rows     ms/call   GFLOP/s   weights GB/s');
  for (const r of results) {
    console.log(`${r.shape.padEnd(12)} ${String(r.threads).padStart(7)} ${String(r.rows).padStart(5)} ` +
      `${r.ms.toFixed(3).padStart(11)} ${r.gflops.toFixed(1).padStart(9)} ${r.gbps.toFixed(1).padStart(14)}`);
  }
}

await main();
